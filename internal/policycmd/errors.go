package policycmd

import "errors"

var (
	// ErrUsage marks the errors that are the user's mistake, found once
	// the flags parsed: an option out of range, or options that contradict
	// each other or the config.
	ErrUsage = errors.New("usage error")
	// ErrNotPassed marks the error of Test when a test failed, errored or
	// was skipped, or coverage fell below the threshold, and that of Eval
	// when a scope was not granted what EvalOptions.Expect says.
	ErrNotPassed = errors.New("tests did not pass")
)

// marked is err marked with one of the sentinels above: errors.Is finds
// the mark, and the message is err's alone.
type marked struct {
	err  error
	mark error
}

func (e marked) Error() string        { return e.err.Error() }
func (e marked) Unwrap() error        { return e.err }
func (e marked) Is(target error) bool { return target == e.mark }

// usage marks err as the user's mistake.
func usage(err error) error { return marked{err, ErrUsage} }

// notPassed marks err as the verdict of tests that did not all pass.
func notPassed(err error) error { return marked{err, ErrNotPassed} }
