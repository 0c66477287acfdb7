package sourcehut_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"git.sr.ht/~zozs/srht-registry/internal/authn/sourcehut"
	"git.sr.ht/~zozs/srht-registry/internal/fakemeta"
	"git.sr.ht/~zozs/srht-registry/internal/identity"
)

// env is an Authenticator talking to a fake meta.sr.ht, both on one manual
// clock.
type env struct {
	fake  *fakemeta.Server
	clock *clock
	auth  *sourcehut.Authenticator
}

func newEnv(t *testing.T, opts sourcehut.Options) *env {
	t.Helper()
	fake, clk := startFake(t)
	if opts.Meta == nil {
		opts.Meta = metaClient(fake.URL(), 10*time.Second)
	}
	opts.Now = clk.Now
	if opts.Users == nil {
		// Most tests are about tokens, not about who may log in.
		opts.Users = []string{sourcehut.AnyUser}
	}
	a, err := sourcehut.New(opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return &env{fake: fake, clock: clk, auth: a}
}

func (e *env) mint(o fakemeta.TokenOptions) string { return e.fake.Mint(o) }

// authenticate runs Authenticate for service and checks that the error, if
// any, does not contain the token.
func (e *env) authenticate(t *testing.T, tok string) (identity.Identity, error) {
	t.Helper()
	return e.authenticateCtx(t, context.Background(), tok)
}

func (e *env) authenticateCtx(t *testing.T, ctx context.Context, tok string) (identity.Identity, error) {
	t.Helper()
	id, err := e.auth.Authenticate(ctx, service, identity.Secret(tok))
	checkNoSecret(t, err, tok)
	if err != nil && !reflect.DeepEqual(id, identity.Identity{}) {
		t.Errorf("Authenticate returned %+v with its error", id)
	}
	return id, err
}

func (e *env) wantCalls(t *testing.T, want int64) {
	t.Helper()
	if got := e.fake.Calls(); got != want {
		t.Errorf("upstream calls = %d, want %d", got, want)
	}
}

// wantErr checks that err wraps want and none of the other kinds.
func wantErr(t *testing.T, err, want error) {
	t.Helper()
	kinds := []error{identity.ErrUnauthenticated, identity.ErrUnavailable, sourcehut.ErrNotToken}
	if !errors.Is(err, want) {
		t.Fatalf("err = %v, want one wrapping %v", err, want)
	}
	for _, k := range kinds {
		if k != want && errors.Is(err, k) { //nolint:errorlint // k and want are the sentinels themselves
			t.Errorf("err = %v also wraps %v", err, k)
		}
	}
}

func TestNewRequiresMetaAndNow(t *testing.T) {
	meta := metaClient("http://127.0.0.1:1", time.Second)
	for _, opts := range []sourcehut.Options{
		{},
		{Meta: meta},
		{Now: time.Now},
	} {
		if a, err := sourcehut.New(opts); err == nil || a != nil {
			t.Errorf("New(%+v) = %v, %v; want an error", opts, a, err)
		}
	}
}

func TestAuthenticateValid(t *testing.T) {
	e := newEnv(t, sourcehut.Options{})
	expires := t0.Add(45*time.Minute + 700*time.Millisecond)
	tests := []struct {
		name       string
		opts       fakemeta.TokenOptions
		wantGrants []identity.Grant
		wantAll    bool
		wantAccess string
	}{
		{"build token RW", fakemeta.TokenOptions{Username: "zozs", ClientID: "builds", Grants: service + "/REGISTRY:RW", Expires: expires},
			[]identity.Grant{{Service: service, Scope: "REGISTRY", Access: "RW"}}, false, "RW"},
		{"RO", fakemeta.TokenOptions{Username: "ro", ClientID: "c", Grants: service + "/REGISTRY:RO", Expires: expires},
			[]identity.Grant{{Service: service, Scope: "REGISTRY", Access: "RO"}}, false, "RO"},
		{"no suffix is RO", fakemeta.TokenOptions{Username: "ro2", Grants: "meta.sr.ht/PROFILE:RO " + service + "/REGISTRY", Expires: expires},
			[]identity.Grant{{Service: "meta.sr.ht", Scope: "PROFILE", Access: "RO"}, {Service: service, Scope: "REGISTRY", Access: "RO"}}, false, "RO"},
		{"personal token, all grants", fakemeta.TokenOptions{Username: "alice", Expires: expires},
			nil, true, "RW"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e.fake.ResetCalls()
			id, err := e.authenticate(t, e.mint(tt.opts))
			if err != nil {
				t.Fatalf("Authenticate: %v", err)
			}
			want := identity.Identity{
				Method:   identity.MethodSourcehut,
				Provider: identity.ProviderSourcehut,
				Subject:  tt.opts.Username,
				Sourcehut: &identity.Sourcehut{
					Username:  tt.opts.Username,
					ClientID:  tt.opts.ClientID,
					Expires:   time.Unix(expires.Unix(), 0).UTC(),
					AllGrants: tt.wantAll,
					Grants:    tt.wantGrants,
					Access:    tt.wantAccess,
				},
			}
			if !reflect.DeepEqual(id, want) {
				t.Errorf("identity = %+v %+v\nwant %+v %+v", id, id.Sourcehut, want, want.Sourcehut)
			}
			if !id.Authenticated() {
				t.Error("identity is not Authenticated")
			}
			e.wantCalls(t, 1)
		})
	}
}

// TestAuthenticateLocalRefusals: what can be refused without meta.sr.ht is,
// at no upstream call.
func TestAuthenticateLocalRefusals(t *testing.T) {
	e := newEnv(t, sourcehut.Options{})
	rw := service + "/REGISTRY:RW"
	tests := []struct {
		name string
		opts fakemeta.TokenOptions
	}{
		{"expired", fakemeta.TokenOptions{Username: "zozs", Grants: rw, Expires: t0.Add(-time.Second)}},
		{"expires now", fakemeta.TokenOptions{Username: "zozs", Grants: rw, Expires: t0}},
		{"version 1", fakemeta.TokenOptions{Username: "zozs", Grants: rw, Version: 1}},
		{"profile grant only", fakemeta.TokenOptions{Username: "zozs", Grants: "meta.sr.ht/PROFILE:RO"}},
		{"RW for another registry", fakemeta.TokenOptions{Username: "zozs", Grants: "other.example.com/REGISTRY:RW"}},
		{"RO for another registry", fakemeta.TokenOptions{Username: "zozs", Grants: "other.example.com/REGISTRY:RO"}},
		{"another scope on our registry", fakemeta.TokenOptions{Username: "zozs", Grants: service + "/PROFILE:RW"}},
		{"malformed grants", fakemeta.TokenOptions{Username: "zozs", Grants: rw + " REGISTRY:RW"}},
		{"empty username", fakemeta.TokenOptions{Username: "", Grants: rw}},
		{"empty username, all grants", fakemeta.TokenOptions{Username: ""}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e.fake.ResetCalls()
			tok := e.mint(tt.opts)
			for range 3 {
				_, err := e.authenticate(t, tok)
				wantErr(t, err, identity.ErrUnauthenticated)
			}
			e.wantCalls(t, 0)
			if n := e.auth.Len(); n != 0 {
				t.Errorf("Len = %d, want 0", n)
			}
		})
	}
}

// TestAuthenticateGrantIsPerService: a token validated for one registry is
// not good for another, even from the cache.
func TestAuthenticateGrantIsPerService(t *testing.T) {
	e := newEnv(t, sourcehut.Options{})
	tok := e.mint(fakemeta.TokenOptions{Username: "zozs", Grants: service + "/REGISTRY:RW"})
	if _, err := e.authenticate(t, tok); err != nil {
		t.Fatal(err)
	}
	_, err := e.auth.Authenticate(context.Background(), "other.example.com", identity.Secret(tok))
	wantErr(t, err, identity.ErrUnauthenticated)
	checkNoSecret(t, err, tok)
	e.wantCalls(t, 1)
}

func TestAuthenticateNotToken(t *testing.T) {
	e := newEnv(t, sourcehut.Options{})
	for _, s := range []string{"", "hunter2", "correct horse battery staple", "Zm9vYmFy", strings.Repeat("A", 9000)} {
		_, err := e.authenticate(t, s)
		wantErr(t, err, sourcehut.ErrNotToken)
	}
	e.wantCalls(t, 0)
}

// TestAuthenticateTokenWithLineBreakIsNotToken: see TestDecodeRejectsLineBreaks.
// Today such a string passes Decode, goes to Validate, and net/http refuses
// the header value, which surfaces as ErrUnavailable (a 503) for a string
// that is not a token.
func TestAuthenticateTokenWithLineBreakIsNotToken(t *testing.T) {
	e := newEnv(t, sourcehut.Options{})
	tok := e.mint(fakemeta.TokenOptions{Username: "zozs", Grants: service + "/REGISTRY:RW"})
	_, err := e.authenticate(t, tok[:20]+"\n"+tok[20:])
	wantErr(t, err, sourcehut.ErrNotToken)
	e.wantCalls(t, 0)
}

func TestAuthenticateCachesSuccess(t *testing.T) {
	e := newEnv(t, sourcehut.Options{})
	tok := e.mint(fakemeta.TokenOptions{Username: "zozs", Grants: service + "/REGISTRY:RW"})
	first, err := e.authenticate(t, tok)
	if err != nil {
		t.Fatal(err)
	}
	e.wantCalls(t, 1)
	for i := range 1000 {
		if i == 500 {
			e.fake.SetDown(true)
		}
		id, err := e.authenticate(t, tok)
		if err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
		if !reflect.DeepEqual(id, first) {
			t.Fatalf("call %d: identity %+v, want %+v", i, id, first)
		}
	}
	e.wantCalls(t, 1)
	if n := e.auth.Len(); n != 1 {
		t.Errorf("Len = %d, want 1", n)
	}
}

// TestAuthenticateUnavailableNotCached: an upstream failure is ErrUnavailable,
// never a grant nor a refusal, and is not remembered.
func TestAuthenticateUnavailableNotCached(t *testing.T) {
	tests := []struct {
		name      string
		fault     func(*fakemeta.Server)
		recovered func(*fakemeta.Server)
	}{
		{"down", func(f *fakemeta.Server) { f.SetDown(true) }, func(f *fakemeta.Server) { f.SetDown(false) }},
		{"503", func(f *fakemeta.Server) { f.SetStatus(503) }, func(f *fakemeta.Server) { f.SetStatus(0) }},
		{"garbage", func(f *fakemeta.Server) { f.SetGarbage(true) }, func(f *fakemeta.Server) { f.SetGarbage(false) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, sourcehut.Options{})
			tok := e.mint(fakemeta.TokenOptions{Username: "zozs", Grants: service + "/REGISTRY:RW"})
			tt.fault(e.fake)
			for i := range 3 {
				_, err := e.authenticate(t, tok)
				wantErr(t, err, identity.ErrUnavailable)
				if !errors.Is(err, sourcehut.ErrUnreachable) {
					t.Errorf("err = %v, want it to wrap ErrUnreachable", err)
				}
				e.wantCalls(t, int64(i+1))
			}
			if n := e.auth.Len(); n != 0 {
				t.Errorf("Len = %d, want 0", n)
			}
			tt.recovered(e.fake)
			if _, err := e.authenticate(t, tok); err != nil {
				t.Fatalf("after recovery: %v", err)
			}
			e.wantCalls(t, 4)
		})
	}
}

func TestAuthenticateRejectedNegativeCache(t *testing.T) {
	const negTTL = 30 * time.Second
	tests := []struct {
		name   string
		negTTL time.Duration // Options.NegativeTTL; 0 is the default
		tok    func(*env) string
	}{
		{"bad MAC", negTTL, func(e *env) string {
			other := fakemeta.New(bytes.Repeat([]byte{3}, 32))
			return fakemeta.MintWithKey(other.BearerKey(), fakemeta.TokenOptions{
				Username: "zozs", Grants: service + "/REGISTRY:RW", Expires: t0.Add(time.Hour)})
		}},
		{"revoked", negTTL, func(e *env) string {
			tok := e.mint(fakemeta.TokenOptions{Username: "zozs", Grants: service + "/REGISTRY:RW"})
			e.fake.Revoke(tok)
			return tok
		}},
		{"default NegativeTTL", 0, func(e *env) string {
			tok := e.mint(fakemeta.TokenOptions{Username: "zozs", Grants: service + "/REGISTRY:RW"})
			e.fake.Revoke(tok)
			return tok
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, sourcehut.Options{NegativeTTL: tt.negTTL})
			ttl := tt.negTTL
			if ttl == 0 {
				ttl = sourcehut.DefaultNegativeTTL
			}
			tok := tt.tok(e)
			refused := func() {
				t.Helper()
				_, err := e.authenticate(t, tok)
				wantErr(t, err, identity.ErrUnauthenticated)
				if !errors.Is(err, sourcehut.ErrRejected) {
					t.Errorf("err = %v, want it to wrap ErrRejected", err)
				}
			}
			refused()
			e.wantCalls(t, 1)
			for range 10 {
				refused()
			}
			e.clock.Advance(ttl - time.Second)
			refused()
			e.wantCalls(t, 1)
			e.clock.Advance(time.Second)
			refused()
			e.wantCalls(t, 2)
			refused()
			e.wantCalls(t, 2)
			if n := e.auth.Len(); n != 0 {
				t.Errorf("Len = %d, want 0", n)
			}
		})
	}
}

// TestAuthenticateMaxCacheTTL: a revoked token works until its entry ages
// out, then meta.sr.ht is asked once and the refusal sticks.
func TestAuthenticateMaxCacheTTL(t *testing.T) {
	const maxTTL = 5 * time.Minute
	e := newEnv(t, sourcehut.Options{MaxCacheTTL: maxTTL})
	tok := e.mint(fakemeta.TokenOptions{Username: "zozs", Grants: service + "/REGISTRY:RW", Expires: t0.Add(time.Hour)})
	if _, err := e.authenticate(t, tok); err != nil {
		t.Fatal(err)
	}
	e.fake.Revoke(tok)
	e.clock.Advance(maxTTL - time.Second)
	if _, err := e.authenticate(t, tok); err != nil {
		t.Fatalf("before MaxCacheTTL: %v", err)
	}
	e.wantCalls(t, 1)
	e.clock.Advance(time.Second)
	_, err := e.authenticate(t, tok)
	wantErr(t, err, identity.ErrUnauthenticated)
	if !errors.Is(err, sourcehut.ErrRejected) {
		t.Errorf("err = %v, want it to wrap ErrRejected", err)
	}
	e.wantCalls(t, 2)
	_, err = e.authenticate(t, tok)
	wantErr(t, err, identity.ErrUnauthenticated)
	e.wantCalls(t, 2)
	if n := e.auth.Len(); n != 0 {
		t.Errorf("Len = %d, want 0", n)
	}
}

// TestAuthenticateMaxCacheTTLRevalidates: a token still good when its entry
// ages out is validated again and cached anew.
func TestAuthenticateMaxCacheTTLRevalidates(t *testing.T) {
	const maxTTL = 5 * time.Minute
	e := newEnv(t, sourcehut.Options{MaxCacheTTL: maxTTL})
	tok := e.mint(fakemeta.TokenOptions{Username: "zozs", Grants: service + "/REGISTRY:RW", Expires: t0.Add(time.Hour)})
	for i := range 4 {
		if _, err := e.authenticate(t, tok); err != nil {
			t.Fatalf("round %d: %v", i, err)
		}
		e.wantCalls(t, int64(i+1))
		e.clock.Advance(maxTTL - time.Second)
		if _, err := e.authenticate(t, tok); err != nil {
			t.Fatalf("round %d: %v", i, err)
		}
		e.wantCalls(t, int64(i+1))
		e.clock.Advance(time.Second)
	}
}

// TestAuthenticateCachedUntilExpiry: with MaxCacheTTL 0 (or one beyond the
// expiry) the entry lives until the token expires, then the token is refused
// locally.
func TestAuthenticateCachedUntilExpiry(t *testing.T) {
	for _, maxTTL := range []time.Duration{0, 2 * time.Hour} {
		t.Run(fmt.Sprint(maxTTL), func(t *testing.T) {
			e := newEnv(t, sourcehut.Options{MaxCacheTTL: maxTTL})
			const life = 45 * time.Minute
			tok := e.mint(fakemeta.TokenOptions{Username: "zozs", Grants: service + "/REGISTRY:RW", Expires: t0.Add(life)})
			if _, err := e.authenticate(t, tok); err != nil {
				t.Fatal(err)
			}
			e.fake.Revoke(tok)
			e.clock.Advance(life - time.Second)
			if _, err := e.authenticate(t, tok); err != nil {
				t.Fatalf("one second before expiry: %v", err)
			}
			e.clock.Advance(time.Second)
			_, err := e.authenticate(t, tok)
			wantErr(t, err, identity.ErrUnauthenticated)
			if !strings.Contains(err.Error(), "expired") {
				t.Errorf("err = %v, want it to say expired", err)
			}
			e.wantCalls(t, 1)
		})
	}
}

func TestAuthenticateSingleflight(t *testing.T) {
	e := newEnv(t, sourcehut.Options{})
	e.fake.SetDelay(200 * time.Millisecond)
	tok := e.mint(fakemeta.TokenOptions{Username: "zozs", Grants: service + "/REGISTRY:RW"})
	const n = 50
	start := make(chan struct{})
	errs := make([]error, n)
	ids := make([]identity.Identity, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			ids[i], errs[i] = e.auth.Authenticate(context.Background(), service, identity.Secret(tok))
		})
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("caller %d: %v", i, err)
			checkNoSecret(t, err, tok)
		} else if ids[i].Subject != "zozs" {
			t.Errorf("caller %d: subject %q", i, ids[i].Subject)
		}
	}
	e.wantCalls(t, 1)
}

// TestAuthenticateSingleflightFailureShared: concurrent callers share one
// failed call too, and nothing is cached.
func TestAuthenticateSingleflightFailureShared(t *testing.T) {
	e := newEnv(t, sourcehut.Options{})
	e.fake.SetDelay(200 * time.Millisecond)
	e.fake.SetStatus(502)
	tok := e.mint(fakemeta.TokenOptions{Username: "zozs", Grants: service + "/REGISTRY:RW"})
	const n = 20
	gate := newGate(metaClient(e.fake.URL(), 10*time.Second))
	a, err := sourcehut.New(sourcehut.Options{Meta: gate, Now: e.clock.Now, Users: []string{sourcehut.AnyUser}})
	if err != nil {
		t.Fatal(err)
	}
	errs := make([]error, n)
	var wg sync.WaitGroup
	wg.Go(func() { _, errs[0] = a.Authenticate(context.Background(), service, identity.Secret(tok)) })
	<-gate.entered
	for i := 1; i < n; i++ {
		wg.Go(func() { _, errs[i] = a.Authenticate(context.Background(), service, identity.Secret(tok)) })
	}
	close(gate.release)
	wg.Wait()
	for i, err := range errs {
		// Callers that arrive after the shared call ended make their own.
		if !errors.Is(err, identity.ErrUnavailable) {
			t.Errorf("caller %d: %v, want ErrUnavailable", i, err)
		}
	}
	if got := e.fake.Calls(); got < 1 || got > n {
		t.Errorf("upstream calls = %d", got)
	}
	if a.Len() != 0 {
		t.Errorf("Len = %d, want 0", a.Len())
	}
}

// gate is a Validator that holds the first call until released, then asks
// the real one with the context it got, recording that context's error.
type gate struct {
	next     sourcehut.Validator
	entered  chan struct{}
	release  chan struct{}
	once     sync.Once
	mu       sync.Mutex
	calls    int
	ctxErrAt []error // ctx.Err() of each call, seen after release
}

func newGate(next sourcehut.Validator) *gate {
	return &gate{next: next, entered: make(chan struct{}), release: make(chan struct{})}
}

func (g *gate) Validate(ctx context.Context, token string) error {
	g.once.Do(func() { close(g.entered) })
	<-g.release
	g.mu.Lock()
	g.calls++
	g.ctxErrAt = append(g.ctxErrAt, ctx.Err())
	g.mu.Unlock()
	return g.next.Validate(ctx, token)
}

// TestAuthenticateDetachedCall: the caller that started the upstream call
// gives up (its context is cancelled) while others wait on the same call;
// the call goes on and everybody gets its answer.
func TestAuthenticateDetachedCall(t *testing.T) {
	fake, clk := startFake(t)
	g := newGate(metaClient(fake.URL(), 10*time.Second))
	a, err := sourcehut.New(sourcehut.Options{Meta: g, Now: clk.Now, Users: []string{sourcehut.AnyUser}})
	if err != nil {
		t.Fatal(err)
	}
	tok := fake.Mint(fakemeta.TokenOptions{Username: "zozs", Grants: service + "/REGISTRY:RW"})

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	var firstErr error
	wg.Go(func() { _, firstErr = a.Authenticate(ctx, service, identity.Secret(tok)) })
	<-g.entered
	const others = 10
	errs := make([]error, others)
	for i := range others {
		wg.Go(func() { _, errs[i] = a.Authenticate(context.Background(), service, identity.Secret(tok)) })
	}
	cancel()
	close(g.release)
	wg.Wait()

	for i, err := range errs {
		if err != nil {
			t.Errorf("other caller %d: %v", i, err)
		}
	}
	// The cancelled caller may get its answer or its own cancellation, but
	// never a refusal.
	if firstErr != nil && (errors.Is(firstErr, identity.ErrUnauthenticated) || !errors.Is(firstErr, context.Canceled)) {
		t.Errorf("cancelled caller: %v", firstErr)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.calls != 1 || fake.Calls() != 1 {
		t.Errorf("validator calls = %d, upstream calls = %d; want 1, 1", g.calls, fake.Calls())
	}
	if len(g.ctxErrAt) > 0 && g.ctxErrAt[0] != nil {
		t.Errorf("the upstream call's context was cancelled with its first caller: %v", g.ctxErrAt[0])
	}
	if a.Len() != 1 {
		t.Errorf("Len = %d, want 1", a.Len())
	}
}

func TestAuthenticateCacheBound(t *testing.T) {
	const size = 10
	e := newEnv(t, sourcehut.Options{CacheSize: size})
	toks := make([]string, 50)
	for i := range toks {
		toks[i] = e.mint(fakemeta.TokenOptions{Username: fmt.Sprintf("user%d", i), Grants: service + "/REGISTRY:RW"})
		if _, err := e.authenticate(t, toks[i]); err != nil {
			t.Fatalf("token %d: %v", i, err)
		}
	}
	e.wantCalls(t, 50)
	if n := e.auth.Len(); n != size {
		t.Errorf("Len = %d, want %d", n, size)
	}
	// The last one is cached; the first was evicted.
	if _, err := e.authenticate(t, toks[len(toks)-1]); err != nil {
		t.Fatal(err)
	}
	e.wantCalls(t, 50)
	if _, err := e.authenticate(t, toks[0]); err != nil {
		t.Fatal(err)
	}
	e.wantCalls(t, 51)
	if n := e.auth.Len(); n != size {
		t.Errorf("Len = %d, want %d", n, size)
	}
}

// TestAuthenticateRejectedFloodKeepsValid: rejected tokens are cached apart,
// so many of them do not evict a valid one.
func TestAuthenticateRejectedFloodKeepsValid(t *testing.T) {
	const size = 10
	e := newEnv(t, sourcehut.Options{CacheSize: size})
	good := e.mint(fakemeta.TokenOptions{Username: "zozs", Grants: service + "/REGISTRY:RW"})
	if _, err := e.authenticate(t, good); err != nil {
		t.Fatal(err)
	}
	otherKey := fakemeta.New(bytes.Repeat([]byte{5}, 32)).BearerKey()
	for i := range 50 {
		bad := fakemeta.MintWithKey(otherKey, fakemeta.TokenOptions{Username: fmt.Sprintf("mallory%d", i), Grants: service + "/REGISTRY:RW", Expires: t0.Add(time.Hour)})
		_, err := e.authenticate(t, bad)
		wantErr(t, err, identity.ErrUnauthenticated)
	}
	e.wantCalls(t, 51)
	e.fake.SetDown(true)
	if _, err := e.authenticate(t, good); err != nil {
		t.Fatalf("good token after a flood of bad ones: %v", err)
	}
	e.wantCalls(t, 51)
	if n := e.auth.Len(); n != 1 {
		t.Errorf("Len = %d, want 1", n)
	}
}

// TestAuthenticateErrorsNeverContainToken gathers every error path with a
// token long enough to be recognised, in messages and in %+v / %#v output.
func TestAuthenticateErrorsNeverContainToken(t *testing.T) {
	e := newEnv(t, sourcehut.Options{Meta: &sourcehut.MetaClient{URL: "http://127.0.0.1:1", HTTP: http.DefaultClient, Timeout: time.Second}})
	fake := e.fake
	valid := fake.Mint(fakemeta.TokenOptions{Username: "zozs", Grants: service + "/REGISTRY:RW"})
	for _, tok := range []string{
		valid,
		valid[:len(valid)-4],
		valid + "AAAA",
		fake.Mint(fakemeta.TokenOptions{Username: "zozs", Grants: "svc/"}),
		fake.Mint(fakemeta.TokenOptions{Username: "zozs", Grants: service + "/REGISTRY:RW", Version: 7}),
		fake.Mint(fakemeta.TokenOptions{Username: "zozs", Grants: service + "/REGISTRY:RW", Expires: t0.Add(-time.Hour)}),
	} {
		_, err := e.authenticate(t, tok)
		if err == nil {
			t.Fatalf("Authenticate succeeded against an unreachable meta.sr.ht")
		}
		for _, s := range []string{err.Error(), fmt.Sprintf("%+v", err), fmt.Sprintf("%#v", err)} {
			if strings.Contains(s, tok) {
				t.Errorf("error output contains the token: %s", s)
			}
		}
	}
}

// TestAuthenticateAllowList: who may log in is decided from the token's
// own user name before meta.sr.ht is asked; the default lets nobody in, and
// a reloaded list applies to tokens already validated.
func TestAuthenticateAllowList(t *testing.T) {
	expires := t0.Add(time.Hour)
	rw := service + "/REGISTRY:RW"
	t.Run("default: nobody", func(t *testing.T) {
		e := newEnv(t, sourcehut.Options{Users: []string{}})
		_, err := e.authenticate(t, e.mint(fakemeta.TokenOptions{Username: "alice", Grants: rw, Expires: expires}))
		wantErr(t, err, identity.ErrUnauthenticated)
		if !strings.Contains(err.Error(), `the Sourcehut account "alice" may not log in to this registry`) {
			t.Errorf("error %q does not say why", err)
		}
		e.wantCalls(t, 0)
	})
	t.Run("a list", func(t *testing.T) {
		e := newEnv(t, sourcehut.Options{Users: []string{"alice", "carol"}})
		alice := e.mint(fakemeta.TokenOptions{Username: "alice", Grants: rw, Expires: expires})
		if _, err := e.authenticate(t, alice); err != nil {
			t.Fatalf("alice: %v", err)
		}
		e.wantCalls(t, 1)
		// Forged or not, bob's token costs no upstream call.
		for _, bob := range []string{
			e.mint(fakemeta.TokenOptions{Username: "bob", Grants: rw, Expires: expires}),
			fakemeta.MintWithKey(make([]byte, 32), fakemeta.TokenOptions{Username: "bob", Grants: rw, Expires: expires}),
		} {
			_, err := e.authenticate(t, bob)
			wantErr(t, err, identity.ErrUnauthenticated)
		}
		e.wantCalls(t, 1)
		if !e.auth.Admits("carol") || e.auth.Admits("bob") {
			t.Errorf("Admits: carol %v, bob %v; want true, false", e.auth.Admits("carol"), e.auth.Admits("bob"))
		}
		// alice taken off the list: her cached token stops at once.
		e.auth.SetUsers([]string{"carol"})
		_, err := e.authenticate(t, alice)
		wantErr(t, err, identity.ErrUnauthenticated)
		e.wantCalls(t, 1)
		e.auth.SetUsers([]string{sourcehut.AnyUser})
		if _, err := e.authenticate(t, alice); err != nil {
			t.Fatalf("alice with every account allowed: %v", err)
		}
		if !e.auth.Admits("anyone") {
			t.Error(`"*" does not admit every account`)
		}
	})
	t.Run("a name with control characters is quoted, not echoed", func(t *testing.T) {
		e := newEnv(t, sourcehut.Options{Users: []string{"alice"}})
		_, err := e.authenticate(t, e.mint(fakemeta.TokenOptions{Username: "x\n\x1b[31mroot", Grants: rw, Expires: expires}))
		wantErr(t, err, identity.ErrUnauthenticated)
		if strings.ContainsAny(err.Error(), "\n\x1b") {
			t.Errorf("error %q carries raw control characters", err)
		}
	})
}
