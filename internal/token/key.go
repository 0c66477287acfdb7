package token

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"time"

	"github.com/lestrrat-go/jwx/v2/cert"
	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"
)

// Key is a private signing key with its algorithm, key ID and, when a
// certificate was configured, the chain sent as x5c.
type Key struct {
	private jwk.Key // carries kid and alg
	public  jwk.Key
	alg     jwa.SignatureAlgorithm
	certs   []*x509.Certificate
	chain   *cert.Chain

	// The JWS protected header is the same for every token of this key:
	// it is serialised once, and each token only signs header.payload.
	raw       crypto.Signer
	signer    jws.Signer
	headerB64 string
	// verifier checks the key's own signatures (Verifier).
	verifier jws.Verifier
	// bindingKey is derived from the private key (deriveBindingKey): the
	// same wherever the key file is loaded, unknown to anyone without it.
	bindingKey []byte
}

// KeyType names the kinds of key `keys` can generate.
type KeyType string

const (
	KeyEC      KeyType = "ec"
	KeyRSA     KeyType = "rsa"
	KeyEd25519 KeyType = "ed25519"
)

// Generate makes a new private key of the given type.
func Generate(t KeyType) (crypto.Signer, error) {
	switch t {
	case KeyEC, "":
		return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case KeyRSA:
		return rsa.GenerateKey(rand.Reader, 2048)
	case KeyEd25519:
		_, k, err := ed25519.GenerateKey(rand.Reader)
		return k, err
	default:
		return nil, fmt.Errorf("unknown key type %q (want ec, rsa or ed25519)", t)
	}
}

// NewKey wraps a private key; certs, if any, are its certificate chain
// (leaf first), whose leaf must hold the key's public half.
func NewKey(signer crypto.Signer, certs []*x509.Certificate, opts ...KeyOption) (*Key, error) {
	o := applyKeyOptions(opts)
	alg, err := algorithmFor(signer)
	if err != nil {
		return nil, err
	}
	private, err := jwk.FromRaw(signer)
	if err != nil {
		return nil, fmt.Errorf("private key: %w", err)
	}
	// The public JWK is built as a published key's is, so a key keeps its
	// kid when it moves from signing to published_keys.
	public, err := newPublicKey(signer.Public(), o.kid)
	if err != nil {
		return nil, err
	}
	// The RFC 7638 thumbprint is stable across restarts and computable by
	// anyone holding the public key, which makes it a good kid.
	kid := public.ID()
	if err := private.Set(jwk.KeyIDKey, kid); err != nil {
		return nil, err
	}
	if err := private.Set(jwk.AlgorithmKey, alg); err != nil {
		return nil, err
	}
	k := &Key{private: private, public: public.public, alg: alg, raw: signer, verifier: public.verifier}
	if k.signer, err = jws.NewSigner(alg); err != nil {
		return nil, err
	}
	if len(certs) > 0 {
		if !publicKeyEqual(certs[0].PublicKey, signer.Public()) {
			return nil, errors.New("certificate does not match the private key")
		}
		k.certs = certs
		k.chain = &cert.Chain{}
		for _, c := range certs {
			if err := k.chain.AddString(base64.StdEncoding.EncodeToString(c.Raw)); err != nil {
				return nil, fmt.Errorf("certificate chain: %w", err)
			}
		}
	}
	if k.headerB64, err = encodeHeader(alg, kid, "JWT", k.chain); err != nil {
		return nil, err
	}
	if k.bindingKey, err = deriveBindingKey(signer); err != nil {
		return nil, err
	}
	return k, nil
}

// encodeHeader serialises a JWS protected header, base64url-encoded.
func encodeHeader(alg jwa.SignatureAlgorithm, kid, typ string, chain *cert.Chain) (string, error) {
	headers := jws.NewHeaders()
	for name, value := range map[string]any{jws.AlgorithmKey: alg, jws.KeyIDKey: kid, jws.TypeKey: typ} {
		if err := headers.Set(name, value); err != nil {
			return "", err
		}
	}
	if chain != nil {
		if err := headers.Set(jws.X509CertChainKey, chain); err != nil {
			return "", err
		}
	}
	encoded, err := json.Marshal(headers)
	if err != nil {
		return "", fmt.Errorf("JWS header: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(encoded), nil
}

func publicKeyEqual(a, b crypto.PublicKey) bool {
	ea, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && ea.Equal(b)
}

func algorithmFor(signer crypto.Signer) (jwa.SignatureAlgorithm, error) {
	switch signer.(type) {
	case *ecdsa.PrivateKey, *rsa.PrivateKey, ed25519.PrivateKey:
		return algorithmForPublic(signer.Public())
	default:
		return "", fmt.Errorf("unsupported key type %T (want EC P-256, RSA or Ed25519)", signer)
	}
}

// algorithmForPublic is the JWS algorithm a public key verifies, for the
// kinds of key this package signs with.
func algorithmForPublic(pub crypto.PublicKey) (jwa.SignatureAlgorithm, error) {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() {
			return "", fmt.Errorf("EC key on curve %s: only P-256 (ES256) is supported", k.Curve.Params().Name)
		}
		return jwa.ES256, nil
	case *rsa.PublicKey:
		if k.N.BitLen() < 2048 {
			return "", fmt.Errorf("RSA key of %d bits: at least 2048 are required", k.N.BitLen())
		}
		return jwa.RS256, nil
	case ed25519.PublicKey:
		return jwa.EdDSA, nil
	default:
		return "", fmt.Errorf("unsupported key type %T (want EC P-256, RSA or Ed25519)", pub)
	}
}

// ParseKey reads a PEM private key (PKCS#8, SEC 1 EC or PKCS#1 RSA) and, if
// certPEM is not empty, its certificate chain.
func ParseKey(keyPEM, certPEM []byte, opts ...KeyOption) (*Key, error) {
	// `openssl ecparam -genkey` writes an EC PARAMETERS block before the
	// key; jwk.ParseKey reads only the first block, so hand it the key's.
	var keyBlock []byte
	for rest := keyPEM; len(rest) > 0; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if strings.HasSuffix(block.Type, "PRIVATE KEY") || strings.HasSuffix(block.Type, "PUBLIC KEY") {
			keyBlock = pem.EncodeToMemory(block)
			break
		}
	}
	if keyBlock == nil {
		return nil, errors.New("private key: no PEM private key block found")
	}
	parsed, err := jwk.ParseKey(keyBlock, jwk.WithPEM(true))
	if err != nil {
		// The error text of a PEM parser can quote input; say only what failed.
		return nil, errors.New("private key: not a PEM-encoded EC, RSA or Ed25519 private key")
	}
	var raw any
	if err := parsed.Raw(&raw); err != nil {
		return nil, errors.New("private key: cannot be used")
	}
	signer, ok := raw.(crypto.Signer)
	if !ok {
		return nil, errors.New("private key: the PEM holds a public key, not a private one")
	}
	if ed, ok := raw.(ed25519.PrivateKey); ok {
		signer = ed
	}
	var certs []*x509.Certificate
	for rest := certPEM; len(rest) > 0; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("certificate: %w", err)
		}
		certs = append(certs, c)
	}
	if len(certPEM) > 0 && len(certs) == 0 {
		return nil, errors.New("certificate: no PEM CERTIFICATE block found")
	}
	return NewKey(signer, certs, opts...)
}

// ID is the key ID sent as the JWS kid.
func (k *Key) ID() string { return k.private.KeyID() }

// Algorithm is the JWS algorithm the key signs with.
func (k *Key) Algorithm() jwa.SignatureAlgorithm { return k.alg }

// Public is the public JWK, with kid, alg and use set.
func (k *Key) Public() jwk.Key { return k.public }

// PublicKey is the key's public half as a published key.
func (k *Key) PublicKey() *PublicKey { return &PublicKey{public: k.public, alg: k.alg} }

// HasCertificate reports whether tokens carry an x5c chain.
func (k *Key) HasCertificate() bool { return k.chain != nil }

// SelfSign makes a self-signed certificate for a signer, for a registry's
// rootcertbundle. It is not a CA; the registry trusts exactly this leaf.
func SelfSign(signer crypto.Signer, commonName string, validity time.Duration, now time.Time) (*x509.Certificate, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: commonName},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(validity),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, signer.Public(), signer)
	if err != nil {
		return nil, fmt.Errorf("self-signed certificate: %w", err)
	}
	return x509.ParseCertificate(der)
}

// EncodePrivateKey encodes a private key as PKCS#8 PEM.
func EncodePrivateKey(signer crypto.Signer) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(signer)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// EncodeCertificate encodes a certificate as PEM.
func EncodeCertificate(c *x509.Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
}
