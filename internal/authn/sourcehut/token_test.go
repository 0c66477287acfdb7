package sourcehut_test

import (
	"bytes"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"git.sr.ht/~zozs/srht-registry/internal/authn/sourcehut"
	"git.sr.ht/~zozs/srht-registry/internal/fakemeta"
)

func TestDecodeMintedToken(t *testing.T) {
	fake := fakemeta.New(bytes.Repeat([]byte{7}, 32))
	tests := []struct {
		name string
		opts fakemeta.TokenOptions
	}{
		{"build token", fakemeta.TokenOptions{
			Username: "zozs", ClientID: "builds.sr.ht", Grants: service + "/REGISTRY:RW",
			Expires: t0.Add(45*time.Minute + 999*time.Millisecond),
		}},
		{"personal token, all grants", fakemeta.TokenOptions{
			Username: "alice", Expires: t0.Add(365 * 24 * time.Hour),
		}},
		{"mixed grants, non-ASCII user", fakemeta.TokenOptions{
			Username: "ünïcødé", ClientID: "c0ffee", Grants: "meta.sr.ht/PROFILE:RO " + service + "/REGISTRY",
			Expires: t0.Add(time.Second + 500*time.Millisecond),
		}},
		{"version 1 decodes (refused later)", fakemeta.TokenOptions{
			Username: "bob", Version: 1, Expires: t0,
		}},
		{"expired decodes (refused later)", fakemeta.TokenOptions{
			Username: "bob", Expires: time.Unix(1, 0),
		}},
		{"long grants need a 2-byte length", fakemeta.TokenOptions{
			Username: "bob", Grants: strings.Repeat("svc.example.com/SCOPE:RO ", 10) + service + "/REGISTRY:RW",
			Expires: t0.Add(time.Hour),
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tok := fake.Mint(tt.opts)
			got, err := sourcehut.Decode(tok)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			want := sourcehut.Token{
				Version:  tt.opts.Version,
				Expires:  time.Unix(tt.opts.Expires.Unix(), 0).UTC(),
				Grants:   tt.opts.Grants,
				ClientID: tt.opts.ClientID,
				Username: tt.opts.Username,
			}
			if got.Version != want.Version || got.Grants != want.Grants || got.ClientID != want.ClientID || got.Username != want.Username {
				t.Errorf("Decode = %+v, want %+v", got, want)
			}
			if !got.Expires.Equal(want.Expires) || got.Expires.Location() != time.UTC || got.Expires.Nanosecond() != 0 {
				t.Errorf("Expires = %v (%v), want %v UTC, whole seconds", got.Expires, got.Expires.Location(), want.Expires)
			}
			// The test helper writes the same layout as fakemeta.
			raw, _ := base64.RawStdEncoding.DecodeString(tok)
			if p := payload(got.Version, got.Expires.Unix(), got.Grants, got.ClientID, got.Username); !bytes.Equal(p, raw[:len(raw)-32]) {
				t.Errorf("payload helper disagrees with fakemeta:\n got %x\nwant %x", p, raw[:len(raw)-32])
			}
		})
	}
}

func TestDecodeNotToken(t *testing.T) {
	valid := payload(0, t0.Unix(), service+"/REGISTRY:RW", "client", "user")
	allFF := bytes.Repeat([]byte{0xFF}, 32)
	// The same valid payload with a MAC of 0xFF bytes, whose base64 has '/'
	// (standard) or '_' (URL-safe).
	ffToken := append(append([]byte(nil), valid...), allFF...)

	// A payload whose encoding is exactly maxTokenLength (8192) characters:
	// 6144 raw bytes = 1+8+2+L+1+1+1 + 32 with L = 6098.
	atLimit := encodeRaw(payload(0, t0.Unix(), strings.Repeat("g", 6098), "", "u"))
	if len(atLimit) != 8192 {
		t.Fatalf("test bug: atLimit has %d characters", len(atLimit))
	}
	if _, err := sourcehut.Decode(atLimit); err != nil {
		t.Fatalf("Decode of an 8192-character token: %v", err)
	}
	if _, err := sourcehut.Decode(base64.RawStdEncoding.EncodeToString(ffToken)); err != nil {
		t.Fatalf("Decode of the 0xFF-MAC token in the standard alphabet: %v", err)
	}

	// A valid token whose last character carries non-zero unused bits: a
	// lax decoder reads the same bytes, but it is not the encoding
	// sourcehut wrote. 12+32 raw bytes leave 2 bytes for the last 3
	// characters, whose last one has 2 unused bits.
	short := encodeRaw(payload(0, t0.Unix(), "", "", ""))
	if len(short)%4 != 3 {
		t.Fatalf("test bug: %d characters", len(short))
	}
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	trailingBits := short[:len(short)-1] + string(alphabet[strings.IndexByte(alphabet, short[len(short)-1])|1])
	if lax, err := base64.RawStdEncoding.DecodeString(trailingBits); err != nil || !bytes.Equal(lax, append(payload(0, t0.Unix(), "", "", ""), fakeMAC...)) {
		t.Fatalf("test bug: a lax decoder reads %x, %v", lax, err)
	}

	withByte := func(b []byte, extra ...byte) []byte {
		return append(append([]byte(nil), b...), extra...)
	}
	tests := []struct {
		name string
		in   string
	}{
		{"empty", ""},
		{"hunter2", "hunter2"},
		{"passphrase", "correct horse battery staple"},
		{"htpasswd-like bcrypt", "$2y$05$abcdefghijklmnopqrstuu5Yhf6yXxhM3j7nb1l2DHSpvEz4a0ab6"},
		{"not base64", "not*base64!" + strings.Repeat("A", 60)},
		{"padded base64", base64.StdEncoding.EncodeToString(withByte(ffToken, 0))}, // 1 extra byte → "=="
		{"url-safe alphabet", base64.RawURLEncoding.EncodeToString(ffToken)},
		{"non-zero trailing bits", trailingBits},
		{"32 raw bytes", base64.RawStdEncoding.EncodeToString(allFF)},
		{"33 raw bytes, 1-byte payload", encodeRaw([]byte{0})},
		{"truncated expires", encodeRaw([]byte{0, 1, 2, 3, 4})},
		{"missing username", encodeRaw(valid[:len(valid)-len("user")-1])},
		{"truncated username", encodeRaw(valid[:len(valid)-1])},
		{"string length beyond payload", encodeRaw(withByte(payload(0, t0.Unix(), "", "", "")[:9], 100, 'a', 'b', 0, 0))},
		{"invalid UTF-8 in grants", encodeRaw(payload(0, t0.Unix(), "\xff", "c", "u"))},
		{"invalid UTF-8 in client_id", encodeRaw(payload(0, t0.Unix(), "", "\xc3", "u"))},
		{"invalid UTF-8 in username", encodeRaw(payload(0, t0.Unix(), "", "c", "u\xed\xa0\x80"))},
		{"trailing byte", encodeRaw(withByte(valid, 0))},
		{"trailing bytes", encodeRaw(withByte(valid, 'x', 'y', 'z'))},
		{"non-canonical version varint", encodeRaw(withByte([]byte{0x80, 0x00}, valid[1:]...))},
		{"non-canonical length varint", encodeRaw(withByte(payload(0, t0.Unix(), "", "", "")[:9], 0x80, 0x00, 0, 1, 'u'))},
		{"varint overflow", encodeRaw(withByte(bytes.Repeat([]byte{0xFF}, 10), 0x7F))},
		{"too long", encodeRaw(payload(0, t0.Unix(), strings.Repeat("g", 6099), "", "u"))},
		{"far too long", strings.Repeat("A", 1<<20)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := sourcehut.Decode(tt.in)
			if !errors.Is(err, sourcehut.ErrNotToken) {
				t.Fatalf("Decode = %+v, %v; want an error wrapping ErrNotToken", got, err)
			}
			if got != (sourcehut.Token{}) {
				t.Errorf("Decode returned a non-zero Token with its error: %+v", got)
			}
			checkNoSecret(t, err, tt.in)
		})
	}
}

// TestDecodeRejectsLineBreaks: encoding/base64 skips '\r' and '\n' even in
// Strict mode, so a token with a line break in it decodes although it is
// not a string sourcehut wrote. Authenticate then sends it upstream, where
// net/http refuses the header value: the client gets ErrUnavailable (503)
// instead of ErrNotToken/401, and the cache is keyed by a non-canonical
// string. Decode must accept only the exact canonical encoding.
func TestDecodeRejectsLineBreaks(t *testing.T) {
	tok := encodeRaw(payload(0, t0.Unix(), service+"/REGISTRY:RW", "client", "user"))
	if _, err := sourcehut.Decode(tok); err != nil {
		t.Fatalf("Decode of the token itself: %v", err)
	}
	tests := []struct {
		name string
		in   string
	}{
		{"LF inside", tok[:10] + "\n" + tok[10:]},
		{"CR inside", tok[:10] + "\r" + tok[10:]},
		{"trailing CRLF", tok + "\r\n"},
		{"leading LF", "\n" + tok},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := sourcehut.Decode(tt.in)
			if !errors.Is(err, sourcehut.ErrNotToken) {
				t.Errorf("Decode(%q) = %+v, %v; want an error wrapping ErrNotToken", tt.name, got, err)
			}
		})
	}
}

// FuzzDecode: Decode never panics, is deterministic, fails only with
// ErrNotToken (never echoing its input), and anything it accepts is exactly
// the canonical encoding of the fields it returned followed by a 32-byte
// MAC, with valid UTF-8 strings and a whole-second UTC expiry.
func FuzzDecode(f *testing.F) {
	fake := fakemeta.New(bytes.Repeat([]byte{1}, 32))
	f.Add(fake.Mint(fakemeta.TokenOptions{Username: "zozs", ClientID: "builds", Grants: service + "/REGISTRY:RW", Expires: t0}))
	f.Add(fake.Mint(fakemeta.TokenOptions{Username: "alice", Expires: t0}))
	f.Add(fake.Mint(fakemeta.TokenOptions{Username: "bob", Version: 1, Grants: "meta.sr.ht/PROFILE:RO", Expires: t0}))
	f.Add("hunter2")
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		tok, err := sourcehut.Decode(s)
		tok2, err2 := sourcehut.Decode(s)
		if tok != tok2 || (err == nil) != (err2 == nil) || (err != nil && err.Error() != err2.Error()) {
			t.Fatalf("Decode is not deterministic: %+v, %v then %+v, %v", tok, err, tok2, err2)
		}
		if err != nil {
			if !errors.Is(err, sourcehut.ErrNotToken) {
				t.Fatalf("Decode error does not wrap ErrNotToken: %v", err)
			}
			if tok != (sourcehut.Token{}) {
				t.Fatalf("Decode returned %+v with its error", tok)
			}
			if len(s) >= 16 && strings.Contains(err.Error(), s) {
				t.Fatalf("error echoes the input: %v", err)
			}
			return
		}
		for _, field := range []string{tok.Grants, tok.ClientID, tok.Username} {
			if !utf8.ValidString(field) {
				t.Fatalf("decoded field %q is not UTF-8", field)
			}
		}
		if tok.Expires.Location() != time.UTC || tok.Expires.Nanosecond() != 0 {
			t.Fatalf("Expires %v is not whole seconds in UTC", tok.Expires)
		}
		raw, err := base64.RawStdEncoding.DecodeString(s)
		if err != nil || len(raw) <= 32 {
			t.Fatalf("Decode accepted %q, which is not RawStd base64 of more than 32 bytes (%v)", s, err)
		}
		if want := payload(tok.Version, tok.Expires.Unix(), tok.Grants, tok.ClientID, tok.Username); !bytes.Equal(want, raw[:len(raw)-32]) {
			t.Fatalf("payload does not re-encode:\n got %x\nwant %x", raw[:len(raw)-32], want)
		}
		if canon := base64.RawStdEncoding.EncodeToString(raw); canon != s {
			t.Fatalf("Decode accepted %q, which is not the canonical encoding %q", s, canon)
		}
	})
}
