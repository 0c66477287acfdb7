package testcheck

import (
	"strings"
	"sync"
	"testing"
)

// Contains fails t, and goes on, for each of wants that got lacks. what
// names got in the failure ("stdout", "error").
func Contains(t testing.TB, what, got string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(got, w) {
			t.Errorf("%s lacks %q:\n%s", what, w, got)
		}
	}
}

// Lacks fails t, and goes on, for each of unwanted that got has. what
// names got in the failure.
func Lacks(t testing.TB, what, got string, unwanted ...string) {
	t.Helper()
	for _, w := range unwanted {
		if strings.Contains(got, w) {
			t.Errorf("%s has %q:\n%s", what, w, got)
		}
	}
}

// LogBuffer is a log sink that a test reads while the server's goroutines
// write to it.
type LogBuffer struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (b *LogBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *LogBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
