package fakemeta

import (
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
)

// tokenVersion is core-go's auth.TokenVersion, the only version it accepts.
const tokenVersion = 0

// macSize is the size of the HMAC-SHA256 that ends every token.
const macSize = sha256.Size

// TokenOptions are the fields of a bearer token, in the order they are
// encoded (Version, Expires, Grants, ClientID, Username).
type TokenOptions struct {
	// Username is the sourcehut user the token belongs to, without "~".
	Username string
	// ClientID is the OAuth 2.0 client's ID; empty for personal access
	// tokens.
	ClientID string
	// Grants is the space-separated grant string, e.g.
	// "registry.example.com/REGISTRY:RW meta.sr.ht/PROFILE:RO"; empty means
	// all access.
	Grants string
	// Expires is encoded as whole Unix seconds (sub-second parts are
	// dropped). The zero Time means one hour from now (by the server's clock
	// for [Server.Mint], by time.Now for [MintWithKey]).
	Expires time.Time
	// Version is the token format version; meta.sr.ht accepts only 0.
	Version uint64
}

// deriveBearerKey derives the HMAC key the way core-go's crypto package
// does: HMAC-SHA256 keyed with the whole 64-byte Ed25519 private key
// (seed || public key) over "sr.ht HMAC key".
func deriveBearerKey(seed []byte) []byte {
	priv := ed25519.NewKeyFromSeed(seed)
	mac := hmac.New(sha256.New, priv)
	mac.Write([]byte("sr.ht HMAC key"))
	return mac.Sum(nil)
}

// MintWithKey mints a token in the exact format of core-go's
// BearerToken.Encode, signed with bearerKey. Use it to craft tokens of
// another sourcehut instance; [Server.Mint] signs with the server's own key.
func MintWithKey(bearerKey []byte, o TokenOptions) string {
	if o.Expires.IsZero() {
		o.Expires = time.Now().Add(time.Hour)
	}
	return mint(bearerKey, o)
}

func mint(bearerKey []byte, o TokenOptions) string {
	payload := encodePayload(o)
	mac := hmac.New(sha256.New, bearerKey)
	mac.Write(payload)
	return base64.RawStdEncoding.EncodeToString(mac.Sum(payload))
}

// encodePayload is BARE: uint (ULEB128), i64 (8 bytes little endian), then
// three strings (uint length + bytes).
func encodePayload(o TokenOptions) []byte {
	var b []byte
	b = binary.AppendUvarint(b, o.Version)
	b = binary.LittleEndian.AppendUint64(b, uint64(o.Expires.Unix()))
	for _, s := range []string{o.Grants, o.ClientID, o.Username} {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	return b
}

// bearerToken is a decoded, verified token.
type bearerToken struct {
	Version  uint64
	Expires  int64
	Grants   string
	ClientID string
	Username string
}

// errInvalidToken covers every reason core-go's DecodeBearerToken returns
// nil; meta.sr.ht answers them all alike.
var errInvalidToken = errors.New("invalid bearer token")

// decodeBearerToken mirrors core-go's auth.DecodeBearerToken: RawStd base64,
// more than 32 bytes, a MAC that matches (constant time), a payload that
// BARE-decodes, version 0, not expired (now after expires). Like go-bare's
// Unmarshal it ignores bytes after the last field.
func decodeBearerToken(key []byte, token string, now time.Time) (*bearerToken, error) {
	raw, err := base64.RawStdEncoding.DecodeString(token)
	if err != nil {
		return nil, fmt.Errorf("%w: invalid base64", errInvalidToken)
	}
	if len(raw) <= macSize {
		return nil, fmt.Errorf("%w: too short", errInvalidToken)
	}
	payload, got := raw[:len(raw)-macSize], raw[len(raw)-macSize:]
	m := hmac.New(sha256.New, key)
	m.Write(payload)
	if !hmac.Equal(m.Sum(nil), got) {
		return nil, fmt.Errorf("%w: MAC mismatch", errInvalidToken)
	}
	bt, err := unmarshalPayload(payload)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errInvalidToken, err)
	}
	if bt.Version != tokenVersion {
		return nil, fmt.Errorf("%w: version %d", errInvalidToken, bt.Version)
	}
	if now.After(time.Unix(bt.Expires, 0)) {
		return nil, fmt.Errorf("%w: expired", errInvalidToken)
	}
	return bt, nil
}

type bareReader struct {
	b []byte
}

func (r *bareReader) uint() (uint64, error) {
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		return 0, errors.New("bad uint")
	}
	r.b = r.b[n:]
	return v, nil
}

func (r *bareReader) i64() (int64, error) {
	if len(r.b) < 8 {
		return 0, errors.New("short i64")
	}
	v := int64(binary.LittleEndian.Uint64(r.b))
	r.b = r.b[8:]
	return v, nil
}

func (r *bareReader) string() (string, error) {
	n, err := r.uint()
	if err != nil {
		return "", err
	}
	if n > uint64(len(r.b)) {
		return "", errors.New("short string")
	}
	s := r.b[:n]
	r.b = r.b[n:]
	if !utf8.Valid(s) {
		return "", errors.New("string is not UTF-8")
	}
	return string(s), nil
}

func unmarshalPayload(p []byte) (*bearerToken, error) {
	r := &bareReader{b: p}
	var bt bearerToken
	var err error
	if bt.Version, err = r.uint(); err != nil {
		return nil, err
	}
	if bt.Expires, err = r.i64(); err != nil {
		return nil, err
	}
	for _, f := range []*string{&bt.Grants, &bt.ClientID, &bt.Username} {
		if *f, err = r.string(); err != nil {
			return nil, err
		}
	}
	return &bt, nil
}

// metaService is the service name meta.sr.ht matches grants against.
const metaService = "meta.sr.ht"

// grants mirrors core-go's auth.Grants as seen by meta.sr.ht: only grants
// for service meta.sr.ht count; "" means all access.
type grants struct {
	all    bool
	access map[string]string // scope → RO or RW
}

// decodeGrants mirrors core-go's auth.DecodeGrants, which panics on a grant
// that is not service/scope[:access]; here that is an error (the fake
// answers 500 as a panicking meta.sr.ht would).
func decodeGrants(s string) (grants, error) {
	if s == "" {
		return grants{all: true}, nil
	}
	g := grants{access: map[string]string{}}
	for _, grant := range strings.Split(s, " ") {
		parts := strings.Split(grant, "/")
		if len(parts) != 2 {
			return grants{}, fmt.Errorf("OAuth grant '%s' without service/scope format", grant)
		}
		service := parts[0]
		sa := strings.Split(parts[1], ":")
		access := "RO"
		if len(sa) > 1 {
			access = sa[1]
		}
		if service == metaService {
			g.access[sa[0]] = access
		}
	}
	return g, nil
}

// has mirrors Grants.Has: RO is satisfied by any access to scope, RW only
// by RW.
func (g grants) has(scope, mode string) bool {
	if g.all {
		return true
	}
	a, ok := g.access[scope]
	if !ok {
		return false
	}
	return mode == "RO" || a == mode
}
