package token_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"git.sr.ht/~zozs/srht-registry/internal/token"
	"git.sr.ht/~zozs/srht-registry/internal/token/tokentest"
)

// TestSignJWS: a token for this server's own use carries alg, kid and the
// given typ and nothing else (no x5c, even when the key has a certificate),
// and its payload is made with the signing key's binding key.
func TestSignJWS(t *testing.T) {
	for _, kt := range tokentest.KeyTypes {
		t.Run(string(kt.Type), func(t *testing.T) {
			s := tokentest.Signer(t, kt.Type, 0)
			key := tokentest.NewKey(t, s, selfSign(t, s))
			var got []byte
			raw, err := key.SignJWS("test+jwt", func(bindingKey []byte) ([]byte, error) {
				got = bindingKey
				return []byte(`{"hello":"world"}`), nil
			})
			if err != nil {
				t.Fatal(err)
			}
			header, payload := parts(t, raw)
			if len(header) != 3 || unmarshal[string](t, header["alg"]) != kt.Alg || unmarshal[string](t, header["kid"]) != key.ID() ||
				unmarshal[string](t, header["typ"]) != "test+jwt" {
				t.Errorf("header = %s", header)
			}
			if unmarshal[string](t, payload["hello"]) != "world" {
				t.Errorf("payload = %s", payload)
			}
			if len(got) != 32 {
				t.Fatalf("binding key of %d bytes, want 32", len(got))
			}
			// The same key file loaded again has the same binding key; another
			// key has another.
			again, err := token.ParseKey(tokentest.PrivatePEM(t, s), nil)
			if err != nil {
				t.Fatal(err)
			}
			if b := bindingKeyOf(t, again); !bytes.Equal(b, got) {
				t.Error("the same key loaded twice has two binding keys")
			}
			if b := bindingKeyOf(t, tokentest.Key(t, kt.Type, 1)); bytes.Equal(b, got) {
				t.Error("two keys share a binding key")
			}

			// The signature verifies with the key, and only as signed.
			verify, bindingKey, known := key.Verifier(key.ID(), kt.Alg)
			if !known || verify == nil || !bytes.Equal(bindingKey, got) {
				t.Fatalf("Verifier(own kid) = %v, %x, %v", verify != nil, bindingKey, known)
			}
			input, sig := signingInput(t, raw)
			if !verify(input, sig) {
				t.Error("the signature does not verify")
			}
			if verify(append(bytes.Clone(input), 'x'), sig) {
				t.Error("a changed payload verifies")
			}
		})
	}
	// An error of the payload comes back as it is.
	boom := errors.New("boom")
	if _, err := tokentest.Key(t, token.KeyEC, 0).SignJWS("x", func([]byte) ([]byte, error) { return nil, boom }); !errors.Is(err, boom) || err.Error() != "boom" {
		t.Errorf("error = %v, want the payload's", err)
	}
}

func bindingKeyOf(t *testing.T, k *token.Key) []byte {
	t.Helper()
	var b []byte
	if _, err := k.SignJWS("x", func(bindingKey []byte) ([]byte, error) { b = bindingKey; return []byte("{}"), nil }); err != nil {
		t.Fatal(err)
	}
	return b
}

func signingInput(t *testing.T, raw string) (input, sig []byte) {
	t.Helper()
	i := strings.LastIndexByte(raw, '.')
	return []byte(raw[:i]), tokentest.DecodeSegment(t, raw[i+1:])
}

// TestKeyRingVerifier: the ring finds the signing key and every published
// key by kid, with its binding key only when its private half was
// published; the algorithm must be the key's.
func TestKeyRingVerifier(t *testing.T) {
	signing := tokentest.Key(t, token.KeyEC, 0)
	prevSigner := tokentest.Signer(t, token.KeyEd25519, 0)
	prev := tokentest.NewKey(t, prevSigner)
	oldSigner := tokentest.Signer(t, token.KeyRSA, 0)
	set, err := token.NewKeySet(signing, tokentest.ParsePublic(t, tokentest.PrivatePEM(t, prevSigner)), tokentest.ParsePublic(t, tokentest.PKIXPEM(t, oldSigner.Public())))
	if err != nil {
		t.Fatal(err)
	}
	ring := token.NewKeyRing(set)
	old := tokentest.NewKey(t, oldSigner)

	tok, err := ring.SignJWS("test+jwt", func([]byte) ([]byte, error) { return []byte("{}"), nil })
	if err != nil {
		t.Fatal(err)
	}
	if h, _ := parts(t, tok); unmarshal[string](t, h["kid"]) != signing.ID() {
		t.Errorf("the ring signs with %s, want the signing key", h["kid"])
	}
	for _, tc := range []struct {
		name        string
		key         *token.Key
		wantBinding bool
	}{
		{"signing key", signing, true},
		{"previous key, private half published", prev, true},
		{"old key, public half published", old, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			raw, err := tc.key.SignJWS("test+jwt", func([]byte) ([]byte, error) { return []byte("{}"), nil })
			if err != nil {
				t.Fatal(err)
			}
			verify, bindingKey, known := ring.Verifier(tc.key.ID(), tc.key.Algorithm().String())
			if !known || verify == nil {
				t.Fatalf("Verifier = %v, %v", verify != nil, known)
			}
			if (bindingKey != nil) != tc.wantBinding || (tc.wantBinding && !bytes.Equal(bindingKey, bindingKeyOf(t, tc.key))) {
				t.Errorf("binding key %x, want one: %v", bindingKey, tc.wantBinding)
			}
			if !verify(signingInput(t, raw)) {
				t.Error("the signature does not verify")
			}
			// Another algorithm than the key's finds the key but no verifier.
			if verify, _, known := ring.Verifier(tc.key.ID(), "HS256"); !known || verify != nil {
				t.Errorf("Verifier(HS256) = %v, %v; want known and nil", verify != nil, known)
			}
		})
	}
	for _, kid := range []string{"", "nope", tokentest.Key(t, token.KeyEC, 1).ID()} {
		if verify, bindingKey, known := ring.Verifier(kid, "ES256"); known || verify != nil || bindingKey != nil {
			t.Errorf("Verifier(%q) found a key", kid)
		}
	}
	// A lone key knows only itself.
	if _, _, known := signing.Verifier(prev.ID(), prev.Algorithm().String()); known {
		t.Error("a key finds another key")
	}
	// A signature by one key does not verify under another's kid.
	raw, err := prev.SignJWS("test+jwt", func([]byte) ([]byte, error) { return []byte("{}"), nil })
	if err != nil {
		t.Fatal(err)
	}
	verify, _, _ := ring.Verifier(signing.ID(), signing.Algorithm().String())
	if verify(signingInput(t, raw)) {
		t.Error("another key's signature verifies")
	}
}
