package authz

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"
)

func gzipped(t *testing.T, parts ...[]byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	for _, p := range parts {
		zw := gzip.NewWriter(&buf)
		if _, err := zw.Write(p); err != nil {
			t.Fatal(err)
		}
		if err := zw.Close(); err != nil {
			t.Fatal(err)
		}
	}
	return buf.Bytes()
}

// oneByteReader hands out one byte per Read, as a slow network might.
type oneByteReader struct{ r io.Reader }

func (o oneByteReader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	return o.r.Read(p[:1])
}

// TestSizeLimitedBody: within the limit the body is passed on byte for
// byte, gzip or not; past it, uncompressed or as sent, reading fails with
// ErrBundleTooLarge, and for gzip, long before the reader downstream could
// have inflated it all.
func TestSizeLimitedBody(t *testing.T) {
	zeros := func(n int) []byte { return make([]byte, n) }
	tests := []struct {
		name    string
		body    []byte
		limit   int64
		tooBig  bool
		maxRead int // at most this much passed on before the error; 0: no bound checked
	}{
		{"empty", nil, 100, false, 0},
		{"small gzip", gzipped(t, []byte("hello, bundle")), 100, false, 0},
		{"gzip at the limit", gzipped(t, zeros(1000)), 1000, false, 0},
		{"gzip one byte over", gzipped(t, zeros(1001)), 1000, true, 0},
		{"two gzip members within", gzipped(t, zeros(600), zeros(300)), 1000, false, 0},
		{"two gzip members over", gzipped(t, zeros(600), zeros(600)), 1000, true, 0},
		{"gzip bomb", gzipped(t, zeros(64<<20)), 1 << 20, true, 64 << 10},
		{"gzip then trailing bytes", append(gzipped(t, []byte("x")), "trailer"...), 1000, false, 0},
		{"corrupt gzip", append(gzipped(t, zeros(100))[:20], "garbage that is no deflate stream"...), 1000, false, 0},
		{"plain within", []byte(strings.Repeat("a", 1000)), 1000, false, 0},
		{"plain over", []byte(strings.Repeat("a", 1001)), 1000, true, 0},
		{"JSON", []byte(`{"result": true}`), 1000, false, 0},
	}
	for _, tt := range tests {
		for _, slow := range []bool{false, true} {
			name := tt.name
			var r io.Reader = bytes.NewReader(tt.body)
			if slow {
				name += " (one byte at a time)"
				r = oneByteReader{r}
			}
			t.Run(name, func(t *testing.T) {
				b := newSizeLimitedBody(r, tt.limit, "the test body", " (hint)")
				got, err := io.ReadAll(b)
				if tt.tooBig {
					if !errors.Is(err, ErrBundleTooLarge) || !strings.Contains(err.Error(), "the test body is more than") || !strings.HasSuffix(err.Error(), " (hint)") {
						t.Fatalf("err = %v, want ErrBundleTooLarge naming the body and ending in the hint", err)
					}
					if !bytes.HasPrefix(tt.body, got) {
						t.Error("what was passed on before the error is not the body's start")
					}
					if tt.maxRead > 0 && len(got) > tt.maxRead {
						t.Errorf("%d bytes passed on before the error, want at most %d", len(got), tt.maxRead)
					}
					return
				}
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, tt.body) {
					t.Errorf("passed on %d bytes, not the body's %d unchanged", len(got), len(tt.body))
				}
			})
		}
	}
}

// TestOPALimitsRewrite: bundles without size_limit_bytes get the default,
// the total is the largest of the default and those set, and every service
// (as a map or a list) stands behind a plugin of ours, once.
func TestOPALimitsRewrite(t *testing.T) {
	l := newOPALimits()
	raw, err := l.rewriteConfig([]byte(`{
		"services": {"cp": {"url": "https://cp.example", "credentials": {"bearer": {"token": "t"}}}, "other": {"url": "https://o.example"}},
		"bundles": {"a": {"service": "cp", "resource": "a.tar.gz"}, "b": {"service": "cp", "size_limit_bytes": 1024}},
		"labels": {"env": "test"}}`))
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Services map[string]map[string]any `json:"services"`
		Bundles  map[string]map[string]any `json:"bundles"`
		Labels   map[string]string         `json:"labels"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	if got := doc.Bundles["a"]["size_limit_bytes"]; got != float64(DefaultBundleSizeLimit) {
		t.Errorf("bundle a: size_limit_bytes %v, want the default %d", got, DefaultBundleSizeLimit)
	}
	if got := doc.Bundles["b"]["size_limit_bytes"]; got != float64(1024) {
		t.Errorf("bundle b: size_limit_bytes %v, want its own 1024", got)
	}
	if l.limit.Load() != DefaultBundleSizeLimit {
		t.Errorf("limit %d, want the default: a lower size_limit_bytes does not lower it", l.limit.Load())
	}
	if doc.Labels["env"] != "test" || doc.Services["cp"]["url"] != "https://cp.example" {
		t.Errorf("the rest of the configuration changed: %s", raw)
	}
	plugins := map[string]bool{}
	for name, s := range doc.Services {
		creds, _ := s["credentials"].(map[string]any)
		p, _ := creds["plugin"].(string)
		if !strings.HasPrefix(p, limitPluginPrefix) || len(creds) != 1 {
			t.Errorf("service %s: credentials %v, want only a plugin of ours", name, s["credentials"])
		}
		plugins[p] = true
	}
	if len(plugins) != 2 || len(l.pending) != 2 {
		t.Errorf("plugins %v, %d pending; want one per service", plugins, len(l.pending))
	}
	for _, w := range l.pending {
		want := map[string]string{"cp": `{"bearer":{"token":"t"}}`, "other": ""}[w.service]
		if string(w.creds) != want {
			t.Errorf("service %s: own credentials %s, want %s", w.service, w.creds, want)
		}
	}
	// Again (as a discovered configuration merged with the boot one would
	// be): nothing is wrapped twice.
	again, err := l.rewriteConfig(raw)
	if err != nil || !bytes.Equal(again, raw) || len(l.pending) != 2 {
		t.Errorf("rewriting twice changed it: %s, %v, %d pending", again, err, len(l.pending))
	}

	// A higher size_limit_bytes raises the total; services as a list.
	l = newOPALimits()
	raw, err = l.rewriteConfig([]byte(`{"services": [{"name": "cp", "url": "https://cp.example"}],
		"bundles": {"a": {"service": "cp", "size_limit_bytes": 268435456}, "b": {"service": "cp"}}}`))
	if err != nil {
		t.Fatal(err)
	}
	if l.limit.Load() != 256<<20 {
		t.Errorf("limit %d, want size_limit_bytes 268435456", l.limit.Load())
	}
	if !strings.Contains(string(raw), `"credentials":{"plugin":"`+limitPluginPrefix+`1"}`) || len(l.pending) != 1 || l.pending[0].service != "cp" {
		t.Errorf("services as a list not wrapped: %s", raw)
	}
}

// TestOPALimitsRewriteYAML: the configuration may be YAML.
func TestOPALimitsRewriteYAML(t *testing.T) {
	l := newOPALimits()
	raw, err := l.rewriteConfig([]byte("services:\n  cp:\n    url: https://cp.example\nbundles:\n  a:\n    service: cp\n    size_limit_bytes: 100000000\n"))
	if err != nil {
		t.Fatal(err)
	}
	if l.limit.Load() != 100000000 || !strings.Contains(string(raw), `"credentials":{"plugin":"`+limitPluginPrefix+`1"}`) {
		t.Errorf("YAML config: limit %d, %s", l.limit.Load(), raw)
	}
	if _, err := newOPALimits().rewriteConfig([]byte("services: [")); err == nil {
		t.Error("a broken config was rewritten")
	}
}
