package server

import (
	"encoding/json"
	"strconv"
	"unicode/utf8"
)

// appendJSON appends the token response as encoding/json's Encoder writes
// it (the same bytes, newline included: tokenjson_test.go holds it to
// that), without reflection: it is written for every token.
func (t *tokenResponse) appendJSON(b []byte) []byte {
	b = append(b, `{"token":`...)
	b = appendJSONString(b, t.Token)
	b = append(b, `,"access_token":`...)
	b = appendJSONString(b, t.AccessToken)
	b = append(b, `,"expires_in":`...)
	b = strconv.AppendInt(b, int64(t.ExpiresIn), 10)
	b = append(b, `,"issued_at":`...)
	b = appendJSONString(b, t.IssuedAt)
	if t.Scope != "" {
		b = append(b, `,"scope":`...)
		b = appendJSONString(b, t.Scope)
	}
	if t.RefreshToken != "" {
		b = append(b, `,"refresh_token":`...)
		b = appendJSONString(b, t.RefreshToken)
	}
	return append(b, "}\n"...)
}

// appendJSONString appends s quoted as encoding/json quotes it. What a
// token response holds (base64url, dots, scopes, a time) is printable ASCII
// that needs no escape, written as it is; anything else is left to
// encoding/json, HTML escaping and all.
func appendJSONString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= utf8.RuneSelf || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s) // a string always marshals
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}
