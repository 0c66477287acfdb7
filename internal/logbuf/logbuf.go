package logbuf

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"time"
)

// DefaultSize is the buffer of New: past it, lines are written at once.
// 64 KiB holds some 200 request lines, a few milliseconds of a busy server.
const DefaultSize = 64 << 10

// Writer buffers what is written to it and writes it to the underlying
// writer in one call: at most Interval after the first byte waiting was
// written, when the buffer would overflow, on Flush, and on Close. Writes
// are whole: a line (one Write call, as slog's handlers make) is never
// split between two writes below. It is safe for concurrent use.
//
// A write error below drops what was buffered (a log must not grow without
// bound because its sink is gone) and is returned by the next Flush or
// Close.
type Writer struct {
	out      io.Writer
	interval time.Duration

	mu     sync.Mutex
	buf    []byte
	timer  *time.Timer // flushes interval after the first byte waiting
	armed  bool        // the timer is set and has not flushed yet
	closed bool        // after Close (or with no interval), writes go straight through
	err    error       // of the last write below since Flush or Close returned
}

// New returns a Writer over out that keeps lines for up to interval in a
// buffer of size bytes (0: DefaultSize). An interval of 0 or less keeps
// nothing: each write goes straight through, as after Close.
func New(out io.Writer, interval time.Duration, size int) *Writer {
	if size <= 0 {
		size = DefaultSize
	}
	w := &Writer{out: out, interval: interval, buf: make([]byte, 0, size), closed: interval <= 0}
	w.timer = time.AfterFunc(time.Hour, w.tick)
	w.timer.Stop()
	return w
}

// Write buffers p, or writes it at once when the Writer is closed or p
// alone would not fit in the buffer.
func (w *Writer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed || len(p) > cap(w.buf) {
		w.flushLocked()
		n, err := w.out.Write(p)
		return n, err
	}
	if len(w.buf)+len(p) > cap(w.buf) {
		w.flushLocked()
	}
	w.buf = append(w.buf, p...)
	if !w.armed {
		w.armed = true
		w.timer.Reset(w.interval)
	}
	return len(p), nil
}

// tick is the timer's: what waited an interval is written.
func (w *Writer) tick() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.armed = false
	w.flushLocked()
}

// flushLocked writes the buffer below, keeping the error for Flush.
func (w *Writer) flushLocked() {
	if len(w.buf) == 0 {
		return
	}
	if _, err := w.out.Write(w.buf); err != nil && w.err == nil {
		w.err = err
	}
	w.buf = w.buf[:0]
}

// Flush writes what is buffered, and returns the first write error since
// the last Flush.
func (w *Writer) Flush() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.flushLocked()
	err := w.err
	w.err = nil
	return err
}

// Close flushes and stops buffering: later writes go straight through, so
// that a line logged after Close (a component stopping late) is not lost.
func (w *Writer) Close() error {
	w.mu.Lock()
	w.closed = true
	w.timer.Stop()
	w.armed = false
	w.mu.Unlock()
	return w.Flush()
}

// FlushOnError wraps h so that each record at error level or above is
// written at once, with everything logged before it, rather than up to an
// interval later: an error is what an operator watches the log for, and
// what may come just before a crash, which would lose the buffer.
// Warnings stay buffered: a client can cause one per request (429s).
func FlushOnError(h slog.Handler, w *Writer) slog.Handler {
	return &flushHandler{Handler: h, w: w}
}

type flushHandler struct {
	slog.Handler
	w *Writer
}

func (f *flushHandler) Handle(ctx context.Context, r slog.Record) error {
	err := f.Handler.Handle(ctx, r)
	if r.Level >= slog.LevelError {
		_ = f.w.Flush() // a log sink's error has nowhere to go
	}
	return err
}

func (f *flushHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &flushHandler{Handler: f.Handler.WithAttrs(attrs), w: f.w}
}

func (f *flushHandler) WithGroup(name string) slog.Handler {
	return &flushHandler{Handler: f.Handler.WithGroup(name), w: f.w}
}
