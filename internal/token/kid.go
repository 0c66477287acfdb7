package token

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base32"
	"encoding/base64"
	"errors"
	"fmt"
	"math/big"
	"strings"

	"github.com/lestrrat-go/jwx/v2/jwk"
)

// KeyIDFormat says how a key's kid is made. Registries look a token's kid
// up differently: distribution 3.x in its jwks file (any kid, as long as the
// file has it), 2.8 among the libtrust key IDs of its rootcertbundle's keys.
type KeyIDFormat string

const (
	// KeyIDAuto is a kid both registry versions accept with the files
	// `keys` writes: libtrust for EC and RSA keys (a 3.x registry finds it
	// in jwks.json, 2.8 derives it from rootcertbundle), the JWKS
	// thumbprint for Ed25519 (which 2.8 cannot verify at all). With a
	// certificate configured, tokens also carry x5c, which both check first.
	KeyIDAuto KeyIDFormat = "auto"
	// KeyIDJWKS is the RFC 7638 SHA-256 thumbprint, base64url: the kid in
	// the jwks.json that `keys` writes (distribution 3.x's `jwks` option).
	KeyIDJWKS KeyIDFormat = "jwks"
	// KeyIDThumbprint is the thumbprint distribution 3.x computes for the
	// keys of its rootcertbundle when it has no jwks file. It is RFC 7638's
	// except that EC coordinates are not zero-padded, so it differs for
	// about 1 % of P-256 keys (3.0.0 and 3.1 agree on this form).
	KeyIDThumbprint KeyIDFormat = "thumbprint"
	// KeyIDLibtrust is docker/libtrust's key ID: SHA-256 of the DER public
	// key, the first 240 bits in base32, in twelve groups of four. A 3.x
	// registry finds it in the jwks file `keys` writes, and 2.8 derives
	// the same ID from the key in rootcertbundle, so it works on both.
	KeyIDLibtrust KeyIDFormat = "libtrust"
)

// KeyOption adjusts NewKey, ParseKey and ParsePublicKey.
type KeyOption func(*keyOptions)

type keyOptions struct{ kid KeyIDFormat }

// WithKeyIDFormat chooses the kid format (KeyIDJWKS by default).
func WithKeyIDFormat(f KeyIDFormat) KeyOption { return func(o *keyOptions) { o.kid = f } }

func applyKeyOptions(opts []KeyOption) keyOptions {
	o := keyOptions{kid: KeyIDJWKS}
	for _, opt := range opts {
		opt(&o)
	}
	return o
}

// keyID computes the kid of a public key in the given format.
func keyID(public jwk.Key, raw crypto.PublicKey, f KeyIDFormat) (string, error) {
	if f == KeyIDAuto {
		f = KeyIDLibtrust
		if _, ok := raw.(ed25519.PublicKey); ok {
			f = KeyIDJWKS
		}
	}
	switch f {
	case KeyIDJWKS, "":
		thumb, err := public.Thumbprint(crypto.SHA256)
		if err != nil {
			return "", fmt.Errorf("key thumbprint: %w", err)
		}
		return base64.RawURLEncoding.EncodeToString(thumb), nil
	case KeyIDThumbprint:
		return registryThumbprint(raw)
	case KeyIDLibtrust:
		return LibtrustKeyID(raw)
	default:
		return "", fmt.Errorf("unknown kid format %q (want auto, jwks, thumbprint or libtrust)", f)
	}
}

// LibtrustKeyID is the key ID docker/libtrust (and so distribution 2.8)
// gives a public key. libtrust knows EC and RSA keys only.
func LibtrustKeyID(pub crypto.PublicKey) (string, error) {
	if _, ok := pub.(ed25519.PublicKey); ok {
		return "", errors.New("libtrust key IDs exist for EC and RSA keys only (registry 2.8 cannot verify Ed25519)")
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return "", fmt.Errorf("libtrust key ID: %w", err)
	}
	sum := sha256.Sum256(der)
	s := strings.TrimRight(base32.StdEncoding.EncodeToString(sum[:30]), "=")
	var b bytes.Buffer
	for i := 0; i < len(s); i += 4 {
		if i > 0 {
			b.WriteByte(':')
		}
		b.WriteString(s[i:min(i+4, len(s))])
	}
	return b.String(), nil
}

// registryThumbprint is distribution 3.x's GetJWKThumbprint: the RFC 7638
// members in order, but big-endian coordinates without leading zeros.
func registryThumbprint(pub crypto.PublicKey) (string, error) {
	var members string
	switch k := pub.(type) {
	case *rsa.PublicKey:
		e := base64.RawURLEncoding.EncodeToString(big.NewInt(int64(k.E)).Bytes())
		n := base64.RawURLEncoding.EncodeToString(k.N.Bytes())
		members = fmt.Sprintf(`{"e":"%s","kty":"RSA","n":"%s"}`, e, n)
	case *ecdsa.PublicKey:
		// The uncompressed point is 0x04 || X || Y, each coordinate
		// padded to the curve's size; distribution drops the padding.
		point, err := k.Bytes()
		if err != nil {
			return "", fmt.Errorf("EC public key: %w", err)
		}
		size := (len(point) - 1) / 2
		x := base64.RawURLEncoding.EncodeToString(bytes.TrimLeft(point[1:1+size], "\x00"))
		y := base64.RawURLEncoding.EncodeToString(bytes.TrimLeft(point[1+size:], "\x00"))
		members = fmt.Sprintf(`{"crv":"%s","kty":"EC","x":"%s","y":"%s"}`, k.Params().Name, x, y)
	case ed25519.PublicKey:
		members = fmt.Sprintf(`{"crv":"Ed25519","kty":"OKP","x":"%s"}`, base64.RawURLEncoding.EncodeToString(k))
	default:
		return "", fmt.Errorf("no registry thumbprint for %T", pub)
	}
	sum := sha256.Sum256([]byte(members))
	return base64.RawURLEncoding.EncodeToString(sum[:]), nil
}
