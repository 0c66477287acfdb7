package server

import (
	"errors"
	"maps"
	"net"
	"net/http"
	"net/netip"
	"os"
	"sync"
	"time"
)

// This file admits a request: what can be refused from its headers alone
// is, before anything is read; the form of a POST /auth is read under a
// short deadline before any slot is taken, so that a client sending its
// body slowly holds nothing but its own connection; then the request takes
// a slot of its client's and one of the server's (MaxConcurrent) for the
// work that costs: authentication, the policy, signing.
//
// Per client (holderKey: the address ServeHTTP worked out, an IPv6 one by
// its /64) two counts are bounded, each by perClientLimit: requests
// working, and POST bodies being read. The second keeps one address from
// opening bodies without end; it holds back only that address's POSTs
// with a body (never its GETs, which is how docker logs in), and a body
// that stalls is cut off at BodyTimeout.

// DefaultBodyTimeout is Options.BodyTimeout when it is 0: a token request's
// form is a few hundred bytes, which any client still connected sends well
// within it.
const DefaultBodyTimeout = 2 * time.Second

// Per client, when Options.MaxConcurrentPerClient is 0 and MaxConcurrent is
// set: an eighth of MaxConcurrent (64 of the default 512), so that it takes
// eight busy addresses to fill the server, but no fewer than
// minPerClientLimit, so that one client still runs docker's parallel
// pulls and pushes (a token request each) in a small setup.
const (
	perClientShare    = 8
	minPerClientLimit = 4
)

// perClientLimit is the bound on requests working, and on bodies being
// read, per client; 0 means none.
func perClientLimit(opts Options) int {
	switch {
	case opts.MaxConcurrentPerClient > 0:
		return opts.MaxConcurrentPerClient
	case opts.MaxConcurrentPerClient < 0 || opts.MaxConcurrent <= 0:
		return 0
	}
	return max(minPerClientLimit, opts.MaxConcurrent/perClientShare)
}

// holderKey groups client addresses as one holder controls them: an IPv4
// address alone, an IPv6 address with its /64. A key that is no address
// (forwarded:…) is its own.
func holderKey(client string) string {
	a, err := netip.ParseAddr(client)
	if err != nil {
		return client
	}
	a = a.Unmap().WithZone("")
	if a.Is6() {
		p, _ := a.Prefix(64)
		return p.String()
	}
	return a.String()
}

// clientCounts bounds what each client holds at once. Its memory is that of
// the clients holding something now: a count is deleted when it is back
// to 0. A nil *clientCounts bounds nothing.
type clientCounts struct {
	limit int
	mu    sync.Mutex
	held  map[string]int
}

func newClientCounts(limit int) *clientCounts {
	if limit <= 0 {
		return nil
	}
	return &clientCounts{limit: limit, held: map[string]int{}}
}

// acquire takes one of key's slots; false if it holds them all already.
func (c *clientCounts) acquire(key string) bool {
	if c == nil {
		return true
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.held[key] >= c.limit {
		return false
	}
	c.held[key]++
	return true
}

// release gives back a slot acquire took.
func (c *clientCounts) release(key string) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.held[key] <= 1 {
		delete(c.held, key)
		return
	}
	c.held[key]--
}

// overloaded is the answer of a request shed at once, rather than queued (a
// client retries, a queue only grows); which says which bound it met, for
// the log line.
func overloaded(msg, which string) outcome {
	return outcome{
		err:    &requestError{status: http.StatusServiceUnavailable, code: "UNAVAILABLE", oauth: "temporarily_unavailable", msg: msg},
		header: http.Header{"Retry-After": {"1"}},
		attrs:  []any{"overload", which},
	}
}

const (
	msgServerFull = "too many requests in flight; retry shortly"
	msgClientFull = "too many requests in flight from this client address; retry shortly"
)

// admit takes a slot of the client's and one of the server's for a
// request; release gives them back. Not ok: the request is shed, with out.
func (s *Server) admit(key string) (release func(), out outcome, ok bool) {
	if !s.working.acquire(key) {
		return nil, overloaded(msgClientFull, "client"), false
	}
	if s.inFlight != nil {
		select {
		case s.inFlight <- struct{}{}:
		default:
			s.working.release(key)
			return nil, overloaded(msgServerFull, "server"), false
		}
	}
	return func() {
		if s.inFlight != nil {
			<-s.inFlight
		}
		s.working.release(key)
	}, outcome{}, true
}

// takesForm reports whether r is a token request whose form is in its body.
func (s *Server) takesForm(r *http.Request) bool {
	if r.Method != http.MethodPost || r.RequestURI == "*" {
		return false
	}
	_, pattern := s.mux.Handler(r)
	return pattern == "POST /auth"
}

// readForm reads the form of a POST /auth, outside any slot but the
// client's bound on bodies being read, within BodyTimeout and MaxBodyBytes,
// and returns the request carrying it in PostForm, where parseRequest
// finds it. Not ok: the request is answered with out, on a connection that
// is then closed, since the rest of its body may still be coming.
func (s *Server) readForm(w http.ResponseWriter, r *http.Request, key string) (_ *http.Request, out outcome, ok bool) {
	defer func() {
		if !ok {
			if out.header == nil {
				out.header = http.Header{}
			}
			maps.Copy(out.header, closeAfter(r))
		}
	}()
	if r.ContentLength != 0 {
		if !s.reading.acquire(key) {
			s.metrics.overload.Inc()
			return r, overloaded(msgClientFull, "client_bodies"), false
		}
		defer s.reading.release(key)
	}
	// The connection's deadline (read_timeout) is replaced for the body.
	// Once the body is read, it is lifted (the server sets the next
	// request's). If the request fails it stays: what net/http still
	// drains of the body after the answer (up to 256 KiB) is read under
	// it too, and after a timeout nothing more is. Where the writer cannot
	// set one (a test's recorder), the body is read without.
	rc := http.NewResponseController(w)
	if rc.SetReadDeadline(time.Now().Add(s.bodyTimeout())) == nil {
		defer func() {
			if ok {
				_ = rc.SetReadDeadline(time.Time{})
			}
		}()
	}
	params, err := s.parseForm(w, r)
	if err != nil {
		return r, outcome{}.failed(err), false
	}
	withForm := new(http.Request)
	*withForm = *r
	withForm.PostForm = params
	return withForm, outcome{}, true
}

func (s *Server) bodyTimeout() time.Duration {
	if s.opts.BodyTimeout > 0 {
		return s.opts.BodyTimeout
	}
	return DefaultBodyTimeout
}

// closeAfter is the header that has an HTTP/1 connection closed after the
// answer, when the rest of the request's body may still be coming: reading
// it would take a while, and leaving it unread would make it the next
// request. (HTTP/2 ends a stream, not the connection.)
func closeAfter(r *http.Request) http.Header {
	if r.ProtoMajor != 1 {
		return nil
	}
	return http.Header{"Connection": {"close"}}
}

// isTimeout reports whether a body read failed on its deadline.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, os.ErrDeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout())
}
