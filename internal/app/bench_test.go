package app

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"testing"
)

// BenchmarkTokenRequest is one anonymous token request to the whole server
// (configuration, policy, keys and logging as `serve` wires them) over
// loopback HTTP, to profile where a request's time goes:
//
//	go test -run '^$' -bench TokenRequest -benchmem -cpuprofile cpu.out ./internal/app/
//
// "memo" asks for the same repository every time; "cold" for a new one
// every time, so the policy is evaluated for each. The client's cost is in
// the figures too: compare the cases, or read the profile, rather than the
// absolute times (dev/cmd/loadbench measures the server alone).
func BenchmarkTokenRequest(b *testing.B) {
	dir := b.TempDir()
	keysDir := filepath.Join(dir, "keys")
	if code := Run(context.Background(), []string{"keys", "--out", keysDir}, nil, io.Discard, io.Discard); code != 0 {
		b.Fatalf("keys exited %d", code)
	}
	config := filepath.Join(dir, "config.yaml")
	writeFile(b, config, fmt.Sprintf(`listen: 127.0.0.1:0
service: registry.example.com
token:
  key: %s
policy:
  data:
    public: ["library/*"]
`, filepath.Join(keysDir, "key.pem")))
	srv, err := New(context.Background(), Options{ConfigPath: config, Log: io.Discard})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = srv.Close(context.Background()) })
	client := &http.Client{}
	base := "http://" + srv.Addr() + "/auth?service=registry.example.com&scope=repository:library/"
	for _, c := range []struct {
		name string
		repo func(i int) string
	}{
		{"memo", func(int) string { return "alpine" }},
		{"cold", func(i int) string { return fmt.Sprintf("cold-%d", i) }},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				i++
				resp, err := client.Get(base + c.repo(i) + ":pull")
				if err != nil {
					b.Fatal(err)
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					b.Fatalf("status %d", resp.StatusCode)
				}
			}
		})
	}
}
