package policy

import (
	"regexp"
	"time"
)

// The parts of the policy contract (README.md) that both the configuration
// and the evaluator need, defined once here.

// DefaultQuery is the package whose allow and deny rules are read.
const DefaultQuery = "data.registry.authz"

// DefaultTimeout bounds one evaluation: a policy that loops must not hold a
// request (and a goroutine) forever.
const DefaultTimeout = 100 * time.Millisecond

// DefaultStartupWait is how long a server waits at start for the first
// bundle of an OPA service (policy.opa) before it serves: not ready, or with
// the embedded policy as fallback.
const DefaultStartupWait = 30 * time.Second

// queryPattern is a reference under data made of dotted identifiers.
var queryPattern = regexp.MustCompile(`^data(\.[A-Za-z_][A-Za-z0-9_]*)+$`)

// ValidQuery reports whether q is a query path the server can read allow
// and deny from: a dotted reference under data, like DefaultQuery.
func ValidQuery(q string) bool { return queryPattern.MatchString(q) }
