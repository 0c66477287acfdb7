package ldap

import (
	"strings"
	"testing"

	goldap "github.com/go-ldap/ldap/v3"
)

func TestExpand(t *testing.T) {
	t.Parallel()
	tests := []struct {
		template string
		values   map[string]string
		want     string
		err      string
	}{
		{"(uid={user})", map[string]string{"user": "alice"}, "(uid=alice)", ""},
		{"(uid={user})", map[string]string{"user": "*)(uid=*"}, `(uid=\2a\29\28uid=\2a)`, ""},
		{"(uid={user})", map[string]string{"user": "a\x00b"}, `(uid=a\00b)`, ""},
		{"(uid={user})", map[string]string{"user": `\2a`}, `(uid=\5c2a)`, ""},
		{"(uid={user})", map[string]string{"user": "é"}, `(uid=\c3\a9)`, ""},
		{"(uid={user})", map[string]string{"user": "{dn}"}, `(uid={dn})`, ""}, // a value is never expanded again
		{"(&(member={dn})(cn={user}))", map[string]string{"dn": "uid=a(1),dc=x", "user": "a"}, `(&(member=uid=a\281\29,dc=x)(cn=a))`, ""},
		{"(uid={username})", map[string]string{"user": "a"}, "", "unknown placeholder {username}"},
		{"(uid={user)", map[string]string{"user": "a"}, "", `a "{" without its "}"`},
		{"(uid=x)", map[string]string{"user": "a"}, "(uid=x)", ""},
	}
	for _, tc := range tests {
		got, err := Expand(tc.template, tc.values)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("Expand(%q) = %q, %v; want error %q", tc.template, got, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("Expand(%q, %q) = %q, %v; want %q", tc.template, tc.values, got, err, tc.want)
		}
	}
}

func TestGroupName(t *testing.T) {
	t.Parallel()
	tests := []struct{ dn, attr, want string }{
		{"cn=devs,ou=groups,dc=example,dc=org", "cn", "devs"},
		{"CN=Domain Admins,CN=Users,DC=corp,DC=example", "cn", "Domain Admins"},
		{"ou=devs,dc=example", "cn", ""},
		{"not a dn", "cn", ""},
		{`cn=a\,b,dc=x`, "cn", "a,b"},
	}
	for _, tc := range tests {
		if got := groupName(tc.dn, tc.attr); got != tc.want {
			t.Errorf("groupName(%q, %q) = %q, want %q", tc.dn, tc.attr, got, tc.want)
		}
	}
}

// FuzzExpand: whatever the login name, the filter made from (uid={user})
// parses, and is exactly one equality test of uid against exactly that
// name: nothing in a name can add a clause, a wildcard or a parenthesis.
func FuzzExpand(f *testing.F) {
	for _, s := range []string{"alice", "*", "*)(uid=*", "admin)(|(uid=*", "a\x00b", `\2a`, "é", "{user}", "(", ")", `\`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, user string) {
		filter, err := Expand("(uid={user})", map[string]string{"user": user})
		if err != nil {
			t.Fatalf("Expand(%q): %v", user, err)
		}
		packet, err := goldap.CompileFilter(filter)
		if err != nil {
			t.Fatalf("%q gave %q, which does not parse: %v", user, filter, err)
		}
		if packet.Tag != goldap.FilterEqualityMatch || len(packet.Children) != 2 {
			t.Fatalf("%q gave %q: not one equality match", user, filter)
		}
		if attr, value := packet.Children[0].Data.String(), packet.Children[1].Data.String(); attr != "uid" || value != user {
			t.Fatalf("%q gave %q: uid=%q (attribute %q)", user, filter, value, attr)
		}
	})
}
