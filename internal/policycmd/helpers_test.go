package policycmd

import (
	"errors"
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

// errText is err's message, or "" for nil.
func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
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
