package config

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

func TestDurationUnmarshal(t *testing.T) {
	const hint = "(use Go syntax like 5m or 1h30m, or 0)"
	tests := []struct {
		name, yaml string
		want       time.Duration
		err        string // substring besides the hint; "" = no error
	}{
		{"zero", "d: 0", 0, ""},
		{"zero string", `d: "0"`, 0, ""},
		{"zero seconds", "d: 0s", 0, ""},
		{"seconds", "d: 90s", 90 * time.Second, ""},
		{"quoted", `d: "5m"`, 5 * time.Minute, ""},
		{"compound", "d: 1h30m", 90 * time.Minute, ""},
		{"fraction", "d: 1.5s", 1500 * time.Millisecond, ""},
		{"negative", "d: -5m", -5 * time.Minute, ""}, // Validate decides
		{"absent keeps the old value", "other: 1", time.Hour, ""},
		{"null keeps the old value", "d:", time.Hour, ""},
		{"alias", "x: &a 2m\nd: *a\n", 2 * time.Minute, ""},
		{"bare number", "\nd: 5\n", 0, `line 2: "5" is not a duration: a number needs a unit`},
		{"negative number", "d: -1", 0, `line 1: "-1" is not a duration: a number needs a unit`},
		{"float", "d: 1.5", 0, `line 1: "1.5" is not a duration: a number needs a unit`},
		{"words", "d: 5 min", 0, `line 1: "5 min" is not a duration`},
		{"no unit", `d: "5"`, 0, `line 1: "5" is not a duration (`},
		{"days", "d: 30d", 0, `line 1: "30d" is not a duration`},
		{"empty string", `d: ""`, 0, `line 1: "" is not a duration`},
		{"bool", "d: true", 0, `line 1: "true" is not a duration`},
		{"long value", "d: 5 minutes and a bit more than anyone would write", 0, `line 1: "5 minutes and a bit more than anyone ..." is not a duration`},
		{"list", "d: [1m]", 0, "line 1: must be a duration (use Go syntax like 5m or 1h30m, or 0), not a list"},
		{"block list", "d:\n  - 1m\n", 0, "line 2: must be a duration (use Go syntax like 5m or 1h30m, or 0), not a list"},
		{"mapping", "d: {m: 1}", 0, "line 1: must be a duration (use Go syntax like 5m or 1h30m, or 0), not a mapping"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := struct {
				D     Duration `yaml:"d"`
				X     string   `yaml:"x"`
				Other int      `yaml:"other"`
			}{D: Duration(time.Hour)}
			err := yaml.Unmarshal([]byte(tt.yaml), &v)
			if tt.err != "" {
				if err == nil {
					t.Fatalf("no error; got %v", v.D)
				}
				if !strings.Contains(err.Error(), tt.err) || !strings.Contains(err.Error(), hint) {
					t.Errorf("error %q, want it to contain %q and the hint", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if v.D.D() != tt.want {
				t.Errorf("got %v, want %v", v.D, tt.want)
			}
		})
	}
}

func TestDurationString(t *testing.T) {
	for _, d := range []time.Duration{0, time.Millisecond, 90 * time.Second, 25 * time.Hour, -time.Second} {
		if got, want := Duration(d).String(), d.String(); got != want {
			t.Errorf("Duration(%d).String() = %q, want %q", d, got, want)
		}
		out, err := yaml.Marshal(map[string]Duration{"d": Duration(d)})
		if err != nil {
			t.Fatal(err)
		}
		if want := "d: " + d.String() + "\n"; string(out) != want {
			t.Errorf("yaml.Marshal(%v) = %q, want %q", d, out, want)
		}
		var back map[string]Duration
		if err := yaml.Unmarshal(out, &back); err != nil || back["d"] != Duration(d) {
			t.Errorf("round trip of %v = %v, %v", d, back["d"], err)
		}
	}
}

// durationPaths returns the dotted YAML key of every Duration field in t.
func durationPaths(t reflect.Type, prefix string) []string {
	var out []string
	for f := range t.Fields() {
		key := prefix + strings.Split(f.Tag.Get("yaml"), ",")[0]
		switch {
		case f.Type == reflect.TypeFor[Duration]():
			out = append(out, key)
		case f.Type.Kind() == reflect.Struct:
			out = append(out, durationPaths(f.Type, key+".")...)
		}
	}
	return out
}

// TestParseZeroEveryDuration sets each duration key to a bare 0: it is read
// as zero everywhere (limits.shutdown_delay: 0 used to be a YAML error), and
// then accepted or refused by Validate, never by the YAML decoder.
func TestParseZeroEveryDuration(t *testing.T) {
	// The validation problem a zero gives; "" = zero is allowed.
	want := map[string]string{
		"token.ttl":                          "token.ttl: must be at least 1m0s, got 0s",
		"token.refresh.ttl":                  "token.refresh.ttl: must be at least token.ttl (5m0s), got 0s",
		"authn.sourcehut.timeout":            "authn.sourcehut.timeout: must be above 0 and at most 1m, got 0s",
		"authn.sourcehut.max_cache_ttl":      "",
		"authn.sourcehut.negative_cache_ttl": "authn.sourcehut.negative_cache_ttl: must be above 0 and at most 1h, got 0s",
		"authn.password_cache.ttl":           "",
		"policy.timeout":                     "policy.timeout: must be above 0 and at most 1m, got 0s",
		"policy.startup_wait":                "policy.startup_wait: must be above 0 and at most 1h, got 0s",
		"log.flush_interval":                 "",
		"limits.read_header_timeout":         "limits.read_header_timeout: must be above 0 and at most 1h, got 0s",
		"limits.read_timeout":                "limits.read_timeout: must be above 0 and at most 1h, got 0s",
		"limits.write_timeout":               "limits.write_timeout: must be above 0 and at most 1h, got 0s",
		"limits.idle_timeout":                "limits.idle_timeout: must be above 0 and at most 1h, got 0s",
		"limits.shutdown_timeout":            "limits.shutdown_timeout: must be above 0 and at most 1h, got 0s",
		"limits.shutdown_delay":              "",
		"brute_force.window":                 "brute_force.window: must be above 0 while brute_force.threshold is on, got 0s",
	}
	paths := durationPaths(reflect.TypeFor[Config](), "")
	if len(paths) != len(want) {
		t.Errorf("Config has the duration keys %q; want the %d of this test", paths, len(want))
	}
	for _, key := range paths {
		problem, ok := want[key]
		if !ok {
			t.Errorf("%s: a duration key this test does not know", key)
			continue
		}
		for _, zero := range []string{"0", `"0"`, "0s"} {
			// Block style, each parent on its own line.
			parts := strings.Split(key, ".")
			var doc strings.Builder
			for i, p := range parts {
				doc.WriteString(strings.Repeat("  ", i) + p + ":")
				if i < len(parts)-1 {
					doc.WriteString("\n")
				}
			}
			doc.WriteString(" " + zero + "\n")
			// And flow style: limits: {shutdown_delay: 0}.
			flow := strings.Join(parts, ": {") + ": " + zero + strings.Repeat("}", len(parts)-1)
			for _, d := range []string{doc.String(), flow} {
				c, err := Parse([]byte(d))
				if problem == "" {
					if err != nil {
						t.Errorf("Parse(%q) = %v", d, err)
						continue
					}
					if got := durationAt(c, key); got != 0 {
						t.Errorf("Parse(%q): %s = %v, want 0", d, key, got)
					}
					continue
				}
				var ve *ValidationError
				if !errors.As(err, &ve) {
					t.Errorf("Parse(%q) = %v, want a *ValidationError", d, err)
					continue
				}
				if !reflect.DeepEqual(ve.Problems, []string{problem}) {
					t.Errorf("Parse(%q) problems = %q, want [%q]", d, ve.Problems, problem)
				}
			}
		}
	}
}

// durationAt returns the Duration field of c at the dotted YAML key.
func durationAt(c Config, key string) Duration {
	v := reflect.ValueOf(c)
next:
	for p := range strings.SplitSeq(key, ".") {
		for i := range v.NumField() {
			if strings.Split(v.Type().Field(i).Tag.Get("yaml"), ",")[0] == p {
				v = v.Field(i)
				continue next
			}
		}
		panic("no key " + key)
	}
	return v.Interface().(Duration)
}
