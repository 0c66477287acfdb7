package server

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"git.sr.ht/~zozs/srht-registry/internal/identity"
)

// The parts of a request that are neither authentication, policy nor
// signature, one by one: BenchmarkOverhead (overhead_bench_test.go) has
// them together.

func BenchmarkRequestID(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		_ = newRequestID()
	}
}

func BenchmarkMetrics(b *testing.B) {
	m := newMetrics()
	r := httptest.NewRequest(http.MethodGet, "/auth", nil)
	b.ReportAllocs()
	for b.Loop() {
		m.served(r, http.StatusOK, time.Millisecond)
		m.issued(identity.MethodPassword, false)
	}
}

func BenchmarkWriteToken(b *testing.B) {
	resp := &tokenResponse{
		Token:       "eyJhbGciOiJFUzI1NiIsInR5cCI6IkpXVCIsImtpZCI6IkFCQ0Q6RUZHSCJ9.eyJpc3MiOiJzcmh0LXJlZ2lzdHJ5In0.c2lnbmF0dXJl",
		AccessToken: "eyJhbGciOiJFUzI1NiIsInR5cCI6IkpXVCIsImtpZCI6IkFCQ0Q6RUZHSCJ9.eyJpc3MiOiJzcmh0LXJlZ2lzdHJ5In0.c2lnbmF0dXJl",
		ExpiresIn:   300, IssuedAt: "2030-01-02T03:04:05Z", Scope: "repository:alice/app:pull,push",
	}
	w := &discard{h: http.Header{}}
	b.ReportAllocs()
	for b.Loop() {
		clear(w.h)
		writeJSON(w, http.StatusOK, resp)
	}
}

// discard is a ResponseWriter that keeps only its header map.
type discard struct{ h http.Header }

func (d *discard) Header() http.Header         { return d.h }
func (d *discard) Write(p []byte) (int, error) { return len(p), nil }
func (d *discard) WriteHeader(int)             {}
