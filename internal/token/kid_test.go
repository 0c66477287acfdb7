package token

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"regexp"
	"strings"
	"testing"

	regtoken "github.com/distribution/distribution/v3/registry/auth/token"
)

// libtrustID is the shape of a libtrust key ID: 12 groups of 4 base32
// characters.
var libtrustID = regexp.MustCompile(`^[A-Z2-7]{4}(:[A-Z2-7]{4}){11}$`)

func TestKeyIDFormats(t *testing.T) {
	for _, kt := range []KeyType{KeyEC, KeyRSA} {
		signer, err := Generate(kt)
		if err != nil {
			t.Fatal(err)
		}
		k, err := NewKey(signer, nil, WithKeyIDFormat(KeyIDLibtrust))
		if err != nil {
			t.Fatal(err)
		}
		if !libtrustID.MatchString(k.ID()) {
			t.Errorf("%s: kid %q is not a libtrust key ID", kt, k.ID())
		}
		// The jwks that `keys` writes carries the same kid, so a 3.x
		// registry finds it there.
		set, err := JWKS(k)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(set), `"kid": "`+k.ID()+`"`) {
			t.Errorf("%s: jwks lacks kid %s:\n%s", kt, k.ID(), set)
		}
		// A published key parsed from the same PEM gets the same kid.
		pemKey, err := EncodePrivateKey(signer)
		if err != nil {
			t.Fatal(err)
		}
		pub, err := ParsePublicKey(pemKey, WithKeyIDFormat(KeyIDLibtrust))
		if err != nil || pub.ID() != k.ID() {
			t.Errorf("%s: published kid %v (%v), want %s", kt, pub, err, k.ID())
		}
		thumb, err := NewKey(signer, nil)
		if err != nil || thumb.ID() == k.ID() || libtrustID.MatchString(thumb.ID()) {
			t.Errorf("%s: the default kid should be the RFC 7638 thumbprint, got %q", kt, thumb.ID())
		}
		auto, err := NewKey(signer, nil, WithKeyIDFormat(KeyIDAuto))
		if err != nil || auto.ID() != k.ID() {
			t.Errorf("%s: auto kid %q, want the libtrust one", kt, auto.ID())
		}
	}
	ed, err := Generate(KeyEd25519)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewKey(ed, nil, WithKeyIDFormat(KeyIDLibtrust)); err == nil || !strings.Contains(err.Error(), "EC and RSA") {
		t.Errorf("libtrust kid for Ed25519: %v", err)
	}
	if auto, err := NewKey(ed, nil, WithKeyIDFormat(KeyIDAuto)); err != nil || libtrustID.MatchString(auto.ID()) {
		t.Errorf("auto kid for Ed25519: %v %v", auto, err)
	}
}

// TestLibtrustKeyIDKnownAnswer checks our libtrust key ID against the one
// docker/libtrust itself computes (what distribution 2.8 uses) for a fixed
// P-256 key, the curve's generator point: the answer below was printed by
// libtrust.FromCryptoPublicKey(pub).KeyID() at libtrust aabc10ec26b7.
func TestLibtrustKeyIDKnownAnswer(t *testing.T) {
	params := elliptic.P256().Params()
	point := append([]byte{4}, append(params.Gx.FillBytes(make([]byte, 32)), params.Gy.FillBytes(make([]byte, 32))...)...)
	pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), point)
	if err != nil {
		t.Fatal(err)
	}
	got, err := LibtrustKeyID(pub)
	if err != nil {
		t.Fatal(err)
	}
	const want = "LTJF:F6YM:5CJS:INX2:7DGN:CBAJ:QG4J:5ZFN:NOP6:TYVC:W7TR:VLFS"
	if got != want {
		t.Fatalf("LibtrustKeyID = %s, want %s", got, want)
	}
}

// TestRegistryThumbprint checks the thumbprint format against distribution
// 3.x's own GetJWKThumbprint, over enough keys to hit the ~1 % whose EC
// coordinates have a leading zero byte (where it differs from RFC 7638).
func TestRegistryThumbprint(t *testing.T) {
	differs := 0
	for i := range 300 {
		kt := KeyEC
		if i%100 == 0 {
			kt = KeyEd25519
		}
		signer, err := Generate(kt)
		if err != nil {
			t.Fatal(err)
		}
		k, err := NewKey(signer, nil, WithKeyIDFormat(KeyIDThumbprint))
		if err != nil {
			t.Fatal(err)
		}
		if want := regtoken.GetJWKThumbprint(signer.Public()); k.ID() != want {
			t.Fatalf("%s key %d: kid %s, distribution computes %s", kt, i, k.ID(), want)
		}
		rfc, _ := NewKey(signer, nil)
		if rfc.ID() != k.ID() {
			differs++
		}
	}
	t.Logf("%d of 300 keys have a registry thumbprint that differs from RFC 7638", differs)
	rsaKey, err := Generate(KeyRSA)
	if err != nil {
		t.Fatal(err)
	}
	k, err := NewKey(rsaKey, nil, WithKeyIDFormat(KeyIDThumbprint))
	if err != nil || k.ID() != regtoken.GetJWKThumbprint(rsaKey.Public()) {
		t.Fatalf("RSA: %v %v", k, err)
	}
}
