package server_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jws"
	"golang.org/x/crypto/bcrypt"

	"git.sr.ht/~zozs/srht-registry/internal/access"
	"git.sr.ht/~zozs/srht-registry/internal/authn"
	"git.sr.ht/~zozs/srht-registry/internal/authn/refresh"
	"git.sr.ht/~zozs/srht-registry/internal/authn/sourcehut"
	"git.sr.ht/~zozs/srht-registry/internal/authz"
	"git.sr.ht/~zozs/srht-registry/internal/identity"
	"git.sr.ht/~zozs/srht-registry/internal/server"
	"git.sr.ht/~zozs/srht-registry/internal/token"
	"git.sr.ht/~zozs/srht-registry/policy"
)

const (
	service  = "registry.example.com"
	realm    = "srht-registry"
	maxBody  = 4096
	maxScope = 64
	ttl      = 5 * time.Minute

	// Passwords: none may show in a response body or a log line.
	alicePassword = "alice-Correct-Horse-7731"
	rootPassword  = "root-Battery-Staple-0042"
	wrongPassword = "wrong-Password-9f8e7d6c"
	// carolPassword has colons: Basic splits user and password at the first.
	carolPassword = "carol:Pass:Word-5521"
)

var secrets = []string{alicePassword, rootPassword, wrongPassword, carolPassword}

// logBuffer is a concurrency-safe log sink.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// shared holds what is slow to build (bcrypt, RSA-free but still: the policy)
// and is the same for every real handler.
var shared struct {
	once     sync.Once
	err      error
	htpasswd *authn.Htpasswd
	key      *token.Key
	jwks     []byte
	authz    *authz.Authorizer
}

func setup(t testing.TB) {
	t.Helper()
	shared.once.Do(func() {
		shared.err = func() error {
			var lines []string
			for user, pw := range map[string]string{"alice": alicePassword, "root": rootPassword, "carol": carolPassword} {
				h, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.MinCost)
				if err != nil {
					return err
				}
				lines = append(lines, user+":$2y$"+strings.TrimPrefix(string(h), "$2a$"))
			}
			h, err := authn.ParseHtpasswd([]byte(strings.Join(lines, "\n")))
			if err != nil {
				return err
			}
			shared.htpasswd = h
			signer, err := token.Generate(token.KeyEC)
			if err != nil {
				return err
			}
			if shared.key, err = token.NewKey(signer, nil); err != nil {
				return err
			}
			if shared.jwks, err = token.JWKS(shared.key); err != nil {
				return err
			}
			// A generous timeout: these tests check outcomes, and a loaded
			// machine must not turn a grant into a 503.
			shared.authz, err = authz.New(context.Background(), authz.Options{
				Modules: policy.FS(),
				Data:    map[string]any{"public": []any{"library/*"}},
				Timeout: 10 * time.Second,
			})
			return err
		}()
	})
	if shared.err != nil {
		t.Fatalf("setup: %v", shared.err)
	}
}

type env struct {
	h       http.Handler
	logs    *logBuffer
	refresh *refresh.Tokens
}

const refreshTTL = 720 * time.Hour

// newReal wires the real authn.Chain (anonymous on unless changed), the
// embedded default policy, a token.Minter and, as the default config has
// them, refresh tokens (refresh.Tokens).
func newReal(t testing.TB, modify ...func(*server.Options, *authn.Chain)) *env {
	t.Helper()
	setup(t)
	logs := &logBuffer{}
	refreshTokens := &refresh.Tokens{Issuer: "srht-registry", TTL: refreshTTL, Keys: shared.key, Passwords: shared.htpasswd, Now: time.Now}
	// As serve wires it: the htpasswd file is also the local accounts, and
	// group members are principals.
	chain := &authn.Chain{Anonymous: true, Passwords: shared.htpasswd, Local: shared.htpasswd, Refresh: refreshTokens,
		Groups: map[string][]string{"admins": {"htpasswd:root"}}}
	opts := server.Options{
		Services:      []string{service},
		Realm:         realm,
		MaxScopes:     maxScope,
		MaxBodyBytes:  maxBody,
		Authenticator: chain,
		Authorizer:    shared.authz,
		Minter:        &token.Minter{Issuer: "srht-registry", TTL: ttl, Key: shared.key, Now: time.Now},
		Refresh:       refreshTokens,
		JWKS:          shared.jwks,
		Logger:        slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Now:           time.Now,
	}
	for _, m := range modify {
		m(&opts, chain)
	}
	return &env{h: server.New(opts), logs: logs, refresh: refreshTokens}
}

// refreshOff is the config's token.refresh.enabled: false.
func refreshOff(o *server.Options, c *authn.Chain) { o.Refresh, c.Refresh = nil, nil }

// req describes one request.
type req struct {
	method   string // GET if ""
	path     string // /auth if ""
	query    string // raw query string, set as is (may be malformed)
	auth     []string
	body     string
	bodyFrom io.Reader // instead of body
	ctype    string    // Content-Type; for POST defaults to the form type
	noCtype  bool      // POST without Content-Type
}

func basic(user, password string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+password))
}

func (e *env) do(t testing.TB, r req) *httptest.ResponseRecorder {
	t.Helper()
	return serve(e.h, r)
}

func serve(h http.Handler, r req) *httptest.ResponseRecorder {
	method, path := r.method, r.path
	if method == "" {
		method = http.MethodGet
	}
	if path == "" {
		path = "/auth"
	}
	var body io.Reader = strings.NewReader(r.body)
	if r.bodyFrom != nil {
		body = r.bodyFrom
	}
	hr := httptest.NewRequest(method, path, body)
	hr.URL.RawQuery = r.query
	hr.RequestURI = ""
	for _, a := range r.auth {
		hr.Header.Add("Authorization", a)
	}
	switch {
	case r.ctype != "":
		hr.Header.Set("Content-Type", r.ctype)
	case method == http.MethodPost && !r.noCtype:
		hr.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	hr.Header.Set("User-Agent", "docker/27.0 go/go1.26")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, hr)
	return rec
}

type errorItem struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// checkError asserts the common shape of every error response and returns
// the body as raw fields and the first error item.
func checkError(t testing.TB, rec *httptest.ResponseRecorder, wantStatus int) (map[string]json.RawMessage, errorItem) {
	t.Helper()
	if rec.Code != wantStatus {
		t.Fatalf("status %d, want %d; body %s", rec.Code, wantStatus, rec.Body)
	}
	if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("Content-Type %q, want application/json", ct)
	}
	if rec.Header().Get("X-Request-Id") == "" {
		t.Error("no X-Request-Id")
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(rec.Body.Bytes(), &fields); err != nil {
		t.Fatalf("body is not a JSON object: %v: %s", err, rec.Body)
	}
	var items []errorItem
	if err := json.Unmarshal(fields["errors"], &items); err != nil || len(items) == 0 {
		t.Fatalf("body has no errors list: %s", rec.Body)
	}
	for _, it := range items {
		if it.Code == "" || it.Message == "" {
			t.Errorf("error item %+v: want a code and a message", it)
		}
	}
	for _, k := range []string{"token", "access_token", "refresh_token"} {
		if _, ok := fields[k]; ok {
			t.Errorf("error response carries %q: %s", k, rec.Body)
		}
	}
	wwwAuth := rec.Header().Get("WWW-Authenticate")
	if wantStatus == http.StatusUnauthorized {
		if want := `Basic realm="` + realm + `"`; wwwAuth != want {
			t.Errorf("WWW-Authenticate %q, want %q", wwwAuth, want)
		}
	} else if wwwAuth != "" {
		t.Errorf("WWW-Authenticate %q on a %d", wwwAuth, wantStatus)
	}
	return fields, items[0]
}

func noSecrets(t testing.TB, where, s string) {
	t.Helper()
	for _, p := range secrets {
		if strings.Contains(s, p) {
			t.Errorf("%s contains the password %q", where, p)
		}
		if enc := base64.StdEncoding.EncodeToString([]byte(":" + p)); strings.Contains(s, enc[4:]) {
			t.Errorf("%s contains the base64 of password %q", where, p)
		}
	}
}

func TestBadRequests(t *testing.T) {
	thousand := make([]string, 1000)
	for i := range thousand {
		thousand[i] = "scope=" + url.QueryEscape(fmt.Sprintf("repository:alice/app%d:pull", i))
	}
	form := func(kv ...string) string {
		v := url.Values{}
		for i := 0; i < len(kv); i += 2 {
			v.Add(kv[i], kv[i+1])
		}
		return v.Encode()
	}
	tests := []struct {
		name       string
		r          req
		anonOff    bool
		refreshOff bool
		status     int
		wantMsg    string // part of errors[0].message
		wantOAuth  string // the "error" field, for POST clients
		wantHeader [2]string
	}{
		{name: "Basic without colon", r: req{auth: []string{"Basic " + base64.StdEncoding.EncodeToString([]byte("alice"+alicePassword))}},
			status: 400, wantMsg: "Basic"},
		{name: "Basic not base64", r: req{auth: []string{"Basic %%%" + alicePassword}}, status: 400, wantMsg: "base64"},
		{name: "Basic with nothing", r: req{auth: []string{"Basic"}}, status: 400, wantMsg: "Basic"},
		{name: "unknown scheme", r: req{auth: []string{"Digest username=\"alice\", response=\"" + alicePassword + "\""}}, status: 400, wantMsg: "scheme"},
		{name: "two Authorization headers", r: req{auth: []string{basic("alice", alicePassword), basic("alice", alicePassword)}}, status: 400, wantMsg: "Authorization"},
		{name: "empty Bearer", r: req{auth: []string{"Bearer "}}, status: 400, wantMsg: "Bearer"},
		{name: "Bearer is not supported yet", r: req{auth: []string{"Bearer " + alicePassword}}, status: 401},
		{name: "empty user name", r: req{auth: []string{basic("", alicePassword)}}, status: 401},
		{name: "wrong password", r: req{auth: []string{basic("alice", wrongPassword)}, query: "scope=repository:library/x:pull"}, status: 401, wantMsg: "authentication failed"},
		{name: "empty password", r: req{auth: []string{basic("alice", "")}, query: "scope=repository:library/x:pull"}, status: 401},
		{name: "unknown user", r: req{auth: []string{basic("mallory", alicePassword)}}, status: 401},
		{name: "no credentials, anonymous off", r: req{query: "scope=repository:library/x:pull"}, anonOff: true, status: 401, wantMsg: "credentials required"},
		{name: "account differs from the user", r: req{auth: []string{basic("alice", alicePassword)}, query: "account=root&scope=repository:root/app:push"},
			status: 400, wantMsg: "account"},
		{name: "scope without actions", r: req{query: "scope=repository:alice/app"}, status: 400, wantMsg: "repository:alice/app"},
		{name: "scope with empty actions", r: req{query: "scope=repository:alice/app:"}, status: 400, wantMsg: "scope"},
		{name: "scope with only a type", r: req{query: "scope=repository"}, status: 400, wantMsg: "scope"},
		{name: "scope of colons", r: req{query: "scope=::"}, status: 400, wantMsg: "scope"},
		{name: "scope with a bad name", r: req{query: "scope=repository:Alice/App:pull"}, status: 400, wantMsg: "scope"},
		{name: "one bad scope among good", r: req{query: "scope=repository:library/x:pull&scope=nonsense"}, status: 400, wantMsg: "nonsense"},
		{name: "1000 distinct scopes", r: req{query: strings.Join(thousand, "&")}, status: 400, wantMsg: "64"},
		{name: "1000 scopes in one value", r: req{query: "scope=" + url.QueryEscape(strings.Join(scopeList(1000), " "))}, status: 400, wantMsg: "too many"},
		{name: "unknown service", r: req{query: "service=other.example.com"}, status: 400, wantMsg: service},
		{name: "service twice", r: req{query: "service=" + service + "&service=" + service}, status: 400, wantMsg: "service"},
		{name: "account twice", r: req{auth: []string{basic("alice", alicePassword)}, query: "account=alice&account=alice"}, status: 400, wantMsg: "account"},
		{name: "malformed query escape", r: req{query: "scope=%zz"}, status: 400, wantMsg: "query"},
		{name: "malformed query escape with credentials", r: req{query: "service=%zz", auth: []string{basic("alice", alicePassword)}}, status: 400},
		{name: "semicolon in query", r: req{query: "scope=repository:library/x:pull;service=x"}, status: 400},

		{name: "POST oversized body", r: req{method: "POST", body: form("grant_type", "password", "username", "alice", "password", alicePassword,
			"scope", strings.Repeat("repository:alice/app:pull ", 200))}, status: 413, wantMsg: "4096"},
		{name: "POST JSON", r: req{method: "POST", ctype: "application/json",
			body: `{"grant_type":"password","username":"alice","password":"` + alicePassword + `"}`}, status: 415, wantMsg: "x-www-form-urlencoded"},
		{name: "POST multipart", r: req{method: "POST", ctype: "multipart/form-data; boundary=x", body: "--x--"}, status: 415},
		{name: "POST refresh_token grant, refresh tokens off", r: req{method: "POST", body: form("grant_type", "refresh_token", "refresh_token", alicePassword, "service", service)},
			refreshOff: true, status: 400, wantMsg: "turned off", wantOAuth: "unsupported_grant_type"},
		{name: "POST refresh_token grant, not a refresh token", r: req{method: "POST", body: form("grant_type", "refresh_token", "refresh_token", alicePassword, "service", service)},
			status: 401, wantMsg: "refresh token", wantOAuth: "invalid_grant"},
		{name: "POST refresh_token grant without refresh_token", r: req{method: "POST", body: form("grant_type", "refresh_token", "service", service)},
			status: 400, wantMsg: "refresh_token", wantOAuth: "invalid_request"},
		{name: "POST refresh_token grant, empty refresh_token", r: req{method: "POST", body: form("grant_type", "refresh_token", "refresh_token", "", "service", service)},
			status: 401, wantMsg: "refresh token missing", wantOAuth: "invalid_grant"},
		{name: "POST refresh_token twice", r: req{method: "POST", body: form("grant_type", "refresh_token", "refresh_token", alicePassword, "refresh_token", alicePassword)},
			status: 400, wantMsg: "refresh_token", wantOAuth: "invalid_request"},
		{name: "POST without grant_type", r: req{method: "POST", body: form("username", "alice", "password", alicePassword)},
			status: 400, wantMsg: "grant_type", wantOAuth: "invalid_request"},
		{name: "POST unknown grant_type", r: req{method: "POST", body: form("grant_type", "client_credentials", "client_secret", alicePassword)},
			status: 400, wantOAuth: "unsupported_grant_type"},
		{name: "POST wrong password", r: req{method: "POST", body: form("grant_type", "password", "username", "alice", "password", wrongPassword,
			"scope", "repository:library/x:pull")}, status: 401, wantOAuth: "invalid_grant"},
		{name: "POST without username", r: req{method: "POST", body: form("grant_type", "password", "password", alicePassword)}, status: 401},
		{name: "POST malformed body", r: req{method: "POST", body: "grant_type=password&username=alice&password=" + alicePassword + "&scope=%zz"}, status: 400},
		{name: "POST bad scope", r: req{method: "POST", body: form("grant_type", "password", "username", "alice", "password", alicePassword,
			"scope", "repository:alice/app")}, status: 400, wantOAuth: "invalid_scope"},
		{name: "POST unknown service", r: req{method: "POST", body: form("grant_type", "password", "username", "alice", "password", alicePassword,
			"service", "other.example.com")}, status: 400, wantMsg: service},

		{name: "PUT /auth", r: req{method: "PUT", auth: []string{basic("alice", alicePassword)}}, status: 405, wantHeader: [2]string{"Allow", "GET, POST"}},
		{name: "DELETE /auth", r: req{method: "DELETE"}, status: 405, wantHeader: [2]string{"Allow", "GET, POST"}},
		{name: "unknown path", r: req{path: "/v2/", auth: []string{basic("alice", alicePassword)}}, status: 404},
		{name: "/auth/", r: req{path: "/auth/"}, status: 404},
		{name: "POST /healthz", r: req{method: "POST", path: "/healthz"}, status: 404},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newReal(t, func(o *server.Options, c *authn.Chain) {
				c.Anonymous = !tt.anonOff
				if tt.refreshOff {
					refreshOff(o, c)
				}
			})
			rec := e.do(t, tt.r)
			fields, item := checkError(t, rec, tt.status)
			if !strings.Contains(item.Message, tt.wantMsg) {
				t.Errorf("message %q does not mention %q", item.Message, tt.wantMsg)
			}
			if tt.wantOAuth != "" {
				var got string
				_ = json.Unmarshal(fields["error"], &got)
				if got != tt.wantOAuth {
					t.Errorf("error = %q, want %q", got, tt.wantOAuth)
				}
			}
			if h := tt.wantHeader; h[0] != "" && rec.Header().Get(h[0]) != h[1] {
				t.Errorf("%s: %q, want %q", h[0], rec.Header().Get(h[0]), h[1])
			}
			noSecrets(t, "response body", rec.Body.String())
			logs := e.logs.String()
			noSecrets(t, "log", logs)
			id := rec.Header().Get("X-Request-Id")
			if !strings.Contains(logs, "request_id="+id) {
				t.Errorf("log does not carry the request ID %q:\n%s", id, logs)
			}
			if !strings.Contains(logs, fmt.Sprintf("status=%d", tt.status)) {
				t.Errorf("access log does not record status %d:\n%s", tt.status, logs)
			}
		})
	}
}

func scopeList(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("repository:ns/app%d:pull", i)
	}
	return out
}

// tokenResponse is what a 200 carries.
type tokenResponse struct {
	fields      map[string]json.RawMessage
	Token       string `json:"token"`
	AccessToken string `json:"access_token"`
	ExpiresIn   int    `json:"expires_in"`
	IssuedAt    string `json:"issued_at"`
	Scope       string `json:"scope"`
	// RefreshToken is there only when asked for; tests check when.
	RefreshToken string `json:"refresh_token"`
}

type claimSet struct {
	Iss    string         `json:"iss"`
	Sub    *string        `json:"sub"`
	Aud    any            `json:"aud"`
	Exp    int64          `json:"exp"`
	Iat    int64          `json:"iat"`
	Access []access.Scope `json:"access"`
}

// checkToken asserts a 200 token response, verifies the token's signature
// with the server's key and returns the response and claims.
func checkToken(t testing.TB, rec *httptest.ResponseRecorder) (tokenResponse, claimSet) {
	t.Helper()
	if rec.Code != http.StatusOK {
		t.Fatalf("status %d, want 200; body %s", rec.Code, rec.Body)
	}
	if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("Content-Type %q", ct)
	}
	if rec.Header().Get("Cache-Control") != "no-store" {
		t.Errorf("Cache-Control %q, want no-store", rec.Header().Get("Cache-Control"))
	}
	if rec.Header().Get("X-Request-Id") == "" {
		t.Error("no X-Request-Id")
	}
	var resp tokenResponse
	if err := json.Unmarshal(rec.Body.Bytes(), &resp); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &resp.fields); err != nil {
		t.Fatal(err)
	}
	if resp.Token == "" || resp.Token != resp.AccessToken {
		t.Errorf("token %q, access_token %q: want the same non-empty value", resp.Token, resp.AccessToken)
	}
	if resp.ExpiresIn < 60 || resp.ExpiresIn != int(ttl/time.Second) {
		t.Errorf("expires_in = %d, want %d (>= 60)", resp.ExpiresIn, int(ttl/time.Second))
	}
	issued, err := time.Parse(time.RFC3339, resp.IssuedAt)
	if err != nil {
		t.Errorf("issued_at %q is not RFC 3339: %v", resp.IssuedAt, err)
	}
	for _, k := range []string{"errors", "error"} {
		if _, ok := resp.fields[k]; ok {
			t.Errorf("token response carries %q: %s", k, rec.Body)
		}
	}
	if _, ok := resp.fields["refresh_token"]; ok && resp.RefreshToken == "" {
		t.Errorf("token response carries an empty refresh_token: %s", rec.Body)
	}
	payload, err := jws.Verify([]byte(resp.Token), jws.WithKey(shared.key.Algorithm(), shared.key.Public()))
	if err != nil {
		t.Fatalf("token does not verify with the server's key: %v", err)
	}
	var c claimSet
	if err := json.Unmarshal(payload, &c); err != nil {
		t.Fatal(err)
	}
	if c.Sub == nil {
		t.Error("no sub claim")
	}
	if c.Access == nil {
		t.Error("access claim is missing or null")
	}
	if aud, ok := c.Aud.(string); !ok || aud != service {
		t.Errorf("aud = %#v, want %q", c.Aud, service)
	}
	if c.Iat != issued.Unix() || c.Exp-c.Iat != int64(resp.ExpiresIn) {
		t.Errorf("iat %d exp %d; issued_at %s expires_in %d", c.Iat, c.Exp, resp.IssuedAt, resp.ExpiresIn)
	}
	return resp, c
}

func scopes(t testing.TB, ss ...string) []access.Scope {
	t.Helper()
	out := []access.Scope{}
	for _, s := range ss {
		sc, err := access.ParseScope(s)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, sc)
	}
	return out
}

func TestTokenGET(t *testing.T) {
	aliceAuth := []string{basic("alice", alicePassword)}
	tests := []struct {
		name        string
		r           req
		wantSub     string
		want        []string
		wantRefresh bool
	}{
		{"repeated scope", req{auth: aliceAuth, query: "service=" + service + "&scope=repository:alice/app:pull,push&scope=repository:library/x:pull"},
			"htpasswd:alice", []string{"repository:alice/app:pull,push", "repository:library/x:pull"}, false},
		{"space-separated scopes (+)", req{auth: aliceAuth, query: "scope=repository:alice/app:pull,push+repository:library/x:pull"},
			"htpasswd:alice", []string{"repository:alice/app:pull,push", "repository:library/x:pull"}, false},
		{"space-separated scopes (%20) and repeated", req{auth: aliceAuth,
			query: "scope=repository%3Aalice%2Fapp%3Apull%20repository%3Alibrary%2Fx%3Apull&scope=repository:alice/app:push"},
			"htpasswd:alice", []string{"repository:alice/app:pull,push", "repository:library/x:pull"}, false},
		{"docker login (no scope)", req{auth: aliceAuth, query: "service=" + service + "&account=alice&client_id=docker&offline_token=true"}, "htpasswd:alice", nil, true},
		{"anonymous, no scope", req{}, "", nil, false},
		{"anonymous pull of a public repository", req{query: "scope=repository:library/x:pull,push"}, "", []string{"repository:library/x:pull"}, false},
		{"anonymous on a private repository", req{query: "scope=repository:alice/app:pull"}, "", nil, false},
		{"partial grant", req{auth: aliceAuth, query: "scope=repository:alice/app:pull&scope=repository:root/app:pull,push"},
			"htpasswd:alice", []string{"repository:alice/app:pull"}, false},
		{"unknown resource type", req{auth: aliceAuth, query: "scope=foo:bar:baz&scope=foo(x):alice/app:pull"}, "htpasswd:alice", nil, false},
		{"offline_token yields a refresh token", req{auth: aliceAuth, query: "offline_token=true&client_id=docker&scope=repository:alice/app:pull"},
			"htpasswd:alice", []string{"repository:alice/app:pull"}, true},
		{"offline_token=false", req{auth: aliceAuth, query: "offline_token=false&client_id=docker&scope=repository:alice/app:pull"},
			"htpasswd:alice", []string{"repository:alice/app:pull"}, false},
		{"anonymous gets no refresh token", req{query: "offline_token=true&client_id=docker&scope=repository:library/x:pull"},
			"", []string{"repository:library/x:pull"}, false},
		{"admin catalog", req{auth: []string{basic("root", rootPassword)}, query: "scope=registry:catalog:*"}, "htpasswd:root", []string{"registry:catalog:*"}, false},
		{"lower-case scheme", req{auth: []string{"basic " + base64.StdEncoding.EncodeToString([]byte("alice:"+alicePassword))}, query: "scope=repository:alice/app:delete"},
			"htpasswd:alice", []string{"repository:alice/app:delete"}, false},
		{"password with colons", req{auth: []string{basic("carol", carolPassword)}, query: "account=carol&scope=repository:carol/app:pull"},
			"htpasswd:carol", []string{"repository:carol/app:pull"}, false},
		{"empty scope value", req{query: "scope="}, "", nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newReal(t)
			rec := e.do(t, tt.r)
			resp, c := checkToken(t, rec)
			if *c.Sub != tt.wantSub {
				t.Errorf("sub = %q, want %q", *c.Sub, tt.wantSub)
			}
			if (resp.RefreshToken != "") != tt.wantRefresh {
				t.Errorf("refresh_token %q, want one: %v", resp.RefreshToken, tt.wantRefresh)
			}
			if resp.RefreshToken != "" {
				checkRefresh(t, e, resp.RefreshToken, "htpasswd:alice", "docker")
			}
			if !reflect.DeepEqual(c.Access, scopes(t, tt.want...)) {
				t.Errorf("access = %+v, want %q", c.Access, tt.want)
			}
			if _, ok := resp.fields["scope"]; ok {
				t.Errorf("GET response carries scope: %s", rec.Body)
			}
			noSecrets(t, "response body", rec.Body.String())
			noSecrets(t, "log", e.logs.String())
		})
	}
}

func TestTokenPOST(t *testing.T) {
	base := url.Values{"grant_type": {"password"}, "username": {"alice"}, "password": {alicePassword},
		"service": {service}, "client_id": {"skopeo"}, "access_type": {"offline"}}
	with := func(kv ...string) string {
		v := url.Values{}
		for k, vs := range base {
			v[k] = slices.Clone(vs)
		}
		for i := 0; i < len(kv); i += 2 {
			v.Add(kv[i], kv[i+1])
		}
		return v.Encode()
	}
	tests := []struct {
		name      string
		r         req
		want      []string
		wantScope string
	}{
		{"scope space-separated in one field", req{method: "POST", body: with("scope", "repository:alice/app:pull,push repository:library/x:pull")},
			[]string{"repository:alice/app:pull,push", "repository:library/x:pull"}, "repository:alice/app:pull,push repository:library/x:pull"},
		{"scope as repeated fields", req{method: "POST", body: with("scope", "repository:alice/app:pull,push", "scope", "repository:library/x:pull")},
			[]string{"repository:alice/app:pull,push", "repository:library/x:pull"}, "repository:alice/app:pull,push repository:library/x:pull"},
		{"partial grant", req{method: "POST", body: with("scope", "repository:alice/app:push repository:root/app:push repository:library/x:pull,push")},
			[]string{"repository:alice/app:push", "repository:library/x:pull"}, "repository:alice/app:push repository:library/x:pull"},
		{"no scope", req{method: "POST", body: with()}, nil, ""},
		{"form type with charset", req{method: "POST", ctype: "application/x-www-form-urlencoded; charset=utf-8", body: with("scope", "repository:alice/app:pull")},
			[]string{"repository:alice/app:pull"}, "repository:alice/app:pull"},
		{"no Content-Type", req{method: "POST", noCtype: true, body: with("scope", "repository:alice/app:pull")},
			[]string{"repository:alice/app:pull"}, "repository:alice/app:pull"},
		{"Authorization header of someone else is ignored", req{method: "POST", auth: []string{basic("root", rootPassword)}, body: with("scope", "repository:root/app:pull")},
			nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newReal(t)
			rec := e.do(t, tt.r)
			resp, c := checkToken(t, rec)
			if *c.Sub != "htpasswd:alice" {
				t.Errorf("sub = %q, want htpasswd:alice", *c.Sub)
			}
			// access_type=offline: every one of these asks for a refresh token.
			checkRefresh(t, e, resp.RefreshToken, "htpasswd:alice", "skopeo")
			if !reflect.DeepEqual(c.Access, scopes(t, tt.want...)) {
				t.Errorf("access = %+v, want %q", c.Access, tt.want)
			}
			if resp.Scope != tt.wantScope {
				t.Errorf("scope = %q, want %q", resp.Scope, tt.wantScope)
			}
			noSecrets(t, "response body", rec.Body.String())
			noSecrets(t, "log", e.logs.String())
		})
	}
}

// TestFormMediaTypeCaseInsensitive: media types are case-insensitive (RFC
// 9110, 8.3.1), so a form sent as Application/X-WWW-Form-Urlencoded is a form.
func TestFormMediaTypeCaseInsensitive(t *testing.T) {
	e := newReal(t)
	body := url.Values{"grant_type": {"password"}, "username": {"alice"}, "password": {alicePassword}, "scope": {"repository:alice/app:pull"}}.Encode()
	rec := e.do(t, req{method: "POST", ctype: "Application/X-WWW-Form-URLEncoded", body: body})
	_, c := checkToken(t, rec)
	if !reflect.DeepEqual(c.Access, scopes(t, "repository:alice/app:pull")) {
		t.Errorf("access = %+v", c.Access)
	}
}

// failingReader returns some bytes and then the error of a client that went
// away in the middle of its body.
type failingReader struct{ done bool }

func (f *failingReader) Read(p []byte) (int, error) {
	if f.done {
		return 0, io.ErrUnexpectedEOF
	}
	f.done = true
	return copy(p, "grant_type=password&username=alice&pass"), nil
}

// TestTruncatedBody: a body the client did not finish sending is the
// client's fault: a 400, not a 500 (which is logged as a server error).
func TestTruncatedBody(t *testing.T) {
	e := newReal(t)
	rec := e.do(t, req{method: "POST", bodyFrom: &failingReader{}})
	checkError(t, rec, http.StatusBadRequest)
	if strings.Contains(e.logs.String(), "level=ERROR") {
		t.Errorf("a client's truncated body is logged as a server error:\n%s", e.logs)
	}
}

func TestEndpoints(t *testing.T) {
	e := newReal(t)

	rec := e.do(t, req{path: "/.well-known/jwks.json"})
	if rec.Code != http.StatusOK || !bytes.Equal(rec.Body.Bytes(), shared.jwks) {
		t.Fatalf("jwks: %d %s", rec.Code, rec.Body)
	}
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("jwks Content-Type %q", ct)
	}
	var set struct {
		Keys []struct {
			Kid string `json:"kid"`
			D   string `json:"d"`
		} `json:"keys"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &set); err != nil || len(set.Keys) != 1 || set.Keys[0].Kid != shared.key.ID() || set.Keys[0].D != "" {
		t.Fatalf("jwks %s (%v): want our one public key", rec.Body, err)
	}
	if rec.Header().Get("X-Request-Id") == "" {
		t.Error("jwks: no X-Request-Id")
	}

	rec = e.do(t, req{path: "/healthz"})
	if rec.Code != http.StatusOK || strings.TrimSpace(rec.Body.String()) != `{"status":"ok"}` {
		t.Fatalf("healthz: %d %s", rec.Code, rec.Body)
	}
	if rec.Header().Get("X-Request-Id") == "" {
		t.Error("healthz: no X-Request-Id")
	}
}

func TestRequestIDsDiffer(t *testing.T) {
	e := newReal(t)
	seen := map[string]bool{}
	for _, r := range []req{{}, {path: "/healthz"}, {path: "/nope"}, {method: "PUT"}, {query: "scope=x"}} {
		id := e.do(t, r).Header().Get("X-Request-Id")
		if id == "" || seen[id] {
			t.Fatalf("request ID %q empty or repeated", id)
		}
		seen[id] = true
	}
}

// --- fakes ---

type fakeAuthn struct {
	mu  sync.Mutex // requests may run concurrently (TestMaxConcurrent)
	id  identity.Identity
	err error
	got []identity.Credentials
}

func (f *fakeAuthn) Authenticate(_ context.Context, cred identity.Credentials) (identity.Identity, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.got = append(f.got, cred)
	return f.id, f.err
}

type fakeAuthz struct {
	// grant maps a resource name to the actions granted on it.
	grant   map[string][]string
	reasons []string
	// revision and memoised are every decision's.
	revision string
	memoised bool
	err      error
	gotID    identity.Identity
	gotReq   identity.Request
	gotSc    []access.Scope
}

func (f *fakeAuthz) Authorize(_ context.Context, id identity.Identity, r identity.Request, scs []access.Scope) ([]access.Decision, error) {
	f.gotID, f.gotReq, f.gotSc = id, r, scs
	if f.err != nil {
		return nil, f.err
	}
	var ds []access.Decision
	for _, sc := range scs {
		g := access.Grant(sc.Actions, f.grant[sc.Name])
		d := access.Decision{Requested: sc, Granted: g, Revision: f.revision, Memoised: f.memoised, Duration: time.Microsecond}
		if len(g) == 0 {
			d.Reasons = f.reasons
		}
		ds = append(ds, d)
	}
	return ds, nil
}

type fakeMinter struct {
	mu          sync.Mutex
	err         error
	calls       int
	gotSubject  string
	gotAudience string
	gotGranted  []access.Scope
	issuedAt    time.Time
}

func (f *fakeMinter) Mint(subject, audience string, granted []access.Scope) (access.Token, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	f.gotSubject, f.gotAudience, f.gotGranted = subject, audience, granted
	if f.err != nil {
		return access.Token{}, f.err
	}
	return access.Token{Signed: "header.claims.signature", IssuedAt: f.issuedAt, ExpiresIn: 90 * time.Second}, nil
}

type fakes struct {
	authn  *fakeAuthn
	authz  *fakeAuthz
	minter *fakeMinter
	logs   *logBuffer
	h      http.Handler
}

var fakeNow = time.Date(2030, 1, 2, 3, 4, 5, 0, time.FixedZone("X", 3600))

func newFakes(services ...string) *fakes {
	return newFakesWith(func(*server.Options) {}, services...)
}

// newFakesWith is newFakes with options of the test's own set by mod.
func newFakesWith(mod func(*server.Options), services ...string) *fakes {
	if len(services) == 0 {
		services = []string{service}
	}
	f := &fakes{
		authn: &fakeAuthn{id: identity.Identity{Method: identity.MethodPassword, Provider: identity.ProviderHtpasswd, Subject: "alice",
			Namespace: "alice"}},
		authz:  &fakeAuthz{grant: map[string][]string{}},
		minter: &fakeMinter{issuedAt: fakeNow.Truncate(time.Second)},
		logs:   &logBuffer{},
	}
	opts := server.Options{
		Services: services, Realm: realm, MaxScopes: 4, MaxBodyBytes: maxBody,
		Authenticator: f.authn, Authorizer: f.authz, Minter: f.minter, JWKS: []byte(`{"keys":[]}`),
		Logger: slog.New(slog.NewJSONHandler(f.logs, nil)), Now: func() time.Time { return fakeNow },
	}
	mod(&opts)
	f.h = server.New(opts)
	return f
}

func TestWiring(t *testing.T) {
	f := newFakes()
	f.authz.grant = map[string][]string{"alice/app": {"pull", "push"}, "library/x": {"*"}}
	f.authz.reasons = []string{"because the test says so"}
	hr := httptest.NewRequest("GET", "/auth?scope=repository:alice/app:pull,push,delete&scope=repository(plugin):library/x:pull&scope=repository:bob/app:pull&client_id=docker", nil)
	hr.Header.Set("Authorization", basic("alice", alicePassword))
	hr.Header.Set("User-Agent", "docker/27.0")
	hr.RemoteAddr = "192.0.2.7:4711"
	rec := httptest.NewRecorder()
	f.h.ServeHTTP(rec, hr)
	if rec.Code != 200 {
		t.Fatalf("status %d: %s", rec.Code, rec.Body)
	}
	var resp map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &resp); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"token": "header.claims.signature", "access_token": "header.claims.signature",
		"expires_in": 90.0, "issued_at": "2030-01-02T02:04:05Z"}
	if !reflect.DeepEqual(resp, want) {
		t.Errorf("response %v, want %v", resp, want)
	}
	// Credentials reach the authenticator intact.
	if len(f.authn.got) != 1 || f.authn.got[0].Kind != identity.CredentialBasic || f.authn.got[0].Username != "alice" ||
		f.authn.got[0].Secret.Reveal() != alicePassword || f.authn.got[0].Service != service {
		t.Errorf("authenticator got %+v", f.authn.got)
	}
	// The request document.
	// The decision ID is random; it must be the one the response names.
	wantReq := identity.Request{DecisionID: rec.Header().Get("X-Decision-Id"), Service: service, ClientIP: "192.0.2.7", ClientID: "docker", UserAgent: "docker/27.0", Time: fakeNow}
	if wantReq.DecisionID == "" {
		t.Error("no X-Decision-Id header")
	}
	if f.authz.gotReq != wantReq {
		t.Errorf("request %+v, want %+v", f.authz.gotReq, wantReq)
	}
	if !reflect.DeepEqual(f.authz.gotID, f.authn.id) {
		t.Errorf("authorizer got identity %+v, want the authenticator's %+v", f.authz.gotID, f.authn.id)
	}
	if !reflect.DeepEqual(f.authz.gotSc, scopes(t, "repository:alice/app:pull,push,delete", "repository(plugin):library/x:pull", "repository:bob/app:pull")) {
		t.Errorf("authorizer got scopes %v", f.authz.gotSc)
	}
	// Only what was granted goes into the token, class kept, empty dropped.
	// The token names the principal, not the bare subject.
	if f.minter.gotSubject != "htpasswd:alice" || f.minter.gotAudience != service {
		t.Errorf("minter got subject %q audience %q", f.minter.gotSubject, f.minter.gotAudience)
	}
	if !reflect.DeepEqual(f.minter.gotGranted, scopes(t, "repository:alice/app:pull,push", "repository(plugin):library/x:pull")) {
		t.Errorf("minter got %v", f.minter.gotGranted)
	}
	logs := f.logs.String()
	if !strings.Contains(logs, "because the test says so") {
		t.Errorf("deny reasons not logged:\n%s", logs)
	}
	noSecrets(t, "log", logs)
}

// TestNothingGrantedIsAnEmptyList: the minter gets a non-nil empty list.
func TestNothingGrantedIsAnEmptyList(t *testing.T) {
	f := newFakes()
	rec := serve(f.h, req{query: "scope=repository:bob/app:pull"})
	if rec.Code != 200 || f.minter.calls != 1 {
		t.Fatalf("status %d, %d mints", rec.Code, f.minter.calls)
	}
	if f.minter.gotGranted == nil || len(f.minter.gotGranted) != 0 {
		t.Errorf("minter got %#v, want an empty list", f.minter.gotGranted)
	}
}

func TestServices(t *testing.T) {
	tests := []struct {
		name     string
		services []string
		query    string
		status   int
		wantAud  string
		wantMsg  []string
	}{
		{"one configured, none given", []string{service}, "", 200, service, nil},
		{"one configured, given", []string{service}, "service=" + service, 200, service, nil},
		{"two configured, second given", []string{service, "other.example.com"}, "service=other.example.com", 200, "other.example.com", nil},
		{"two configured, none given", []string{service, "other.example.com"}, "", 400, "", []string{service, "other.example.com"}},
		{"unknown", []string{service}, "service=evil.example.com", 400, "", []string{service}},
		{"case differs", []string{service}, "service=Registry.Example.com", 400, "", []string{service}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakes(tt.services...)
			rec := serve(f.h, req{query: tt.query})
			if tt.status != 200 {
				_, item := checkError(t, rec, tt.status)
				for _, w := range tt.wantMsg {
					if !strings.Contains(item.Message, w) {
						t.Errorf("message %q does not name %q", item.Message, w)
					}
				}
				if f.minter.calls != 0 {
					t.Error("a token was minted")
				}
				return
			}
			if rec.Code != 200 {
				t.Fatalf("status %d: %s", rec.Code, rec.Body)
			}
			if f.minter.gotAudience != tt.wantAud || f.authz.gotReq.Service != tt.wantAud {
				t.Errorf("audience %q, request service %q; want %q", f.minter.gotAudience, f.authz.gotReq.Service, tt.wantAud)
			}
		})
	}
}

// TestErrorMapping: every kind of failure has its status, and the client
// never sees the cause.
func TestErrorMapping(t *testing.T) {
	const cause = "internal-detail-that-stays-in-the-log"
	tests := []struct {
		name   string
		setup  func(*fakes)
		status int
		code   string
		logged bool // the cause is in the log
		// shown: the client sees the error text. Authenticators put only
		// fixed, secret-free text after identity.ErrUnauthenticated, and
		// the server shows it; every other cause stays in the log.
		shown bool
	}{
		{"unauthenticated", func(f *fakes) {
			f.authn.err = fmt.Errorf("%w: %s", identity.ErrUnauthenticated, cause)
		}, 401, "UNAUTHORIZED", true, true},
		{"credentials required", func(f *fakes) { f.authn.err = identity.ErrCredentialsRequired }, 401, "UNAUTHORIZED", false, false},
		{"authentication unavailable", func(f *fakes) {
			f.authn.err = fmt.Errorf("%w: %s", identity.ErrUnavailable, cause)
		}, 503, "UNAVAILABLE", true, false},
		{"policy failed", func(f *fakes) {
			f.authz.err = fmt.Errorf("%w: %s", access.ErrDecisionFailed, cause)
		}, 503, "UNAVAILABLE", true, false},
		{"minting failed", func(f *fakes) { f.minter.err = errors.New(cause) }, 500, "INTERNAL", true, false},
		{"unclassified authenticator error", func(f *fakes) { f.authn.err = errors.New(cause) }, 500, "INTERNAL", true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakes()
			tt.setup(f)
			rec := serve(f.h, req{auth: []string{basic("alice", alicePassword)}, query: "scope=repository:alice/app:pull"})
			_, item := checkError(t, rec, tt.status)
			if item.Code != tt.code {
				t.Errorf("code %q, want %q", item.Code, tt.code)
			}
			if !tt.shown && strings.Contains(rec.Body.String(), cause) {
				t.Errorf("the body tells the client the cause: %s", rec.Body)
			}
			if tt.status == 401 && !strings.HasPrefix(item.Message, "authentication failed") {
				t.Errorf("401 message %q", item.Message)
			}
			if tt.logged && !strings.Contains(f.logs.String(), cause) {
				t.Errorf("the cause is not logged:\n%s", f.logs)
			}
			if tt.status >= 500 && !strings.Contains(f.logs.String(), `"level":"ERROR"`) {
				t.Errorf("a %d is not logged as an error:\n%s", tt.status, f.logs)
			}
			if tt.status != 500 && f.minter.calls != 0 {
				t.Errorf("a token was minted on a %d", tt.status)
			}
			noSecrets(t, "log", f.logs.String())
		})
	}
}

// TestScopeLimitBeforeAuthentication: too many scopes is refused before any
// password is checked.
func TestScopeLimitBeforeAuthentication(t *testing.T) {
	f := newFakes()
	q := "scope=" + url.QueryEscape(strings.Join(scopeList(5), " "))
	rec := serve(f.h, req{auth: []string{basic("alice", alicePassword)}, query: q})
	_, item := checkError(t, rec, 400)
	if !strings.Contains(item.Message, "4") {
		t.Errorf("message %q does not name the limit", item.Message)
	}
	if len(f.authn.got) != 0 {
		t.Errorf("credentials checked %d times for a refused request", len(f.authn.got))
	}
	// Exactly the limit is fine, and duplicates do not count.
	q = "scope=" + url.QueryEscape(strings.Join(append(scopeList(4), scopeList(4)...), " "))
	if rec := serve(f.h, req{query: q}); rec.Code != 200 {
		t.Errorf("4 distinct scopes: %d %s", rec.Code, rec.Body)
	}
}

// FuzzHandler drives the real chain, policy and minter with arbitrary query
// strings, Authorization headers and POST bodies: never a 5xx, and every
// non-200 is a JSON error body.
func FuzzHandler(f *testing.F) {
	seeds := []struct {
		query, auth, body string
		post              bool
	}{
		{"service=registry.example.com&scope=repository:library/x:pull", "", "", false},
		{"scope=repository:alice/app:pull,push+repository:library/x:pull", basic("alice", alicePassword), "", false},
		{"scope=registry:catalog:*", basic("root", rootPassword), "", false},
		{"scope=%zz", "Basic !!", "", false},
		{"account=bob", basic("alice", "x"), "", false},
		{"scope=foo(bar):a:b,c", "Bearer abc", "", false},
		{"", "", "grant_type=password&username=alice&password=" + url.QueryEscape(alicePassword) + "&scope=repository%3Aalice%2Fapp%3Apull", true},
		{"", "", "grant_type=refresh_token&refresh_token=x", true},
		{"offline_token=true&client_id=docker&scope=repository:alice/app:pull", basic("alice", alicePassword), "", false},
		{"", "", "grant_type=password&access_type=offline&username=alice&password=" + url.QueryEscape(alicePassword), true},
		{"", "", "scope=a:b:c&scope=::&grant_type=password", true},
		{"", "", "grant_type=password&username=&password=&service=x", true},
		{";", "basic Og==", "%", true},
		{"offline_token=true&client_id=docker&scope=repository:bob/app:pull,push", "Bearer " + roToken, "", false},
		{"scope=repository:alice/app:pull,push", basic("sourcehut", rwAliceToken), "", false},
		{"", "", "grant_type=password&access_type=offline&username=sourcehut&password=" + rwAliceToken + "&scope=repository%3Aalice%2Fapp%3Apush", true},
	}
	for _, s := range seeds {
		f.Add(s.query, s.auth, s.body, s.post)
	}
	e := newReal(f, func(o *server.Options, c *authn.Chain) {
		o.Logger = slog.New(slog.DiscardHandler)
		c.Tokens = fakeSourcehut{}
	})
	f.Fuzz(func(t *testing.T, query, auth, body string, post bool) {
		r := req{query: query, body: body}
		if auth != "" {
			r.auth = []string{auth}
		}
		if post {
			r.method = http.MethodPost
		}
		rec := e.do(t, r)
		if rec.Code >= 500 {
			t.Fatalf("status %d: %s", rec.Code, rec.Body)
		}
		if rec.Header().Get("X-Request-Id") == "" {
			t.Fatal("no X-Request-Id")
		}
		if rec.Code == http.StatusOK {
			var resp map[string]any
			if err := json.Unmarshal(rec.Body.Bytes(), &resp); err != nil {
				t.Fatalf("200 body is not JSON: %v", err)
			}
			if tok, _ := resp["token"].(string); tok == "" || resp["access_token"] != tok {
				t.Fatalf("200 without a token: %s", rec.Body)
			}
			// A refresh token only for a login that asked for one, or
			// the refresh grant itself.
			if rt, ok := resp["refresh_token"]; ok {
				asked := strings.Contains(query, "offline_token") || strings.Contains(body, "access_type") || strings.Contains(body, "refresh_token")
				if s, _ := rt.(string); s == "" || !asked || !post && !strings.Contains(query, "offline_token") {
					t.Fatalf("refresh_token issued unasked: %s", rec.Body)
				}
			}
			return
		}
		checkError(t, rec, rec.Code)
	})
}

// checkRefresh checks a refresh token the server returned: there, not the
// access token, and redeemable as the principal's ("htpasswd:alice") for
// service and clientID.
func checkRefresh(t testing.TB, e *env, rt, principal, clientID string) {
	t.Helper()
	if rt == "" {
		t.Fatal("no refresh_token in the response")
	}
	id, err := e.refresh.Redeem(context.Background(), identity.Credentials{Kind: identity.CredentialRefresh, Secret: identity.Secret(rt),
		Service: service, ClientID: clientID})
	if err != nil {
		t.Fatalf("the refresh token does not redeem: %v", err)
	}
	if id.Method != identity.MethodRefresh || id.Principal() != principal {
		t.Errorf("the refresh token stands for %+v, want %s", id, principal)
	}
}

// refreshForm is the POST body of the refresh_token grant.
func refreshForm(rt, clientID, scope string, extra ...string) string {
	v := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}, "service": {service}, "client_id": {clientID}, "scope": {scope}}
	for i := 0; i < len(extra); i += 2 {
		v.Set(extra[i], extra[i+1])
	}
	return v.Encode()
}

// TestRefreshGrant is docker's flow: `docker login` asks for a refresh
// token (GET offline_token=true), drops the password, and from then on
// trades the refresh token for access tokens (POST grant_type=refresh_token),
// each time getting the same refresh token back.
func TestRefreshGrant(t *testing.T) {
	e := newReal(t)
	rec := e.do(t, req{auth: []string{basic("alice", alicePassword)}, query: "service=" + service + "&account=alice&client_id=docker&offline_token=true"})
	login, _ := checkToken(t, rec)
	rt := login.RefreshToken
	checkRefresh(t, e, rt, "htpasswd:alice", "docker")
	if rt == login.Token {
		t.Fatal("the refresh token is the access token")
	}

	var tokens []string
	for i, scope := range []string{"repository:alice/app:pull,push repository:root/app:push", "repository:alice/app:pull"} {
		rec = e.do(t, req{method: "POST", body: refreshForm(rt, "docker", scope)})
		resp, c := checkToken(t, rec)
		if resp.RefreshToken != rt {
			t.Errorf("grant %d: refresh_token is not the one presented", i)
		}
		if *c.Sub != "htpasswd:alice" {
			t.Errorf("grant %d: sub = %q, want htpasswd:alice (a refresh token keeps its login's provider)", i, *c.Sub)
		}
		want := []string{"repository:alice/app:pull,push"}
		if i == 1 {
			want = []string{"repository:alice/app:pull"}
		}
		if !reflect.DeepEqual(c.Access, scopes(t, want...)) {
			t.Errorf("grant %d: access = %+v, want %q (the policy decides, as for any login)", i, c.Access, want)
		}
		if resp.Scope != strings.Join(want, " ") {
			t.Errorf("grant %d: scope = %q", i, resp.Scope)
		}
		tokens = append(tokens, resp.Token)
	}
	if tokens[0] == tokens[1] {
		t.Error("two refresh grants gave the same access token")
	}
	// access_type=offline on the refresh grant makes no new refresh token.
	rec = e.do(t, req{method: "POST", body: refreshForm(rt, "docker", "repository:alice/app:pull", "access_type", "offline")})
	if resp, _ := checkToken(t, rec); resp.RefreshToken != rt {
		t.Error("a refresh grant with access_type=offline returned another refresh token")
	}
	// Without client_id (as some clients send it) the grant works too.
	rec = e.do(t, req{method: "POST", body: refreshForm(rt, "", "repository:alice/app:pull")})
	checkToken(t, rec)

	// The refusals: 401 invalid_grant, saying why, never the token.
	for _, tc := range []struct{ name, body, why string }{
		{"the access token", refreshForm(login.Token, "docker", "repository:alice/app:pull"), "not a refresh token"},
		{"a truncated refresh token", refreshForm(rt[:len(rt)-4], "docker", "repository:alice/app:pull"), "refresh token"},
	} {
		rec := e.do(t, req{method: "POST", body: tc.body})
		fields, item := checkError(t, rec, http.StatusUnauthorized)
		if !strings.Contains(item.Message, tc.why) {
			t.Errorf("%s: message %q does not say %q", tc.name, item.Message, tc.why)
		}
		var oauth string
		_ = json.Unmarshal(fields["error"], &oauth)
		if oauth != "invalid_grant" {
			t.Errorf("%s: error = %q, want invalid_grant", tc.name, oauth)
		}
		if strings.Contains(rec.Body.String(), rt[strings.LastIndex(rt, ".")+1:]) {
			t.Errorf("%s: the body carries the refresh token", tc.name)
		}
	}

	logs := e.logs.String()
	for _, part := range strings.Split(rt, ".") {
		if strings.Contains(logs, part) {
			t.Fatalf("a part of the refresh token is in the log:\n%s", logs)
		}
	}
	for _, want := range []string{"refresh_token=issued", "refresh_token=presented", "auth_method=refresh/password", "auth_method=password", "provider=htpasswd"} {
		if !strings.Contains(logs, want) {
			t.Errorf("the log never says %s:\n%s", want, logs)
		}
	}
	noSecrets(t, "log", logs)
}

// TestRefreshGrantPOSTLogin: the OAuth2 password grant with
// access_type=offline gets a refresh token too (skopeo, oras).
func TestRefreshGrantPOSTLogin(t *testing.T) {
	e := newReal(t)
	body := url.Values{"grant_type": {"password"}, "username": {"alice"}, "password": {alicePassword}, "service": {service},
		"client_id": {"oras"}, "access_type": {"offline"}, "scope": {"repository:alice/app:pull"}}.Encode()
	resp, _ := checkToken(t, e.do(t, req{method: "POST", body: body}))
	checkRefresh(t, e, resp.RefreshToken, "htpasswd:alice", "oras")
	resp2, c := checkToken(t, e.do(t, req{method: "POST", body: refreshForm(resp.RefreshToken, "oras", "repository:alice/app:push")}))
	if resp2.RefreshToken != resp.RefreshToken || !reflect.DeepEqual(c.Access, scopes(t, "repository:alice/app:push")) {
		t.Errorf("refresh grant: %+v %+v", resp2, c.Access)
	}
	// Without access_type=offline there is none.
	noOffline := url.Values{"grant_type": {"password"}, "username": {"alice"}, "password": {alicePassword}, "service": {service}}.Encode()
	if resp, _ := checkToken(t, e.do(t, req{method: "POST", body: noOffline})); resp.RefreshToken != "" {
		t.Error("a refresh token without access_type=offline")
	}
}

// TestRefreshOff: with token.refresh.enabled false none is issued, and the
// grant is unsupported even for a refresh token that would verify.
func TestRefreshOff(t *testing.T) {
	on := newReal(t)
	login, _ := checkToken(t, on.do(t, req{auth: []string{basic("alice", alicePassword)}, query: "client_id=docker&offline_token=true"}))
	checkRefresh(t, on, login.RefreshToken, "htpasswd:alice", "docker")

	off := newReal(t, refreshOff)
	resp, _ := checkToken(t, off.do(t, req{auth: []string{basic("alice", alicePassword)}, query: "client_id=docker&offline_token=true"}))
	if resp.RefreshToken != "" {
		t.Error("a refresh token with refresh tokens off")
	}
	resp, _ = checkToken(t, off.do(t, req{method: "POST", body: url.Values{"grant_type": {"password"}, "username": {"alice"},
		"password": {alicePassword}, "access_type": {"offline"}}.Encode()}))
	if resp.RefreshToken != "" {
		t.Error("a refresh token for access_type=offline with refresh tokens off")
	}
	fields, _ := checkError(t, off.do(t, req{method: "POST", body: refreshForm(login.RefreshToken, "docker", "repository:alice/app:pull")}), http.StatusBadRequest)
	var oauth string
	_ = json.Unmarshal(fields["error"], &oauth)
	if oauth != "unsupported_grant_type" {
		t.Errorf("error = %q, want unsupported_grant_type", oauth)
	}
}

// TestRefreshServiceBound: a refresh token for one registry is no good at
// another served by the same token server.
func TestRefreshServiceBound(t *testing.T) {
	const other = "registry.example.org"
	e := newReal(t, func(o *server.Options, _ *authn.Chain) { o.Services = []string{service, other} })
	login, _ := checkToken(t, e.do(t, req{auth: []string{basic("alice", alicePassword)}, query: "service=" + service + "&client_id=docker&offline_token=true"}))
	body := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {login.RefreshToken}, "service": {other}, "client_id": {"docker"},
		"scope": {"repository:alice/app:pull"}}.Encode()
	_, item := checkError(t, e.do(t, req{method: "POST", body: body}), http.StatusUnauthorized)
	if !strings.Contains(item.Message, "another service") {
		t.Errorf("message %q", item.Message)
	}
}

// TestRefreshPasswordChanged: a new htpasswd line for the user (a reload)
// ends the user's refresh tokens at once.
func TestRefreshPasswordChanged(t *testing.T) {
	line := func(pw string) []byte {
		h, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.MinCost)
		if err != nil {
			t.Fatal(err)
		}
		return []byte("alice:" + string(h) + "\n")
	}
	users, err := authn.ParseHtpasswd(line(alicePassword))
	if err != nil {
		t.Fatal(err)
	}
	e := newReal(t, func(o *server.Options, c *authn.Chain) {
		r := &refresh.Tokens{Issuer: "srht-registry", TTL: refreshTTL, Keys: shared.key, Passwords: users, Now: time.Now}
		c.Passwords, c.Local, c.Refresh, o.Refresh = users, users, r, r
	})
	login, _ := checkToken(t, e.do(t, req{auth: []string{basic("alice", alicePassword)}, query: "client_id=docker&offline_token=true"}))
	checkToken(t, e.do(t, req{method: "POST", body: refreshForm(login.RefreshToken, "docker", "repository:alice/app:pull")}))
	next, err := authn.ParseHtpasswd(line("alice-new-password-1"))
	if err != nil {
		t.Fatal(err)
	}
	users.Update(next)
	_, item := checkError(t, e.do(t, req{method: "POST", body: refreshForm(login.RefreshToken, "docker", "repository:alice/app:pull")}), http.StatusUnauthorized)
	if !strings.Contains(item.Message, "password changed") {
		t.Errorf("message %q", item.Message)
	}
}

// fakeSourcehut accepts two Sourcehut tokens: roToken, bob's, read-only
// for the registry, and rwAliceToken, read-write, of a Sourcehut account
// named like the local (htpasswd) alice. As the real authenticator, it
// names its provider and leaves groups and namespace to the Chain.
type fakeSourcehut struct {
	// removed holds the users taken off authn.sourcehut.users since they
	// logged in: Admits refuses them. nil: it admits both.
	removed *sync.Map
}

const (
	roToken      = "sourcehut-ro-token"
	rwAliceToken = "sourcehut-rw-alice-token"
)

func (fakeSourcehut) Authenticate(_ context.Context, svc string, tok identity.Secret) (identity.Identity, error) {
	user, level := "", ""
	switch tok.Reveal() {
	case roToken:
		user, level = "bob", "RO"
	case rwAliceToken:
		user, level = "alice", "RW"
	default:
		return identity.Identity{}, sourcehut.ErrNotToken
	}
	return identity.Identity{Method: identity.MethodSourcehut, Provider: identity.ProviderSourcehut, Subject: user, Sourcehut: &identity.Sourcehut{
		Username: user, Expires: time.Now().Add(time.Hour).Truncate(time.Second).UTC(), Access: level,
		Grants: []identity.Grant{{Service: svc, Scope: "REGISTRY", Access: level}},
	}}, nil
}

func (f fakeSourcehut) Admits(user string) bool {
	if f.removed != nil {
		if _, gone := f.removed.Load(user); gone {
			return false
		}
	}
	return user == "bob" || user == "alice"
}

// TestRefreshSourcehutReadOnly: the refresh token of a read-only Sourcehut
// token is held to pull by the default policy, as the token itself is.
func TestRefreshSourcehutReadOnly(t *testing.T) {
	e := newReal(t, func(_ *server.Options, c *authn.Chain) { c.Tokens = fakeSourcehut{} })
	const scope = "repository:bob/app:pull,push"
	for name, r := range map[string]req{
		"Bearer":             {auth: []string{"Bearer " + roToken}, query: "client_id=docker&offline_token=true&scope=" + scope},
		"Basic, as docker":   {auth: []string{basic("sourcehut", roToken)}, query: "client_id=docker&offline_token=true&scope=" + scope},
		"POST password form": {method: "POST", body: url.Values{"grant_type": {"password"}, "username": {"sourcehut"}, "password": {roToken}, "client_id": {"docker"}, "access_type": {"offline"}, "scope": {scope}}.Encode()},
	} {
		t.Run(name, func(t *testing.T) {
			login, c := checkToken(t, e.do(t, r))
			if !reflect.DeepEqual(c.Access, scopes(t, "repository:bob/app:pull")) {
				t.Fatalf("login: access = %+v", c.Access)
			}
			if *c.Sub != "sourcehut:bob" {
				t.Errorf("login: sub = %q, want sourcehut:bob", *c.Sub)
			}
			checkRefresh(t, e, login.RefreshToken, "sourcehut:bob", "docker")
			resp, c := checkToken(t, e.do(t, req{method: "POST", body: refreshForm(login.RefreshToken, "docker", scope)}))
			if !reflect.DeepEqual(c.Access, scopes(t, "repository:bob/app:pull")) {
				t.Errorf("refresh grant: access = %+v, want pull only", c.Access)
			}
			if *c.Sub != "sourcehut:bob" {
				t.Errorf("refresh grant: sub = %q, want sourcehut:bob", *c.Sub)
			}
			if resp.RefreshToken != login.RefreshToken {
				t.Error("another refresh token back")
			}
			if !strings.Contains(e.logs.String(), "auth_method=refresh/sourcehut provider=sourcehut subject=bob") {
				t.Errorf("the log does not name the refreshed Sourcehut login and its provider:\n%s", e.logs)
			}
			if strings.Contains(e.logs.String(), roToken) {
				t.Error("the Sourcehut token is in the log")
			}
		})
	}
}

// TestSubjectIsThePrincipal: the access token's sub is the principal,
// "<provider>:<subject>", so htpasswd:alice and sourcehut:alice are two
// people at the registry too; "" for anonymous. And sourcehut:alice, whose
// name the local alice holds, owns no alice/*.
func TestSubjectIsThePrincipal(t *testing.T) {
	e := newReal(t, func(_ *server.Options, c *authn.Chain) { c.Tokens = fakeSourcehut{} })
	const scope = "scope=repository:alice/app:pull,push&scope=repository:bob/app:pull,push"
	tests := []struct {
		name    string
		auth    []string
		wantSub string
		want    []string
	}{
		{"htpasswd alice", []string{basic("alice", alicePassword)}, "htpasswd:alice", []string{"repository:alice/app:pull,push"}},
		{"sourcehut bob", []string{"Bearer " + roToken}, "sourcehut:bob", []string{"repository:bob/app:pull"}},
		{"sourcehut alice, named like a local account", []string{"Bearer " + rwAliceToken}, "sourcehut:alice", nil},
		{"sourcehut alice through Basic, as docker sends it", []string{basic("sourcehut", rwAliceToken)}, "sourcehut:alice", nil},
		{"anonymous", nil, "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, c := checkToken(t, e.do(t, req{auth: tt.auth, query: scope}))
			if *c.Sub != tt.wantSub {
				t.Errorf("sub = %q, want %q", *c.Sub, tt.wantSub)
			}
			if !reflect.DeepEqual(c.Access, scopes(t, tt.want...)) {
				t.Errorf("access = %+v, want %q", c.Access, tt.want)
			}
		})
	}
	// The refresh token of sourcehut:alice stays hers: it gets nothing of
	// htpasswd:alice's either.
	login, _ := checkToken(t, e.do(t, req{auth: []string{"Bearer " + rwAliceToken}, query: "client_id=docker&offline_token=true"}))
	checkRefresh(t, e, login.RefreshToken, "sourcehut:alice", "docker")
	_, c := checkToken(t, e.do(t, req{method: "POST", body: refreshForm(login.RefreshToken, "docker", "repository:alice/app:pull,push")}))
	if *c.Sub != "sourcehut:alice" || len(c.Access) != 0 {
		t.Errorf("refresh grant of sourcehut:alice: sub %q, access %+v; want sourcehut:alice and nothing", *c.Sub, c.Access)
	}
}

// TestRefreshSourcehutUserRemoved: a Sourcehut user who may no longer log
// in (taken off authn.sourcehut.users) loses the refresh tokens of earlier
// logins too.
func TestRefreshSourcehutUserRemoved(t *testing.T) {
	removed := &sync.Map{}
	e := newReal(t, func(_ *server.Options, c *authn.Chain) { c.Tokens = fakeSourcehut{removed: removed} })
	login, _ := checkToken(t, e.do(t, req{auth: []string{"Bearer " + roToken}, query: "client_id=docker&offline_token=true"}))
	body := refreshForm(login.RefreshToken, "docker", "repository:bob/app:pull")
	if _, c := checkToken(t, e.do(t, req{method: "POST", body: body})); *c.Sub != "sourcehut:bob" {
		t.Fatalf("sub = %q", *c.Sub)
	}
	removed.Store("bob", true)
	fields, _ := checkError(t, e.do(t, req{method: "POST", body: body}), http.StatusUnauthorized)
	var oauth string
	_ = json.Unmarshal(fields["error"], &oauth)
	if oauth != "invalid_grant" {
		t.Errorf("error = %q, want invalid_grant", oauth)
	}
}

// logLines parses a JSON log and returns its lines with the message msg.
func logLines(t *testing.T, logs, msg string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for line := range strings.SplitSeq(strings.TrimSpace(logs), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if m["msg"] == msg {
			out = append(out, m)
		}
	}
	return out
}

// TestLogProvider: the decision lines (when on) and the request line name
// the identity's provider beside its subject ("" for anonymous).
func TestLogProvider(t *testing.T) {
	for _, tt := range []struct {
		name     string
		id       identity.Identity
		provider string
	}{
		{"htpasswd", identity.Identity{Method: identity.MethodPassword, Provider: identity.ProviderHtpasswd, Subject: "alice", Namespace: "alice"}, "htpasswd"},
		{"sourcehut", identity.Identity{Method: identity.MethodSourcehut, Provider: identity.ProviderSourcehut, Subject: "alice",
			Sourcehut: &identity.Sourcehut{Username: "alice", Access: "RW"}}, "sourcehut"},
		{"refresh of a Sourcehut login", identity.Identity{Method: identity.MethodRefresh, RefreshedFrom: identity.MethodSourcehut,
			Provider: identity.ProviderSourcehut, Subject: "bob", Namespace: "bob", Sourcehut: &identity.Sourcehut{Username: "bob", Access: "RO"}}, "sourcehut"},
		{"anonymous", identity.Anonymous, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakesWith(func(o *server.Options) { o.DecisionLines = func() bool { return true } })
			f.authn.id = tt.id
			rec := serve(f.h, req{query: "scope=repository:alice/app:pull&scope=repository:library/x:pull"})
			if rec.Code != http.StatusOK {
				t.Fatalf("status %d: %s", rec.Code, rec.Body)
			}
			if f.minter.gotSubject != tt.id.Principal() {
				t.Errorf("minted for %q, want %q", f.minter.gotSubject, tt.id.Principal())
			}
			decisions := logLines(t, f.logs.String(), "decision")
			requests := logLines(t, f.logs.String(), "request")
			if len(decisions) != 2 || len(requests) != 1 {
				t.Fatalf("%d decision lines and %d request lines, want 2 and 1:\n%s", len(decisions), len(requests), f.logs)
			}
			for _, line := range append(decisions, requests...) {
				p, ok := line["provider"]
				if !ok || p != tt.provider {
					t.Errorf("%s line: provider = %#v (present %v), want %q: %v", line["msg"], p, ok, tt.provider, line)
				}
				if line["subject"] != tt.id.Subject {
					t.Errorf("%s line: subject = %#v, want %q", line["msg"], line["subject"], tt.id.Subject)
				}
			}
		})
	}
}

// TestHealthProbeLogLevel: passing probes are logged at debug (a balancer
// sends them every second to every replica), failing ones at info.
func TestHealthProbeLogLevel(t *testing.T) {
	var notReady atomic.Bool
	logs := &logBuffer{}
	h := server.New(server.Options{
		Services: []string{service}, Realm: realm, MaxScopes: 4, MaxBodyBytes: maxBody,
		Ready: func() error {
			if notReady.Load() {
				return errors.New("shutting down")
			}
			return nil
		},
		JWKS:   []byte(`{"keys":[]}`),
		Logger: slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Now:    time.Now,
	})
	probe := func(path string) string {
		before := len(logs.String())
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
		var line struct{ Level string }
		if err := json.Unmarshal([]byte(logs.String()[before:]), &line); err != nil {
			t.Fatalf("%s: log %q: %v", path, logs.String()[before:], err)
		}
		return line.Level
	}
	for path, want := range map[string]string{"/healthz": "DEBUG", "/readyz": "DEBUG"} {
		if got := probe(path); got != want {
			t.Errorf("%s passing: logged at %s, want %s", path, got, want)
		}
	}
	notReady.Store(true)
	if got := probe("/readyz"); got != "INFO" {
		t.Errorf("/readyz failing: logged at %s, want INFO", got)
	}
}
