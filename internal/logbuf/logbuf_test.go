package logbuf_test

import (
	"cmp"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"git.sr.ht/~zozs/srht-registry/internal/logbuf"
)

// sink records each write it is given, separately.
type sink struct {
	mu     sync.Mutex
	writes []string
	err    error
}

func (s *sink) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return 0, s.err
	}
	s.writes = append(s.writes, string(p))
	return len(p), nil
}

func (s *sink) got() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.writes...)
}

const hour = time.Hour // an interval no test waits for

// TestWriter: what reaches the underlying writer, write by write, for
// writes and flushes in turn (no timer fires within a test: the interval
// is an hour).
func TestWriter(t *testing.T) {
	for _, tt := range []struct {
		name     string
		interval time.Duration // 0: an hour
		size     int
		do       func(w *logbuf.Writer)
		want     []string
	}{
		{"no interval: each write goes straight through", -1, 64, func(w *logbuf.Writer) { write(w, "a\n", "b\n") }, []string{"a\n", "b\n"}},
		{"buffered until flushed", 0, 64, func(w *logbuf.Writer) { write(w, "a\n", "b\n") }, nil},
		{"one write per flush", 0, 64, func(w *logbuf.Writer) {
			write(w, "a\n", "b\n")
			_ = w.Flush()
			write(w, "c\n")
			_ = w.Flush()
			_ = w.Flush() // nothing to write: no empty write below
		}, []string{"a\nb\n", "c\n"}},
		{"a full buffer is written before the line that would overflow it", 0, 8, func(w *logbuf.Writer) {
			write(w, "aaa\n", "bbb\n", "ccc\n")
		}, []string{"aaa\nbbb\n"}},
		{"a line larger than the buffer goes straight through, after what waited", 0, 8, func(w *logbuf.Writer) {
			write(w, "aaa\n", "0123456789\n")
		}, []string{"aaa\n", "0123456789\n"}},
		{"close flushes", 0, 64, func(w *logbuf.Writer) {
			write(w, "a\n", "b\n")
			_ = w.Close()
		}, []string{"a\nb\n"}},
		{"after close, writes go straight through", 0, 64, func(w *logbuf.Writer) {
			write(w, "a\n")
			_ = w.Close()
			write(w, "late\n", "later\n")
		}, []string{"a\n", "late\n", "later\n"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := &sink{}
			w := logbuf.New(s, cmp.Or(tt.interval, hour), tt.size)
			tt.do(w)
			if got := s.got(); fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("writes below = %q, want %q", got, tt.want)
			}
		})
	}
}

func write(w *logbuf.Writer, lines ...string) {
	for _, l := range lines {
		_, _ = w.Write([]byte(l))
	}
}

// TestWriterFlushesByTime: a line written and left alone reaches the
// underlying writer without a Flush, in one write with the lines that came
// with it; the next line arms the timer again.
func TestWriterFlushesByTime(t *testing.T) {
	s := &sink{}
	w := logbuf.New(s, 5*time.Millisecond, 0)
	defer w.Close()
	for round, lines := range [][]string{{"a\n", "b\n"}, {"c\n"}} {
		write(w, lines...)
		waitFor(t, func() bool { return len(s.got()) > round })
		if got, want := s.got()[round], strings.Join(lines, ""); !strings.HasPrefix(want, got) {
			t.Errorf("round %d: write below %q, want (a prefix of) %q", round, got, want)
		}
	}
	waitFor(t, func() bool { return strings.Join(s.got(), "") == "a\nb\nc\n" })
}

// waitFor polls cond for up to 10 s: long enough for any scheduler, and
// not a measure of how soon the timer fired.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatal("timed out")
}

// TestWriterConcurrent: lines from many goroutines all arrive, each
// whole, whatever flushed them (size, timer, Close). Run with -race.
func TestWriterConcurrent(t *testing.T) {
	const writers, lines = 8, 500
	s := &sink{}
	w := logbuf.New(s, time.Millisecond, 1024)
	var wg sync.WaitGroup
	for g := range writers {
		wg.Go(func() {
			for i := range lines {
				fmt.Fprintf(w, "writer=%d line=%d %s\n", g, i, strings.Repeat("x", i%50))
				if i%100 == 0 {
					_ = w.Flush()
				}
			}
		})
	}
	wg.Wait()
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for l := range strings.Lines(strings.Join(s.got(), "")) {
		var g, i int
		if _, err := fmt.Sscanf(l, "writer=%d line=%d", &g, &i); err != nil || l != fmt.Sprintf("writer=%d line=%d %s\n", g, i, strings.Repeat("x", i%50)) {
			t.Fatalf("a torn or garbled line: %q", l)
		}
		seen[l] = true
	}
	if len(seen) != writers*lines {
		t.Errorf("%d distinct lines arrived, want %d", len(seen), writers*lines)
	}
}

// TestWriterError: a failing sink's error comes back from Flush once, and
// what failed is dropped, not kept to grow.
func TestWriterError(t *testing.T) {
	s := &sink{err: errors.New("disk full")}
	w := logbuf.New(s, hour, 0)
	write(w, "lost\n")
	if err := w.Flush(); err == nil || err.Error() != "disk full" {
		t.Fatalf("Flush = %v, want disk full", err)
	}
	s.err = nil
	write(w, "kept\n")
	if err := w.Close(); err != nil {
		t.Fatalf("Close = %v, want nil (the error was reported)", err)
	}
	if got := s.got(); fmt.Sprint(got) != fmt.Sprint([]string{"kept\n"}) {
		t.Errorf("writes below = %q", got)
	}
}

// TestFlushOnError: records below error level wait in the buffer; an
// error-level one is written at once, with what came before it, also
// through a logger derived with With and WithGroup.
func TestFlushOnError(t *testing.T) {
	for _, tt := range []struct {
		level     slog.Level
		flushedAt bool
	}{
		{slog.LevelDebug, false},
		{slog.LevelInfo, false},
		{slog.LevelWarn, false},
		{slog.LevelError, true},
		{slog.LevelError + 4, true},
	} {
		t.Run(tt.level.String(), func(t *testing.T) {
			s := &sink{}
			w := logbuf.New(s, hour, 0)
			log := slog.New(logbuf.FlushOnError(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}), w))
			log.Info("before")
			log.With("request_id", "r1").WithGroup("g").Log(t.Context(), tt.level, "this")
			got := strings.Join(s.got(), "")
			if flushed := strings.Contains(got, "msg=before") && strings.Contains(got, "msg=this request_id=r1"); flushed != tt.flushedAt {
				t.Errorf("written at once: %v, want %v; below: %q", flushed, tt.flushedAt, got)
			}
		})
	}
}
