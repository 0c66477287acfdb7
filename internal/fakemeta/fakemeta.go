package fakemeta

import (
	"bytes"
	"crypto/rand"
	"crypto/sha512"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// maxBodyBytes bounds a /query request body.
const maxBodyBytes = 1 << 20

// Server is a fake meta.sr.ht. It is safe for concurrent use; its settings
// may change while requests are in flight (each request reads them once, on
// arrival).
type Server struct {
	key []byte

	calls atomic.Int64

	mu        sync.Mutex
	now       func() time.Time
	revoked   map[[64]byte]bool
	delay     time.Duration
	down      bool
	status    int
	garbage   bool
	lastQuery string
	url       string
}

// New returns a fake meta.sr.ht whose bearer key is derived from seed, a
// 32-byte Ed25519 seed, the way core-go derives it. It panics if seed is not
// 32 bytes. Its clock is time.Now until [Server.SetClock].
func New(seed []byte) *Server {
	if len(seed) != 32 {
		panic(fmt.Sprintf("fakemeta: seed must be 32 bytes, got %d", len(seed)))
	}
	return &Server{
		key:     deriveBearerKey(seed),
		now:     time.Now,
		revoked: map[[64]byte]bool{},
	}
}

// Start returns a fake meta.sr.ht with a random seed, served by an
// httptest.Server on 127.0.0.1 that is closed when the test ends. Its
// base URL is [Server.URL]; the endpoint is URL()+"/query".
func Start(t testing.TB) *Server {
	t.Helper()
	seed := make([]byte, 32)
	if _, err := rand.Read(seed); err != nil {
		t.Fatalf("fakemeta: random seed: %v", err)
	}
	s := New(seed)
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(ts.Close)
	s.mu.Lock()
	s.url = ts.URL
	s.mu.Unlock()
	return s
}

// URL is the base URL of the server started by [Start] (no trailing
// slash), or "" for a Server made with [New].
func (s *Server) URL() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.url
}

// SetClock sets the clock that decides whether a token has expired and
// that [Server.Mint] uses for a zero Expires; nil restores time.Now.
func (s *Server) SetClock(now func() time.Time) {
	if now == nil {
		now = time.Now
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.now = now
}

func (s *Server) clock() time.Time {
	s.mu.Lock()
	now := s.now
	s.mu.Unlock()
	return now()
}

// BearerKey returns a copy of the HMAC key this server signs and checks
// tokens with.
func (s *Server) BearerKey() []byte {
	return bytes.Clone(s.key)
}

// Mint returns a token in the exact real format, signed with this server's
// key. A zero o.Expires means one hour from now by the server's clock.
func (s *Server) Mint(o TokenOptions) string {
	if o.Expires.IsZero() {
		o.Expires = s.clock().Add(time.Hour)
	}
	return mint(s.key, o)
}

// Revoke makes later /query calls with token answer 403, as meta.sr.ht
// does for a token revoked on its OAuth page. Like sourcehut, it keeps only
// the SHA-512 of the token.
func (s *Server) Revoke(token string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.revoked[sha512.Sum512([]byte(token))] = true
}

// SetDelay makes each /query request wait d before it is answered (the
// wait ends early, without an answer, if the request's context ends).
func (s *Server) SetDelay(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.delay = d
}

// SetDown makes each /query request end with the connection closed and no
// response: the client sees a connection error (io.EOF or a reset). It is
// done by hijacking the connection, or, where the ResponseWriter cannot be
// hijacked (HTTP/2, httptest.ResponseRecorder), by panicking with
// http.ErrAbortHandler.
func (s *Server) SetDown(down bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.down = down
}

// SetStatus makes each /query request answer code (e.g. 500, 502, 503)
// with a text/html body such as a reverse proxy sends; 0 turns it off.
func (s *Server) SetStatus(code int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.status = code
}

// SetGarbage makes each /query request answer 200 with a body that is not
// JSON although its Content-Type says application/json.
func (s *Server) SetGarbage(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.garbage = on
}

// Calls is the number of requests to /query received, whatever their
// outcome, faults included.
func (s *Server) Calls() int64 { return s.calls.Load() }

// ResetCalls sets Calls back to 0.
func (s *Server) ResetCalls() { s.calls.Store(0) }

// LastQuery is the "query" of the last /query request's JSON body, or ""
// if that body had none or was not JSON. It is recorded before any fault
// or authentication check.
func (s *Server) LastQuery() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lastQuery
}

// Handler returns the fake's HTTP handler, for callers who serve it
// themselves. It answers only the path /query (404 elsewhere, not counted)
// in this order, which is the real one (core-go's auth middleware runs
// before gqlgen's transport):
//
//  1. Count the call, record LastQuery, then apply faults: down, delay,
//     status, garbage.
//  2. Authorization (core-go's auth.Middleware; JSON body
//     {"errors":[{"message":"Authentication error: …"}]}):
//     missing → 401; not "<scheme> <value>" or a scheme other than "Bearer"
//     (case-sensitive) → 400 "Invalid Authorization header"; a value that is
//     not [0-9a-zA-Z_+/]{33,} → 400 "Invalid OAuth bearer token", unless it
//     is 32 hex digits (a legacy token, none of which exist here) → 403
//     "Invalid or expired OAuth token"; a value that fails to decode (bad
//     base64, ≤ 32 bytes, MAC mismatch, BARE error, version ≠ 0, expired,
//     i.e. now after expires), or is revoked → 403 "Invalid or expired
//     OAuth 2.0 bearer token". A grant string that is not service/scope
//     → 500 (core-go panics).
//  3. Transport: a method other than POST → 405 (Allow: POST); a
//     Content-Type whose media type is not application/json → 400
//     "transport not supported"; a body over 1 MiB or not a JSON object
//     with a string "query" → 400 "json request body could not be
//     decoded: …". These bodies are gqlgen's {"errors":[…],"data":null}.
//  4. Parsing and validation against the known schema → 422 with
//     locations and extensions.code GRAPHQL_PARSE_FAILED or
//     GRAPHQL_VALIDATION_FAILED (e.g. `Cannot query field "x" on type
//     "Query".`), as gqlgen does; an empty document → 422 "operation
//     not found"; fragments, field directives and several operations →
//     422 "fakemeta: … is not supported …".
//  5. Execution → 200. version needs no grant and answers
//     {major: 0, minor: 79, patch: 0}; me needs meta.sr.ht/PROFILE (RO or
//     RW) or empty grants, and otherwise yields
//     {"errors":[{"message":"Access denied for invalid auth method","path":["me"]}],"data":null}.
func (s *Server) Handler() http.Handler {
	return http.HandlerFunc(s.serveHTTP)
}

type settings struct {
	delay   time.Duration
	down    bool
	status  int
	garbage bool
}

func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/query" {
		http.NotFound(w, r)
		return
	}
	s.calls.Add(1)

	body, bodyErr := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	var params struct {
		Query         *string        `json:"query"`
		OperationName string         `json:"operationName"`
		Variables     map[string]any `json:"variables"`
	}
	var jsonErr error
	if bodyErr == nil {
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.UseNumber()
		jsonErr = dec.Decode(&params)
	}
	query := ""
	if bodyErr == nil && jsonErr == nil && params.Query != nil {
		query = *params.Query
	}

	s.mu.Lock()
	s.lastQuery = query
	set := settings{s.delay, s.down, s.status, s.garbage}
	s.mu.Unlock()

	if set.down {
		dropConnection(w)
		return
	}
	if set.delay > 0 {
		t := time.NewTimer(set.delay)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			return
		}
	}
	if set.status != 0 {
		text := fmt.Sprintf("%d %s", set.status, http.StatusText(set.status))
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(set.status)
		fmt.Fprintf(w, "<html>\r\n<head><title>%s</title></head>\r\n<body>\r\n<center><h1>%s</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n", text, text)
		return
	}
	if set.garbage {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		_, _ = io.WriteString(w, "<!DOCTYPE html>\n<html><body><h1>sr.ht is down for maintenance</h1></body></html>\n")
		return
	}

	ec, ok := s.authenticate(w, r)
	if !ok {
		return
	}

	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		writeGQL(w, http.StatusMethodNotAllowed, gqlResponse{Errors: []gqlError{{Message: "transport not supported"}}})
		return
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		writeGQL(w, http.StatusBadRequest, gqlResponse{Errors: []gqlError{{Message: "transport not supported"}}})
		return
	}
	if bodyErr != nil {
		writeGQL(w, http.StatusBadRequest, gqlResponse{Errors: []gqlError{{
			Message: "json request body could not be decoded: " + bodyErr.Error()}}})
		return
	}
	if jsonErr == nil && params.Query == nil && bytes.Equal(bytes.TrimSpace(body), []byte("null")) {
		jsonErr = errors.New("body must be an object")
	}
	if jsonErr != nil {
		writeGQL(w, http.StatusBadRequest, gqlResponse{Errors: []gqlError{{
			Message: fmt.Sprintf("json request body could not be decoded: %v body:%s", jsonErr, body)}}})
		return
	}

	op, err := parseDocument(query)
	if err != nil {
		var pe *parseError
		if !errors.As(err, &pe) {
			panic(err)
		}
		writeGQL(w, http.StatusUnprocessableEntity, gqlResponse{Errors: []gqlError{{
			Message:    pe.msg,
			Locations:  []gqlLocation{{pe.line, pe.col}},
			Extensions: map[string]any{"code": "GRAPHQL_PARSE_FAILED"},
		}}})
		return
	}
	if op == nil || params.OperationName != "" && params.OperationName != op.name {
		// gqlgen: rc.Doc.Operations.ForName(name) == nil.
		writeGQL(w, http.StatusUnprocessableEntity, gqlResponse{Errors: []gqlError{{
			Message:    fmt.Sprintf("operation %s not found", params.OperationName),
			Extensions: map[string]any{"code": "GRAPHQL_VALIDATION_FAILED"},
		}}})
		return
	}
	if errs := validate(op); len(errs) > 0 {
		writeGQL(w, http.StatusUnprocessableEntity, gqlResponse{Errors: errs})
		return
	}
	writeGQL(w, http.StatusOK, execute(ec, op))
}

var (
	oauth2BearerRegex = regexp.MustCompile(`^[0-9a-zA-Z_+/]{33,}$`)
	oauthBearerRegex  = regexp.MustCompile(`^[0-9a-f]{32}$`)
)

// authenticate mirrors core-go's auth.Middleware and auth.OAuth2 for bearer
// tokens. It answers and returns false when the request may not proceed.
func (s *Server) authenticate(w http.ResponseWriter, r *http.Request) (execContext, bool) {
	header := r.Header.Get("Authorization")
	if header == "" {
		authError(w, "Authorization header is required. Expected 'Authorization: Bearer [token]'", http.StatusUnauthorized)
		return execContext{}, false
	}
	z := strings.SplitN(header, " ", 2)
	if len(z) != 2 || z[0] != "Bearer" {
		authError(w, "Invalid Authorization header", http.StatusBadRequest)
		return execContext{}, false
	}
	tok := z[1]
	switch {
	case oauth2BearerRegex.MatchString(tok):
	case oauthBearerRegex.MatchString(tok):
		authError(w, "Invalid or expired OAuth token", http.StatusForbidden)
		return execContext{}, false
	default:
		authError(w, "Invalid OAuth bearer token", http.StatusBadRequest)
		return execContext{}, false
	}

	s.mu.Lock()
	now := s.now
	revoked := s.revoked[sha512.Sum512([]byte(tok))]
	s.mu.Unlock()

	bt, err := decodeBearerToken(s.key, tok, now())
	if err != nil || revoked {
		authError(w, "Invalid or expired OAuth 2.0 bearer token", http.StatusForbidden)
		return execContext{}, false
	}
	g, err := decodeGrants(bt.Grants)
	if err != nil {
		http.Error(w, http.StatusText(http.StatusInternalServerError), http.StatusInternalServerError)
		return execContext{}, false
	}
	return execContext{bt: bt, grants: g}, true
}

// authError is core-go's authError: a gqlerror list without data.
func authError(w http.ResponseWriter, reason string, code int) {
	b, err := json.Marshal(struct {
		Errors []gqlError `json:"errors"`
	}{[]gqlError{{Message: "Authentication error: " + reason}}})
	if err != nil {
		panic(err)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_, _ = w.Write(b) // the client gone is nothing to report
}

func writeGQL(w http.ResponseWriter, code int, resp gqlResponse) {
	b, err := json.Marshal(resp)
	if err != nil {
		panic(err)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_, _ = w.Write(b)
}

// dropConnection ends the request without any response.
func dropConnection(w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	conn.Close()
}
