package config

import (
	"fmt"
	"time"

	"go.yaml.in/yaml/v3"
)

// Duration is a time.Duration read from YAML as a Go duration string
// ("90s", "5m", "1h30m"). A bare 0 is accepted too, since "max_cache_ttl: 0"
// (meaning none) is the natural way to write it; any other bare number is an
// error, because it would be unclear whether it counts seconds or
// nanoseconds. Every duration setting of Config is a Duration, so the rule
// holds wherever one appears.
type Duration time.Duration

// durationSyntax says how a duration is written; it ends every message
// about one.
const durationSyntax = "use Go syntax like 5m or 1h30m, or 0"

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// String formats d like time.Duration ("1m30s", "0s").
func (d Duration) String() string { return time.Duration(d).String() }

// UnmarshalYAML accepts a duration string or the integer 0. Errors name the
// line, the way yaml's own type errors do, and say how a duration is written.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, msg := durationOf(n)
	if msg != "" {
		return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: %s", n.Line, msg)}}
	}
	*d = v
	return nil
}

// durationOf reads a non-null node as a Duration, or says why it is none
// (without the line), for example
// `"5 minutes" is not a duration (use Go syntax like 5m or 1h30m, or 0)`.
func durationOf(n *yaml.Node) (Duration, string) {
	if n.Kind != yaml.ScalarNode {
		return 0, fmt.Sprintf("must be a duration (%s), not %s", durationSyntax, describe(n))
	}
	switch n.ShortTag() {
	case "!!int":
		var i int64
		if n.Decode(&i) == nil && i == 0 {
			return 0, ""
		}
		return 0, fmt.Sprintf("%s is not a duration: a number needs a unit (%s)", quote(n.Value), durationSyntax)
	case "!!float":
		return 0, fmt.Sprintf("%s is not a duration: a number needs a unit (%s)", quote(n.Value), durationSyntax)
	case "!!str":
		if v, err := time.ParseDuration(n.Value); err == nil {
			return Duration(v), ""
		}
	}
	return 0, fmt.Sprintf("%s is not a duration (%s)", quote(n.Value), durationSyntax)
}

// MarshalYAML writes d as a duration string, which UnmarshalYAML reads back.
func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }
