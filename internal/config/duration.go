package config

import (
	"fmt"
	"time"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"
)

// Duration is a time.Duration read from YAML as a Go duration string
// ("90s", "5m", "1h30m"). A bare 0 is accepted too, since "max_cache_ttl: 0"
// (meaning none) is the natural way to write it; any other bare number is an
// error, because it would be unclear whether it counts seconds or
// nanoseconds. Every duration setting of Config is a Duration, so the rule
// holds wherever one appears.
type Duration time.Duration

// durationHint says how a duration is written; it ends every decoding error.
const durationHint = `a duration is written like "90s", "5m" or "1h30m"; 0 means none`

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// String formats d like time.Duration ("1m30s", "0s").
func (d Duration) String() string { return time.Duration(d).String() }

// UnmarshalYAML accepts a duration string or the integer 0. Errors name the
// line, the way yaml's own type errors do, and say how a duration is written.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		switch n.ShortTag() {
		case "!!int":
			var i int64
			if n.Decode(&i) == nil && i == 0 {
				*d = 0
				return nil
			}
		case "!!str":
			if v, err := time.ParseDuration(n.Value); err == nil {
				*d = Duration(v)
				return nil
			}
		}
	}
	// Like yaml's own "cannot unmarshal !!str `5 minutes` into int".
	value := ""
	if n.Kind == yaml.ScalarNode {
		value = n.Value
		if len(value) > 10 {
			k := 7
			for k > 0 && !utf8.RuneStart(value[k]) {
				k--
			}
			value = value[:k] + "..."
		}
		value = " `" + value + "`"
	}
	return &yaml.TypeError{Errors: []string{
		fmt.Sprintf("line %d: cannot unmarshal %s%s into a duration (%s)", n.Line, n.ShortTag(), value, durationHint),
	}}
}

// MarshalYAML writes d as a duration string, which UnmarshalYAML reads back.
func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }
