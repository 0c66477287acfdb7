package ldap_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"git.sr.ht/~zozs/srht-registry/internal/authn/ldap"
	"git.sr.ht/~zozs/srht-registry/internal/identity"
	"git.sr.ht/~zozs/srht-registry/internal/slapdtest"
)

// clock is a settable clock.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// logs collects log lines, for checks that no secret is in them.
type logs struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logs) Write(p []byte) (int, error) { l.mu.Lock(); defer l.mu.Unlock(); return l.buf.Write(p) }
func (l *logs) String() string              { l.mu.Lock(); defer l.mu.Unlock(); return l.buf.String() }

func options(s *slapdtest.Server, clk *clock, log *logs) ldap.Options {
	return ldap.Options{
		Name: "corp", URLs: []string{s.URL},
		BindDN: slapdtest.ReaderDN, BindPassword: slapdtest.ReaderPW,
		UserBase: slapdtest.People, UserFilter: "(&(uid={user})(!(employeeType=disabled)))", SubjectAttribute: "uid",
		GroupBase: slapdtest.Groups, GroupFilter: "(member={dn})", GroupAttribute: "cn",
		Timeout: 5 * time.Second, PoolSize: 2, CacheTTL: time.Minute, CacheSize: 100,
		Now: clk.Now, Logger: slog.New(slog.NewTextHandler(log, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
}

func newAuthenticator(t *testing.T, o ldap.Options) *ldap.Authenticator {
	t.Helper()
	a, err := ldap.New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Close)
	return a
}

func TestAuthenticate(t *testing.T) {
	t.Parallel()
	s := slapdtest.Start(t)
	clk := &clock{now: time.Unix(1_800_000_000, 0)}
	var log logs
	byFilter := newAuthenticator(t, options(s, clk, &log))
	memberOfOpts := options(s, clk, &log)
	memberOfOpts.GroupBase, memberOfOpts.GroupFilter = "", ""
	memberOfOpts.SubjectAttribute = "mail"
	byMemberOf := newAuthenticator(t, memberOfOpts)
	ctx := context.Background()

	tests := []struct {
		name     string
		a        *ldap.Authenticator
		user, pw string
		subject  string
		groups   []string
		err      error // nil: a login
	}{
		{"lena, groups by search", byFilter, "lena", slapdtest.Password("lena"), "lena", []string{"corp:devs", "corp:ops"}, nil},
		{"mika", byFilter, "mika", slapdtest.Password("mika"), "mika", []string{"corp:devs"}, nil},
		{"carol, no group", byFilter, "carol", slapdtest.Password("carol"), "carol", nil, nil},
		{"lena, memberOf and mail", byMemberOf, "lena", slapdtest.Password("lena"), "lena@example.org", []string{"corp:devs", "corp:ops"}, nil},
		// The directory's matching rule for uid ignores case and
		// surrounding spaces: the subject is the entry's own value.
		{"LENA, as the directory matches it", byFilter, " LENA", slapdtest.Password("lena"), "lena", []string{"corp:devs", "corp:ops"}, nil},
		{"wrong password", byFilter, "lena", "not-her-password", "", nil, identity.ErrUnauthenticated},
		{"another user's password", byFilter, "lena", slapdtest.Password("mika"), "", nil, identity.ErrUnauthenticated},
		{"empty password", byFilter, "lena", "", "", nil, identity.ErrUnauthenticated},
		{"unknown user", byFilter, "mallory", "x", "", nil, ldap.ErrUnknownUser},
		{"disabled by the filter", byFilter, "dave", slapdtest.Password("dave"), "", nil, ldap.ErrUnknownUser},
		{"no userPassword", byFilter, "erin", "anything", "", nil, identity.ErrUnauthenticated},
		{"empty user", byFilter, "", "x", "", nil, identity.ErrUnauthenticated},
		{"a user name too long", byFilter, strings.Repeat("a", 300), "x", "", nil, identity.ErrUnauthenticated},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			id, err := tc.a.Authenticate(ctx, tc.user, identity.Secret(tc.pw))
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Fatalf("Authenticate = %+v, %v; want %v", id, err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if id.Method != identity.MethodPassword || id.Provider != "corp" || id.Subject != tc.subject ||
				!slices.Equal(id.Groups, tc.groups) || id.DirectoryUser != tc.user {
				t.Errorf("identity %+v, want corp:%s with groups %v", id, tc.subject, tc.groups)
			}
		})
	}
	for _, u := range slapdtest.Users {
		if u.Password != "" && strings.Contains(log.String(), u.Password) {
			t.Errorf("the password of %s is in the log", u.UID)
		}
	}
	if strings.Contains(log.String(), slapdtest.ReaderPW) {
		t.Error("the bind password is in the log")
	}
}

// TestFilterInjection: a login name is a value, never filter syntax. With
// lena's password, a name that a filter built without escaping would
// make match lena (or everyone) logs in as nobody.
func TestFilterInjection(t *testing.T) {
	t.Parallel()
	s := slapdtest.Start(t)
	a := newAuthenticator(t, options(s, &clock{now: time.Now()}, &logs{}))
	pw := identity.Secret(slapdtest.Password("lena"))
	for _, user := range []string{
		"*", "len*", "*ena", "l*a", "*)(uid=*", "lena)(uid=*", "admin)(|(uid=*", "lena)(|(uid=*)",
		"lena\x00", "lena\x00)(uid=*", `len\61`, `\2a`, "(lena)", "lena))(|(objectClass=*", "lena*)(employeeType=*",
		"lenà", "lena\n", "lena\t",
	} {
		id, err := a.Authenticate(context.Background(), user, pw)
		if err == nil {
			t.Errorf("%q with lena's password logged in as %+v", user, id)
		} else if !errors.Is(err, identity.ErrUnauthenticated) {
			t.Errorf("%q: %v, want a refusal (not a directory error)", user, err)
		}
	}
	// The real name still works: the refusals were not a broken directory.
	if _, err := a.Authenticate(context.Background(), "lena", pw); err != nil {
		t.Fatalf("lena: %v", err)
	}
}

// TestCache: a login is remembered for the TTL, through a directory that
// is down, and not beyond; a wrong password is never remembered.
func TestCache(t *testing.T) {
	t.Parallel()
	s := slapdtest.Start(t)
	clk := &clock{now: time.Unix(1_800_000_000, 0)}
	a := newAuthenticator(t, options(s, clk, &logs{}))
	ctx := context.Background()
	pw := identity.Secret(slapdtest.Password("mika"))
	if _, err := a.Authenticate(ctx, "mika", pw); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Authenticate(ctx, "mika", "wrong"); !errors.Is(err, identity.ErrUnauthenticated) {
		t.Fatalf("wrong password: %v", err)
	}
	if n := a.CachedLen(); n != 1 {
		t.Errorf("%d logins remembered, want 1 (only the success)", n)
	}
	s.Stop()
	clk.Add(59 * time.Second)
	if id, err := a.Authenticate(ctx, "mika", pw); err != nil || id.Subject != "mika" || !slices.Equal(id.Groups, []string{"corp:devs"}) {
		t.Fatalf("a remembered login with the directory down: %+v, %v", id, err)
	}
	for _, tc := range []struct{ user, pw string }{{"mika", "wrong"}, {"lena", slapdtest.Password("lena")}} {
		if _, err := a.Authenticate(ctx, tc.user, identity.Secret(tc.pw)); !errors.Is(err, identity.ErrUnavailable) {
			t.Errorf("%s, not remembered, with the directory down: %v, want unavailable", tc.user, err)
		}
	}
	clk.Add(time.Second)
	if _, err := a.Authenticate(ctx, "mika", pw); !errors.Is(err, identity.ErrUnavailable) {
		t.Errorf("after the TTL, with the directory down: %v, want unavailable", err)
	}
	// Up again: a login works again, on a new connection.
	s.Restart(t)
	if _, err := a.Authenticate(ctx, "mika", pw); err != nil {
		t.Errorf("after a restart of the directory: %v", err)
	}
}

// TestGroupChange: a member removed from a group loses it at the end of
// the TTL, on login and on lookup (refresh tokens).
func TestGroupChange(t *testing.T) {
	t.Parallel()
	s := slapdtest.Start(t)
	clk := &clock{now: time.Unix(1_800_000_000, 0)}
	a := newAuthenticator(t, options(s, clk, &logs{}))
	ctx := context.Background()
	pw := identity.Secret(slapdtest.Password("lena"))
	if id, _ := a.Authenticate(ctx, "lena", pw); !slices.Contains(id.Groups, "corp:ops") {
		t.Fatalf("lena's groups: %v", id.Groups)
	}
	if id, _ := a.Lookup(ctx, "lena"); !slices.Contains(id.Groups, "corp:ops") {
		t.Fatalf("lena's groups on lookup: %v", id.Groups)
	}
	s.RemoveMember(t, "ops", "lena")
	clk.Add(time.Minute)
	id, err := a.Authenticate(ctx, "lena", pw)
	if err != nil || !slices.Equal(id.Groups, []string{"corp:devs"}) {
		t.Errorf("after the TTL: %v, %v; want only corp:devs", id.Groups, err)
	}
	if id, err := a.Lookup(ctx, "lena"); err != nil || !slices.Equal(id.Groups, []string{"corp:devs"}) {
		t.Errorf("lookup after the TTL: %v, %v", id.Groups, err)
	}
	s.Disable(t, "mika")
	if _, err := a.Lookup(ctx, "mika"); !errors.Is(err, ldap.ErrUnknownUser) {
		t.Errorf("lookup of a disabled user: %v", err)
	}
}

// TestFailover: the URLs are tried in order; a closed port first costs one
// failed dial, and the second server answers.
func TestFailover(t *testing.T) {
	t.Parallel()
	s := slapdtest.Start(t)
	var log logs
	o := options(s, &clock{now: time.Now()}, &log)
	o.URLs = []string{"ldap://" + slapdtest.FreeAddr(t), s.URL}
	a := newAuthenticator(t, o)
	if id, err := a.Authenticate(context.Background(), "carol", identity.Secret(slapdtest.Password("carol"))); err != nil || id.Subject != "carol" {
		t.Fatalf("through the second URL: %+v, %v", id, err)
	}
	if !strings.Contains(log.String(), "trying the next URL") {
		t.Errorf("the failover was not logged:\n%s", log.String())
	}
	o.URLs = []string{"ldap://" + slapdtest.FreeAddr(t), "ldap://" + slapdtest.FreeAddr(t)}
	down := newAuthenticator(t, o)
	if _, err := down.Authenticate(context.Background(), "carol", identity.Secret(slapdtest.Password("carol"))); !errors.Is(err, identity.ErrUnavailable) {
		t.Errorf("no server answering: %v, want unavailable", err)
	}
}

// TestServiceAccountRefused: a wrong bind password is the server's
// problem (unavailable), never the user's wrong password.
func TestServiceAccountRefused(t *testing.T) {
	t.Parallel()
	s := slapdtest.Start(t)
	o := options(s, &clock{now: time.Now()}, &logs{})
	o.BindPassword = "not-the-reader-password"
	a := newAuthenticator(t, o)
	_, err := a.Authenticate(context.Background(), "lena", identity.Secret(slapdtest.Password("lena")))
	if !errors.Is(err, identity.ErrUnavailable) || strings.Contains(err.Error(), "not-the-reader-password") {
		t.Errorf("Authenticate with a refused service account: %v", err)
	}
	if known, err := a.Knows(context.Background(), "lena"); known || !errors.Is(err, identity.ErrUnavailable) {
		t.Errorf("Knows: %v, %v", known, err)
	}
}

// TestPoolBounded: many concurrent logins share pool_size connections.
func TestPoolBounded(t *testing.T) {
	t.Parallel()
	s := slapdtest.Start(t)
	o := options(s, &clock{now: time.Now()}, &logs{})
	o.CacheTTL = 0
	o.PoolSize = 2
	a := newAuthenticator(t, o)
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			user := []string{"lena", "mika"}[i%2]
			if _, err := a.Authenticate(context.Background(), user, identity.Secret(slapdtest.Password(user))); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
