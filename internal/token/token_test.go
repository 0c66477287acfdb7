package token_test

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"io"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	regtoken "github.com/distribution/distribution/v3/registry/auth/token"
	"github.com/go-jose/go-jose/v4"
	"github.com/sirupsen/logrus"

	"git.sr.ht/~zozs/srht-registry/internal/access"
	"git.sr.ht/~zozs/srht-registry/internal/token"
	"git.sr.ht/~zozs/srht-registry/internal/token/tokentest"
)

// distribution logs every refused token through logrus; the refusals here
// are intended.
func init() { logrus.SetOutput(io.Discard) }

// The algorithms a registry is configured to accept: all three, so a token
// that claims the wrong one is caught by the signature check, not here.
var registryAlgs = []jose.SignatureAlgorithm{jose.ES256, jose.RS256, jose.EdDSA}

func selfSign(t *testing.T, s crypto.Signer) *x509.Certificate {
	t.Helper()
	c, err := token.SelfSign(s, "srht-registry test", 24*time.Hour, time.Now())
	if err != nil {
		t.Fatalf("SelfSign: %v", err)
	}
	return c
}

func mint(t *testing.T, k *token.Key, subject string, granted []access.Scope) string {
	t.Helper()
	m := &token.Minter{Issuer: tokentest.Issuer, TTL: tokentest.TTL, Key: k, Now: time.Now}
	tok, err := m.Mint(subject, tokentest.Audience, granted)
	if err != nil {
		t.Fatalf("Mint: %v", err)
	}
	if tok.ExpiresIn != tokentest.TTL {
		t.Errorf("expiresIn = %v, want %v", tok.ExpiresIn, tokentest.TTL)
	}
	if tok.IssuedAt.IsZero() || tok.IssuedAt.Nanosecond() != 0 {
		t.Errorf("issuedAt = %v, want a whole second", tok.IssuedAt)
	}
	return tok.Signed
}

func wantAccess(scopes []access.Scope) []*regtoken.ResourceActions {
	out := []*regtoken.ResourceActions{}
	for _, s := range scopes {
		out = append(out, &regtoken.ResourceActions{Type: s.Type, Class: s.Class, Name: s.Name, Actions: s.Actions})
	}
	return out
}

func TestDistributionVerifiesByKeyID(t *testing.T) {
	for _, kt := range tokentest.KeyTypes {
		t.Run(string(kt.Type), func(t *testing.T) {
			key := tokentest.Key(t, kt.Type, 0)
			other := tokentest.Key(t, kt.Type, 1)
			if key.Algorithm().String() != kt.Alg {
				t.Fatalf("Algorithm() = %s, want %s", key.Algorithm(), kt.Alg)
			}
			if key.HasCertificate() {
				t.Fatal("HasCertificate() = true without a certificate")
			}
			raw := mint(t, key, "alice", tokentest.Grant)

			tok, err := regtoken.NewToken(raw, []jose.SignatureAlgorithm{kt.JOSE})
			if err != nil {
				t.Fatalf("distribution cannot parse the token: %v", err)
			}
			claims, err := tok.Verify(regtoken.VerifyOptions{
				TrustedIssuers:    []string{tokentest.Issuer},
				AcceptedAudiences: []string{tokentest.Audience},
				TrustedKeys:       tokentest.TrustedKeys(t, other, key),
			})
			if err != nil {
				t.Fatalf("distribution does not verify the token: %v", err)
			}
			if claims.Issuer != tokentest.Issuer || claims.Subject != "alice" {
				t.Errorf("iss, sub = %q, %q", claims.Issuer, claims.Subject)
			}
			if !slices.Equal([]string(claims.Audience), []string{tokentest.Audience}) {
				t.Errorf("aud = %q", claims.Audience)
			}
			if !reflect.DeepEqual(claims.Access, wantAccess(tokentest.Grant)) {
				t.Errorf("access = %s", mustJSON(t, claims.Access))
			}

			// The same token is refused when only another key is trusted,
			// with the wrong issuer, or for another audience.
			bad := []struct {
				name string
				opts regtoken.VerifyOptions
			}{
				{"other key", regtoken.VerifyOptions{TrustedIssuers: []string{tokentest.Issuer}, AcceptedAudiences: []string{tokentest.Audience}, TrustedKeys: tokentest.TrustedKeys(t, other)}},
				{"other key under our kid", regtoken.VerifyOptions{TrustedIssuers: []string{tokentest.Issuer}, AcceptedAudiences: []string{tokentest.Audience},
					TrustedKeys: map[string]crypto.PublicKey{key.ID(): tokentest.Signer(t, kt.Type, 1).Public()}}},
				{"issuer", regtoken.VerifyOptions{TrustedIssuers: []string{"someone-else"}, AcceptedAudiences: []string{tokentest.Audience}, TrustedKeys: tokentest.TrustedKeys(t, key)}},
				{"audience", regtoken.VerifyOptions{TrustedIssuers: []string{tokentest.Issuer}, AcceptedAudiences: []string{"other.example.com"}, TrustedKeys: tokentest.TrustedKeys(t, key)}},
			}
			for _, b := range bad {
				tok, err := regtoken.NewToken(raw, []jose.SignatureAlgorithm{kt.JOSE})
				if err != nil {
					t.Fatal(err)
				}
				if _, err := tok.Verify(b.opts); err == nil {
					t.Errorf("%s: token verified, want a refusal", b.name)
				}
			}

			// A registry that does not accept our algorithm cannot parse it.
			var others []jose.SignatureAlgorithm
			for _, a := range registryAlgs {
				if a != kt.JOSE {
					others = append(others, a)
				}
			}
			if _, err := regtoken.NewToken(raw, others); err == nil {
				t.Errorf("token parsed with algorithms %v, want a refusal (alg is %s)", others, kt.Alg)
			}
		})
	}
}

func TestDistributionVerifiesByCertificate(t *testing.T) {
	for _, kt := range tokentest.KeyTypes {
		t.Run(string(kt.Type), func(t *testing.T) {
			s := tokentest.Signer(t, kt.Type, 0)
			c := selfSign(t, s)
			key := tokentest.NewKey(t, s, c)
			if !key.HasCertificate() {
				t.Fatal("HasCertificate() = false with a certificate")
			}
			raw := mint(t, key, "alice", tokentest.Grant)

			roots := x509.NewCertPool()
			roots.AddCert(c)
			tok, err := regtoken.NewToken(raw, registryAlgs)
			if err != nil {
				t.Fatalf("distribution cannot parse the token: %v", err)
			}
			claims, err := tok.Verify(regtoken.VerifyOptions{
				TrustedIssuers:    []string{tokentest.Issuer},
				AcceptedAudiences: []string{tokentest.Audience},
				Roots:             roots,
			})
			if err != nil {
				t.Fatalf("distribution does not verify the token by its x5c: %v", err)
			}
			if !reflect.DeepEqual(claims.Access, wantAccess(tokentest.Grant)) {
				t.Errorf("access = %s", mustJSON(t, claims.Access))
			}

			// Another certificate in the bundle: refused.
			otherRoots := x509.NewCertPool()
			otherRoots.AddCert(selfSign(t, tokentest.Signer(t, kt.Type, 1)))
			tok, err = regtoken.NewToken(raw, registryAlgs)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := tok.Verify(regtoken.VerifyOptions{TrustedIssuers: []string{tokentest.Issuer}, AcceptedAudiences: []string{tokentest.Audience}, Roots: otherRoots}); err == nil {
				t.Error("token verified against an unrelated root certificate")
			}
		})
	}
}

// parts decodes a compact JWS into its header and claims as raw JSON values.
func parts(t *testing.T, raw string) (header, claims map[string]json.RawMessage) {
	t.Helper()
	segs := strings.Split(raw, ".")
	if len(segs) != 3 {
		t.Fatalf("token has %d segments, want 3", len(segs))
	}
	dec := func(s string) map[string]json.RawMessage {
		b, err := base64.RawURLEncoding.DecodeString(s)
		if err != nil {
			t.Fatalf("segment is not base64url without padding: %v", err)
		}
		m := map[string]json.RawMessage{}
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatalf("segment is not a JSON object: %v", err)
		}
		return m
	}
	return dec(segs[0]), dec(segs[1])
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func unmarshal[T any](t *testing.T, raw json.RawMessage) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatalf("%s: %v", raw, err)
	}
	return v
}

func TestClaims(t *testing.T) {
	tests := []struct {
		name       string
		subject    string
		granted    []access.Scope
		wantAccess string
	}{
		{"anonymous, nothing granted (nil)", "", nil, `[]`},
		{"nothing granted (empty)", "bob", []access.Scope{}, `[]`},
		{"granted", "alice", tokentest.Grant,
			`[{"type":"repository","name":"alice/app","actions":["pull","push"]},` +
				`{"type":"repository","class":"plugin","name":"library/x","actions":["pull"]},` +
				`{"type":"registry","name":"catalog","actions":["*"]}]`},
	}
	for _, kt := range tokentest.KeyTypes {
		for _, withCert := range []bool{false, true} {
			s := tokentest.Signer(t, kt.Type, 0)
			var key *token.Key
			var c *x509.Certificate
			if withCert {
				c = selfSign(t, s)
				key = tokentest.NewKey(t, s, c)
			} else {
				key = tokentest.NewKey(t, s)
			}
			for _, tt := range tests {
				name := string(kt.Type) + "/" + tt.name
				if withCert {
					name += "/x5c"
				}
				t.Run(name, func(t *testing.T) {
					now := time.Date(2030, 1, 2, 3, 4, 5, 678, time.UTC)
					m := &token.Minter{Issuer: tokentest.Issuer, TTL: tokentest.TTL, Key: key, Now: func() time.Time { return now }}
					tok1, err := m.Mint(tt.subject, tokentest.Audience, tt.granted)
					if err != nil {
						t.Fatal(err)
					}
					raw1, iat, exp := tok1.Signed, tok1.IssuedAt, tok1.ExpiresIn
					if !iat.Equal(now.Truncate(time.Second)) || exp != tokentest.TTL {
						t.Errorf("Mint returned issuedAt %v, expiresIn %v", iat, exp)
					}
					tok2, err := m.Mint(tt.subject, tokentest.Audience, tt.granted)
					if err != nil {
						t.Fatal(err)
					}
					raw2 := tok2.Signed
					header, claims := parts(t, raw1)
					_, claims2 := parts(t, raw2)

					// Header: alg, kid always; x5c only with a certificate.
					if got := unmarshal[string](t, header["alg"]); got != kt.Alg {
						t.Errorf("alg = %q, want %q", got, kt.Alg)
					}
					if got := unmarshal[string](t, header["kid"]); got != key.ID() || got == "" {
						t.Errorf("kid = %q, want %q", got, key.ID())
					}
					if _, ok := header["jwk"]; ok {
						t.Error("header carries a jwk")
					}
					x5c, hasX5C := header["x5c"]
					switch {
					case withCert && !hasX5C:
						t.Error("no x5c with a certificate")
					case withCert:
						chain := unmarshal[[]string](t, x5c)
						if len(chain) != 1 || chain[0] != base64.StdEncoding.EncodeToString(c.Raw) {
							t.Errorf("x5c = %q, want the certificate", chain)
						}
					case hasX5C:
						t.Errorf("x5c = %s without a certificate", x5c)
					}

					// aud is a single JSON string, never an array.
					if a := string(claims["aud"]); a != `"`+tokentest.Audience+`"` {
						t.Errorf("aud = %s, want the JSON string %q", a, tokentest.Audience)
					}
					if got := unmarshal[string](t, claims["iss"]); got != tokentest.Issuer {
						t.Errorf("iss = %q", got)
					}
					sub, ok := claims["sub"]
					if !ok {
						t.Error("no sub claim")
					} else if got := unmarshal[string](t, sub); got != tt.subject {
						t.Errorf("sub = %q, want %q", got, tt.subject)
					}
					iatC := unmarshal[int64](t, claims["iat"])
					nbf := unmarshal[int64](t, claims["nbf"])
					expC := unmarshal[int64](t, claims["exp"])
					if iatC != now.Unix() {
						t.Errorf("iat = %d, want %d", iatC, now.Unix())
					}
					if nbf != iatC {
						t.Errorf("nbf = %d, want iat %d", nbf, iatC)
					}
					if expC-iatC != int64(tokentest.TTL/time.Second) {
						t.Errorf("exp - iat = %d, want %d", expC-iatC, int64(tokentest.TTL/time.Second))
					}
					jti1 := unmarshal[string](t, claims["jti"])
					jti2 := unmarshal[string](t, claims2["jti"])
					if len(jti1) < 16 || jti1 == jti2 {
						t.Errorf("jti %q, %q: want two distinct random IDs", jti1, jti2)
					}
					if got := string(claims["access"]); !jsonEqual(t, got, tt.wantAccess) {
						t.Errorf("access = %s, want %s", got, tt.wantAccess)
					}
					for _, k := range []string{"iss", "sub", "aud", "exp", "nbf", "iat", "jti", "access"} {
						if _, ok := claims[k]; !ok {
							t.Errorf("claim %s missing", k)
						}
					}
				})
			}
		}
	}
}

func jsonEqual(t *testing.T, a, b string) bool {
	t.Helper()
	var va, vb any
	if err := json.Unmarshal([]byte(a), &va); err != nil {
		t.Fatalf("%s: %v", a, err)
	}
	if err := json.Unmarshal([]byte(b), &vb); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	return reflect.DeepEqual(va, vb)
}

func TestGenerateUnknownType(t *testing.T) {
	if _, err := token.Generate("dsa"); err == nil {
		t.Fatal("Generate(dsa) succeeded")
	}
	s, err := token.Generate("")
	if err != nil {
		t.Fatal(err)
	}
	if k, ok := s.(*ecdsa.PrivateKey); !ok || k.Curve != elliptic.P256() {
		t.Fatalf("Generate(\"\") = %T, want an EC P-256 key", s)
	}
}

func TestNewKeyIDIsStable(t *testing.T) {
	for _, kt := range tokentest.KeyTypes {
		s := tokentest.Signer(t, kt.Type, 0)
		a, b := tokentest.NewKey(t, s), tokentest.NewKey(t, s, selfSign(t, s))
		if a.ID() != b.ID() || a.ID() == "" {
			t.Errorf("%s: kid %q, %q: want the same non-empty kid for the same key", kt.Type, a.ID(), b.ID())
		}
		if c := tokentest.Key(t, kt.Type, 1); c.ID() == a.ID() {
			t.Errorf("%s: two keys share kid %q", kt.Type, a.ID())
		}
	}
}

func TestParseKeyRoundTrip(t *testing.T) {
	for _, kt := range tokentest.KeyTypes {
		s := tokentest.Signer(t, kt.Type, 0)
		keyPEM, err := token.EncodePrivateKey(s)
		if err != nil {
			t.Fatal(err)
		}
		c := selfSign(t, s)
		certPEM := token.EncodeCertificate(c)
		want := tokentest.NewKey(t, s)
		for _, withCert := range []bool{false, true} {
			name := string(kt.Type)
			var cp []byte
			if withCert {
				name += "/cert"
				cp = certPEM
			}
			t.Run(name, func(t *testing.T) {
				k, err := token.ParseKey(keyPEM, cp)
				if err != nil {
					t.Fatalf("ParseKey: %v", err)
				}
				if k.ID() != want.ID() || k.Algorithm() != want.Algorithm() {
					t.Errorf("parsed key %s/%s, want %s/%s", k.ID(), k.Algorithm(), want.ID(), want.Algorithm())
				}
				if k.HasCertificate() != withCert {
					t.Errorf("HasCertificate() = %v, want %v", k.HasCertificate(), withCert)
				}
				// The parsed key signs tokens that the original's JWKS verifies.
				raw := mint(t, k, "alice", nil)
				tok, err := regtoken.NewToken(raw, registryAlgs)
				if err != nil {
					t.Fatal(err)
				}
				opts := regtoken.VerifyOptions{TrustedIssuers: []string{tokentest.Issuer}, AcceptedAudiences: []string{tokentest.Audience}, TrustedKeys: tokentest.TrustedKeys(t, want)}
				if withCert {
					opts.Roots = x509.NewCertPool()
					opts.Roots.AddCert(c)
				}
				claims, err := tok.Verify(opts)
				if err != nil {
					t.Fatalf("Verify: %v", err)
				}
				if claims.Access == nil || len(claims.Access) != 0 {
					t.Errorf("access = %v, want an empty list", claims.Access)
				}
			})
		}
	}
}

// prime256v1OID is the DER of OBJECT IDENTIFIER 1.2.840.10045.3.1.7.
var prime256v1OID = []byte{0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07}

// TestParseKeyLegacyFormats: ParseKey also reads SEC 1 EC and PKCS#1 RSA PEM.
func TestParseKeyLegacyFormats(t *testing.T) {
	ec := tokentest.Signer(t, token.KeyEC, 0).(*ecdsa.PrivateKey)
	ecDER, err := x509.MarshalECPrivateKey(ec)
	if err != nil {
		t.Fatal(err)
	}
	rsaKey := tokentest.Signer(t, token.KeyRSA, 0).(*rsa.PrivateKey)
	tests := []struct {
		name string
		pem  []byte
		want crypto.Signer
	}{
		{"SEC 1 EC", pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: ecDER}), ec},
		{"PKCS#1 RSA", pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(rsaKey)}), rsaKey},
		// `openssl ecparam -name prime256v1 -genkey` (without -noout) writes
		// the curve's OID in an EC PARAMETERS block before the key.
		{"openssl ecparam -genkey", append(pem.EncodeToMemory(&pem.Block{Type: "EC PARAMETERS", Bytes: prime256v1OID}),
			pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: ecDER})...), ec},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k, err := token.ParseKey(tt.pem, nil)
			if err != nil {
				t.Fatalf("ParseKey: %v", err)
			}
			if want := tokentest.NewKey(t, tt.want); k.ID() != want.ID() {
				t.Errorf("kid %q, want %q", k.ID(), want.ID())
			}
		})
	}
}

func TestParseKeyRefuses(t *testing.T) {
	ecPEM, err := token.EncodePrivateKey(tokentest.Signer(t, token.KeyEC, 0))
	if err != nil {
		t.Fatal(err)
	}
	otherCertPEM := token.EncodeCertificate(selfSign(t, tokentest.Signer(t, token.KeyEC, 1)))

	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	p384PEM, err := token.EncodePrivateKey(p384)
	if err != nil {
		t.Fatal(err)
	}
	rsa1024, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	rsa1024PEM, err := token.EncodePrivateKey(rsa1024)
	if err != nil {
		t.Fatal(err)
	}
	pubDER, err := x509.MarshalPKIXPublicKey(tokentest.Signer(t, token.KeyEC, 0).Public())
	if err != nil {
		t.Fatal(err)
	}
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})
	edPubDER, err := x509.MarshalPKIXPublicKey(tokentest.Signer(t, token.KeyEd25519, 0).Public())
	if err != nil {
		t.Fatal(err)
	}
	edPubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: edPubDER})
	garbageBody := "c2VjcmV0LWtleS1tYXRlcmlhbC10aGF0LW11c3Qtbm90LWxlYWs=" // base64 that decodes to nothing parseable
	garbagePEM := []byte("-----BEGIN PRIVATE KEY-----\n" + garbageBody + "\n-----END PRIVATE KEY-----\n")
	badCertPEM := []byte("-----BEGIN CERTIFICATE-----\n" + garbageBody + "\n-----END CERTIFICATE-----\n")

	tests := []struct {
		name    string
		key     []byte
		cert    []byte
		wantMsg string // a part of the error message
	}{
		{"empty", nil, nil, "private key"},
		{"not PEM", []byte("hello, this is not a key at all"), nil, "private key"},
		{"garbage PEM", garbagePEM, nil, "private key"},
		{"public key PEM", pubPEM, nil, "public key"},
		{"Ed25519 public key PEM", edPubPEM, nil, "public key"},
		{"certificate as key", otherCertPEM, nil, ""},
		{"EC P-384", p384PEM, nil, "P-384"},
		{"RSA 1024", rsa1024PEM, nil, "1024"},
		{"mismatched certificate", ecPEM, otherCertPEM, "does not match"},
		{"certificate PEM without certificate", ecPEM, ecPEM, "certificate"},
		{"garbage certificate", ecPEM, badCertPEM, "certificate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k, err := token.ParseKey(tt.key, tt.cert)
			if err == nil {
				t.Fatalf("ParseKey accepted it (kid %s)", k.ID())
			}
			msg := err.Error()
			if !strings.Contains(msg, tt.wantMsg) {
				t.Errorf("error %q does not mention %q", msg, tt.wantMsg)
			}
			// No line of either PEM (beyond its BEGIN/END armour) may be
			// echoed in the error.
			for _, in := range [][]byte{tt.key, tt.cert} {
				for _, line := range bytes.Split(in, []byte("\n")) {
					l := string(bytes.TrimSpace(line))
					if len(l) < 8 || strings.HasPrefix(l, "-----") {
						continue
					}
					if strings.Contains(msg, l) || strings.Contains(msg, l[:8]) {
						t.Errorf("error %q quotes the input %q", msg, l)
					}
				}
			}
		})
	}
}

func TestNewKeyRefuses(t *testing.T) {
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	rsa1024, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	ec := tokentest.Signer(t, token.KeyEC, 0)
	tests := []struct {
		name  string
		s     crypto.Signer
		certs []*x509.Certificate
	}{
		{"P-384", p384, nil},
		{"RSA 1024", rsa1024, nil},
		{"certificate of another key", ec, []*x509.Certificate{selfSign(t, tokentest.Signer(t, token.KeyEC, 1))}},
		{"certificate of another key type", ec, []*x509.Certificate{selfSign(t, tokentest.Signer(t, token.KeyEd25519, 0))}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := token.NewKey(tt.s, tt.certs); err == nil {
				t.Fatal("NewKey accepted it")
			}
		})
	}
}

func TestJWKSHoldsOnlyPublicKeys(t *testing.T) {
	var keys []*token.Key
	for _, kt := range tokentest.KeyTypes {
		keys = append(keys, tokentest.Key(t, kt.Type, 0))
	}
	raw, err := token.JWKS(keys...)
	if err != nil {
		t.Fatal(err)
	}
	var set struct {
		Keys []map[string]any `json:"keys"`
	}
	if err := json.Unmarshal(raw, &set); err != nil {
		t.Fatal(err)
	}
	if len(set.Keys) != 3 {
		t.Fatalf("%d keys, want 3", len(set.Keys))
	}
	for i, k := range set.Keys {
		// Private members of EC/OKP (d) and RSA (d, p, q, dp, dq, qi) keys.
		for _, private := range []string{"d", "p", "q", "dp", "dq", "qi"} {
			if _, ok := k[private]; ok {
				t.Errorf("key %d has private member %q", i, private)
			}
		}
		if k["kid"] != keys[i].ID() {
			t.Errorf("key %d kid = %v, want %s", i, k["kid"], keys[i].ID())
		}
	}
	// tokentest.TrustedKeys checks that go-jose reads it.
	tokentest.TrustedKeys(t, keys...)
}

// FuzzParseKey: ParseKey never panics, and a refusal never quotes its input.
func FuzzParseKey(f *testing.F) {
	for _, typ := range []token.KeyType{token.KeyEC, token.KeyEd25519} {
		s, err := token.Generate(typ)
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
		f.Add(keyPEM, token.EncodeCertificate(c))
		f.Add(keyPEM, []byte(nil))
		f.Add(token.EncodeCertificate(c), keyPEM)
	}
	f.Add([]byte("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"), []byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"))
	f.Fuzz(func(t *testing.T, keyPEM, certPEM []byte) {
		k, err := token.ParseKey(keyPEM, certPEM)
		if err == nil {
			if k.ID() == "" || k.Public() == nil {
				t.Fatal("accepted key without a kid or public key")
			}
			return
		}
		msg := err.Error()
		for _, in := range [][]byte{keyPEM, certPEM} {
			for _, line := range bytes.Split(in, []byte("\n")) {
				l := string(bytes.TrimSpace(line))
				if len(l) >= 16 && !strings.HasPrefix(l, "-----") && strings.Contains(msg, l) {
					t.Fatalf("error %q quotes the input line %q", msg, l)
				}
			}
		}
	})
}
