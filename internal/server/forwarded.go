package server

import (
	"iter"
	"log/slog"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"
)

// Forwarding headers: how the client of a request that came through a
// trusted proxy is worked out (clientIP calls forwardedClient only when the
// socket peer is in Options.TrustedProxies; anyone else's headers are
// ignored).
//
// Precedence: X-Forwarded-For, then X-Real-IP, then Forwarded (RFC 7239).
// The first of them the request carries with at least one non-empty entry
// is the only one read. Forwarded comes last on purpose: proxies that write
// X-Forwarded-For or X-Real-IP (haproxy's option forwardfor, nginx, most
// ingresses) pass a client's own Forwarded header through untouched, so
// reading it first would let any client behind them choose its address. A
// header the server ignored before cannot change the client of a setup
// that worked before. A proxy that writes only Forwarded must drop or
// overwrite X-Forwarded-For and X-Real-IP from clients (docs/operations.md).
//
// Entries: every header line is one comma-separated list, the lines in
// order; empty entries and spaces around them are ignored. An entry (for
// Forwarded, the value of the element's for= parameter, quoted or not,
// parameter names in any case) is an address in one of the forms
//
//	192.0.2.60   192.0.2.60:4711   2001:db8::17   [2001:db8::17]   [2001:db8::17]:4711
//
// (a port may be 1 to 5 digits or an RFC 7239 obfuscated port such as _p1;
// IPv4-mapped IPv6 addresses are unmapped, zones dropped; an IPv6 address
// with a port must be in brackets, or 2001:db8::17:4711 is one address).
//
// The walk: each proxy appends the address it got the request from, so the
// list is read from the right, skipping addresses of trusted proxies; the
// first address that is not one is the client, and nothing left of it is
// read (a client can write anything there). If every entry is a trusted
// proxy, the leftmost one is the client (a client inside a trusted range).
// At most maxForwardedHops entries are read, and the scan touches only the
// bytes of the entries read, so a long header costs no more than a short
// one beyond those entries.
//
// An entry that is not an address where the walk would find the client
// (unknown, an obfuscated identifier such as _hidden, a Forwarded element
// with no for= or with two, a name, garbage) stops the walk. The client is
// then not the proxy: it is the key "forwarded:" followed by that entry
// (the node without its port, unknown lowercased, characters other than
// letters, digits and .:_-[] percent-encoded, at most maxClientKeyBytes),
// which throttling, the policy (input.request.client_ip) and the log see.
// The trusted proxy wrote that entry (everything right of it is a trusted
// proxy's address, and the rightmost is the peer's), so a client cannot
// choose it; the key cannot be an address, so it never shares a counter
// with a real address (the proxy's own included); and when the proxy
// writes a distinct token per client (obfuscated identifiers), each of its
// clients is counted apart. Only what the proxy gives no way to tell apart
// (for=unknown for all, an element without for=) shares one key, and that
// is still not the proxy's address. The port is left out of the key so
// that new connections do not make new keys. It is logged at warn, at most
// once per forwardedWarnEvery.
const (
	// maxForwardedHops bounds the entries read from the right of a header.
	maxForwardedHops = 32
	// maxNodeBytes: a longer entry is not parsed: it is not an address.
	maxNodeBytes = 128
	// maxClientKeyBytes bounds the key made of an unusable entry, after
	// the prefix.
	maxClientKeyBytes = 64
	// maxLoggedHeaderBytes bounds the header value in the warning.
	maxLoggedHeaderBytes = 200
	// forwardedKeyPrefix starts every client key made of an unusable
	// entry; no address contains it.
	forwardedKeyPrefix = "forwarded:"
	// forwardedWarnEvery spaces the warnings about unusable entries.
	forwardedWarnEvery = time.Minute
)

// forwardingHeaders are read in this order; rfc7239 marks the one whose
// elements are parameter lists with quoted strings.
var forwardingHeaders = [...]struct {
	name    string
	rfc7239 bool
}{{"X-Forwarded-For", false}, {"X-Real-Ip", false}, {"Forwarded", true}}

// unusableHop is an entry that names no address where the walk would find
// the client.
type unusableHop struct {
	header string // canonical header name
	reason string
}

// forwardedClient is the client the forwarding headers name, for a request
// whose socket peer is a trusted proxy: an address, or the key of an
// unusable entry (then bad says why). ok is false when the request carries
// no forwarding header with an entry: the peer is the client.
func forwardedClient(h http.Header, trusted func(netip.Addr) bool) (client string, bad *unusableHop, ok bool) {
	for _, hdr := range forwardingHeaders {
		lines := h.Values(hdr.name)
		if len(lines) == 0 {
			continue
		}
		var leftmost netip.Addr
		n := 0
		for elem := range elementsFromRight(lines, hdr.rfc7239) {
			n++
			node, reason := elem, "not an address"
			if hdr.rfc7239 {
				var found bool
				if node, found = forParam(elem); !found {
					node, reason = "unknown", "an element without exactly one for= parameter"
				}
			} else {
				node = unquoteLoose(node)
			}
			addr, isAddr := parseNode(node)
			if !isAddr {
				return forwardedKeyPrefix + clientKey(node), &unusableHop{header: hdr.name, reason: reason}, true
			}
			if !trusted(addr) {
				return addr.String(), nil, true
			}
			leftmost = addr
			if n == maxForwardedHops {
				break
			}
		}
		if n > 0 {
			return leftmost.String(), nil, true
		}
	}
	return "", nil, false
}

// elementsFromRight yields the non-empty elements of a comma-separated
// header, trimmed, from the last line's last element to the first line's
// first. With quoted set a comma inside a quoted string (RFC 9110, with
// backslash escapes) does not separate. It reads only as far as the
// elements taken.
func elementsFromRight(lines []string, quoted bool) iter.Seq[string] {
	return func(yield func(string) bool) {
		for l := len(lines) - 1; l >= 0; l-- {
			line := lines[l]
			end := len(line)
			inQuote := false
			for i := len(line) - 1; i >= -1; i-- {
				if i >= 0 {
					c := line[i]
					if quoted && c == '"' {
						// Read backwards, a quote outside a string closes
						// one; inside, an unescaped quote opens it.
						if !inQuote {
							inQuote = true
						} else if backslashesBefore(line, i)%2 == 0 {
							inQuote = false
						}
						continue
					}
					if c != ',' || inQuote {
						continue
					}
				}
				elem := trimOWS(line[i+1 : end])
				end = i
				if elem != "" && !yield(elem) {
					return
				}
			}
		}
	}
}

// backslashesBefore counts the backslashes right before s[i].
func backslashesBefore(s string, i int) int {
	n := 0
	for i--; i >= 0 && s[i] == '\\'; i-- {
		n++
	}
	return n
}

// forParam is the value of the for= parameter of a Forwarded element
// (name in any case, value a token or a quoted string), and whether the
// element has exactly one. Pairs that are not name=value are skipped.
func forParam(elem string) (node string, found bool) {
	for pair := range pairs(elem) {
		name, value, ok := strings.Cut(pair, "=")
		if !ok || !strings.EqualFold(trimOWS(name), "for") {
			continue
		}
		if found {
			return "", false // RFC 7239: a parameter occurs once per element
		}
		node, found = unquote(trimOWS(value)), true
	}
	return node, found
}

// pairs yields the ;-separated pairs of a Forwarded element, trimmed, a
// semicolon inside a quoted string not separating.
func pairs(elem string) iter.Seq[string] {
	return func(yield func(string) bool) {
		start, inQuote := 0, false
		for i := 0; i <= len(elem); i++ {
			if i < len(elem) {
				switch c := elem[i]; {
				case inQuote && c == '\\' && i+1 < len(elem):
					i++
					continue
				case c == '"':
					inQuote = !inQuote
					continue
				case c != ';' || inQuote:
					continue
				}
			}
			if p := trimOWS(elem[start:i]); p != "" && !yield(p) {
				return
			}
			start = i + 1
		}
	}
}

// unquote undoes an RFC 9110 quoted string; anything else is returned as
// it is (an unterminated string too: it will not parse as an address). It
// stops after maxNodeBytes+1 bytes of the content: that much is too long
// to be an address, and enough for a key.
func unquote(v string) string {
	if len(v) < 2 || v[0] != '"' {
		return v
	}
	var b strings.Builder
	for i := 1; i < len(v); i++ {
		if b.Len() > maxNodeBytes {
			return b.String()
		}
		switch c := v[i]; c {
		case '\\':
			if i+1 >= len(v) {
				return v
			}
			i++
			b.WriteByte(v[i])
		case '"':
			if i != len(v)-1 {
				return v
			}
			return b.String()
		default:
			b.WriteByte(c)
		}
	}
	return v
}

// unquoteLoose drops the quotes around an X-Forwarded-For entry that some
// writers add.
func unquoteLoose(v string) string {
	if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
		return trimOWS(v[1 : len(v)-1])
	}
	return v
}

// parseNode parses an address in any of the forms forwarding headers use:
// ip, ipv4:port, [ipv6], [ipv6]:port (or a bare IPv6 address). The result
// is unmapped and without a zone.
func parseNode(node string) (netip.Addr, bool) {
	if node == "" || len(node) > maxNodeBytes {
		return netip.Addr{}, false
	}
	host := node
	switch first, last := strings.IndexByte(node, ':'), strings.LastIndexByte(node, ':'); {
	case node[0] == '[':
		end := strings.IndexByte(node, ']')
		if end < 0 {
			return netip.Addr{}, false
		}
		if rest := node[end+1:]; rest != "" && (rest[0] != ':' || !validPort(rest[1:])) {
			return netip.Addr{}, false
		}
		host = node[1:end]
	case first >= 0 && first == last:
		// One colon: an IPv4 address and a port (IPv6 has two at least).
		if !validPort(node[last+1:]) {
			return netip.Addr{}, false
		}
		host = node[:last]
	}
	addr, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}, false
	}
	return addr.Unmap().WithZone(""), true
}

// validPort: 1 to 5 digits, or an RFC 7239 obfuscated port (_ then
// letters, digits, '.', '_', '-').
func validPort(p string) bool {
	if p == "" {
		return false
	}
	if p[0] == '_' {
		return len(p) > 1 && obfuscatedChars(p[1:])
	}
	if len(p) > 5 {
		return false
	}
	for i := 0; i < len(p); i++ {
		if p[i] < '0' || p[i] > '9' {
			return false
		}
	}
	return true
}

func obfuscatedChars(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; !isAlnum(c) && c != '.' && c != '_' && c != '-' {
			return false
		}
	}
	return true
}

func isAlnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

// clientKey makes the rest of a client key of an unusable entry: the node
// without its port (so that each new connection does not make a new key),
// "unknown" in lower case, anything but letters, digits and .:_-[]
// percent-encoded, cut at maxClientKeyBytes.
func clientKey(node string) string {
	node = withoutPort(node)
	if strings.EqualFold(node, "unknown") {
		return "unknown"
	}
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(node) && b.Len() < maxClientKeyBytes; i++ {
		switch c := node[i]; {
		case isAlnum(c) || strings.IndexByte(".:_-[]", c) >= 0:
			b.WriteByte(c)
		default:
			if b.Len()+3 > maxClientKeyBytes {
				return b.String()
			}
			b.WriteByte('%')
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&15])
		}
	}
	return b.String()
}

// withoutPort drops the port of [x]:port or x:port (x without a colon).
func withoutPort(node string) string {
	if node != "" && node[0] == '[' {
		if end := strings.IndexByte(node, ']'); end >= 0 {
			if rest := node[end+1:]; rest == "" || rest[0] == ':' && validPort(rest[1:]) {
				return node[:end+1]
			}
		}
		return node
	}
	if i := strings.IndexByte(node, ':'); i > 0 && i == strings.LastIndexByte(node, ':') && validPort(node[i+1:]) {
		return node[:i]
	}
	return node
}

// trimOWS trims the spaces and tabs HTTP allows around list elements.
func trimOWS(s string) string {
	return strings.Trim(s, " \t")
}

// warnLimit lets one warning through per interval and counts the others.
// The zero value is ready.
type warnLimit struct {
	mu         sync.Mutex
	next       time.Time
	suppressed int
}

// allow says whether to log now, and how many were held back since the
// last one logged.
func (w *warnLimit) allow(now time.Time, every time.Duration) (ok bool, suppressed int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if now.Before(w.next) {
		w.suppressed++
		return false, 0
	}
	suppressed, w.suppressed, w.next = w.suppressed, 0, now.Add(every)
	return true, suppressed
}

// warnUnusableForwarded logs, through the request's logger and at most
// once per forwardedWarnEvery, a forwarding header whose entry where the
// client would be is no address, with the header's value cut short.
func (s *Server) warnUnusableForwarded(log *slog.Logger, h http.Header, peer, key string, bad *unusableHop) {
	ok, suppressed := s.forwardedWarn.allow(s.opts.Now(), forwardedWarnEvery)
	if !ok {
		return
	}
	log.Warn("forwarding header from a trusted proxy names no client address where the client should be; its entry is the client key",
		"header", bad.header, "value", headerExcerpt(h.Values(bad.header), maxLoggedHeaderBytes), "reason", bad.reason,
		"client_key", key, "peer", peer, "suppressed", suppressed)
}

// headerExcerpt is the header's lines joined with ", ", at most limit bytes
// of it, in valid UTF-8. It copies no more than that.
func headerExcerpt(lines []string, limit int) string {
	var b strings.Builder
	for i, line := range lines {
		if i > 0 {
			line = ", " + line[:min(len(line), limit)]
		}
		if b.Len()+len(line) > limit {
			b.WriteString(line[:limit-b.Len()])
			break
		}
		b.WriteString(line)
	}
	return strings.ToValidUTF8(b.String(), "\uFFFD")
}
