// Package logbuf owns the server's log output off the request path: a
// Writer that gathers log lines in memory and writes them in batches, at
// most an interval after the first of them was written, when its buffer
// fills, when asked (Flush) and at Close; and a slog.Handler that flushes
// after each error-level record. It knows nothing of the server.
package logbuf
