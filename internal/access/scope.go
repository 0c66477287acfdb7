package access

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"
)

// ErrInvalidScope is wrapped by every parse error, so the server can map it to
// 400 without knowing the details.
var ErrInvalidScope = errors.New("invalid scope")

// ErrTooManyScopes is returned when a request names more resources than the
// configured limit; it is a client error, not a reason to grant less.
var ErrTooManyScopes = errors.New("too many scopes")

// Wildcard in an allowed action list means every requested action.
const Wildcard = "*"

// Resource is what a scope names: its type (with optional class, as in
// "repository(plugin)"), and name.
type Resource struct {
	Type  string `json:"type"`
	Class string `json:"class,omitempty"`
	Name  string `json:"name"`
}

// Scope is a resource with the actions requested (or granted) on it.
type Scope struct {
	Resource
	Actions []string `json:"actions"`
}

// String renders a resource as the start of a scope: type[(class)]:name.
func (r Resource) String() string {
	if r.Class != "" {
		return r.Type + "(" + r.Class + "):" + r.Name
	}
	return r.Type + ":" + r.Name
}

// String renders a scope in the wire grammar, so a parsed scope round-trips.
func (s Scope) String() string {
	return s.Resource.String() + ":" + strings.Join(s.Actions, ",")
}

var (
	// resourcetype := resourcetypevalue [ '(' resourcetypevalue ')' ]
	typePattern = regexp.MustCompile(`^([a-z0-9]+)(?:\(([a-z0-9]+)\))?$`)
	// action := /[a-z]*/ in the spec; "*" is what the registry asks for the catalog.
	actionPattern = regexp.MustCompile(`^(?:[a-z]+|\*)$`)
	// repository names follow distribution/reference: an optional host[:port]
	// followed by lowercase path components separated by '/'.
	domainComponent = `(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])`
	domain          = domainComponent + `(?:\.` + domainComponent + `)*(?::[0-9]+)?`
	pathComponent   = `[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*`
	repoPattern     = regexp.MustCompile(`^(?:` + domain + `/)?` + pathComponent + `(?:/` + pathComponent + `)*$`)
	// other resource types only need a name a token can carry safely.
	otherNamePattern = regexp.MustCompile(`^[A-Za-z0-9._:/-]+$`)
)

// maxNameLength bounds a name: distribution itself refuses names over 255.
const maxNameLength = 255

// ParseScope parses one resource scope, "type[(class)]:name:action[,action…]".
// The name may itself contain ':' (a host:port prefix), so the type ends at the
// first ':' and the actions start after the last one.
func ParseScope(s string) (Scope, error) {
	first := strings.IndexByte(s, ':')
	last := strings.LastIndexByte(s, ':')
	if first < 0 || first == last {
		return Scope{}, fmt.Errorf("%w: %q: want type:name:actions", ErrInvalidScope, s)
	}
	rawType, name, rawActions := s[:first], s[first+1:last], s[last+1:]

	typ, class, ok := parseType(rawType)
	if !ok {
		return Scope{}, fmt.Errorf("%w: %q: bad resource type", ErrInvalidScope, s)
	}
	if name == "" || len(name) > maxNameLength {
		return Scope{}, fmt.Errorf("%w: %q: bad resource name", ErrInvalidScope, s)
	}
	if !validName(typ, name) {
		return Scope{}, fmt.Errorf("%w: %q: bad resource name", ErrInvalidScope, s)
	}
	if rawActions == "" {
		return Scope{}, fmt.Errorf("%w: %q: no actions", ErrInvalidScope, s)
	}
	var actions []string
	for a := range strings.SplitSeq(rawActions, ",") {
		if !validAction(a) {
			return Scope{}, fmt.Errorf("%w: %q: bad action", ErrInvalidScope, s)
		}
		if !slices.Contains(actions, a) {
			actions = append(actions, a)
		}
	}
	return Scope{Resource: Resource{Type: typ, Class: class, Name: name}, Actions: actions}, nil
}

// The checks below answer the common case (a plain type, "org/app", "pull")
// with a loop over the bytes and leave the rest to the patterns above,
// which stay the definition: a third of a three-scope request's parsing
// was spent in them. FuzzParseScopeFastPaths compares the two.

// parseType reads resourcetype: typePattern, with a plain lowercase word
// taken as it is.
func parseType(raw string) (typ, class string, ok bool) {
	if lowerAlnum(raw) {
		return raw, "", true
	}
	m := typePattern.FindStringSubmatch(raw)
	if m == nil {
		return "", "", false
	}
	return m[1], m[2], true
}

// validName checks a name against repoPattern (repositories) or
// otherNamePattern.
func validName(typ, name string) bool {
	if typ != "repository" {
		return otherNamePattern.MatchString(name)
	}
	// Path components alone, the usual name, need no pattern; a name
	// with a host (or anything else) goes to it.
	return pathComponents(name) || repoPattern.MatchString(name)
}

// validAction is actionPattern: lowercase letters, or "*".
func validAction(a string) bool {
	if a == "*" {
		return true
	}
	if a == "" {
		return false
	}
	for i := range len(a) {
		if a[i] < 'a' || a[i] > 'z' {
			return false
		}
	}
	return true
}

// lowerAlnum: s is one or more of [a-z0-9].
func lowerAlnum(s string) bool {
	if s == "" {
		return false
	}
	for i := range len(s) {
		if c := s[i]; (c < 'a' || c > 'z') && (c < '0' || c > '9') {
			return false
		}
	}
	return true
}

// pathComponents: s is pathComponent ('/' pathComponent)*, each component
// [a-z0-9]+ runs joined by ".", "_", "__" or one or more "-".
func pathComponents(s string) bool {
	for component := range strings.SplitSeq(s, "/") {
		if !pathComponentOK(component) {
			return false
		}
	}
	return true
}

func pathComponentOK(c string) bool {
	i := 0
	for {
		// A run of [a-z0-9]+.
		start := i
		for i < len(c) && (c[i] >= 'a' && c[i] <= 'z' || c[i] >= '0' && c[i] <= '9') {
			i++
		}
		if i == start {
			return false
		}
		if i == len(c) {
			return true
		}
		// A separator, then another run.
		switch c[i] {
		case '.':
			i++
		case '_':
			i++
			if i < len(c) && c[i] == '_' {
				i++
			}
		case '-':
			for i < len(c) && c[i] == '-' {
				i++
			}
		default:
			return false
		}
	}
}

// ParseScopes parses every scope in values, where each value may hold several
// space-separated scopes (both forms occur: crane repeats the parameter, the
// OAuth2 form puts them in one field). Scopes naming the same resource are
// merged, as the token carries one entry per resource. More than max distinct
// resources is an error wrapping ErrTooManyScopes.
func ParseScopes(values []string, max int) ([]Scope, error) {
	var scopes []Scope
	for _, v := range values {
		for field := range strings.FieldsSeq(v) {
			sc, err := ParseScope(field)
			if err != nil {
				return nil, err
			}
			i := slices.IndexFunc(scopes, func(o Scope) bool { return o.Resource == sc.Resource })
			if i >= 0 {
				for _, a := range sc.Actions {
					if !slices.Contains(scopes[i].Actions, a) {
						scopes[i].Actions = append(scopes[i].Actions, a)
					}
				}
				continue
			}
			if len(scopes) >= max {
				return nil, fmt.Errorf("%w: more than %d", ErrTooManyScopes, max)
			}
			scopes = append(scopes, sc)
		}
	}
	return scopes, nil
}

// Grant returns the requested actions that allowed permits, in requested
// order: a policy can only narrow a request, never widen it. An allowed
// Wildcard permits every requested action; a requested Wildcard is granted
// only by an allowed Wildcard.
func Grant(requested, allowed []string) []string {
	if slices.Contains(allowed, Wildcard) {
		return slices.Clone(requested)
	}
	granted := make([]string, 0, len(requested))
	for _, a := range requested {
		if slices.Contains(allowed, a) {
			granted = append(granted, a)
		}
	}
	return granted
}

// ErrDecisionFailed is wrapped when a policy could not be evaluated (an
// error, a deadline, a result of the wrong type): nothing is granted and the
// client is told so.
var ErrDecisionFailed = errors.New("policy decision failed")

// Decision is what policy decided on one requested scope.
type Decision struct {
	Requested Scope
	// Granted is the subset of Requested.Actions granted, never nil.
	Granted []string
	// Reasons say why nothing was granted (deny messages), for the log.
	Reasons []string
	// Revision names the policy that decided, for the decision log.
	Revision string
	// Duration is how long the evaluation took.
	Duration time.Duration
	// Memoised: the answer came from the decision memo, not an evaluation.
	Memoised bool
}
