package server_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"git.sr.ht/~zozs/srht-registry/internal/access"
	"git.sr.ht/~zozs/srht-registry/internal/server"
)

// TestRequestLine: by default a token request writes one line, with its
// decisions folded in: each scope requested and granted, the deny messages
// by resource, the revision, how many came from the memo, the policy's time
// and the decision ID of the X-Decision-Id header, on failures too. With
// DecisionLines on, each decision also has its line.
func TestRequestLine(t *testing.T) {
	for _, tt := range []struct {
		name      string
		lines     bool
		query     string
		authzErr  error
		memoised  bool
		want      map[string]any // on the request line
		absent    []string       // keys not on the request line
		decisions int
	}{
		{
			name:  "granted, partly and not at all",
			query: "scope=repository:alice/app:pull,push,delete&scope=repository:bob/app:pull",
			want: map[string]any{
				"requested": []any{"repository:alice/app:pull,push,delete", "repository:bob/app:pull"},
				"granted":   []any{"repository:alice/app:pull,push"},
				"deny":      []any{"repository:bob/app: not yours"},
				"revision":  "r7", "memoised": 0.0, "policy_duration": 2000.0,
				"status": 200.0, "auth_method": "password", "provider": "htpasswd", "subject": "alice",
			},
		},
		{
			name:  "memoised, nothing denied",
			query: "scope=repository:alice/app:pull", memoised: true,
			want: map[string]any{
				"requested": []any{"repository:alice/app:pull"}, "granted": []any{"repository:alice/app:pull"},
				"revision": "r7", "memoised": 1.0,
			},
			absent: []string{"deny"},
		},
		{
			name:  "per-scope lines on",
			lines: true, query: "scope=repository:alice/app:pull&scope=repository:bob/app:pull",
			want:      map[string]any{"granted": []any{"repository:alice/app:pull"}},
			decisions: 2,
		},
		{
			name:     "the policy failed",
			query:    "scope=repository:alice/app:pull",
			authzErr: fmt.Errorf("evaluate: %w", access.ErrDecisionFailed),
			want:     map[string]any{"status": 503.0},
			absent:   []string{"requested", "granted", "revision"},
		},
		{
			name:   "no scope: no decision",
			query:  "",
			want:   map[string]any{"requested": []any{}, "granted": []any{}, "status": 200.0},
			absent: []string{"decision_id", "revision", "memoised"},
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakesWith(func(o *server.Options) {
				o.DecisionLines = func() bool { return tt.lines }
			})
			f.authz.grant = map[string][]string{"alice/app": {"pull", "push"}}
			f.authz.reasons = []string{"not yours"}
			f.authz.revision, f.authz.memoised, f.authz.err = "r7", tt.memoised, tt.authzErr
			rec := serve(f.h, req{query: tt.query, auth: []string{basic("alice", alicePassword)}})
			requests := logLines(t, f.logs.String(), "request")
			decisions := logLines(t, f.logs.String(), "decision")
			if len(requests) != 1 || len(decisions) != tt.decisions {
				t.Fatalf("%d request and %d decision lines, want 1 and %d:\n%s", len(requests), len(decisions), tt.decisions, f.logs)
			}
			line := requests[0]
			for k, want := range tt.want {
				if got := line[k]; fmt.Sprint(got) != fmt.Sprint(want) {
					t.Errorf("%s = %#v, want %#v", k, got, want)
				}
			}
			for _, k := range tt.absent {
				if v, ok := line[k]; ok {
					t.Errorf("%s = %#v, want none", k, v)
				}
			}
			id := rec.Header().Get("X-Decision-Id")
			if got, _ := line["decision_id"].(string); got != id {
				t.Errorf("decision_id = %q, X-Decision-Id = %q: want them equal", got, id)
			}
			for _, d := range decisions {
				if d["decision_id"] != id || d["request_id"] != line["request_id"] {
					t.Errorf("a decision line of another request: %v", d)
				}
			}
		})
	}
}

// TestIdle: Options.Idle is called when the last request in flight has
// been answered, after its log line (the buffered log's flush): not while
// another request is still in flight, and once per return to idle.
func TestIdle(t *testing.T) {
	f := newFakes()
	block := &blockingAuthz{entered: make(chan struct{}, 1), release: make(chan struct{})}
	var idle atomic.Int32
	var linesAtIdle []int
	h := server.New(server.Options{
		Services: []string{service}, Realm: realm, MaxScopes: 4, MaxBodyBytes: maxBody,
		Authenticator: f.authn, Authorizer: block, Minter: f.minter, JWKS: []byte(`{}`),
		Logger: slog.New(slog.NewJSONHandler(f.logs, nil)), Now: time.Now,
		Idle: func() {
			idle.Add(1)
			linesAtIdle = append(linesAtIdle, len(logLines(t, f.logs.String(), "request")))
		},
	})
	done := make(chan struct{})
	go func() {
		defer close(done)
		serve(h, req{query: "scope=repository:alice/app:pull"}) // held in the policy
	}()
	<-block.entered
	serve(h, req{path: "/nowhere"})
	if n := idle.Load(); n != 0 {
		t.Errorf("Idle called %d times with a request still in flight", n)
	}
	close(block.release)
	<-done
	serve(h, req{path: "/nowhere"})
	if fmt.Sprint(linesAtIdle) != "[2 3]" {
		t.Errorf("request lines logged at each call of Idle: %v, want [2 3]", linesAtIdle)
	}
}

// TestClientGoneIsNoError: a request whose client went away while the
// policy was evaluated (which cancels the evaluation) fails, but it is
// not an outage: its line is at info level, marked client_gone, not an
// error line.
func TestClientGoneIsNoError(t *testing.T) {
	for _, gone := range []bool{false, true} {
		f := newFakes()
		f.authz.err = fmt.Errorf("evaluate: %w: %w", access.ErrDecisionFailed, context.Canceled)
		hr := httptest.NewRequest(http.MethodGet, "/auth?service="+service+"&scope=repository:alice/app:pull", nil)
		if gone {
			ctx, cancel := context.WithCancel(hr.Context())
			cancel()
			hr = hr.WithContext(ctx)
		}
		f.h.ServeHTTP(httptest.NewRecorder(), hr)
		lines := logLines(t, f.logs.String(), "request")
		if len(lines) != 1 {
			t.Fatalf("gone=%v: %d request lines:\n%s", gone, len(lines), f.logs)
		}
		wantLevel := map[bool]string{false: "ERROR", true: "INFO"}[gone]
		if lines[0]["level"] != wantLevel || (lines[0]["client_gone"] == true) != gone {
			t.Errorf("gone=%v: level %v, client_gone %v; want %s", gone, lines[0]["level"], lines[0]["client_gone"], wantLevel)
		}
	}
}
