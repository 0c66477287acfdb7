package server

import (
	"bytes"
	"encoding/json"
	"testing"
)

// TestTokenJSON: the hand-written token response is byte for byte what
// encoding/json's Encoder writes, for what a response holds and for
// strings that need escaping.
func TestTokenJSON(t *testing.T) {
	for _, tt := range []struct {
		name string
		resp tokenResponse
	}{
		{"GET", tokenResponse{Token: "eyJ.eyJ.sig", AccessToken: "eyJ.eyJ.sig", ExpiresIn: 300, IssuedAt: "2030-01-02T03:04:05Z"}},
		{"POST with scope and refresh token", tokenResponse{Token: "a.b.c", AccessToken: "a.b.c", ExpiresIn: 60, IssuedAt: "2030-01-02T03:04:05Z",
			Scope: "repository:alice/app:pull,push repository:library/x:pull", RefreshToken: "rt_abc-DEF_123"}},
		{"empty", tokenResponse{}},
		{"negative", tokenResponse{ExpiresIn: -1}},
		{"escapes", tokenResponse{Token: "quote\" backslash\\ <html> & amp", AccessToken: "ctl\x00\x1f\t\n\r", IssuedAt: "é ünïcode \u2028\u2029",
			Scope: "bad utf-8 \xff\xfe", RefreshToken: "\x7f del"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			checkTokenJSON(t, tt.resp)
		})
	}
}

func checkTokenJSON(t *testing.T, resp tokenResponse) {
	t.Helper()
	var want bytes.Buffer
	if err := json.NewEncoder(&want).Encode(&resp); err != nil {
		t.Fatal(err)
	}
	if got := resp.appendJSON(nil); !bytes.Equal(got, want.Bytes()) {
		t.Errorf("appendJSON = %q\nencoding/json = %q", got, want.Bytes())
	}
}

func FuzzTokenJSON(f *testing.F) {
	f.Add("eyJ.eyJ.sig", "repository:a/b:pull", "rt", 300)
	f.Add("<&>", "\u2028", "\xff", -5)
	f.Fuzz(func(t *testing.T, tok, scope, refresh string, expires int) {
		checkTokenJSON(t, tokenResponse{Token: tok, AccessToken: tok, ExpiresIn: expires, IssuedAt: tok, Scope: scope, RefreshToken: refresh})
	})
}
