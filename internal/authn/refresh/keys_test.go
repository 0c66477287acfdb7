package refresh_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"reflect"
	"testing"
	"time"

	"git.sr.ht/~zozs/srht-registry/internal/authn/refresh"
	"git.sr.ht/~zozs/srht-registry/internal/identity"
	"git.sr.ht/~zozs/srht-registry/internal/token"
	"git.sr.ht/~zozs/srht-registry/internal/token/tokentest"
)

// TestRefreshAcrossReplicas: every process that loads the same key file, in
// any encoding, accepts the others' refresh tokens (the binding key is
// derived from the key, not made up per process).
func TestRefreshAcrossReplicas(t *testing.T) {
	for _, kt := range tokentest.KeyTypes {
		t.Run(string(kt.Type), func(t *testing.T) {
			c := newClock()
			table := hashes{"alice": aliceHash}
			s := tokentest.Signer(t, kt.Type, 0)
			var replicas []*refresh.Tokens
			for form, data := range pemForms(t, s) {
				k, err := token.ParseKey(data, nil)
				if err != nil {
					t.Fatalf("%s: %v", form, err)
				}
				replicas = append(replicas, newRefresher(k, table, c))
			}
			replicas = append(replicas, newRefresher(tokentest.NewKey(t, s), table, c))
			for i, a := range replicas {
				tok := issue(t, a, alice)
				for j, b := range replicas {
					if _, err := b.Redeem(context.Background(), refreshCred(tok)); err != nil {
						t.Errorf("issued by replica %d, refused by replica %d: %v", i, j, err)
					}
				}
			}
		})
	}
}

// TestRefreshKeyRotation: refresh tokens survive a rotation while the key
// that signed them is published; a password user's only while its private
// half is (the binding cannot be checked without it).
func TestRefreshKeyRotation(t *testing.T) {
	c := newClock()
	table := hashes{"alice": aliceHash}
	oldSigner := tokentest.Signer(t, token.KeyEC, 0)
	oldKey := tokentest.NewKey(t, oldSigner)
	newK := tokentest.Key(t, token.KeyEC, 1)
	ring := keyRing(oldKey)
	r := &refresh.Tokens{Issuer: tokentest.Issuer, TTL: refreshTTL, Keys: ring, Passwords: table, Now: c.Now}
	pw := issue(t, r, alice)
	sh := issue(t, r, sourcehutID("RW", c.Now().Add(time.Hour)))
	ctx := context.Background()
	rotate := func(published ...*token.PublicKey) {
		set, err := token.NewKeySet(newK, published...)
		if err != nil {
			t.Fatal(err)
		}
		ring.Swap(set)
	}

	// The documented rotation: the old key file listed in published_keys.
	rotate(tokentest.ParsePublic(t, tokentest.PrivatePEM(t, oldSigner)))
	for name, tok := range map[string]identity.Secret{"password": pw, "sourcehut": sh} {
		if _, err := r.Redeem(ctx, refreshCred(tok)); err != nil {
			t.Errorf("%s token after rotation with the old private key published: %v", name, err)
		}
	}
	if h, _ := decode(t, issue(t, r, alice).Reveal()); h["kid"] != newK.ID() {
		t.Errorf("new refresh tokens are signed by %v, want the new key %s", h["kid"], newK.ID())
	}

	// Only the old public key published: Sourcehut tokens still verify,
	// password bindings cannot be checked.
	rotate(tokentest.ParsePublic(t, tokentest.PKIXPEM(t, oldSigner.Public())))
	if _, err := r.Redeem(ctx, refreshCred(sh)); err != nil {
		t.Errorf("sourcehut token with the old public key published: %v", err)
	}
	id, err := r.Redeem(ctx, refreshCred(pw))
	wantRefused(t, pw, id, err, "private half")

	// The old key retired: both are gone.
	rotate()
	for _, tok := range []identity.Secret{pw, sh} {
		id, err := r.Redeem(ctx, refreshCred(tok))
		wantRefused(t, tok, id, err, "no longer publishes")
	}
}

// TestRefreshWireFormat pins the format of the refresh tokens already out
// there, so that they keep redeeming whatever the code becomes: a JWS of typ
// refresh+jwt under the signing key's kid, aud "<service>#refresh", and for
// a password login an htpasswd_binding that is the base64url HMAC-SHA256 of
// len(user) (4 bytes, big-endian) || user || hash, keyed by HKDF-SHA256 of
// the private key's secret ("ecdsa:" scalar, "ed25519:" seed, "rsa:" private
// exponent) with the label "srht-registry refresh token htpasswd binding v1".
// Issue binds exactly so, and a token made by hand to the recipe redeems.
func TestRefreshWireFormat(t *testing.T) {
	if got := refresh.Audience(tokentest.Audience); got != tokentest.Audience+"#refresh" {
		t.Errorf("Audience = %q", got)
	}
	for _, kt := range tokentest.KeyTypes {
		t.Run(string(kt.Type), func(t *testing.T) {
			s := tokentest.Signer(t, kt.Type, 0)
			var secret []byte
			switch k := s.(type) {
			case *ecdsa.PrivateKey:
				d, err := k.Bytes()
				if err != nil {
					t.Fatal(err)
				}
				secret = append([]byte("ecdsa:"), d...)
			case ed25519.PrivateKey:
				secret = append([]byte("ed25519:"), k.Seed()...)
			case *rsa.PrivateKey:
				secret = append([]byte("rsa:"), k.D.Bytes()...)
			default:
				t.Fatalf("key type %T", s)
			}
			bindingKey, err := hkdf.Key(sha256.New, secret, nil, "srht-registry refresh token htpasswd binding v1", sha256.Size)
			if err != nil {
				t.Fatal(err)
			}
			mac := hmac.New(sha256.New, bindingKey)
			mac.Write(binary.BigEndian.AppendUint32(nil, uint32(len("alice"))))
			mac.Write([]byte("alice"))
			mac.Write([]byte(aliceHash))
			binding := base64.RawURLEncoding.EncodeToString(mac.Sum(nil))

			c := newClock()
			key := tokentest.NewKey(t, s)
			r := newRefresher(key, hashes{"alice": aliceHash}, c)
			if _, claims := decode(t, issue(t, r, alice).Reveal()); claims["htpasswd_binding"] != binding {
				t.Errorf("htpasswd_binding = %v, want %s", claims["htpasswd_binding"], binding)
			}

			now := c.Now().Unix()
			byHand := signAs(t, s, key.Algorithm(),
				map[string]any{"alg": kt.Alg, "kid": key.ID(), "typ": "refresh+jwt"},
				map[string]any{
					"iss": tokentest.Issuer, "sub": "alice", "aud": tokentest.Audience + "#refresh", "token_use": "refresh",
					"service": tokentest.Audience, "method": "password", "provider": "htpasswd", "client_id": "docker",
					"iat": now, "exp": now + 3600, "jti": "made-by-hand", "htpasswd_binding": binding,
				})
			id, err := r.Redeem(context.Background(), refreshCred(byHand))
			if err != nil {
				t.Fatalf("a token made to the recipe is refused: %v", err)
			}
			want := identity.Identity{Method: identity.MethodRefresh, RefreshedFrom: identity.MethodPassword, Provider: identity.ProviderHtpasswd, Subject: "alice"}
			if !reflect.DeepEqual(id, want) {
				t.Errorf("identity = %+v, want %+v", id, want)
			}
		})
	}
}
