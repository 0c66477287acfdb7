package sourcehut

import (
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
)

// macSize is the length of the HMAC-SHA256 that ends every token.
const macSize = 32

// maxTokenLength bounds what we try to decode; real tokens are ~100-200
// characters, grants strings included.
const maxTokenLength = 8192

// ErrNotToken means the string is not a Sourcehut token at all (so it may be
// a password); it is never sent to meta.sr.ht.
var ErrNotToken = errors.New("not a Sourcehut token")

// Token is the decoded payload of a Sourcehut OAuth2 token. Its MAC is not
// checked here: only meta.sr.ht can.
type Token struct {
	Version  uint64
	Expires  time.Time
	Grants   string
	ClientID string
	Username string
}

// Decode decodes a token: RawStd base64 of the BARE payload (uint version,
// i64 expires, string grants, string client_id, string username) followed by
// a 32-byte MAC. Any deviation, trailing bytes included, is ErrNotToken.
func Decode(s string) (Token, error) {
	if len(s) > maxTokenLength {
		return Token{}, fmt.Errorf("%w: too long", ErrNotToken)
	}
	// Go's base64 decoder skips CR and LF even in strict mode; sourcehut
	// never writes them, and a header cannot carry them.
	if strings.ContainsAny(s, "\r\n") {
		return Token{}, fmt.Errorf("%w: not base64", ErrNotToken)
	}
	raw, err := base64.RawStdEncoding.Strict().DecodeString(s)
	if err != nil {
		return Token{}, fmt.Errorf("%w: not base64", ErrNotToken)
	}
	if len(raw) <= macSize {
		return Token{}, fmt.Errorf("%w: too short", ErrNotToken)
	}
	d := decoder{buf: raw[:len(raw)-macSize]}
	var t Token
	t.Version = d.uvarint()
	t.Expires = time.Unix(d.i64(), 0).UTC()
	t.Grants = d.string()
	t.ClientID = d.string()
	t.Username = d.string()
	if d.err != nil {
		return Token{}, fmt.Errorf("%w: %w", ErrNotToken, d.err)
	}
	if len(d.buf) != 0 {
		return Token{}, fmt.Errorf("%w: %d trailing bytes", ErrNotToken, len(d.buf))
	}
	return t, nil
}

// decoder reads BARE values, remembering the first error.
type decoder struct {
	buf []byte
	err error
}

var errTruncated = errors.New("truncated payload")

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.buf)
	if n <= 0 {
		d.err = errors.New("bad varint")
		return 0
	}
	// BARE requires the shortest encoding; a padded varint is not a token
	// sourcehut wrote.
	if n > 1 && d.buf[n-1] == 0 {
		d.err = errors.New("non-canonical varint")
		return 0
	}
	d.buf = d.buf[n:]
	return v
}

func (d *decoder) i64() int64 {
	if d.err != nil {
		return 0
	}
	if len(d.buf) < 8 {
		d.err = errTruncated
		return 0
	}
	v := int64(binary.LittleEndian.Uint64(d.buf))
	d.buf = d.buf[8:]
	return v
}

func (d *decoder) string() string {
	n := d.uvarint()
	if d.err != nil {
		return ""
	}
	if n > uint64(len(d.buf)) {
		d.err = errTruncated
		return ""
	}
	s := d.buf[:n]
	if !utf8.Valid(s) {
		d.err = errors.New("string is not UTF-8")
		return ""
	}
	d.buf = d.buf[n:]
	return string(s)
}
