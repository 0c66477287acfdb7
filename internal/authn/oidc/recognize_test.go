package oidc_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"

	"git.sr.ht/~zozs/srht-registry/internal/authn/oidc"
)

const fuzzIssuer = "https://token.actions.githubusercontent.com"

// offline is an HTTP client that never reaches the network.
var offline = &http.Client{Transport: roundTripFunc(func(*http.Request) (*http.Response, error) {
	return nil, errors.New("offline")
})}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func offlineAuthenticator(t testing.TB) *oidc.Authenticator {
	t.Helper()
	a, err := oidc.New(context.Background(), oidc.Options{Name: "github", Issuer: fuzzIssuer, Audiences: []string{service}, HTTPClient: offline})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Close)
	return a
}

// padTo appends spaces to the JSON text s until its length is rem modulo
// 3: 1 makes its base64 end in "==", 0 in no padding.
func padTo(s string, rem int) string {
	for len(s)%3 != rem {
		s += " "
	}
	return s
}

func seg(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

func jwtOf(header, payload, sig string) string { return seg(header) + "." + seg(payload) + "." + sig }

func TestRecognize(t *testing.T) {
	t.Parallel()
	a := offlineAuthenticator(t)
	h := `{"alg":"RS256","kid":"k1","typ":"JWT"}`
	p := `{"iss":"` + fuzzIssuer + `","sub":"repo:o/r:ref:refs/heads/main"}`
	tests := []struct {
		name  string
		token string
		want  bool
	}{
		{"good", jwtOf(h, p, "c2ln"), true},
		{"alg none, empty signature", jwtOf(`{"alg":"none"}`, p, ""), true},
		{"no kid", jwtOf(`{"alg":"ES256"}`, p, "c2ln"), true},
		{"iss with a trailing slash", jwtOf(h, `{"iss":"`+fuzzIssuer+`/"}`, "c2ln"), false},
		{"iss in other case", jwtOf(h, `{"iss":"`+strings.ToUpper(fuzzIssuer)+`"}`, "c2ln"), false},
		{"iss another issuer", jwtOf(h, `{"iss":"https://gitlab.com"}`, "c2ln"), false},
		{"iss not a string", jwtOf(h, `{"iss":["`+fuzzIssuer+`"]}`, "c2ln"), false},
		{"no iss", jwtOf(h, `{"sub":"x"}`, "c2ln"), false},
		{"iss twice", jwtOf(h, `{"iss":"https://evil.example","iss":"`+fuzzIssuer+`"}`, "c2ln"), false},
		{"iss twice, once escaped", jwtOf(h, `{"\u0069ss":"https://evil.example","iss":"`+fuzzIssuer+`"}`, "c2ln"), false},
		{"colons and braces in strings", jwtOf(h, `{"iss":"`+fuzzIssuer+`","x":"a:{b}\":[c]","y":{"z:":[1,{"w":2}]}}`, "c2ln"), true},
		{"null payload", jwtOf(h, `null`, "c2ln"), false},
		{"no alg", jwtOf(`{"kid":"k1"}`, p, "c2ln"), false},
		{"alg not a string", jwtOf(`{"alg":1}`, p, "c2ln"), false},
		{"kid not a string", jwtOf(`{"alg":"RS256","kid":1}`, p, "c2ln"), false},
		{"header an array", jwtOf(`["alg"]`, p, "c2ln"), false},
		{"payload an array", jwtOf(h, `[{"iss":"`+fuzzIssuer+`"}]`, "c2ln"), false},
		{"trailing data", jwtOf(h, p+`{}`, "c2ln"), false},
		{"padding", seg(h) + "." + base64.URLEncoding.EncodeToString([]byte(padTo(p, 1))) + ".c2ln", false},
		{"no padding needed", seg(h) + "." + base64.URLEncoding.EncodeToString([]byte(padTo(p, 0))) + ".c2ln", true},
		{"standard alphabet", base64.RawStdEncoding.EncodeToString([]byte(h+"??>>")) + "." + seg(p) + ".c2ln", false},
		{"newline inside", seg(h) + ".\n" + seg(p) + ".c2ln", false},
		{"two segments", seg(h) + "." + seg(p), false},
		{"four segments", jwtOf(h, p, "c2ln") + ".x", false},
		{"JWE-like", jwtOf(h, p, "c2ln") + ".x.y", false},
		{"JSON serialization", `{"payload":"` + seg(p) + `","signatures":[]}`, false},
		{"too large", jwtOf(h, `{"iss":"`+fuzzIssuer+`","pad":"`+strings.Repeat("x", oidc.MaxTokenSize)+`"}`, "c2ln"), false},
		{"empty", "", false},
		{"Sourcehut-like", "AAAAAAAAAAD/////////fwAAAAdhbGljZQ", false},
	}
	for _, tt := range tests {
		if got := a.Recognize(tt.token); got != tt.want {
			t.Errorf("%s: Recognize = %v, want %v", tt.name, got, tt.want)
		}
	}
}

// reference decides, independently and leniently, whether s is a JWT whose
// payload's iss is issuer: whatever Recognize accepts, it must accept.
func reference(s, issuer string) bool {
	parts := strings.Split(s, ".")
	if len(parts) != 3 {
		return false
	}
	var header, payload map[string]any
	for i, v := range []*map[string]any{&header, &payload} {
		b, err := base64.RawURLEncoding.DecodeString(parts[i])
		if err != nil {
			return false
		}
		dec := json.NewDecoder(strings.NewReader(string(b)))
		dec.UseNumber()
		if dec.Decode(v) != nil {
			return false
		}
	}
	if _, ok := header["alg"].(string); !ok {
		return false
	}
	iss, ok := payload["iss"].(string)
	return ok && iss == issuer
}

// FuzzRecognize: the recogniser never panics, stays bounded, and says yes
// only to a JWT whose iss is the issuer exactly; a Set agrees with it.
func FuzzRecognize(f *testing.F) {
	h := `{"alg":"RS256","kid":"k1","typ":"JWT"}`
	for _, s := range []string{
		jwtOf(h, `{"iss":"`+fuzzIssuer+`","sub":"x","exp":1}`, "c2ln"),
		jwtOf(`{"alg":"none"}`, `{"iss":"`+fuzzIssuer+`"}`, ""),
		jwtOf(h, `{"iss":"`+fuzzIssuer+`/"}`, "c2ln"),
		jwtOf(h, `{"iss":"https://gitlab.com"}`, "c2ln"),
		jwtOf(h, `{"iss":"`+fuzzIssuer+`","iss":"x"}`, "c2ln"),
		jwtOf(h, `{"iss":"`+fuzzIssuer+`","n":1e400}`, "c2ln"),
		"", ".", "..", "a.b.c", "hunter2", "eyJ.eyJ.", strings.Repeat("a", 1000),
	} {
		f.Add(s)
	}
	a := offlineAuthenticator(f)
	set, err := oidc.NewSet(a)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for _, tok := range []string{s, seg(h) + "." + seg(s) + ".c2ln"} {
			got := a.Recognize(tok)
			if got && !reference(tok, fuzzIssuer) {
				t.Fatalf("Recognize(%q) = true, but it is no JWT of %s", tok, fuzzIssuer)
			}
			if got && len(tok) > oidc.MaxTokenSize {
				t.Fatalf("Recognize took a token of %d bytes", len(tok))
			}
			if found, ok := set.Find(tok); ok != got || (ok && found != a) {
				t.Fatalf("Find(%q) = %v, Recognize = %v", tok, ok, got)
			}
		}
	})
}
