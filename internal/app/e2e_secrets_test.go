package app

import (
	"context"
	"crypto/ecdsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"git.sr.ht/~zozs/srht-registry/internal/fakemeta"
)

// secretForms maps every form a secret could leak in to what it is.
type secretForms map[string]string

// add registers s as written, escaped as a log handler or a JSON encoder
// would write it, query-escaped, base64-encoded and, for a long token, its
// tail (the MAC of a Sourcehut token).
func (f secretForms) add(what, s string) {
	f[s] = what
	f[strings.Trim(strconv.Quote(s), `"`)] = what + " (quoted)"
	j, _ := json.Marshal(s)
	f[strings.Trim(string(j), `"`)] = what + " (JSON)"
	var b strings.Builder
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s)
	f[strings.Trim(strings.TrimSpace(b.String()), `"`)] = what + " (JSON)"
	f[url.QueryEscape(s)] = what + " (query-escaped)"
	f[base64.StdEncoding.EncodeToString([]byte(s))] = what + " (base64)"
	f[base64.RawURLEncoding.EncodeToString([]byte(s))] = what + " (base64url)"
	if len(s) > 48 {
		f[s[len(s)-32:]] = what + " (last 32 characters)"
	}
}

// basic registers user:password's secret forms and returns the header.
func (f secretForms) basic(what, user, password string) string {
	f.add(what, password)
	pair := base64.StdEncoding.EncodeToString([]byte(user + ":" + password))
	f[pair] = what + " (Basic user:password)"
	return "Basic " + pair
}

// find returns the first secret form in s, if any.
func (f secretForms) find(s string) (form, what string, found bool) {
	for form, what := range f {
		if strings.Contains(s, form) {
			return form, what, true
		}
	}
	return "", "", false
}

// secretsSeen is one answer, kept to be searched for secrets.
type secretsSeen struct {
	name   string
	status int
	header http.Header
	body   string
	jwt    string // the decoded header and claims of the tokens in the body
	// returns is a secret this answer rightly carries: the refresh token
	// of a login that asked for one, or of the refresh grant.
	returns string
}

// TestNoSecretsLogged runs every failure path and the success paths with
// distinctive credentials, then searches the debug log and every response
// (bodies, headers, decoded tokens) for any form of them.
func TestNoSecretsLogged(t *testing.T) {
	t.Parallel()
	for _, format := range []string{"text", "json"} {
		t.Run(format, func(t *testing.T) { testNoSecretsLogged(t, format) })
	}
}

func testNoSecretsLogged(t *testing.T, format string) {
	secrets := secretForms{}
	meta := fakemeta.Start(t)
	hour := time.Now().Add(time.Hour)
	mint := func(user, grants string, expires time.Time) string {
		return meta.Mint(fakemeta.TokenOptions{Username: user, Grants: grants, Expires: expires, ClientID: "builds.sr.ht"})
	}
	const rw = "registry.example.com/REGISTRY:RW"

	// Passwords with characters that loggers and JSON escape, so an
	// escaped leak is still found.
	alicePW := `alice-SECRET-pw "quoted" <&> \ 1`
	frankPW := "frank-SECRET-right-pw-7"
	// A password holding a Sourcehut-looking string: not itself a token
	// (':' is not base64), so it is checked as a password.
	// (A short one, a personal token of user "e": bcrypt reads 72 bytes.)
	looksLikeToken := meta.Mint(fakemeta.TokenOptions{Username: "e", Expires: hour})
	erinPW := "pw:" + looksLikeToken
	secrets.add("erin's token-looking password part", looksLikeToken)

	dir := t.TempDir()
	keysDir := filepath.Join(dir, "keys")
	if code := Run(context.Background(), []string{"keys", "--out", keysDir}, nil, io.Discard, io.Discard); code != 0 {
		t.Fatalf("keys exited %d", code)
	}
	secretsAddKey(t, secrets, filepath.Join(keysDir, "key.pem"))
	htpasswd := filepath.Join(dir, "htpasswd")
	aliceLine := htpasswdLine(t, "alice", alicePW)
	// Her hash and its salt: a refresh token is bound to them, and must
	// not carry either (its payload is readable by the client).
	aliceHash := strings.TrimSpace(strings.TrimPrefix(aliceLine, "alice:"))
	secrets.add("alice's bcrypt hash", aliceHash)
	secrets[aliceHash[7:29]] = "the salt of alice's bcrypt hash"
	writeFile(t, htpasswd, aliceLine+htpasswdLine(t, "frank", frankPW)+htpasswdLine(t, "erin", erinPW))
	cfg := filepath.Join(dir, "config.yaml")
	writeFile(t, cfg, fmt.Sprintf(`listen: 127.0.0.1:0
trusted_proxies: [127.0.0.1/32]
brute_force:
  threshold: 3
  window: 1m
token:
  key: %s
log:
  level: debug
  format: %s
authn:
  htpasswd: %s
  sourcehut:
    meta_url: %s
    timeout: 300ms
    users: ["*"]
# htpasswd:alice and sourcehut:alice are different people, and the local
# account holds the name alice/*; the site lets both into it, so that one
# query serves the password and the token requests alike.
policy:
  data:
    namespaces:
      alice: {pull: ["htpasswd:alice", "sourcehut:alice"], push: ["htpasswd:alice", "sourcehut:alice"]}
`, filepath.Join(keysDir, "key.pem"), format, htpasswd, meta.URL()))
	srv, logs := startServer(t, cfg)
	addr := srv.Addr()
	base := "http://" + addr

	client := &http.Client{Timeout: 30 * time.Second}
	var seen []secretsSeen
	ips := 0
	// send makes one request from a fresh address (so failures do not add
	// up to the throttle) unless it names one, and checks its status.
	send := func(name string, want int, req *http.Request) secretsSeen {
		t.Helper()
		if req.Header.Get("X-Forwarded-For") == "" {
			ips++
			req.Header.Set("X-Forwarded-For", fmt.Sprintf("198.51.%d.%d", 100+ips/250, ips%250+1))
		}
		// Every request to /auth carries a secret this test searches for.
		sent := strings.Join(req.Header.Values("Authorization"), "\n") + "\n" + req.URL.RawQuery
		if req.GetBody != nil {
			b, _ := req.GetBody()
			body, _ := io.ReadAll(b)
			sent += "\n" + string(body)
		}
		if _, _, found := secrets.find(sent); !found && req.URL.Path == "/auth" {
			t.Fatalf("test bug: %s sends no registered secret", name)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		r := secretsSeen{name: name, status: resp.StatusCode, header: resp.Header, body: string(body), jwt: secretsDecodeJWT(body)}
		seen = append(seen, r)
		if resp.StatusCode != want {
			t.Errorf("%s: got %d, want %d: %.300s", name, resp.StatusCode, want, body)
		}
		return r
	}
	const query = "service=registry.example.com&scope=repository:alice/app:pull,push"
	get := func(auth ...string) *http.Request {
		req, _ := http.NewRequest(http.MethodGet, base+"/auth?"+query, nil)
		for _, a := range auth {
			req.Header.Add("Authorization", a)
		}
		return req
	}
	post := func(form url.Values) *http.Request {
		req, _ := http.NewRequest(http.MethodPost, base+"/auth", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		return req
	}
	passwordForm := func(user, password string) url.Values {
		return url.Values{"grant_type": {"password"}, "username": {user}, "password": {password},
			"service": {"registry.example.com"}, "scope": {"repository:alice/app:pull"}, "client_id": {"docker"}}
	}

	// Passwords.
	wantGrant := func(r secretsSeen, actions ...string) {
		t.Helper()
		acc, err := abuseTokenAccess([]byte(r.body))
		if err != nil || len(acc) != 1 || acc[0].Name != "alice/app" || !slices.Equal(acc[0].Actions, actions) {
			t.Errorf("%s: token grants %+v (%v), want %v on alice/app", r.name, acc, err, actions)
		}
	}
	wantGrant(send("right password", 200, get(secrets.basic("alice's password", "alice", alicePW))), "pull", "push")
	send("wrong password", 401, get(secrets.basic("a wrong password", "alice", "alice-SECRET-wrong-guess-1")))
	send("password of an unknown user", 401, get(secrets.basic("an unknown user's password", "nobody-here", "nobody-SECRET-pw-2")))
	send("empty user name", 401, get(secrets.basic("a password without a user", "", "empty-user-SECRET-pw-3")))
	send("password with a Sourcehut-looking string", 200, get(secrets.basic("erin's password", "erin", erinPW)))
	send("wrong password with a Sourcehut-looking string", 401, get(secrets.basic("erin's wrong password", "erin", "pw:"+meta.Mint(fakemeta.TokenOptions{Username: "e", Expires: hour.Add(time.Minute)}))))
	foreign := fakemeta.MintWithKey(make([]byte, 32), fakemeta.TokenOptions{Username: "erin", Grants: rw, Expires: hour})
	send("password that decodes as a foreign Sourcehut token", 401, get(secrets.basic("a foreign token as password", "erin", foreign)))
	send("account is not the Basic user", 400, func() *http.Request {
		r := get(secrets.basic("alice's password", "alice", alicePW))
		r.URL.RawQuery += "&account=bob"
		return r
	}())

	// Sourcehut tokens, each for its own user so their failures do not
	// lock each other out.
	valid := mint("alice", rw, hour)
	secrets.add("a valid Sourcehut token", valid)
	wantGrant(send("valid Sourcehut token as Basic password", 200, get(secrets.basic("a valid Sourcehut token", "sourcehut", valid))), "pull", "push")
	wantGrant(send("valid Sourcehut token as Bearer", 200, get("Bearer "+valid)), "pull", "push")
	expired := mint("srhtexpired", rw, time.Now().Add(-time.Minute))
	send("expired Sourcehut token", 401, get(secrets.basic("an expired Sourcehut token", "sourcehut", expired)))
	badMAC := fakemeta.MintWithKey([]byte("not-the-meta-key-not-the-meta-key"), fakemeta.TokenOptions{Username: "srhtbadmac", Grants: rw, Expires: hour})
	send("Sourcehut token with a wrong MAC", 401, get(secrets.basic("a token with a wrong MAC", "sourcehut", badMAC)))
	send("Bearer token with a wrong MAC", 401, get("Bearer "+badMAC))
	noGrant := mint("srhtnogrant", "meta.sr.ht/PROFILE:RO", hour)
	send("Sourcehut token lacking the grant", 401, get(secrets.basic("a token lacking the grant", "sourcehut", noGrant)))
	faults := []struct {
		name      string
		set, undo func()
	}{
		{"meta.sr.ht down", func() { meta.SetDown(true) }, func() { meta.SetDown(false) }},
		{"meta.sr.ht answering 500", func() { meta.SetStatus(500) }, func() { meta.SetStatus(0) }},
		{"meta.sr.ht answering garbage", func() { meta.SetGarbage(true) }, func() { meta.SetGarbage(false) }},
		{"meta.sr.ht slow", func() { meta.SetDelay(2 * time.Second) }, func() { meta.SetDelay(0) }},
	}
	for i, f := range faults {
		tok := mint(fmt.Sprintf("srhtfault%d", i), rw, hour.Add(time.Duration(i+10)*time.Minute))
		secrets.add("a token sent while "+f.name, tok)
		f.set()
		send("Sourcehut token while "+f.name, 503, get(secrets.basic("a token sent while "+f.name, "sourcehut", tok)))
		send("Bearer token while "+f.name, 503, get("Bearer "+tok))
		f.undo()
	}
	send("Bearer that is not a token", 401, get("Bearer "+secretsValue(secrets, "a Bearer that is no token", "bearer-SECRET-not-a-token-4")))
	send("Bearer with spaces", 401, get("Bearer "+secretsValue(secrets, "a Bearer with spaces", "bearer SECRET with spaces 5")))

	// Malformed Authorization headers with a secret inside.
	send("Basic that is not base64", 400, get("Basic "+secretsValue(secrets, "a non-base64 Basic", "basic-SECRET-not-base64-6!!")))
	send("Basic without a colon", 400, get("Basic "+base64.StdEncoding.EncodeToString([]byte(secretsValue(secrets, "a Basic without colon", "basic-SECRET-no-colon-7")))))
	send("Basic with trailing junk", 400, get(secrets.basic("alice's password", "alice", alicePW)+" trailing"))
	send("unknown scheme", 400, get("Token "+secretsValue(secrets, "a token of an unknown scheme", "token-SECRET-scheme-8")))
	send("two Authorization headers", 400, get(secrets.basic("alice's password", "alice", alicePW), "Bearer "+valid))

	// The OAuth2 form.
	wantGrant(send("POST password grant, right password", 200, post(passwordForm("alice", secretsValue(secrets, "alice's password", alicePW)))), "pull")
	send("POST password grant, wrong password", 401, post(passwordForm("alice", secretsValue(secrets, "a wrong POST password", "post-SECRET-wrong-9"))))
	wantGrant(send("POST password grant, Sourcehut token", 200, post(passwordForm("sourcehut", valid))), "pull")
	refreshForm := func(rt string) url.Values {
		return url.Values{"grant_type": {"refresh_token"}, "service": {"registry.example.com"}, "refresh_token": {rt},
			"client_id": {"docker"}, "scope": {"repository:alice/app:pull"}}
	}
	send("POST refresh_token grant, not a refresh token", 401, post(refreshForm(secretsValue(secrets, "a made-up refresh token", "refresh-SECRET-token-10"))))

	// Refresh tokens. They are in the answers that hand them out (marked
	// as returned there), and must be nowhere else: not in the log, not in
	// an error.
	refreshOf := func(r secretsSeen) string {
		t.Helper()
		var body struct {
			RefreshToken string `json:"refresh_token"`
		}
		if err := json.Unmarshal([]byte(r.body), &body); err != nil || body.RefreshToken == "" {
			t.Fatalf("%s: no refresh_token: %.300s", r.name, r.body)
		}
		return body.RefreshToken
	}
	offline := func(r *http.Request) *http.Request {
		r.URL.RawQuery += "&offline_token=true&client_id=docker"
		return r
	}
	aliceRefresh := refreshOf(send("offline login with a password", 200, offline(get(secrets.basic("alice's password", "alice", alicePW)))))
	secrets.add("alice's refresh token", aliceRefresh)
	seen[len(seen)-1].returns = aliceRefresh
	srhtRefresh := refreshOf(send("offline login with a Sourcehut token", 200, offline(get("Bearer "+valid))))
	secrets.add("a Sourcehut login's refresh token", srhtRefresh)
	seen[len(seen)-1].returns = srhtRefresh
	for what, rt := range map[string]string{"password": aliceRefresh, "Sourcehut": srhtRefresh} {
		r := send("refresh grant of a "+what+" login", 200, post(refreshForm(rt)))
		wantGrant(r, "pull")
		if refreshOf(r) != rt {
			t.Errorf("the refresh grant of a %s login returned another refresh token", what)
		}
		seen[len(seen)-1].returns = rt
	}
	// Another client_id is accepted (docker's stored token is used by every
	// tool that reads its config); the answer returns the same token.
	send("refresh grant for another client", 200, func() *http.Request {
		f := refreshForm(aliceRefresh)
		f.Set("client_id", "skopeo")
		return post(f)
	}())
	seen[len(seen)-1].returns = aliceRefresh
	send("refresh grant with a tampered refresh token", 401, post(refreshForm(secretsValue(secrets, "a tampered refresh token", aliceRefresh[:len(aliceRefresh)-6]+"AAAAAA"))))
	send("refresh grant with the refresh token as a Bearer", 401, get("Bearer "+aliceRefresh))
	send("refresh token as a Basic password", 401, get(secrets.basic("alice's refresh token as password", "alice", aliceRefresh)))
	big := passwordForm("alice", secretsValue(secrets, "a password in an oversized body", "oversized-SECRET-pw-11"))
	big.Set("padding", strings.Repeat("x", 20000))
	send("POST body over the limit", 413, post(big))
	send("POST with the password in a malformed body", 400, func() *http.Request {
		r, _ := http.NewRequest(http.MethodPost, base+"/auth", strings.NewReader("grant_type=password&username=alice&password="+secretsValue(secrets, "a password in a bad form", "bad-form-SECRET-12")+"&%zz"))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		return r
	}())
	send("token in the query string", 200, func() *http.Request {
		r := get()
		r.URL.RawQuery += "&access_token=" + url.QueryEscape(secretsValue(secrets, "a token in the query", "query-SECRET-token-13"))
		return r
	}())

	// Throttled: frank's address and name pass the threshold; then even
	// his right password gets 429 without being checked.
	for i := range 3 {
		r := get(secrets.basic("a guess at frank's password", "frank", fmt.Sprintf("frank-SECRET-guess-%d", i)))
		r.Header.Set("X-Forwarded-For", "203.0.113.77")
		send(fmt.Sprintf("frank's guess %d", i+1), 401, r)
	}
	r := get(secrets.basic("a guess at frank's password", "frank", "frank-SECRET-guess-3"))
	r.Header.Set("X-Forwarded-For", "203.0.113.77")
	send("frank's throttled guess", 429, r)
	r = get(secrets.basic("frank's password", "frank", frankPW))
	r.Header.Set("X-Forwarded-For", "203.0.113.77")
	throttled := send("frank's right password, throttled", 429, r)
	if throttled.header.Get("Retry-After") == "" {
		t.Error("429 without Retry-After")
	}

	// The public endpoints.
	jwks := send("JWKS", 200, func() *http.Request {
		r, _ := http.NewRequest(http.MethodGet, base+"/.well-known/jwks.json", nil)
		return r
	}())
	send("healthz", 200, func() *http.Request { r, _ := http.NewRequest(http.MethodGet, base+"/healthz", nil); return r }())
	send("readyz", 200, func() *http.Request { r, _ := http.NewRequest(http.MethodGet, base+"/readyz", nil); return r }())
	var set struct {
		Keys []map[string]any `json:"keys"`
	}
	if err := json.Unmarshal([]byte(jwks.body), &set); err != nil || len(set.Keys) == 0 {
		t.Fatalf("JWKS: %v: %s", err, jwks.body)
	}
	for _, k := range set.Keys {
		for _, private := range []string{"d", "p", "q", "dp", "dq", "qi"} {
			if _, ok := k[private]; ok {
				t.Errorf("the JWKS publishes the private member %q", private)
			}
		}
	}

	// Now search everything.
	log := logs.String()
	if form, what, found := secrets.find(log); found {
		i := strings.Index(log, form)
		t.Errorf("%s appears in the log as %q:\n%s", what, form, log[max(0, i-200):min(len(log), i+len(form)+200)])
	}
	for _, r := range seen {
		body := r.body
		if r.returns != "" {
			body = strings.ReplaceAll(body, r.returns, "")
		}
		if form, what, found := secrets.find(body); found {
			t.Errorf("%s: %s appears in the response body as %q", r.name, what, form)
		}
		if form, what, found := secrets.find(r.jwt); found {
			t.Errorf("%s: %s appears in the issued token as %q", r.name, what, form)
		}
		for k, vs := range r.header {
			if strings.EqualFold(k, "Authorization") {
				t.Errorf("%s: the response has an Authorization header", r.name)
			}
			for _, v := range vs {
				if form, what, found := secrets.find(k + ": " + v); found {
					t.Errorf("%s: %s appears in the response header %s as %q", r.name, what, k, form)
				}
			}
		}
	}

	// The log is not simply off: every request has its line, found by the
	// request ID the client was given, and the failures say why.
	requestMsg := map[string]string{"text": "msg=request ", "json": `"msg":"request"`}[format]
	if n := strings.Count(log, requestMsg); n < len(seen) {
		t.Errorf("%d request lines in the log for %d requests", n, len(seen))
	}
	for _, r := range seen {
		id := r.header.Get("X-Request-Id")
		if id == "" || !strings.Contains(log, id) {
			t.Errorf("%s: request ID %q not in the log", r.name, id)
		}
	}
	for _, want := range []string{"could not be reached", "authentication failed", "too many failed logins", "decision"} {
		if !strings.Contains(log, want) {
			t.Errorf("the log never says %q", want)
		}
	}
	t.Logf("%d requests, %d secret forms searched for, %d bytes of %s log", len(seen), len(secrets), len(log), format)
}

// secretValue registers s and returns it.
func secretsValue(f secretForms, what, s string) string {
	f.add(what, s)
	return s
}

// decodeJWT returns the decoded headers and claims of the access token and
// the refresh token in a token response body, or "".
func secretsDecodeJWT(body []byte) string {
	var ok struct {
		Token        string `json:"token"`
		RefreshToken string `json:"refresh_token"`
	}
	if json.Unmarshal(body, &ok) != nil || ok.Token == "" {
		return ""
	}
	var out strings.Builder
	for _, tok := range []string{ok.Token, ok.RefreshToken} {
		for _, part := range strings.Split(tok, ".") {
			if b, err := base64.RawURLEncoding.DecodeString(part); err == nil {
				out.Write(b)
				out.WriteByte('\n')
			}
		}
	}
	return out.String()
}

// addKeySecrets registers the signing key's PEM lines and private scalar.
func secretsAddKey(t *testing.T, f secretForms, path string) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(data)
	if block == nil {
		t.Fatalf("%s: no PEM block", path)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if len(line) >= 40 && !strings.HasPrefix(line, "-----") {
			f[line] = "a line of the private key PEM"
		}
	}
	var key any
	if key, err = x509.ParsePKCS8PrivateKey(block.Bytes); err != nil {
		if key, err = x509.ParseECPrivateKey(block.Bytes); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
	}
	ec, ok := key.(*ecdsa.PrivateKey)
	if !ok {
		t.Fatalf("%s: %T, want an EC key", path, key)
	}
	ecdh, err := ec.ECDH()
	if err != nil {
		t.Fatal(err)
	}
	d := ecdh.Bytes()
	f[base64.RawURLEncoding.EncodeToString(d)] = "the private scalar (base64url)"
	f[base64.StdEncoding.EncodeToString(d)] = "the private scalar (base64)"
	f[hex.EncodeToString(d)] = "the private scalar (hex)"
}
