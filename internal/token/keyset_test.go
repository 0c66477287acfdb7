package token_test

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	regtoken "github.com/distribution/distribution/v3/registry/auth/token"
	"github.com/go-jose/go-jose/v4"

	"git.sr.ht/~zozs/srht-registry/internal/token"
	"git.sr.ht/~zozs/srht-registry/internal/token/tokentest"
)

// TestParsePublicKey: every form a key file can take gives the kid the key
// has while it signs, so tokens it signed stay verifiable once it is only
// published.
func TestParsePublicKey(t *testing.T) {
	for _, kt := range tokentest.KeyTypes {
		s := tokentest.Signer(t, kt.Type, 0)
		want := tokentest.NewKey(t, s)
		leaf := selfSign(t, s)
		otherCert := selfSign(t, tokentest.Signer(t, kt.Type, 1))
		forms := []struct {
			name string
			pem  []byte
		}{
			{"PKCS#8 private key", tokentest.PrivatePEM(t, s)},
			{"PKIX public key", tokentest.PKIXPEM(t, s.Public())},
			{"certificate", token.EncodeCertificate(leaf)},
			{"certificate chain, leaf first", append(token.EncodeCertificate(leaf), token.EncodeCertificate(otherCert)...)},
			{"certificate then its private key", append(token.EncodeCertificate(otherCert), tokentest.PrivatePEM(t, s)...)},
			{"private key then a certificate", append(tokentest.PrivatePEM(t, s), token.EncodeCertificate(otherCert)...)},
		}
		switch k := s.(type) {
		case *ecdsa.PrivateKey:
			der, err := x509.MarshalECPrivateKey(k)
			if err != nil {
				t.Fatal(err)
			}
			forms = append(forms, struct {
				name string
				pem  []byte
			}{"SEC 1 EC private key", pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der})})
		case *rsa.PrivateKey:
			forms = append(forms,
				struct {
					name string
					pem  []byte
				}{"PKCS#1 RSA private key", pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k)})},
				struct {
					name string
					pem  []byte
				}{"PKCS#1 RSA public key", pem.EncodeToMemory(&pem.Block{Type: "RSA PUBLIC KEY", Bytes: x509.MarshalPKCS1PublicKey(&k.PublicKey)})})
		}
		for _, f := range forms {
			t.Run(string(kt.Type)+"/"+f.name, func(t *testing.T) {
				p := tokentest.ParsePublic(t, f.pem)
				if p.ID() != want.ID() {
					t.Errorf("kid %q, want the signing kid %q", p.ID(), want.ID())
				}
				if p.Algorithm() != want.Algorithm() {
					t.Errorf("alg %s, want %s", p.Algorithm(), want.Algorithm())
				}
				if got := want.PublicKey(); got.ID() != p.ID() || got.Algorithm() != p.Algorithm() {
					t.Errorf("Key.PublicKey() = %s/%s, want %s/%s", got.ID(), got.Algorithm(), p.ID(), p.Algorithm())
				}
			})
		}
	}
}

func TestParsePublicKeyRefuses(t *testing.T) {
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	rsa1024, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	garbageBody := "c2VjcmV0LWtleS1tYXRlcmlhbC10aGF0LW11c3Qtbm90LWxlYWs="
	tests := []struct {
		name    string
		pem     []byte
		wantMsg string
	}{
		{"empty", nil, "no PEM"},
		{"not PEM", []byte("hello, this is not a key at all"), "no PEM"},
		{"only EC parameters", pem.EncodeToMemory(&pem.Block{Type: "EC PARAMETERS", Bytes: prime256v1OID}), "no PEM"},
		{"garbage private key", []byte("-----BEGIN PRIVATE KEY-----\n" + garbageBody + "\n-----END PRIVATE KEY-----\n"), "key"},
		{"garbage public key", []byte("-----BEGIN PUBLIC KEY-----\n" + garbageBody + "\n-----END PUBLIC KEY-----\n"), "key"},
		{"garbage certificate", []byte("-----BEGIN CERTIFICATE-----\n" + garbageBody + "\n-----END CERTIFICATE-----\n"), "certificate"},
		{"EC P-384 public key", tokentest.PKIXPEM(t, p384.Public()), "P-384"},
		{"EC P-384 private key", tokentest.PrivatePEM(t, p384), "P-384"},
		{"RSA 1024 public key", tokentest.PKIXPEM(t, rsa1024.Public()), "1024"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := token.ParsePublicKey(tt.pem)
			if err == nil {
				t.Fatalf("ParsePublicKey accepted it (kid %s)", p.ID())
			}
			msg := err.Error()
			if !strings.Contains(msg, tt.wantMsg) {
				t.Errorf("error %q does not mention %q", msg, tt.wantMsg)
			}
			if quotesInput(msg, tt.pem, 8) {
				t.Errorf("error %q quotes its input", msg)
			}
		})
	}
}

// quotesInput reports whether msg holds a line of in (beyond PEM armour)
// or its first n characters.
func quotesInput(msg string, in []byte, n int) bool {
	for _, line := range bytes.Split(in, []byte("\n")) {
		l := string(bytes.TrimSpace(line))
		if len(l) < n || strings.HasPrefix(l, "-----") {
			continue
		}
		if strings.Contains(msg, l) || strings.Contains(msg, l[:n]) {
			return true
		}
	}
	return false
}

func TestContainsPrivateKey(t *testing.T) {
	s := tokentest.Signer(t, token.KeyEC, 0)
	der, err := x509.MarshalECPrivateKey(s.(*ecdsa.PrivateKey))
	if err != nil {
		t.Fatal(err)
	}
	cert := token.EncodeCertificate(selfSign(t, s))
	tests := []struct {
		name string
		pem  []byte
		want bool
	}{
		{"empty", nil, false},
		{"not PEM", []byte("PRIVATE KEY"), false},
		{"PKCS#8", tokentest.PrivatePEM(t, s), true},
		{"SEC 1", pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}), true},
		{"encrypted PKCS#8", pem.EncodeToMemory(&pem.Block{Type: "ENCRYPTED PRIVATE KEY", Bytes: []byte{1}}), true},
		{"public key", tokentest.PKIXPEM(t, s.Public()), false},
		{"certificate", cert, false},
		{"certificate then private key", append(cert, tokentest.PrivatePEM(t, s)...), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := token.ContainsPrivateKey(tt.pem); got != tt.want {
				t.Errorf("ContainsPrivateKey = %v, want %v", got, tt.want)
			}
		})
	}
}

// trustedFromJWKS builds a registry's TrustedKeys from raw JWKS bytes, as
// distribution does from its `jwks` file.
func trustedFromJWKS(t *testing.T, raw []byte) (map[string]crypto.PublicKey, []string) {
	t.Helper()
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(raw, &set); err != nil {
		t.Fatalf("go-jose cannot read the JWKS: %v\n%s", err, raw)
	}
	trusted := map[string]crypto.PublicKey{}
	var kids []string
	for _, k := range set.Keys {
		if !k.IsPublic() {
			t.Errorf("JWKS key %s is not public", k.KeyID)
		}
		trusted[k.KeyID] = k.Public().Key
		kids = append(kids, k.KeyID)
	}
	return trusted, kids
}

func verify(raw string, trusted map[string]crypto.PublicKey) error {
	tok, err := regtoken.NewToken(raw, registryAlgs)
	if err != nil {
		return err
	}
	_, err = tok.Verify(regtoken.VerifyOptions{TrustedIssuers: []string{tokentest.Issuer}, AcceptedAudiences: []string{tokentest.Audience}, TrustedKeys: trusted})
	return err
}

func TestKeySet(t *testing.T) {
	current := tokentest.Key(t, token.KeyEC, 0)
	previous := tokentest.Key(t, token.KeyRSA, 0)
	next := tokentest.Signer(t, token.KeyEd25519, 0)
	tests := []struct {
		name      string
		published []*token.PublicKey
		wantKids  []string
	}{
		{"signing key only", nil, []string{current.ID()}},
		{"previous and next", []*token.PublicKey{previous.PublicKey(), tokentest.ParsePublic(t, tokentest.PKIXPEM(t, next.Public()))},
			[]string{current.ID(), previous.ID(), tokentest.NewKey(t, next).ID()}},
		{"duplicates and the signing key itself are dropped",
			[]*token.PublicKey{current.PublicKey(), previous.PublicKey(), tokentest.ParsePublic(t, tokentest.PrivatePEM(t, tokentest.Signer(t, token.KeyRSA, 0))), tokentest.ParsePublic(t, token.EncodeCertificate(selfSign(t, tokentest.Signer(t, token.KeyEC, 0))))},
			[]string{current.ID(), previous.ID()}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			set, err := token.NewKeySet(current, tt.published...)
			if err != nil {
				t.Fatal(err)
			}
			if set.Signing() != current {
				t.Error("Signing() is not the signing key")
			}
			if !slices.Equal(set.KeyIDs(), tt.wantKids) {
				t.Errorf("KeyIDs() = %q, want %q", set.KeyIDs(), tt.wantKids)
			}
			if len(set.Published()) != len(tt.wantKids)-1 {
				t.Errorf("%d published keys, want %d", len(set.Published()), len(tt.wantKids)-1)
			}
			trusted, kids := trustedFromJWKS(t, set.JWKS())
			if !slices.Equal(kids, tt.wantKids) {
				t.Errorf("JWKS kids = %q, want %q", kids, tt.wantKids)
			}
			if err := verify(mint(t, current, "alice", tokentest.Grant), trusted); err != nil {
				t.Errorf("a token of the signing key does not verify: %v", err)
			}
			// A previous key's tokens verify exactly when it is published.
			err = verify(mint(t, previous, "alice", tokentest.Grant), trusted)
			if published := slices.Contains(tt.wantKids, previous.ID()); published != (err == nil) {
				t.Errorf("previous key published %v, its token verifies with error %v", published, err)
			}
		})
	}
	if _, err := token.NewKeySet(nil); err == nil {
		t.Error("NewKeySet(nil) succeeded")
	}
}

// TestKeyRingRotation: a Minter reading a KeyRing signs with whatever key
// is current, and every token minted while the ring swaps, on any
// goroutine, verifies against a JWKS that lists both keys.
func TestKeyRingRotation(t *testing.T) {
	old := tokentest.Key(t, token.KeyEC, 0)
	next := tokentest.Key(t, token.KeyEC, 1)
	before, err := token.NewKeySet(old, next.PublicKey())
	if err != nil {
		t.Fatal(err)
	}
	after, err := token.NewKeySet(next, old.PublicKey())
	if err != nil {
		t.Fatal(err)
	}
	ring := token.NewKeyRing(before)
	m := &token.Minter{Issuer: tokentest.Issuer, TTL: tokentest.TTL, Keys: ring, Key: tokentest.Key(t, token.KeyEd25519, 0), Now: time.Now}
	kidOf := func(raw string) string {
		header, _ := parts(t, raw)
		return unmarshal[string](t, header["kid"])
	}
	mintOne := func() string {
		tok, err := m.Mint("alice", tokentest.Audience, tokentest.Grant)
		if err != nil {
			t.Fatal(err)
		}
		return tok.Signed
	}
	if kid := kidOf(mintOne()); kid != old.ID() {
		t.Fatalf("kid %q before the swap, want the old key %q (Keys wins over Key)", kid, old.ID())
	}
	if string(ring.JWKS()) != string(before.JWKS()) {
		t.Error("ring JWKS is not the current set's")
	}

	trusted, _ := trustedFromJWKS(t, after.JWKS())
	var wg sync.WaitGroup
	tokens := make(chan string, 4*200)
	for range 4 {
		wg.Go(func() {
			for range 200 {
				tok, err := m.Mint("alice", tokentest.Audience, tokentest.Grant)
				if err != nil {
					t.Error(err)
					return
				}
				tokens <- tok.Signed
			}
		})
	}
	if prev := ring.Swap(after); prev != before {
		t.Error("Swap did not return the previous set")
	}
	wg.Wait()
	close(tokens)
	for raw := range tokens {
		if err := verify(raw, trusted); err != nil {
			t.Fatalf("a token minted during the swap (kid %s) does not verify: %v", kidOf(raw), err)
		}
	}
	if kid := kidOf(mintOne()); kid != next.ID() {
		t.Fatalf("kid %q after the swap, want the new key %q", kid, next.ID())
	}
	if string(ring.JWKS()) != string(after.JWKS()) {
		t.Error("ring JWKS did not follow the swap")
	}
}

// FuzzParsePublicKey: ParsePublicKey never panics, and a refusal never
// quotes its input.
func FuzzParsePublicKey(f *testing.F) {
	s, err := token.Generate(token.KeyEC)
	if err != nil {
		f.Fatal(err)
	}
	keyPEM, err := token.EncodePrivateKey(s)
	if err != nil {
		f.Fatal(err)
	}
	c, err := token.SelfSign(s, "fuzz", time.Hour, time.Now())
	if err != nil {
		f.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(s.Public())
	if err != nil {
		f.Fatal(err)
	}
	f.Add(keyPEM)
	f.Add(token.EncodeCertificate(c))
	f.Add(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
	f.Add([]byte("-----BEGIN RSA PUBLIC KEY-----\nAAAA\n-----END RSA PUBLIC KEY-----\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := token.ParsePublicKey(data)
		if err == nil {
			if p.ID() == "" {
				t.Fatal("accepted a key without a kid")
			}
			return
		}
		msg := err.Error()
		for _, line := range bytes.Split(data, []byte("\n")) {
			l := string(bytes.TrimSpace(line))
			if len(l) >= 16 && !strings.HasPrefix(l, "-----") && strings.Contains(msg, l) {
				t.Fatalf("error %q quotes the input line %q", msg, l)
			}
		}
	})
}
