package access

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

func TestParseScope(t *testing.T) {
	tests := []struct {
		in      string
		want    Scope
		wantErr bool
	}{
		{in: "repository:alice/app:pull", want: Scope{Resource{"repository", "", "alice/app"}, []string{"pull"}}},
		{in: "repository:alice/app:pull,push", want: Scope{Resource{"repository", "", "alice/app"}, []string{"pull", "push"}}},
		{in: "repository:host:5000/ns/app:pull,push", want: Scope{Resource{"repository", "", "host:5000/ns/app"}, []string{"pull", "push"}}},
		{in: "repository(plugin):x:pull", want: Scope{Resource{"repository", "plugin", "x"}, []string{"pull"}}},
		{in: "registry:catalog:*", want: Scope{Resource{"registry", "", "catalog"}, []string{"*"}}},
		{in: "repository:a/b:pull,pull", want: Scope{Resource{"repository", "", "a/b"}, []string{"pull"}}},
		{in: "repository:library/my_app-x.y:delete", want: Scope{Resource{"repository", "", "library/my_app-x.y"}, []string{"delete"}}},
		{in: "foo:bar:baz", want: Scope{Resource{"foo", "", "bar"}, []string{"baz"}}},
		{in: "", wantErr: true},
		{in: "repository", wantErr: true},
		{in: "repository:alice/app", wantErr: true},
		{in: "repository:alice/app:", wantErr: true},
		{in: "repository::pull", wantErr: true},
		{in: ":alice/app:pull", wantErr: true},
		{in: "Repository:alice/app:pull", wantErr: true},
		{in: "repository(:x:pull", wantErr: true},
		{in: "repository:alice/App:pull", wantErr: true},
		{in: "repository:alice//app:pull", wantErr: true},
		{in: "repository:alice/app/:pull", wantErr: true},
		{in: "repository:alice/app:pull,", wantErr: true},
		{in: "repository:alice/app:PULL", wantErr: true},
		{in: "repository:alice/app:pu ll", wantErr: true},
		{in: "repository:" + strings.Repeat("a", 256) + ":pull", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseScope(tt.in)
			if tt.wantErr {
				if !errors.Is(err, ErrInvalidScope) {
					t.Fatalf("ParseScope(%q) = %+v, %v; want ErrInvalidScope", tt.in, got, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseScope(%q): %v", tt.in, err)
			}
			if got.Resource != tt.want.Resource || !slices.Equal(got.Actions, tt.want.Actions) {
				t.Fatalf("ParseScope(%q) = %+v, want %+v", tt.in, got, tt.want)
			}
			if got.String() != tt.want.String() {
				t.Fatalf("String() = %q, want %q", got.String(), tt.want.String())
			}
		})
	}
}

func TestParseScopes(t *testing.T) {
	tests := []struct {
		name    string
		values  []string
		max     int
		want    []string
		wantErr error
	}{
		{name: "none", values: nil, max: 4, want: nil},
		{name: "repeated", values: []string{"repository:a/b:pull", "repository:c/d:push"}, max: 4,
			want: []string{"repository:a/b:pull", "repository:c/d:push"}},
		{name: "space separated", values: []string{"repository:a/b:pull repository:c/d:push"}, max: 4,
			want: []string{"repository:a/b:pull", "repository:c/d:push"}},
		{name: "merged", values: []string{"repository:a/b:pull", "repository:a/b:push,pull"}, max: 4,
			want: []string{"repository:a/b:pull,push"}},
		{name: "class distinct", values: []string{"repository:a/b:pull repository(plugin):a/b:pull"}, max: 4,
			want: []string{"repository:a/b:pull", "repository(plugin):a/b:pull"}},
		{name: "limit counts resources", values: []string{strings.Repeat("repository:a/b:pull ", 1000)}, max: 2,
			want: []string{"repository:a/b:pull"}},
		{name: "too many", values: []string{"repository:a/a:pull repository:a/b:pull repository:a/c:pull"}, max: 2,
			wantErr: ErrTooManyScopes},
		{name: "one bad", values: []string{"repository:a/b:pull", "nonsense"}, max: 4, wantErr: ErrInvalidScope},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseScopes(tt.values, tt.max)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var strs []string
			for _, s := range got {
				strs = append(strs, s.String())
			}
			if !slices.Equal(strs, tt.want) {
				t.Fatalf("got %q, want %q", strs, tt.want)
			}
		})
	}
}

func TestGrant(t *testing.T) {
	tests := []struct {
		requested, allowed, want []string
	}{
		{[]string{"pull", "push"}, []string{"pull"}, []string{"pull"}},
		{[]string{"pull", "push"}, []string{"push", "pull", "delete"}, []string{"pull", "push"}},
		{[]string{"pull", "push"}, []string{"*"}, []string{"pull", "push"}},
		{[]string{"*"}, []string{"*"}, []string{"*"}},
		{[]string{"*"}, []string{"pull", "push", "delete"}, []string{}},
		{[]string{"pull"}, nil, []string{}},
		{[]string{"delete"}, []string{"pull"}, []string{}},
	}
	for _, tt := range tests {
		got := Grant(tt.requested, tt.allowed)
		if !slices.Equal(got, tt.want) {
			t.Errorf("Grant(%q, %q) = %q, want %q", tt.requested, tt.allowed, got, tt.want)
		}
	}
}

// FuzzParseScope checks that the parser never panics and that whatever it
// accepts round-trips through String unchanged (up to duplicate actions).
func FuzzParseScope(f *testing.F) {
	// The committed corpus in testdata/fuzz/FuzzParseScope holds the seeds;
	// these add the grammar's corner cases.
	for _, s := range []string{"repository:a/b:pull", "registry:catalog:*", "repository(x):h:1/a:push", "::", "a:b:c:d"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		sc, err := ParseScope(s)
		if err != nil {
			if !errors.Is(err, ErrInvalidScope) {
				t.Fatalf("error %v does not wrap ErrInvalidScope", err)
			}
			return
		}
		again, err := ParseScope(sc.String())
		if err != nil {
			t.Fatalf("round trip of %q via %q: %v", s, sc.String(), err)
		}
		if again.Resource != sc.Resource || !slices.Equal(again.Actions, sc.Actions) {
			t.Fatalf("round trip of %q: %+v != %+v", s, again, sc)
		}
		if len(Grant(sc.Actions, []string{Wildcard})) != len(sc.Actions) {
			t.Fatal("wildcard did not grant every action")
		}
	})
}

// FuzzParseScopeFastPaths: the byte loops that spare ParseScope its
// patterns in the common case agree with the patterns on every string.
func FuzzParseScopeFastPaths(f *testing.F) {
	for _, s := range []string{"repository", "repository(plugin)", "a/b", "a__b/c--d.e_f", "a___b", "a-", "-a", "a..b", "A/b",
		"registry.example.com:5000/library/base", "localhost/x", "pull", "*", "", "PULL", "a/", "/a", "a//b", "a_.b", "9"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		typ, class, ok := parseType(s)
		m := typePattern.FindStringSubmatch(s)
		if ok != (m != nil) || (ok && (typ != m[1] || class != m[2])) {
			t.Errorf("parseType(%q) = %q, %q, %v; the pattern says %q", s, typ, class, ok, m)
		}
		if got, want := validName("repository", s), repoPattern.MatchString(s); got != want {
			t.Errorf("validName(repository, %q) = %v, the pattern says %v", s, got, want)
		}
		if pathComponents(s) && !repoPattern.MatchString(s) {
			t.Errorf("pathComponents(%q) accepts what the pattern refuses", s)
		}
		if got, want := validAction(s), actionPattern.MatchString(s); got != want {
			t.Errorf("validAction(%q) = %v, the pattern says %v", s, got, want)
		}
	})
}
