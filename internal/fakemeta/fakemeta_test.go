package fakemeta_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"git.sr.ht/~zozs/srht-registry/internal/fakemeta"
)

const versionQuery = `{ version { major minor patch } }`

const (
	bodyInvalid   = `{"errors":[{"message":"Authentication error: Invalid or expired OAuth 2.0 bearer token"}]}`
	bodyNoHeader  = `{"errors":[{"message":"Authentication error: Authorization header is required. Expected 'Authorization: Bearer [token]'"}]}`
	bodyBadHeader = `{"errors":[{"message":"Authentication error: Invalid Authorization header"}]}`
	bodyBadBearer = `{"errors":[{"message":"Authentication error: Invalid OAuth bearer token"}]}`
	bodyVersion   = `{"data":{"version":{"major":0,"minor":79,"patch":0}}}`
	bodyNoProfile = `{"errors":[{"message":"Access denied for invalid auth method","path":["me"]}],"data":null}`
)

type answer struct {
	status int
	header http.Header
	body   string
}

type request struct {
	method      string // default POST
	auth        *string
	contentType *string // default application/json
	body        *string // default {"query": <query>}
	query       string
}

func ptr[T any](v T) *T { return &v }

func bearer(tok string) *string { return ptr("Bearer " + tok) }

func do(t *testing.T, client *http.Client, base string, rq request) (answer, error) {
	t.Helper()
	method := rq.method
	if method == "" {
		method = http.MethodPost
	}
	var body string
	if rq.body != nil {
		body = *rq.body
	} else {
		b, err := json.Marshal(map[string]string{"query": rq.query})
		if err != nil {
			t.Fatal(err)
		}
		body = string(b)
	}
	req, err := http.NewRequest(method, base+"/query", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if rq.auth != nil {
		req.Header.Set("Authorization", *rq.auth)
	}
	ct := "application/json"
	if rq.contentType != nil {
		ct = *rq.contentType
	}
	if ct != "" {
		req.Header.Set("Content-Type", ct)
	}
	resp, err := client.Do(req)
	if err != nil {
		return answer{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return answer{}, err
	}
	return answer{resp.StatusCode, resp.Header, string(b)}, nil
}

func mustDo(t *testing.T, s *fakemeta.Server, rq request) answer {
	t.Helper()
	a, err := do(t, &http.Client{Timeout: 10 * time.Second}, s.URL(), rq)
	if err != nil {
		t.Fatalf("request: %v", err)
	}
	return a
}

// tamper flips one bit of decoded byte i of tok (negative i counts from
// the end) and re-encodes it.
func tamper(t *testing.T, tok string, i int) string {
	t.Helper()
	raw, err := base64.RawStdEncoding.DecodeString(tok)
	if err != nil {
		t.Fatal(err)
	}
	if i < 0 {
		i += len(raw)
	}
	raw[i] ^= 0x01
	return base64.RawStdEncoding.EncodeToString(raw)
}

func TestQuery(t *testing.T) {
	s := fakemeta.Start(t)
	hour := time.Now().Add(time.Hour)
	registryOnly := "registry.example.com/REGISTRY:RW"
	valid := s.Mint(fakemeta.TokenOptions{Username: "alice", Grants: registryOnly, Expires: hour})
	otherKey := fakemeta.New(bytes.Repeat([]byte{7}, 32)).BearerKey()

	// A payload ≤ 32 bytes after decoding: exactly a MAC's worth.
	short := base64.RawStdEncoding.EncodeToString(bytes.Repeat([]byte{0xAB}, 32))
	// One byte more than a MAC: long enough, but the MAC cannot match.
	justLong := base64.RawStdEncoding.EncodeToString(bytes.Repeat([]byte{0xAB}, 33))

	tests := []struct {
		name       string
		rq         request
		wantStatus int
		wantBody   string // exact, if set
		wantIn     string // substring, if set
	}{
		{name: "valid version", rq: request{auth: bearer(valid), query: versionQuery}, wantStatus: 200, wantBody: bodyVersion},
		{name: "query keyword", rq: request{auth: bearer(valid), query: "query {\n\tversion {\n\t\tmajor\n\t\tminor\n\t\tpatch\n\t}\n}"}, wantStatus: 200, wantBody: bodyVersion},
		{name: "named query with commas", rq: request{auth: bearer(valid), query: "query Check { version { major, minor, patch } }"}, wantStatus: 200, wantBody: bodyVersion},
		{name: "only major", rq: request{auth: bearer(valid), query: "{version{major}}"}, wantStatus: 200, wantBody: `{"data":{"version":{"major":0}}}`},
		{name: "alias and typename", rq: request{auth: bearer(valid), query: "# check\n{ v: version { patch __typename } }"}, wantStatus: 200, wantBody: `{"data":{"v":{"patch":0,"__typename":"Version"}}}`},
		{name: "personal token", rq: request{auth: bearer(s.Mint(fakemeta.TokenOptions{Username: "bob", Expires: hour})), query: versionQuery}, wantStatus: 200, wantBody: bodyVersion},

		{name: "payload byte flipped", rq: request{auth: bearer(tamper(t, valid, 3)), query: versionQuery}, wantStatus: 403, wantBody: bodyInvalid},
		{name: "mac byte flipped", rq: request{auth: bearer(tamper(t, valid, -1)), query: versionQuery}, wantStatus: 403, wantBody: bodyInvalid},
		{name: "other instance key", rq: request{auth: bearer(fakemeta.MintWithKey(otherKey, fakemeta.TokenOptions{Username: "alice", Expires: hour})), query: versionQuery}, wantStatus: 403, wantBody: bodyInvalid},
		{name: "expired", rq: request{auth: bearer(s.Mint(fakemeta.TokenOptions{Username: "alice", Expires: time.Now().Add(-time.Second)})), query: versionQuery}, wantStatus: 403, wantBody: bodyInvalid},
		{name: "version 1", rq: request{auth: bearer(s.Mint(fakemeta.TokenOptions{Username: "alice", Expires: hour, Version: 1})), query: versionQuery}, wantStatus: 403, wantBody: bodyInvalid},
		{name: "not base64 (underscore)", rq: request{auth: bearer(strings.Repeat("_", 44)), query: versionQuery}, wantStatus: 403, wantBody: bodyInvalid},
		{name: "not base64 (length)", rq: request{auth: bearer(valid[:len(valid)-len(valid)%4] + "A"), query: versionQuery}, wantStatus: 403, wantBody: bodyInvalid},
		{name: "not base64 (padded)", rq: request{auth: bearer(base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{1}, 40)))}, wantStatus: 400, wantBody: bodyBadBearer},
		{name: "32 bytes", rq: request{auth: bearer(short), query: versionQuery}, wantStatus: 403, wantBody: bodyInvalid},
		{name: "33 bytes", rq: request{auth: bearer(justLong), query: versionQuery}, wantStatus: 403, wantBody: bodyInvalid},
		{name: "legacy hex token", rq: request{auth: bearer(strings.Repeat("ab", 16)), query: versionQuery}, wantStatus: 403, wantBody: `{"errors":[{"message":"Authentication error: Invalid or expired OAuth token"}]}`},
		{name: "characters outside the alphabet", rq: request{auth: bearer("not a token!" + strings.Repeat("x", 40)), query: versionQuery}, wantStatus: 400, wantBody: bodyBadBearer},
		{name: "too short for the token syntax", rq: request{auth: bearer("abc"), query: versionQuery}, wantStatus: 400, wantBody: bodyBadBearer},

		{name: "missing header", rq: request{query: versionQuery}, wantStatus: 401, wantBody: bodyNoHeader},
		{name: "lowercase scheme", rq: request{auth: ptr("bearer " + valid), query: versionQuery}, wantStatus: 400, wantBody: bodyBadHeader},
		{name: "basic scheme", rq: request{auth: ptr("Basic dXNlcjpwYXNz"), query: versionQuery}, wantStatus: 400, wantBody: bodyBadHeader},
		{name: "scheme only", rq: request{auth: ptr("Bearer"), query: versionQuery}, wantStatus: 400, wantBody: bodyBadHeader},

		{name: "me with PROFILE:RO", rq: request{auth: bearer(s.Mint(fakemeta.TokenOptions{Username: "alice", Grants: registryOnly + " meta.sr.ht/PROFILE:RO", Expires: hour})), query: "{ me { canonicalName username } }"}, wantStatus: 200, wantBody: `{"data":{"me":{"canonicalName":"~alice","username":"alice"}}}`},
		{name: "me with PROFILE (RO implied)", rq: request{auth: bearer(s.Mint(fakemeta.TokenOptions{Username: "alice", Grants: "meta.sr.ht/PROFILE", Expires: hour})), query: "{ me { username } }"}, wantStatus: 200, wantBody: `{"data":{"me":{"username":"alice"}}}`},
		{name: "me with all grants", rq: request{auth: bearer(s.Mint(fakemeta.TokenOptions{Username: "bob", Expires: hour})), query: "{ me { canonicalName username } }"}, wantStatus: 200, wantBody: `{"data":{"me":{"canonicalName":"~bob","username":"bob"}}}`},
		{name: "me without PROFILE", rq: request{auth: bearer(valid), query: "{ me { canonicalName username } }"}, wantStatus: 200, wantBody: bodyNoProfile},
		{name: "me with PROFILE of another service", rq: request{auth: bearer(s.Mint(fakemeta.TokenOptions{Username: "alice", Grants: "git.sr.ht/PROFILE:RO", Expires: hour})), query: "{ me { username } }"}, wantStatus: 200, wantBody: bodyNoProfile},
		{name: "me and version without PROFILE", rq: request{auth: bearer(valid), query: "{ version { major } me { username } }"}, wantStatus: 200, wantBody: bodyNoProfile},

		{name: "unknown field", rq: request{auth: bearer(valid), query: "{ nope }"}, wantStatus: 422, wantBody: `{"errors":[{"message":"Cannot query field \"nope\" on type \"Query\".","locations":[{"line":1,"column":3}],"extensions":{"code":"GRAPHQL_VALIDATION_FAILED"}}],"data":null}`},
		{name: "unknown subfield", rq: request{auth: bearer(valid), query: "{ version { major build } }"}, wantStatus: 422, wantIn: `Cannot query field \"build\" on type \"Version\".`},
		{name: "no subselection", rq: request{auth: bearer(valid), query: "{ version }"}, wantStatus: 422, wantIn: `must have a selection of subfields`},
		{name: "parse error", rq: request{auth: bearer(valid), query: "{ version { major }"}, wantStatus: 422, wantIn: `"GRAPHQL_PARSE_FAILED"`},
		{name: "empty query", rq: request{auth: bearer(valid), query: ""}, wantStatus: 422, wantIn: `operation  not found`},
		{name: "fragment", rq: request{auth: bearer(valid), query: "{ ...F }"}, wantStatus: 422, wantIn: `fakemeta: a fragment is not supported`},

		{name: "GET", rq: request{method: http.MethodGet, auth: bearer(valid), body: ptr("")}, wantStatus: 405},
		{name: "GET without auth is an auth error first", rq: request{method: http.MethodGet, body: ptr("")}, wantStatus: 401, wantBody: bodyNoHeader},
		{name: "text/plain", rq: request{auth: bearer(valid), contentType: ptr("text/plain"), query: versionQuery}, wantStatus: 400, wantIn: "transport not supported"},
		{name: "no content type", rq: request{auth: bearer(valid), contentType: ptr(""), query: versionQuery}, wantStatus: 400, wantIn: "transport not supported"},
		{name: "json with charset", rq: request{auth: bearer(valid), contentType: ptr("application/json; charset=utf-8"), query: versionQuery}, wantStatus: 200, wantBody: bodyVersion},
		{name: "bad JSON", rq: request{auth: bearer(valid), body: ptr("notjson")}, wantStatus: 400, wantIn: "json request body could not be decoded"},
		{name: "query not a string", rq: request{auth: bearer(valid), body: ptr(`{"query": 5}`)}, wantStatus: 400, wantIn: "json request body could not be decoded"},
		{name: "body over 1 MiB", rq: request{auth: bearer(valid), body: ptr(`{"query":"` + strings.Repeat(" ", 1<<20) + versionQuery + `"}`)}, wantStatus: 400, wantIn: "request body too large"},
		{name: "variables allowed", rq: request{auth: bearer(valid), body: ptr(`{"query":"query V($x: Int = 1) { version { major } }","variables":{"x":2}}`)}, wantStatus: 200, wantBody: `{"data":{"version":{"major":0}}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := mustDo(t, s, tt.rq)
			if a.status != tt.wantStatus {
				t.Fatalf("status = %d, want %d; body %s", a.status, tt.wantStatus, a.body)
			}
			if tt.wantBody != "" && a.body != tt.wantBody {
				t.Errorf("body = %s\nwant   %s", a.body, tt.wantBody)
			}
			if tt.wantIn != "" && !strings.Contains(a.body, tt.wantIn) {
				t.Errorf("body = %s, want it to contain %s", a.body, tt.wantIn)
			}
			if a.status != http.StatusInternalServerError {
				if ct := a.header.Get("Content-Type"); ct != "application/json" {
					t.Errorf("Content-Type = %q", ct)
				}
				if !json.Valid([]byte(a.body)) {
					t.Errorf("body is not JSON: %s", a.body)
				}
			}
		})
	}
}

func TestRevoke(t *testing.T) {
	s := fakemeta.Start(t)
	tok := s.Mint(fakemeta.TokenOptions{Username: "alice", Grants: "registry.example.com/REGISTRY:RO"})
	other := s.Mint(fakemeta.TokenOptions{Username: "alice", Grants: "registry.example.com/REGISTRY:RW"})
	if a := mustDo(t, s, request{auth: bearer(tok), query: versionQuery}); a.status != 200 {
		t.Fatalf("before revocation: %d %s", a.status, a.body)
	}
	s.Revoke(tok)
	if a := mustDo(t, s, request{auth: bearer(tok), query: versionQuery}); a.status != 403 || a.body != bodyInvalid {
		t.Fatalf("after revocation: %d %s", a.status, a.body)
	}
	if a := mustDo(t, s, request{auth: bearer(other), query: versionQuery}); a.status != 200 {
		t.Fatalf("another token of the same user: %d %s", a.status, a.body)
	}
}

func TestExpiryBoundary(t *testing.T) {
	s := fakemeta.Start(t)
	exp := time.Unix(1_800_000_000, 0)
	tok := s.Mint(fakemeta.TokenOptions{Username: "alice", Expires: exp})
	tests := []struct {
		now  time.Time
		want int
	}{
		{exp.Add(-time.Hour), 200},
		{exp, 200}, // core-go: rejected only when now is after expires
		{exp.Add(time.Nanosecond), 403},
		{exp.Add(time.Second), 403},
	}
	for _, tt := range tests {
		s.SetClock(func() time.Time { return tt.now })
		if a := mustDo(t, s, request{auth: bearer(tok), query: versionQuery}); a.status != tt.want {
			t.Errorf("now = expires%+v: status %d, want %d", tt.now.Sub(exp), a.status, tt.want)
		}
	}
	s.SetClock(nil)
	if a := mustDo(t, s, request{auth: bearer(tok), query: versionQuery}); a.status != 200 {
		t.Errorf("real clock: status %d", a.status)
	}
}

func TestMintDefaultExpiryUsesServerClock(t *testing.T) {
	s := fakemeta.Start(t)
	past := time.Unix(1_000_000_000, 0)
	s.SetClock(func() time.Time { return past })
	tok := s.Mint(fakemeta.TokenOptions{Username: "alice"})
	if got := decode(t, tok).expires; got != past.Add(time.Hour).Unix() {
		t.Errorf("expires = %d, want %d", got, past.Add(time.Hour).Unix())
	}
	if got := decode(t, fakemeta.MintWithKey(s.BearerKey(), fakemeta.TokenOptions{})).expires; time.Until(time.Unix(got, 0)) < 59*time.Minute {
		t.Errorf("MintWithKey default expires = %d, want about an hour from now", got)
	}
}

func TestMalformedGrantsAre500(t *testing.T) {
	s := fakemeta.Start(t)
	tok := s.Mint(fakemeta.TokenOptions{Username: "alice", Grants: "REGISTRY:RW"})
	if a := mustDo(t, s, request{auth: bearer(tok), query: versionQuery}); a.status != 500 {
		t.Errorf("status %d, want 500", a.status)
	}
}

func TestSetDown(t *testing.T) {
	s := fakemeta.Start(t)
	tok := s.Mint(fakemeta.TokenOptions{Username: "alice"})
	s.SetDown(true)
	_, err := do(t, &http.Client{Timeout: 5 * time.Second}, s.URL(), request{auth: bearer(tok), query: versionQuery})
	if err == nil {
		t.Fatal("no error while down")
	}
	if errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got a timeout, want a connection error: %v", err)
	}
	if s.Calls() != 1 {
		t.Errorf("Calls = %d, want 1", s.Calls())
	}
	s.SetDown(false)
	if a := mustDo(t, s, request{auth: bearer(tok), query: versionQuery}); a.status != 200 {
		t.Errorf("back up: %d %s", a.status, a.body)
	}
}

func TestSetDelay(t *testing.T) {
	s := fakemeta.Start(t)
	tok := s.Mint(fakemeta.TokenOptions{Username: "alice"})
	s.SetDelay(5 * time.Second)
	start := time.Now()
	_, err := do(t, &http.Client{Timeout: 100 * time.Millisecond}, s.URL(), request{auth: bearer(tok), query: versionQuery})
	if err == nil {
		t.Fatal("no error with a delay longer than the client's timeout")
	}
	var te interface{ Timeout() bool }
	if !errors.As(err, &te) || !te.Timeout() {
		t.Errorf("err = %v, want a timeout", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("took %v", d)
	}

	s.SetDelay(50 * time.Millisecond)
	start = time.Now()
	if a := mustDo(t, s, request{auth: bearer(tok), query: versionQuery}); a.status != 200 {
		t.Errorf("short delay: %d", a.status)
	}
	if d := time.Since(start); d < 50*time.Millisecond {
		t.Errorf("answered after %v, before the delay", d)
	}
	// The server's Cleanup (Close) must not hang on the abandoned request.
}

func TestSetStatus(t *testing.T) {
	s := fakemeta.Start(t)
	tok := s.Mint(fakemeta.TokenOptions{Username: "alice"})
	for _, code := range []int{500, 502, 503} {
		s.SetStatus(code)
		a := mustDo(t, s, request{auth: bearer(tok), query: versionQuery})
		if a.status != code {
			t.Errorf("status %d, want %d", a.status, code)
		}
		if json.Valid([]byte(a.body)) || !strings.Contains(a.body, fmt.Sprint(code)) {
			t.Errorf("body %q, want HTML naming %d", a.body, code)
		}
		if ct := a.header.Get("Content-Type"); !strings.HasPrefix(ct, "text/html") {
			t.Errorf("Content-Type %q", ct)
		}
	}
	// Faults come before authentication: even no token gets the status.
	if a := mustDo(t, s, request{query: versionQuery}); a.status != 503 {
		t.Errorf("without a token: %d", a.status)
	}
	s.SetStatus(0)
	if a := mustDo(t, s, request{auth: bearer(tok), query: versionQuery}); a.status != 200 {
		t.Errorf("status off: %d", a.status)
	}
}

func TestSetGarbage(t *testing.T) {
	s := fakemeta.Start(t)
	tok := s.Mint(fakemeta.TokenOptions{Username: "alice"})
	s.SetGarbage(true)
	a := mustDo(t, s, request{auth: bearer(tok), query: versionQuery})
	if a.status != 200 {
		t.Errorf("status %d", a.status)
	}
	var v any
	if err := json.Unmarshal([]byte(a.body), &v); err == nil {
		t.Errorf("body is JSON: %s", a.body)
	}
	s.SetGarbage(false)
	if a := mustDo(t, s, request{auth: bearer(tok), query: versionQuery}); a.body != bodyVersion {
		t.Errorf("garbage off: %s", a.body)
	}
}

func TestCallsAndLastQuery(t *testing.T) {
	s := fakemeta.Start(t)
	tok := s.Mint(fakemeta.TokenOptions{Username: "alice"})
	if s.Calls() != 0 || s.LastQuery() != "" {
		t.Fatalf("fresh server: Calls %d, LastQuery %q", s.Calls(), s.LastQuery())
	}
	mustDo(t, s, request{auth: bearer(tok), query: versionQuery})
	mustDo(t, s, request{auth: bearer("garbage!"), query: "{ me { username } }"})
	mustDo(t, s, request{query: versionQuery})
	s.SetStatus(502)
	mustDo(t, s, request{auth: bearer(tok), query: "{ version { minor } }"})
	if got := s.Calls(); got != 4 {
		t.Errorf("Calls = %d, want 4", got)
	}
	if got := s.LastQuery(); got != "{ version { minor } }" {
		t.Errorf("LastQuery = %q", got)
	}
	// Other paths are not /query calls.
	resp, err := http.Get(s.URL() + "/other")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 404 || s.Calls() != 4 {
		t.Errorf("/other: %d, Calls %d", resp.StatusCode, s.Calls())
	}
	s.ResetCalls()
	if s.Calls() != 0 {
		t.Errorf("after ResetCalls: %d", s.Calls())
	}
	s.SetStatus(0)
	mustDo(t, s, request{auth: bearer(tok), body: ptr("notjson")})
	if s.Calls() != 1 || s.LastQuery() != "" {
		t.Errorf("Calls %d, LastQuery %q", s.Calls(), s.LastQuery())
	}
}

func TestConcurrent(t *testing.T) {
	s := fakemeta.Start(t)
	var wg sync.WaitGroup
	for i := range 32 {
		wg.Go(func() {
			tok := s.Mint(fakemeta.TokenOptions{Username: fmt.Sprint("u", i)})
			if i%4 == 0 {
				s.Revoke(tok)
			}
			s.SetDelay(time.Duration(i%3) * time.Millisecond)
			a, err := do(t, &http.Client{Timeout: 10 * time.Second}, s.URL(), request{auth: bearer(tok), query: versionQuery})
			if err != nil {
				t.Error(err)
				return
			}
			want := 200
			if i%4 == 0 {
				want = 403
			}
			if a.status != want {
				t.Errorf("%d: status %d, want %d", i, a.status, want)
			}
			_ = s.LastQuery()
		})
	}
	wg.Wait()
	if s.Calls() != 32 {
		t.Errorf("Calls = %d", s.Calls())
	}
}

func TestHandlerWithoutServer(t *testing.T) {
	s := fakemeta.New(bytes.Repeat([]byte{1}, 32))
	if s.URL() != "" {
		t.Errorf("URL = %q", s.URL())
	}
	tok := s.Mint(fakemeta.TokenOptions{Username: "alice"})
	req := httptest.NewRequest(http.MethodPost, "/query", strings.NewReader(`{"query":"{ version { major minor patch } }"}`))
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, req)
	if rec.Code != 200 || rec.Body.String() != bodyVersion {
		t.Errorf("%d %s", rec.Code, rec.Body)
	}
}

func TestNewPanicsOnBadSeed(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("no panic")
		}
	}()
	fakemeta.New(make([]byte, 31))
}

// decoded is a token taken apart by hand, independently of the package.
type decoded struct {
	version                    uint64
	expires                    int64
	grants, clientID, username string
	payload, mac               []byte
}

func decode(t *testing.T, tok string) decoded {
	t.Helper()
	raw, err := base64.RawStdEncoding.DecodeString(tok)
	if err != nil {
		t.Fatalf("not RawStd base64: %v", err)
	}
	if len(raw) <= 32 {
		t.Fatalf("%d bytes", len(raw))
	}
	d := decoded{payload: raw[:len(raw)-32], mac: raw[len(raw)-32:]}
	p := d.payload
	v, n := binary.Uvarint(p)
	if n <= 0 {
		t.Fatal("bad version varint")
	}
	d.version, p = v, p[n:]
	d.expires, p = int64(binary.LittleEndian.Uint64(p[:8])), p[8:]
	for _, f := range []*string{&d.grants, &d.clientID, &d.username} {
		l, n := binary.Uvarint(p)
		if n <= 0 || uint64(len(p)-n) < l {
			t.Fatal("bad string")
		}
		*f, p = string(p[n:n+int(l)]), p[n+int(l):]
	}
	if len(p) != 0 {
		t.Fatalf("%d trailing payload bytes", len(p))
	}
	return d
}

func TestTokenLayout(t *testing.T) {
	seed := bytes.Repeat([]byte{0x42}, 32)
	s := fakemeta.New(seed)
	exp := time.Unix(1_750_000_000, 999_000_000) // sub-second part is dropped
	o := fakemeta.TokenOptions{
		Username: "alice",
		ClientID: "5f3a-client",
		Grants:   "registry.example.com/REGISTRY:RW meta.sr.ht/PROFILE:RO",
		Expires:  exp,
	}
	tok := s.Mint(o)
	if strings.ContainsAny(tok, "=-_") {
		t.Errorf("token %q is not unpadded standard base64", tok)
	}
	raw, _ := base64.RawStdEncoding.DecodeString(tok)

	// Byte by byte: version 0, then expires as 8 little-endian bytes, then
	// each string as a one-byte length (all < 128) and its bytes, then the MAC.
	want := []byte{0x00}
	want = binary.LittleEndian.AppendUint64(want, uint64(exp.Unix()))
	for _, f := range []string{o.Grants, o.ClientID, o.Username} {
		want = append(want, byte(len(f)))
		want = append(want, f...)
	}
	if !bytes.Equal(raw[:len(raw)-32], want) {
		t.Fatalf("payload\n got %x\nwant %x", raw[:len(raw)-32], want)
	}
	if raw[0] != 0x00 || binary.LittleEndian.Uint64(raw[1:9]) != 1_750_000_000 {
		t.Errorf("header bytes %x", raw[:9])
	}

	// The MAC: HMAC-SHA256 keyed with HMAC-SHA256(ed25519 private key, "sr.ht HMAC key").
	km := hmac.New(sha256.New, ed25519.NewKeyFromSeed(seed))
	km.Write([]byte("sr.ht HMAC key"))
	key := km.Sum(nil)
	if !bytes.Equal(key, s.BearerKey()) {
		t.Fatalf("BearerKey %x, want %x", s.BearerKey(), key)
	}
	m := hmac.New(sha256.New, key)
	m.Write(want)
	if !bytes.Equal(raw[len(raw)-32:], m.Sum(nil)) {
		t.Error("MAC is not HMAC-SHA256(bearerKey, payload)")
	}

	d := decode(t, tok)
	if d.version != 0 || d.expires != exp.Unix() || d.grants != o.Grants || d.clientID != o.ClientID || d.username != o.Username {
		t.Errorf("decoded %+v", d)
	}
	if got := fakemeta.MintWithKey(s.BearerKey(), o); got != tok {
		t.Errorf("MintWithKey differs from Mint")
	}

	// A multi-byte varint version and a long string length.
	long := strings.Repeat("g", 200)
	d = decode(t, s.Mint(fakemeta.TokenOptions{Version: 300, Grants: long, Expires: exp}))
	if d.version != 300 || d.grants != long || d.payload[0] != 0xAC || d.payload[1] != 0x02 {
		t.Errorf("version %d (% x), grants len %d", d.version, d.payload[:2], len(d.grants))
	}
}

// TestGoldenVector pins the key derivation and the token against values
// computed independently (Python's cryptography and hmac modules).
func TestGoldenVector(t *testing.T) {
	seed := make([]byte, 32)
	for i := range seed {
		seed[i] = byte(i)
	}
	s := fakemeta.New(seed)
	const wantKey = "9c8dc7c163b2e140a25cdb0aa1f0367ce0b57f5af8f47b7f20e324316118e7f2"
	const wantTok = "AADxU2UAAAAAIHJlZ2lzdHJ5LmV4YW1wbGUuY29tL1JFR0lTVFJZOlJXAAVhbGljZZMNbQDGWN74Erv/mBLao8QPcdvkPJL0cEGxq309T/dN"
	if got := hex.EncodeToString(s.BearerKey()); got != wantKey {
		t.Errorf("key %s, want %s", got, wantKey)
	}
	got := s.Mint(fakemeta.TokenOptions{Username: "alice", Grants: "registry.example.com/REGISTRY:RW", Expires: time.Unix(1_700_000_000, 0)})
	if got != wantTok {
		t.Errorf("token\n got %s\nwant %s", got, wantTok)
	}
}
