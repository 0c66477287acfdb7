package sourcehut_test

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"strings"
	"sync"
	"testing"
	"time"
)

// service is the registry the tests authenticate for.
const service = "registry.example.com"

// t0 is the start of every fake clock: a fixed instant, so nothing depends
// on the wall clock.
var t0 = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

// clock is a manual clock shared by the Authenticator (Options.Now) and the
// fake meta.sr.ht (SetClock).
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock() *clock { return &clock{now: t0} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// payload is the BARE layout of a token payload, as core-go's
// BearerToken.Encode (and fakemeta's mint) write it.
func payload(version uint64, expires int64, grants, clientID, username string) []byte {
	var b []byte
	b = binary.AppendUvarint(b, version)
	b = binary.LittleEndian.AppendUint64(b, uint64(expires))
	for _, s := range []string{grants, clientID, username} {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	return b
}

// fakeMAC stands in for the HMAC: Decode does not check it.
var fakeMAC = bytes.Repeat([]byte{0xA5}, 32)

// encodeRaw returns the token string of payload p followed by fakeMAC.
func encodeRaw(p []byte) string {
	return base64.RawStdEncoding.EncodeToString(append(append([]byte(nil), p...), fakeMAC...))
}

// checkNoSecret fails the test if err's message contains secret.
func checkNoSecret(t *testing.T, err error, secret string) {
	t.Helper()
	if err != nil && secret != "" && strings.Contains(err.Error(), secret) {
		t.Errorf("error message contains the token: %q", err.Error())
	}
}
