package authz_test

import (
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"git.sr.ht/~zozs/srht-registry/internal/authz"
)

// The policies below call a denied built-in; none is evaluated, so no
// request leaves the test.
const (
	httpSendRego = `package registry.authz

allow contains "pull" if {
	resp := http.send({"method": "GET", "url": "http://127.0.0.1:9/"})
	resp.status_code == 200
}
`
	lookupRego = `package registry.authz

allow contains "pull" if count(net.lookup_ip_addr("example.com")) > 0
`
	// Nested in a term, not an expression's operator.
	runtimeRego = `package registry.authz

allow contains x if {
	x := {"a": opa.runtime()}.a.env.ACTION
}
`
	withRego = `package registry.authz

allow contains "pull"

mocked := x if x := data.registry.authz.allow with http.send as {"status_code": 200}
`
)

// TestDeniedBuiltinsRefused: a policy calling a built-in denied by default
// (embedded-style modules, a bundle directory, a tarball) does not compile,
// and the error names the built-in, where it is called and the key that
// allows it; listed in AllowBuiltins, it compiles.
func TestDeniedBuiltinsRefused(t *testing.T) {
	t.Parallel()
	if got := authz.DeniedBuiltins(); !slices.Equal(got, []string{"http.send", "net.lookup_ip_addr", "opa.runtime"}) {
		t.Errorf("DeniedBuiltins() = %v", got)
	}
	for _, tc := range []struct{ name, rego, builtin, where string }{
		{"http.send", httpSendRego, "http.send", ":4 calls http.send"},
		{"net.lookup_ip_addr", lookupRego, "net.lookup_ip_addr", ":3 calls net.lookup_ip_addr"},
		{"opa.runtime in a term", runtimeRego, "opa.runtime", ":4 calls opa.runtime"},
		{"with http.send", withRego, "http.send", ":5 calls http.send"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := writeBundle(t, tc.rego, `{}`, "")
			sources := map[string]authz.Options{
				"modules":   {Modules: fstest.MapFS{"authz.rego": {Data: []byte(tc.rego)}}},
				"directory": authz.LocalPolicy(nil, []string{dir}, "", 0),
				"tarball":   authz.LocalPolicy(nil, []string{tarball(t, dir, "")}, "", 0),
			}
			for name, opts := range sources {
				_, err := authz.Compile(context.Background(), opts)
				if !errors.Is(err, authz.ErrDeniedBuiltin) {
					t.Errorf("%s: err = %v, want ErrDeniedBuiltin", name, err)
					continue
				}
				for _, want := range []string{tc.where, "policy.capabilities.allow_builtins", "allow_builtins: [" + tc.builtin + "]"} {
					if !strings.Contains(err.Error(), want) {
						t.Errorf("%s: error\n\t%v\nlacks %q", name, err, want)
					}
				}
				opts.AllowBuiltins = []string{tc.builtin}
				if _, err := authz.Compile(context.Background(), opts); err != nil {
					t.Errorf("%s with %s allowed: %v", name, tc.builtin, err)
				}
				// Allowing another one is not enough.
				opts.AllowBuiltins = slices.DeleteFunc(authz.DeniedBuiltins(), func(b string) bool { return b == tc.builtin })
				if _, err := authz.Compile(context.Background(), opts); !errors.Is(err, authz.ErrDeniedBuiltin) {
					t.Errorf("%s with the others allowed: %v, want ErrDeniedBuiltin", name, err)
				}
			}
		})
	}
}

// TestAllowBuiltinsUnknown: AllowBuiltins takes only the denied built-ins.
func TestAllowBuiltinsUnknown(t *testing.T) {
	t.Parallel()
	opts := authz.LocalPolicy(nil, nil, "", 0)
	opts.AllowBuiltins = []string{"time.now_ns"}
	if _, err := authz.Compile(context.Background(), opts); err == nil || !strings.Contains(err.Error(), `"time.now_ns" is not a built-in denied by default`) {
		t.Errorf("Compile with time.now_ns allowed: %v", err)
	}
	_, err := authz.StartRemote(context.Background(), authz.RemoteOptions{Config: []byte(`{"bundles": {}}`), AllowBuiltins: []string{"http.sned"},
		Logger: slog.New(slog.DiscardHandler)})
	if err == nil || !strings.Contains(err.Error(), `"http.sned" is not a built-in denied by default`) {
		t.Errorf("StartRemote with http.sned allowed: %v", err)
	}
}

// TestDefaultPoliciesNeedNoBuiltin: the embedded policy and every example
// bundle compile with the default capabilities.
func TestDefaultPoliciesNeedNoBuiltin(t *testing.T) {
	t.Parallel()
	if _, err := authz.Compile(context.Background(), authz.LocalPolicy(nil, nil, "", 0)); err != nil {
		t.Errorf("the embedded policy: %v", err)
	}
	dirs, err := filepath.Glob("../../bundles/*/.manifest")
	if err != nil || len(dirs) < 7 {
		t.Fatalf("example bundles: %v, %v", dirs, err)
	}
	for _, m := range dirs {
		dir := filepath.Dir(m)
		if _, err := authz.Compile(context.Background(), authz.LocalPolicy(nil, []string{dir}, "", 0)); err != nil {
			t.Errorf("%s: %v", dir, err)
		}
	}
}

// TestRemoteDeniedBuiltin: a downloaded bundle calling http.send is not
// activated by default (at start, or in place of a good one, which stays
// in force), and is with http.send allowed.
func TestRemoteDeniedBuiltin(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	bs := newSwappableServer(t)
	bs.set(bundleBytes(t, "bad", httpSendRego))
	logs := &syncBuffer{}
	_, err := authz.StartRemote(ctx, authz.RemoteOptions{Config: remoteConfig(bs.srv.URL, ""), Wait: 3 * time.Second,
		Logger: slog.New(slog.NewTextHandler(logs, nil))})
	if err == nil {
		t.Fatal("a bundle calling http.send activated")
	}
	for _, want := range []string{"policy bundle activated but refused", "calls http.send", "policy.capabilities.allow_builtins"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("the log lacks %q:\n%s", want, logs)
		}
	}

	r, err := authz.StartRemote(ctx, authz.RemoteOptions{Config: remoteConfig(bs.srv.URL, ""), Wait: 10 * time.Second,
		AllowBuiltins: []string{"http.send"}, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatalf("with http.send allowed: %v", err)
	}
	r.Stop(ctx)

	bs.set(bundleBytes(t, "v1", "package registry.authz\n\nallow contains \"pull\"\n"))
	logs = &syncBuffer{}
	r, err = authz.StartRemote(ctx, authz.RemoteOptions{Config: remoteConfig(bs.srv.URL, ""), Wait: 10 * time.Second,
		Logger: slog.New(slog.NewTextHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Stop(ctx)
	bs.set(bundleBytes(t, "v2", lookupRego))
	waitForLog(t, logs, "calls net.lookup_ip_addr")
	if got := r.Authorizer().Engine().Revision(); got != "registry@v1" {
		t.Errorf("revision %q after a bundle calling net.lookup_ip_addr, want registry@v1 still", got)
	}
}
