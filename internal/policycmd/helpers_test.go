package policycmd

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// errPlain stands, in a test's want, for an error marked neither ErrUsage
// nor ErrNotPassed: one the command line exits 1 with.
var errPlain = errors.New("an unmarked error")

// wantErr checks that err is of the kind want is: nil, ErrUsage,
// ErrNotPassed or errPlain.
func wantErr(t *testing.T, err, want error, stdout string) {
	t.Helper()
	usage, notPassed := errors.Is(err, ErrUsage), errors.Is(err, ErrNotPassed)
	var ok bool
	switch {
	case want == nil:
		ok = err == nil
	case errors.Is(want, ErrUsage):
		ok = usage && !notPassed
	case errors.Is(want, ErrNotPassed):
		ok = notPassed && !usage
	case errors.Is(want, errPlain):
		ok = err != nil && !usage && !notPassed
	}
	if !ok {
		t.Fatalf("error %v (usage %t, not passed %t), want %v\nstdout:\n%s", err, usage, notPassed, want, stdout)
	}
}

func wantContains(t *testing.T, what, got string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(got, w) {
			t.Errorf("%s lacks %q:\n%s", what, w, got)
		}
	}
}

func wantLacks(t *testing.T, what, got string, unwanted ...string) {
	t.Helper()
	for _, w := range unwanted {
		if strings.Contains(got, w) {
			t.Errorf("%s has %q:\n%s", what, w, got)
		}
	}
}

// errText is err's message, or "" for nil.
func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func writeFile(t *testing.T, dir, name, src string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestMarkedErrors(t *testing.T) {
	t.Parallel()
	cause := errors.New("cause")
	for _, tt := range []struct {
		err, mark, other error
	}{
		{usage(cause), ErrUsage, ErrNotPassed},
		{notPassed(cause), ErrNotPassed, ErrUsage},
	} {
		if tt.err.Error() != "cause" {
			t.Errorf("message %q, want the cause's alone", tt.err)
		}
		if !errors.Is(tt.err, tt.mark) || !errors.Is(tt.err, cause) || errors.Is(tt.err, tt.other) {
			t.Errorf("%v: Is(%v) = %t, Is(cause) = %t, Is(%v) = %t", tt.err, tt.mark, errors.Is(tt.err, tt.mark),
				errors.Is(tt.err, cause), tt.other, errors.Is(tt.err, tt.other))
		}
	}
}
