package authn_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"git.sr.ht/~zozs/srht-registry/internal/authn"
	"git.sr.ht/~zozs/srht-registry/internal/authn/sourcehut"
	"git.sr.ht/~zozs/srht-registry/internal/identity"
)

// Passwords of the test users; none of them may ever show in an error.
const (
	alicePassword = "alice-Correct-Horse-7731"
	bobPassword   = "bob-Battery-Staple-0042"
	wrongPassword = "wrong-Password-9f8e7d6c"
)

// hash makes a bcrypt hash at the minimum cost, for speed. With y it has the
// $2y$ prefix that `htpasswd -B` writes.
func hash(t *testing.T, password string, y bool) string {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	s := string(h)
	if y {
		if !strings.HasPrefix(s, "$2a$") {
			t.Fatalf("bcrypt hash %q does not start with $2a$", s)
		}
		s = "$2y$" + strings.TrimPrefix(s, "$2a$")
	}
	return s
}

// testHtpasswd has alice ($2y$, as htpasswd -B writes) and bob ($2a$).
func testHtpasswd(t *testing.T) *authn.Htpasswd {
	t.Helper()
	data := fmt.Sprintf("# users\n\nalice:%s\r\n  bob:%s  \n", hash(t, alicePassword, true), hash(t, bobPassword, false))
	h, err := authn.ParseHtpasswd([]byte(data))
	if err != nil {
		t.Fatalf("ParseHtpasswd: %v", err)
	}
	return h
}

func TestParseHtpasswd(t *testing.T) {
	aliceY := hash(t, alicePassword, true)
	bobA := hash(t, bobPassword, false)
	tests := []struct {
		name      string
		data      string
		wantUsers int
		// wantErr lists what the error must mention; secrets lists what it
		// must not.
		wantErr []string
		secrets []string
	}{
		{name: "empty", data: "", wantUsers: 0},
		{name: "comments and blank lines", data: "# a comment\n\n   \n#alice:x\n", wantUsers: 0},
		{name: "bcrypt $2y$ and $2a$", data: "alice:" + aliceY + "\nbob:" + bobA + "\n", wantUsers: 2},
		{name: "CRLF and no final newline", data: "alice:" + aliceY + "\r\nbob:" + bobA, wantUsers: 2},
		{name: "MD5 apr1", data: "# c\nalice:" + aliceY + "\ncarol:$apr1$Fk3/wCkP$GD1Yl5QG6xK1rCs9bVFe5.\n",
			wantErr: []string{"line 3"}, secrets: []string{"$apr1$Fk3/wCkP$GD1Yl5QG6xK1rCs9bVFe5.", "GD1Yl5QG6xK1rCs9bVFe5"}},
		{name: "SHA1", data: "carol:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=\n",
			wantErr: []string{"line 1"}, secrets: []string{"W6ph5Mm5Pz8GgiULbPgzG37mj9g="}},
		{name: "plain text", data: "\n\ncarol:" + alicePassword + "\n",
			wantErr: []string{"line 3"}, secrets: []string{alicePassword}},
		{name: "crypt", data: "carol:rq3ylG5pbuLiE\n", wantErr: []string{"line 1"}, secrets: []string{"rq3ylG5pbuLiE"}},
		{name: "truncated bcrypt", data: "carol:" + aliceY[:30] + "\n", wantErr: []string{"line 1"}, secrets: []string{aliceY[:30]}},
		{name: "no colon", data: "carol" + aliceY + "\n", wantErr: []string{"line 1"}, secrets: []string{aliceY}},
		{name: "empty user", data: ":" + aliceY + "\n", wantErr: []string{"line 1"}, secrets: []string{aliceY}},
		{name: "duplicate user", data: "alice:" + aliceY + "\nalice:" + bobA + "\n",
			wantErr: []string{"line 2", "alice"}, secrets: []string{aliceY, bobA}},
		{name: "every problem reported", data: "carol:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=\nalice:" + aliceY + "\ndave:" + bobPassword + "\n",
			wantErr: []string{"line 1", "line 3"}, secrets: []string{bobPassword, "W6ph5Mm5Pz8GgiULbPgzG37mj9g="}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, err := authn.ParseHtpasswd([]byte(tt.data))
			if len(tt.wantErr) == 0 {
				if err != nil {
					t.Fatalf("ParseHtpasswd: %v", err)
				}
				if h.Len() != tt.wantUsers {
					t.Fatalf("Len() = %d, want %d", h.Len(), tt.wantUsers)
				}
				return
			}
			if err == nil {
				t.Fatalf("ParseHtpasswd accepted it (%d users)", h.Len())
			}
			for _, w := range tt.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
			for _, s := range tt.secrets {
				if strings.Contains(err.Error(), s) {
					t.Errorf("error %q contains the secret %q", err, s)
				}
			}
		})
	}
}

func TestHtpasswdAuthenticate(t *testing.T) {
	h := testHtpasswd(t)
	tests := []struct {
		name     string
		user     string
		password string
		want     identity.Identity
		wantErr  bool
	}{
		{"alice ($2y$)", "alice", alicePassword, identity.Identity{Method: identity.MethodPassword, Provider: identity.ProviderHtpasswd, Subject: "alice"}, false},
		{"bob ($2a$)", "bob", bobPassword, identity.Identity{Method: identity.MethodPassword, Provider: identity.ProviderHtpasswd, Subject: "bob"}, false},
		{"wrong password", "alice", wrongPassword, identity.Identity{}, true},
		{"another user's password", "alice", bobPassword, identity.Identity{}, true},
		{"empty password", "alice", "", identity.Identity{}, true},
		{"unknown user", "mallory", wrongPassword, identity.Identity{}, true},
		{"unknown user with a known password", "mallory", alicePassword, identity.Identity{}, true},
		{"user name differs in case", "Alice", alicePassword, identity.Identity{}, true},
		{"password with a suffix", "alice", alicePassword + "x", identity.Identity{}, true},
		{"password prefix", "alice", alicePassword[:len(alicePassword)-1], identity.Identity{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, err := h.Authenticate(context.Background(), tt.user, identity.Secret(tt.password))
			if tt.wantErr {
				if !errors.Is(err, identity.ErrUnauthenticated) {
					t.Fatalf("err = %v, want ErrUnauthenticated", err)
				}
				if errors.Is(err, identity.ErrUnavailable) {
					t.Errorf("err %v also wraps ErrUnavailable", err)
				}
				if tt.password != "" && strings.Contains(err.Error(), tt.password) {
					t.Errorf("error %q contains the password", err)
				}
				if !reflectEqual(id, identity.Identity{}) {
					t.Errorf("identity %+v returned with an error", id)
				}
				return
			}
			if err != nil {
				t.Fatalf("Authenticate: %v", err)
			}
			if !reflectEqual(id, tt.want) {
				t.Fatalf("identity = %+v, want %+v", id, tt.want)
			}
		})
	}
}

func reflectEqual(a, b identity.Identity) bool {
	return a.Method == b.Method && a.Provider == b.Provider && a.Subject == b.Subject && a.Namespace == b.Namespace &&
		slices.Equal(a.Groups, b.Groups) && a.Sourcehut == b.Sourcehut
}

// fakePasswords accepts exactly one user and password and records calls.
type fakePasswords struct {
	user, password string
	calls          int
}

func (f *fakePasswords) Authenticate(_ context.Context, user string, password identity.Secret) (identity.Identity, error) {
	f.calls++
	if user == f.user && password.Reveal() == f.password {
		return identity.Identity{Method: identity.MethodPassword, Provider: identity.ProviderHtpasswd, Subject: user}, nil
	}
	return identity.Identity{}, fmt.Errorf("%w: wrong user name or password", identity.ErrUnauthenticated)
}

func TestChain(t *testing.T) {
	groups := map[string][]string{
		"ci":     {"htpasswd:bob", "htpasswd:alice"},
		"admins": {"htpasswd:alice"},
		"zeta":   {"htpasswd:alice"},
		"alpha":  {"htpasswd:alice", "htpasswd:carol"},
		"others": {"htpasswd:carol"},
		// Names without their provider, or of another provider's
		// account, make nobody a member.
		"bare":      {"alice", "bob"},
		"sourcehut": {"sourcehut:alice", "sourcehut:bob"},
	}
	basic := func(user, password string) identity.Credentials {
		return identity.Credentials{Kind: identity.CredentialBasic, Username: user, Secret: identity.Secret(password)}
	}
	tests := []struct {
		name      string
		anonymous bool
		passwords bool // configure the real htpasswd checker
		cred      identity.Credentials
		want      identity.Identity
		wantErr   error
		// notErr must not be wrapped (ErrCredentialsRequired is only for
		// requests without credentials).
		notErr error
	}{
		{name: "no credentials, anonymous on", anonymous: true, passwords: true,
			cred: identity.Credentials{Kind: identity.CredentialNone}, want: identity.Anonymous},
		{name: "no credentials, anonymous on, no passwords", anonymous: true,
			cred: identity.Credentials{Kind: identity.CredentialNone}, want: identity.Anonymous},
		{name: "no credentials, anonymous off", passwords: true,
			cred: identity.Credentials{Kind: identity.CredentialNone}, wantErr: identity.ErrCredentialsRequired},
		{name: "password, groups sorted", anonymous: true, passwords: true, cred: basic("alice", alicePassword),
			want: identity.Identity{Method: identity.MethodPassword, Provider: identity.ProviderHtpasswd, Subject: "alice", Namespace: "alice",
				Groups: []string{"admins", "alpha", "ci", "zeta"}}},
		{name: "password, one group", passwords: true, cred: basic("bob", bobPassword),
			want: identity.Identity{Method: identity.MethodPassword, Provider: identity.ProviderHtpasswd, Subject: "bob", Namespace: "bob", Groups: []string{"ci"}}},
		{name: "wrong password, anonymous on", anonymous: true, passwords: true, cred: basic("alice", wrongPassword),
			wantErr: identity.ErrUnauthenticated, notErr: identity.ErrCredentialsRequired},
		{name: "wrong password, anonymous off", passwords: true, cred: basic("alice", wrongPassword),
			wantErr: identity.ErrUnauthenticated, notErr: identity.ErrCredentialsRequired},
		{name: "empty password, anonymous on", anonymous: true, passwords: true, cred: basic("alice", ""),
			wantErr: identity.ErrUnauthenticated, notErr: identity.ErrCredentialsRequired},
		{name: "unknown user, anonymous on", anonymous: true, passwords: true, cred: basic("carol", alicePassword),
			wantErr: identity.ErrUnauthenticated, notErr: identity.ErrCredentialsRequired},
		{name: "empty user name", anonymous: true, passwords: true, cred: basic("", alicePassword),
			wantErr: identity.ErrUnauthenticated, notErr: identity.ErrCredentialsRequired},
		{name: "empty user name and password", anonymous: true, passwords: true, cred: basic("", ""),
			wantErr: identity.ErrUnauthenticated, notErr: identity.ErrCredentialsRequired},
		{name: "Basic without a password checker", anonymous: true, cred: basic("alice", alicePassword),
			wantErr: identity.ErrUnauthenticated, notErr: identity.ErrCredentialsRequired},
		{name: "Bearer (not supported yet)", anonymous: true, passwords: true,
			cred:    identity.Credentials{Kind: identity.CredentialBearer, Secret: identity.Secret(alicePassword)},
			wantErr: identity.ErrUnauthenticated, notErr: identity.ErrCredentialsRequired},
		{name: "unknown credential kind", anonymous: true, passwords: true,
			cred:    identity.Credentials{Kind: identity.CredentialKind(42), Username: "alice", Secret: identity.Secret(alicePassword)},
			wantErr: identity.ErrUnauthenticated, notErr: identity.ErrCredentialsRequired},
	}
	h := testHtpasswd(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &authn.Chain{Anonymous: tt.anonymous, Groups: groups}
			if tt.passwords {
				c.Passwords = h
			}
			id, err := c.Authenticate(context.Background(), tt.cred)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
				if tt.notErr != nil && errors.Is(err, tt.notErr) {
					t.Errorf("err = %v, must not wrap %v", err, tt.notErr)
				}
				if id.Method == identity.MethodAnonymous || id.Subject != "" || id.Groups != nil {
					t.Errorf("identity %+v returned with an error; want the zero identity, never anonymous", id)
				}
				if pw := tt.cred.Secret.Reveal(); pw != "" && strings.Contains(err.Error(), pw) {
					t.Errorf("error %q contains the password", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Authenticate: %v", err)
			}
			if !reflectEqual(id, tt.want) {
				t.Fatalf("identity = %+v, want %+v", id, tt.want)
			}
		})
	}
}

// TestChainEmptyUserNotChecked: an empty user name is refused before the
// password checker is asked, whatever it would say.
func TestChainEmptyUserNotChecked(t *testing.T) {
	f := &fakePasswords{user: "", password: "anything"}
	c := &authn.Chain{Anonymous: true, Passwords: f}
	_, err := c.Authenticate(context.Background(), identity.Credentials{Kind: identity.CredentialBasic, Secret: "anything"})
	if !errors.Is(err, identity.ErrUnauthenticated) {
		t.Fatalf("err = %v, want ErrUnauthenticated", err)
	}
	if f.calls != 0 {
		t.Fatalf("password checker called %d times for an empty user name", f.calls)
	}
}

// TestChainGroupsFromConfigOnly: the groups come from the Chain's map, not
// from whatever the checker put in the identity.
func TestChainGroupsFromConfigOnly(t *testing.T) {
	c := &authn.Chain{Passwords: groupingChecker{}, Groups: map[string][]string{"ci": {"htpasswd:alice"}}}
	id, err := c.Authenticate(context.Background(), identity.Credentials{Kind: identity.CredentialBasic, Username: "alice", Secret: "x"})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(id.Groups, []string{"ci"}) || id.Namespace != "alice" {
		t.Fatalf("groups = %q, namespace %q; want [ci] and alice: the chain's, not the checker's", id.Groups, id.Namespace)
	}
}

type groupingChecker struct{}

func (groupingChecker) Authenticate(_ context.Context, user string, _ identity.Secret) (identity.Identity, error) {
	return identity.Identity{Method: identity.MethodPassword, Provider: identity.ProviderHtpasswd, Subject: user, Groups: []string{"admins"}, Namespace: "admins"}, nil
}

// TestChainPassesUnavailable: "could not check" is not turned into
// "unauthenticated" (or anonymous).
func TestChainPassesUnavailable(t *testing.T) {
	c := &authn.Chain{Anonymous: true, Passwords: unavailableChecker{}}
	id, err := c.Authenticate(context.Background(), identity.Credentials{Kind: identity.CredentialBasic, Username: "alice", Secret: "x"})
	if !errors.Is(err, identity.ErrUnavailable) || errors.Is(err, identity.ErrUnauthenticated) {
		t.Fatalf("err = %v, want ErrUnavailable only", err)
	}
	if id.Method != "" {
		t.Fatalf("identity %+v returned with an error", id)
	}
}

type unavailableChecker struct{}

func (unavailableChecker) Authenticate(context.Context, string, identity.Secret) (identity.Identity, error) {
	return identity.Identity{}, fmt.Errorf("%w: upstream down", identity.ErrUnavailable)
}

func TestSecretRedacts(t *testing.T) {
	s := identity.Secret(alicePassword)
	for _, out := range []string{fmt.Sprint(s), fmt.Sprintf("%v %s %q %#v %+v", s, s, s, s, s),
		fmt.Sprintf("%v", identity.Credentials{Kind: identity.CredentialBasic, Username: "alice", Secret: s})} {
		if strings.Contains(out, alicePassword) {
			t.Errorf("formatted secret %q shows the password", out)
		}
	}
	if s.Reveal() != alicePassword {
		t.Fatal("Reveal lost the secret")
	}
}

func TestLoadHtpasswd(t *testing.T) {
	dir := t.TempDir()
	path := dir + "/htpasswd"
	if _, err := authn.LoadHtpasswd(path); err == nil {
		t.Fatal("LoadHtpasswd of a missing file succeeded")
	}
	if err := os.WriteFile(path, []byte("alice:"+hash(t, alicePassword, true)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	h, err := authn.LoadHtpasswd(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.Authenticate(context.Background(), "alice", identity.Secret(alicePassword)); err != nil {
		t.Fatalf("Authenticate: %v", err)
	}
	if err := os.WriteFile(path, []byte("alice:"+alicePassword+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = authn.LoadHtpasswd(path)
	if err == nil || !strings.Contains(err.Error(), path) || strings.Contains(err.Error(), alicePassword) {
		t.Fatalf("err = %v, want one naming the file but not the password", err)
	}
}

// FuzzParseHtpasswd: the parser never panics; what it accepts refuses a
// wrong password; and a refused line's password field is never quoted in the
// error, whatever it holds.
func FuzzParseHtpasswd(f *testing.F) {
	f.Add("alice", "$2y$04$abcdefghijklmnopqrstuuJ3b7sQ0iX1bXh0Yl9wYwqzv0dGq8B9e")
	f.Add("alice", "{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=")
	f.Add("bob", "$apr1$Fk3/wCkP$GD1Yl5QG6xK1rCs9bVFe5.")
	f.Add("carol", "plain text password")
	f.Add("", "x")
	f.Add("# comment", "")
	// The fixed text of the per-line messages, with the user name left out.
	templates := "line 2 (user ): not a bcrypt hash; create it with `htpasswd -B` or `srht-registry hash-password`" +
		"line 2: want user:bcrypt-hash" + "line 2: user  appears twice"
	f.Fuzz(func(t *testing.T, user, pw string) {
		if strings.ContainsAny(user+pw, "\r\n") {
			return
		}
		data := "# first line\n" + user + ":" + pw + "\n"
		h, err := authn.ParseHtpasswd([]byte(data))
		if err != nil {
			rest := strings.ReplaceAll(err.Error(), fmt.Sprintf("%q", user), "")
			if len(pw) >= 4 && strings.Contains(rest, pw) && !strings.Contains(templates, pw) {
				t.Fatalf("error %q quotes the password field %q", err, pw)
			}
			return
		}
		if h.Len() > 1 {
			t.Fatalf("%d users from one line", h.Len())
		}
		// (A line that is a comment, "#:…", adds no user and no cost.)
		if cost, _ := bcrypt.Cost([]byte(strings.TrimSpace(pw))); h.Len() == 1 && cost > 17 {
			t.Fatalf("bcrypt cost %d accepted", cost)
		} else if cost > 8 {
			// Accepted, and right to be; but a check at that cost takes
			// too long for a fuzz run (at 17, about 8 seconds).
			return
		}
		u, _, _ := strings.Cut(strings.TrimSpace(user+":"+pw), ":")
		if _, err := h.Authenticate(context.Background(), u, identity.Secret("not the password \x00")); !errors.Is(err, identity.ErrUnauthenticated) {
			t.Fatalf("user %q: a wrong password gave %v", u, err)
		}
	})
}

// fakeTokens answers like sourcehut.Authenticator: a fixed error, or the
// identity of the token "good-token" presented for service.
type fakeTokens struct {
	service    string
	err        error // returned for anything but the good token
	calls      int
	gotService string
	admitted   []string // who Admits lets in
}

func (f *fakeTokens) Admits(user string) bool { return slices.Contains(f.admitted, user) }

const goodToken = "good-token-0123456789abcdef"

func (f *fakeTokens) Authenticate(_ context.Context, service string, tok identity.Secret) (identity.Identity, error) {
	f.calls++
	f.gotService = service
	if tok.Reveal() == goodToken && service == f.service {
		return identity.Identity{Method: identity.MethodSourcehut, Provider: identity.ProviderSourcehut, Subject: "alice", Groups: []string{"from-token"},
			Sourcehut: &identity.Sourcehut{Username: "alice", Access: "RW"}}, nil
	}
	return identity.Identity{}, f.err
}

func TestChainTokens(t *testing.T) {
	const svc = "registry.example.com"
	// Sourcehut alice is in ci; htpasswd alice is in dev: the same name,
	// different people.
	groups := map[string][]string{"ci": {"sourcehut:alice"}, "dev": {"htpasswd:alice"}, "admins": {"htpasswd:root"}}
	notToken := fmt.Errorf("%w: not base64", sourcehut.ErrNotToken)
	rejected := fmt.Errorf("%w: %w", identity.ErrUnauthenticated, sourcehut.ErrRejected)
	unavailable := fmt.Errorf("%w: %w", identity.ErrUnavailable, sourcehut.ErrUnreachable)
	cred := func(kind identity.CredentialKind, user, secret string) identity.Credentials {
		return identity.Credentials{Kind: kind, Username: user, Secret: identity.Secret(secret), Service: svc}
	}
	tests := []struct {
		name       string
		tokenErr   error
		noTokens   bool
		cred       identity.Credentials
		wantMethod identity.Method
		wantGroups []string
		wantErr    error
		notErr     error
		wantPwCall bool
	}{
		{name: "Basic with a token as password, any user name", tokenErr: notToken, cred: cred(identity.CredentialBasic, "sourcehut", goodToken),
			wantMethod: identity.MethodSourcehut, wantGroups: []string{"ci"}},
		{name: "Basic with a token, empty user name", tokenErr: notToken, cred: cred(identity.CredentialBasic, "", goodToken),
			wantMethod: identity.MethodSourcehut, wantGroups: []string{"ci"}},
		{name: "Bearer token", tokenErr: notToken, cred: cred(identity.CredentialBearer, "", goodToken),
			wantMethod: identity.MethodSourcehut, wantGroups: []string{"ci"}},
		{name: "Basic password that is not a token falls back", tokenErr: notToken, cred: cred(identity.CredentialBasic, "alice", alicePassword),
			wantMethod: identity.MethodPassword, wantGroups: []string{"dev"}, wantPwCall: true},
		{name: "rejected token does not fall back to the password", tokenErr: rejected, cred: cred(identity.CredentialBasic, "alice", alicePassword),
			wantErr: identity.ErrUnauthenticated},
		{name: "unreachable meta.sr.ht is unavailable, not a password check", tokenErr: unavailable, cred: cred(identity.CredentialBasic, "alice", alicePassword),
			wantErr: identity.ErrUnavailable, notErr: identity.ErrUnauthenticated},
		{name: "Bearer that is not a token", tokenErr: notToken, cred: cred(identity.CredentialBearer, "", alicePassword),
			wantErr: identity.ErrUnauthenticated},
		{name: "Bearer rejected", tokenErr: rejected, cred: cred(identity.CredentialBearer, "", "x"), wantErr: identity.ErrUnauthenticated},
		{name: "Bearer unavailable", tokenErr: unavailable, cred: cred(identity.CredentialBearer, "", "x"),
			wantErr: identity.ErrUnavailable, notErr: identity.ErrUnauthenticated},
		{name: "Bearer without a token checker", noTokens: true, cred: cred(identity.CredentialBearer, "", goodToken), wantErr: identity.ErrUnauthenticated},
		{name: "token for another service", tokenErr: rejected,
			cred:    identity.Credentials{Kind: identity.CredentialBearer, Secret: goodToken, Service: "other.example.com"},
			wantErr: identity.ErrUnauthenticated},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pw := &fakePasswords{user: "alice", password: alicePassword}
			tokens := &fakeTokens{service: svc, err: tt.tokenErr}
			c := &authn.Chain{Anonymous: true, Passwords: pw, Tokens: tokens, Groups: groups}
			if tt.noTokens {
				c.Tokens = nil
			}
			id, err := c.Authenticate(context.Background(), tt.cred)
			if (pw.calls > 0) != tt.wantPwCall {
				t.Errorf("password checker called %d times", pw.calls)
			}
			if !tt.noTokens && tokens.gotService != tt.cred.Service {
				t.Errorf("token checker got service %q, want %q", tokens.gotService, tt.cred.Service)
			}
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) || (tt.notErr != nil && errors.Is(err, tt.notErr)) {
					t.Fatalf("err = %v, want %v (and not %v)", err, tt.wantErr, tt.notErr)
				}
				if id.Method != "" || id.Subject != "" {
					t.Errorf("identity %+v returned with an error", id)
				}
				if strings.Contains(err.Error(), tt.cred.Secret.Reveal()) {
					t.Errorf("error %q contains the secret", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Authenticate: %v", err)
			}
			if id.Method != tt.wantMethod || id.Subject != "alice" || !slices.Equal(id.Groups, tt.wantGroups) {
				t.Fatalf("identity %+v, want %s alice with groups %q", id, tt.wantMethod, tt.wantGroups)
			}
		})
	}
}

func TestHtpasswdPasswordHash(t *testing.T) {
	aliceHash := hash(t, alicePassword, true)
	h, err := authn.ParseHtpasswd([]byte("alice:" + aliceHash + "\n"))
	if err != nil {
		t.Fatal(err)
	}
	got, ok := h.PasswordHash("alice")
	if !ok || string(got) != aliceHash {
		t.Fatalf("PasswordHash(alice) = %q, %v; want the stored hash", got, ok)
	}
	got[0] = 'X' // a copy: the table is not changed through it
	if again, _ := h.PasswordHash("alice"); string(again) != aliceHash {
		t.Error("PasswordHash hands out the table's own bytes")
	}
	if got, ok := h.PasswordHash("mallory"); ok || got != nil {
		t.Errorf("PasswordHash(mallory) = %q, %v", got, ok)
	}
	// A reload is seen at once: a new line for alice, and bob added.
	newHash := hash(t, "alice-new-password", true)
	next, err := authn.ParseHtpasswd([]byte("alice:" + newHash + "\nbob:" + hash(t, bobPassword, false) + "\n"))
	if err != nil {
		t.Fatal(err)
	}
	h.Update(next)
	if got, _ := h.PasswordHash("alice"); string(got) != newHash {
		t.Errorf("after the reload, PasswordHash(alice) = %q", got)
	}
	if _, ok := h.PasswordHash("bob"); !ok {
		t.Error("after the reload, bob is unknown")
	}
}

// fakeRefresh redeems the refresh token "good" as alice's refreshed
// password login, and refuses anything else.
type fakeRefresh struct{ got []identity.Credentials }

func (f *fakeRefresh) Redeem(_ context.Context, cred identity.Credentials) (identity.Identity, error) {
	f.got = append(f.got, cred)
	switch cred.Secret.Reveal() {
	case "good":
		return identity.Identity{Method: identity.MethodRefresh, RefreshedFrom: identity.MethodPassword, Provider: identity.ProviderHtpasswd, Subject: "alice"}, nil
	case "good-sourcehut":
		return identity.Identity{Method: identity.MethodRefresh, RefreshedFrom: identity.MethodSourcehut, Provider: identity.ProviderSourcehut, Subject: "carol",
			Sourcehut: &identity.Sourcehut{Username: "carol", Access: "RW"}}, nil
	case "no-provider":
		return identity.Identity{Method: identity.MethodRefresh, RefreshedFrom: identity.MethodPassword, Subject: "alice"}, nil
	}
	return identity.Identity{}, fmt.Errorf("%w: refresh token has a bad signature", identity.ErrUnauthenticated)
}

func TestChainRefresh(t *testing.T) {
	refresh := &fakeRefresh{}
	c := &authn.Chain{Anonymous: true, Passwords: testHtpasswd(t), Refresh: refresh, Groups: map[string][]string{"ci": {"htpasswd:alice"}}}
	cred := identity.Credentials{Kind: identity.CredentialRefresh, Secret: "good", Service: "registry.example.com", ClientID: "docker"}
	id, err := c.Authenticate(context.Background(), cred)
	if err != nil {
		t.Fatal(err)
	}
	want := identity.Identity{Method: identity.MethodRefresh, RefreshedFrom: identity.MethodPassword, Provider: identity.ProviderHtpasswd,
		Subject: "alice", Namespace: "alice", Groups: []string{"ci"}}
	if !reflectEqual(id, want) || id.RefreshedFrom != want.RefreshedFrom {
		t.Errorf("identity = %+v, want %+v", id, want)
	}
	if len(refresh.got) != 1 || refresh.got[0] != cred {
		t.Errorf("the refresh checker got %+v, want the credentials as presented", refresh.got)
	}
	// The groups are the config's of now, not of the login.
	c.SetGroups(map[string][]string{"admins": {"htpasswd:alice"}, "ci": {"sourcehut:alice"}})
	if id, _ := c.Authenticate(context.Background(), cred); !slices.Equal(id.Groups, []string{"admins"}) {
		t.Errorf("groups after a reload = %v", id.Groups)
	}
	// A bad refresh token is an error, never anonymous.
	if _, err := c.Authenticate(context.Background(), identity.Credentials{Kind: identity.CredentialRefresh, Secret: "forged"}); !errors.Is(err, identity.ErrUnauthenticated) {
		t.Errorf("forged refresh token: %v", err)
	}
	// Without a refresh checker, refresh tokens are refused.
	c.Refresh = nil
	if _, err := c.Authenticate(context.Background(), cred); !errors.Is(err, identity.ErrUnauthenticated) {
		t.Errorf("no refresh checker: %v", err)
	}
}

// TestChainProviders: htpasswd:alice and sourcehut:alice are different
// people. Each gets the groups configured for its own principal, and a
// Sourcehut account named like a local account owns no namespace.
func TestChainProviders(t *testing.T) {
	const svc = "registry.example.com"
	h := testHtpasswd(t) // alice and bob
	groups := map[string][]string{
		"admins": {"htpasswd:alice"},
		"ci":     {"sourcehut:alice", "sourcehut:carol"},
	}
	tokens := &fakeSourcehutUsers{}
	c := &authn.Chain{Passwords: h, Local: h, Tokens: tokens, Groups: groups}
	password, err := c.Authenticate(context.Background(), identity.Credentials{Kind: identity.CredentialBasic, Username: "alice", Secret: alicePassword, Service: svc})
	if err != nil {
		t.Fatal(err)
	}
	want := identity.Identity{Method: identity.MethodPassword, Provider: identity.ProviderHtpasswd, Subject: "alice", Namespace: "alice", Groups: []string{"admins"}}
	if !reflectEqual(password, want) || password.Principal() != "htpasswd:alice" {
		t.Errorf("password login = %+v, want %+v", password, want)
	}
	tests := []struct {
		user          string
		wantNamespace string
		wantGroups    []string
	}{
		// alice is a local account: the Sourcehut alice is not admin and
		// owns nothing, but is in the group configured for sourcehut:alice.
		{"alice", "", []string{"ci"}},
		{"carol", "carol", []string{"ci"}},
		{"dave", "dave", nil},
		// A name that is no repository path component owns nothing.
		{"Dave", "", nil},
		{"team.x_y", "team.x_y", nil},
	}
	for _, tt := range tests {
		id, err := c.Authenticate(context.Background(), identity.Credentials{Kind: identity.CredentialBearer, Secret: identity.Secret("token-of-" + tt.user), Service: svc})
		if err != nil {
			t.Fatalf("%s: %v", tt.user, err)
		}
		if id.Provider != identity.ProviderSourcehut || id.Subject != tt.user || id.Namespace != tt.wantNamespace || !slices.Equal(id.Groups, tt.wantGroups) {
			t.Errorf("Sourcehut %s = %+v, want namespace %q and groups %q", tt.user, id, tt.wantNamespace, tt.wantGroups)
		}
	}
	// Without local accounts, the Sourcehut alice owns alice/*.
	c.Local = nil
	id, err := c.Authenticate(context.Background(), identity.Credentials{Kind: identity.CredentialBearer, Secret: "token-of-alice", Service: svc})
	if err != nil || id.Namespace != "alice" {
		t.Errorf("Sourcehut alice with no local accounts: %+v, %v", id, err)
	}
}

// fakeSourcehutUsers accepts "token-of-<user>" as user's Sourcehut token.
type fakeSourcehutUsers struct{ admitted []string }

func (f *fakeSourcehutUsers) Authenticate(_ context.Context, _ string, tok identity.Secret) (identity.Identity, error) {
	user, ok := strings.CutPrefix(tok.Reveal(), "token-of-")
	if !ok {
		return identity.Identity{}, sourcehut.ErrNotToken
	}
	return identity.Identity{Method: identity.MethodSourcehut, Provider: identity.ProviderSourcehut, Subject: user,
		Sourcehut: &identity.Sourcehut{Username: user, Access: "RW"}}, nil
}

func (f *fakeSourcehutUsers) Admits(user string) bool { return slices.Contains(f.admitted, user) }

// TestChainRefreshHeldToSourcehutUsers: the refresh token of a Sourcehut
// login stops working when its user may no longer log in with Sourcehut.
func TestChainRefreshHeldToSourcehutUsers(t *testing.T) {
	tokens := &fakeSourcehutUsers{admitted: []string{"carol"}}
	c := &authn.Chain{Refresh: &fakeRefresh{}, Tokens: tokens}
	cred := identity.Credentials{Kind: identity.CredentialRefresh, Secret: "good-sourcehut", Service: "registry.example.com"}
	id, err := c.Authenticate(context.Background(), cred)
	if err != nil || id.Provider != identity.ProviderSourcehut || id.Namespace != "carol" {
		t.Fatalf("carol's refresh token: %+v, %v", id, err)
	}
	tokens.admitted = nil
	if _, err := c.Authenticate(context.Background(), cred); !errors.Is(err, identity.ErrUnauthenticated) || !strings.Contains(err.Error(), "may no longer log in") {
		t.Errorf("after carol left authn.sourcehut.users: %v", err)
	}
	c.Tokens = nil
	if _, err := c.Authenticate(context.Background(), cred); !errors.Is(err, identity.ErrUnauthenticated) {
		t.Errorf("with Sourcehut login off: %v", err)
	}
	// An identity that names no provider is refused, never passed on.
	if _, err := c.Authenticate(context.Background(), identity.Credentials{Kind: identity.CredentialRefresh, Secret: "no-provider"}); !errors.Is(err, identity.ErrUnauthenticated) {
		t.Errorf("an identity without a provider: %v", err)
	}
}

// TestHtpasswdCostLimit: a bcrypt cost above htpasswd -B's limit (17) is
// refused at load, naming the line, since one check at cost 31 takes days.
func TestHtpasswdCostLimit(t *testing.T) {
	line := "root:$2y$27$0000000000000000000000000000000000000000000000000000\n"
	_, err := authn.ParseHtpasswd([]byte(line))
	if err == nil || !strings.Contains(err.Error(), `line 1 (user "root"): bcrypt cost 27 is above 17`) {
		t.Fatalf("err = %v, want the cost refused", err)
	}
	if _, err := authn.ParseHtpasswd([]byte("root:" + hash(t, alicePassword, true) + "\n")); err != nil {
		t.Fatalf("an ordinary cost: %v", err)
	}
}

// fakeIDTokens recognises strings starting with "eyJ-ours." as its ID
// tokens and vouches for "eyJ-ours.good".
type fakeIDTokens struct{ calls int }

func (f *fakeIDTokens) Recognize(tok string) bool { return strings.HasPrefix(tok, "eyJ-ours.") }

func (f *fakeIDTokens) Authenticate(_ context.Context, tok identity.Secret) (identity.Identity, error) {
	f.calls++
	if tok.Reveal() != "eyJ-ours.good" {
		return identity.Identity{}, fmt.Errorf("%w: ID token signature does not verify", identity.ErrUnauthenticated)
	}
	return identity.Identity{Method: identity.MethodOIDC, Provider: "cluster", Subject: "system:serviceaccount:ci:builder",
		OIDC: &identity.OIDC{Issuer: "https://cluster.example", Claims: map[string]any{"sub": "system:serviceaccount:ci:builder"}}}, nil
}

// TestChainIDTokens: an ID token of a configured issuer, as the password
// or a Bearer token, goes to the OIDC checker and nowhere else (a bad one
// never falls back to a password check); anything else goes on as before.
func TestChainIDTokens(t *testing.T) {
	t.Parallel()
	const svc = "registry.example.com"
	tests := []struct {
		name         string
		cred         identity.Credentials
		wantMethod   identity.Method
		wantGroups   []string
		wantErr      bool
		wantIDCalls  int
		wantShCalls  int
		wantPwdCalls bool
	}{
		{name: "Basic, ID token as password", cred: identity.Credentials{Kind: identity.CredentialBasic, Username: "oidc", Secret: "eyJ-ours.good", Service: svc},
			wantMethod: identity.MethodOIDC, wantGroups: []string{"builders"}, wantIDCalls: 1},
		{name: "Bearer ID token", cred: identity.Credentials{Kind: identity.CredentialBearer, Secret: "eyJ-ours.good", Service: svc},
			wantMethod: identity.MethodOIDC, wantGroups: []string{"builders"}, wantIDCalls: 1},
		{name: "bad ID token: refused, no password check", cred: identity.Credentials{Kind: identity.CredentialBasic, Username: "alice", Secret: "eyJ-ours.forged", Service: svc},
			wantErr: true, wantIDCalls: 1},
		{name: "not an ID token of ours: Sourcehut, then password", cred: identity.Credentials{Kind: identity.CredentialBasic, Username: "alice", Secret: alicePassword, Service: svc},
			wantMethod: identity.MethodPassword, wantShCalls: 1, wantPwdCalls: true},
		{name: "Bearer not ours: Sourcehut", cred: identity.Credentials{Kind: identity.CredentialBearer, Secret: goodToken, Service: svc},
			wantMethod: identity.MethodSourcehut, wantShCalls: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ids := &fakeIDTokens{}
			tokens := &fakeTokens{service: svc, err: fmt.Errorf("%w: not base64", sourcehut.ErrNotToken)}
			pw := &fakePasswords{user: "alice", password: alicePassword}
			c := &authn.Chain{IDTokens: ids, Tokens: tokens, Passwords: pw,
				Groups: map[string][]string{"builders": {"cluster:system:serviceaccount:ci:builder"}}}
			id, err := c.Authenticate(context.Background(), tt.cred)
			switch {
			case tt.wantErr && !errors.Is(err, identity.ErrUnauthenticated):
				t.Errorf("error %v, want unauthenticated", err)
			case !tt.wantErr && err != nil:
				t.Fatalf("error %v", err)
			case !tt.wantErr && (id.Method != tt.wantMethod || !slices.Equal(id.Groups, tt.wantGroups)):
				t.Errorf("identity %+v, want method %s, groups %v", id, tt.wantMethod, tt.wantGroups)
			}
			if ids.calls != tt.wantIDCalls || tokens.calls != tt.wantShCalls || (pw.calls > 0) != tt.wantPwdCalls {
				t.Errorf("calls: ID tokens %d (want %d), Sourcehut %d (want %d), passwords %d (want any: %t)", ids.calls, tt.wantIDCalls, tokens.calls, tt.wantShCalls, pw.calls, tt.wantPwdCalls)
			}
			if id.Namespace != "" && id.Method == identity.MethodOIDC {
				t.Errorf("an OIDC identity owns namespace %q", id.Namespace)
			}
		})
	}
}
