package oidc

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
)

// MaxTokenSize bounds the length of a string taken for an ID token. Real
// ones are one to two kilobytes.
const MaxTokenSize = 16 << 10

// unverified is a token split and decoded, its signature not checked.
type unverified struct {
	alg     string         // the header's alg
	kid     string         // the header's kid, "" when hasKid is false
	hasKid  bool           // the header has a kid
	header  map[string]any // the protected header
	payload []byte         // the decoded payload: the bytes the signature covers
	claims  map[string]any // the payload, numbers as json.Number
	iss     string         // the payload's iss
}

var (
	errNotJWT   = errors.New("not a JWT in compact form")
	errTooLarge = errors.New("larger than the largest ID token accepted")
)

// parseUnverified splits token into header, payload and signature and
// decodes the first two. It checks only the shape: three segments of the
// base64url alphabet without padding, a header that is a JSON object with
// a string alg (and a string kid, if any), and a payload that is a JSON
// object with a string iss; neither object may repeat a member name. Its
// work is bounded by MaxTokenSize.
func parseUnverified(token string) (*unverified, error) {
	if len(token) > MaxTokenSize {
		return nil, errTooLarge
	}
	h, rest, ok := strings.Cut(token, ".")
	if !ok {
		return nil, errNotJWT
	}
	p, sig, ok := strings.Cut(rest, ".")
	if !ok || h == "" || p == "" || !base64url(h) || !base64url(p) || !base64url(sig) {
		return nil, errNotJWT
	}
	hb, err := base64.RawURLEncoding.Strict().DecodeString(h)
	if err != nil {
		return nil, errNotJWT
	}
	pb, err := base64.RawURLEncoding.Strict().DecodeString(p)
	if err != nil {
		return nil, errNotJWT
	}
	header, err := decodeObject(hb)
	if err != nil {
		return nil, errNotJWT
	}
	claims, err := decodeObject(pb)
	if err != nil {
		return nil, errNotJWT
	}
	u := &unverified{header: header, payload: pb, claims: claims}
	if u.alg, ok = header["alg"].(string); !ok {
		return nil, errNotJWT
	}
	if kid, present := header["kid"]; present {
		if u.kid, ok = kid.(string); !ok {
			return nil, errNotJWT
		}
		u.hasKid = true
	}
	if u.iss, ok = claims["iss"].(string); !ok {
		return nil, errNotJWT
	}
	return u, nil
}

// base64url reports whether s is made of the base64url alphabet only (no
// padding, no white space: the decoder would skip newlines).
func base64url(s string) bool {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case 'A' <= c && c <= 'Z', 'a' <= c && c <= 'z', '0' <= c && c <= '9', c == '-', c == '_':
		default:
			return false
		}
	}
	return true
}

// decodeObject decodes a JSON object, numbers as json.Number. It refuses
// anything but one object, and an object that repeats a member name (a
// parser that kept the first would read another token than one that kept
// the last).
func decodeObject(b []byte) (map[string]any, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var obj map[string]any
	if err := dec.Decode(&obj); err != nil || obj == nil {
		return nil, errNotJWT
	}
	if len(bytes.TrimLeft(b[dec.InputOffset():], " \t\r\n")) != 0 {
		return nil, errNotJWT
	}
	if topLevelMembers(b) != len(obj) {
		return nil, errNotJWT
	}
	return obj, nil
}

// topLevelMembers counts the members of the JSON object b, which must be
// valid JSON: the colons outside strings at depth 1. The map b decodes to
// has fewer entries when a name repeats (escaped or not).
func topLevelMembers(b []byte) int {
	depth, n := 0, 0
	inString, escaped := false, false
	for _, c := range b {
		if inString {
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
			continue
		}
		switch c {
		case '"':
			inString = true
		case '{', '[':
			depth++
		case '}', ']':
			depth--
		case ':':
			if depth == 1 {
				n++
			}
		}
	}
	return n
}
