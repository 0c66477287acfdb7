package server

import (
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

var testTrusted = []netip.Prefix{
	netip.MustParsePrefix("10.0.0.0/8"),
	netip.MustParsePrefix("192.0.2.10/32"),
	netip.MustParsePrefix("2001:db8:ffff::/48"),
}

func isTestTrusted(a netip.Addr) bool {
	for _, p := range testTrusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// header builds a header with, for each name, its lines in order.
func header(kv ...string) http.Header {
	h := http.Header{}
	for i := 0; i+1 < len(kv); i += 2 {
		h.Add(kv[i], kv[i+1])
	}
	return h
}

const (
	xff  = "X-Forwarded-For"
	xrip = "X-Real-IP"
	fwd  = "Forwarded"
)

func TestForwardedClient(t *testing.T) {
	long := strings.Repeat("a", 10000)
	tests := []struct {
		name string
		h    http.Header
		want string
		bad  bool // an unusable entry was found
		none bool // no header with an entry: the peer is the client
	}{
		// X-Forwarded-For, every form of an entry.
		{"xff ipv4", header(xff, "203.0.113.9"), "203.0.113.9", false, false},
		{"xff ipv4:port", header(xff, "203.0.113.9:4444"), "203.0.113.9", false, false},
		{"xff [v6]:port", header(xff, "[2001:db8::9]:4444"), "2001:db8::9", false, false},
		{"xff [v6]", header(xff, "[2001:db8::9]"), "2001:db8::9", false, false},
		{"xff bare v6", header(xff, "2001:db8::9"), "2001:db8::9", false, false},
		{"xff v6 upper case, normalised", header(xff, "2001:DB8::0:9"), "2001:db8::9", false, false},
		{"xff v4-mapped", header(xff, "::ffff:203.0.113.9"), "203.0.113.9", false, false},
		{"xff [v4-mapped]:port", header(xff, "[::ffff:203.0.113.9]:80"), "203.0.113.9", false, false},
		{"xff zone dropped", header(xff, "fe80::1%eth0"), "fe80::1", false, false},
		{"xff [v4]:port tolerated", header(xff, "[203.0.113.9]:80"), "203.0.113.9", false, false},
		{"xff quoted", header(xff, `"203.0.113.9"`), "203.0.113.9", false, false},
		{"xff obfuscated port", header(xff, "203.0.113.9:_p1"), "203.0.113.9", false, false},
		{"xff v6 with port needs brackets", header(xff, "2001:db8::9:4444"), "2001:db8::9:4444", false, false},
		// Lists and lines.
		{"xff chain, forged left part ignored", header(xff, "6.6.6.6, 203.0.113.9, 10.0.0.2"), "203.0.113.9", false, false},
		{"xff chain with ports", header(xff, "6.6.6.6:1, 203.0.113.9:2, 10.0.0.2:3"), "203.0.113.9", false, false},
		{"xff several lines", header(xff, "6.6.6.6, 203.0.113.9", xff, "10.0.0.2:5555"), "203.0.113.9", false, false},
		{"xff spaces, tabs and empty entries", header(xff, " ,\t203.0.113.9 ,, 10.0.0.2 ,  "), "203.0.113.9", false, false},
		{"xff trusted v6 and mapped hops skipped", header(xff, "203.0.113.9, [2001:db8:ffff::1]:80, ::ffff:10.0.0.2"), "203.0.113.9", false, false},
		{"xff all hops trusted: leftmost", header(xff, "10.3.3.3, 10.2.2.2"), "10.3.3.3", false, false},
		{"xff garbage left of the client ignored", header(xff, "garbage, <x>, 203.0.113.9"), "203.0.113.9", false, false},
		// Unusable entries where the client would be.
		{"xff garbage where the client is", header(xff, "198.51.100.1, not-an-ip"), "forwarded:not-an-ip", true, false},
		{"xff garbage left of trusted hops", header(xff, "6.6.6.6, garbage, 10.0.0.2"), "forwarded:garbage", true, false},
		{"xff unknown", header(xff, "unknown"), "forwarded:unknown", true, false},
		{"xff UNKNOWN:port", header(xff, "UNKNOWN:1234, 10.0.0.2"), "forwarded:unknown", true, false},
		{"xff obfuscated", header(xff, "_hidden"), "forwarded:_hidden", true, false},
		{"xff obfuscated with port", header(xff, "_hidden:_p"), "forwarded:_hidden", true, false},
		{"xff name with port", header(xff, "client.example:4444"), "forwarded:client.example", true, false},
		{"xff port too long", header(xff, "203.0.113.9:123456"), "forwarded:203.0.113.9:123456", true, false},
		{"xff empty port", header(xff, "203.0.113.9:"), "forwarded:203.0.113.9:", true, false},
		{"xff [v6] then junk", header(xff, "[2001:db8::9]x"), "forwarded:[2001:db8::9]x", true, false},
		{"xff [v6] port dropped from key", header(xff, "[2001:db8::zz]:80"), "forwarded:[2001:db8::zz]", true, false},
		{"xff markup encoded", header(xff, "<script>"), "forwarded:%3Cscript%3E", true, false},
		{"xff two addresses in one entry", header(xff, "1.2.3.4 5.6.7.8"), "forwarded:1.2.3.4%205.6.7.8", true, false},
		{"xff leading zeros", header(xff, "010.1.1.1"), "forwarded:010.1.1.1", true, false},
		{"xff long entry, key bounded", header(xff, long), "forwarded:" + long[:maxClientKeyBytes], true, false},
		{"xff non-ASCII", header(xff, "\xff\x00é"), "forwarded:%FF%00%C3%A9", true, false},
		// X-Real-IP, read when X-Forwarded-For is absent or empty.
		{"x-real-ip", header(xrip, "198.51.100.9"), "198.51.100.9", false, false},
		{"x-real-ip:port", header(xrip, "198.51.100.9:80"), "198.51.100.9", false, false},
		{"x-real-ip [v6]:port", header(xrip, "[2001:db8::9]:80"), "2001:db8::9", false, false},
		{"x-real-ip trusted", header(xrip, "10.0.0.5"), "10.0.0.5", false, false},
		{"x-real-ip garbage", header(xrip, "<script>"), "forwarded:%3Cscript%3E", true, false},
		{"x-real-ip several lines: the last", header(xrip, "6.6.6.6", xrip, "198.51.100.9"), "198.51.100.9", false, false},
		{"x-forwarded-for first", header(xff, "203.0.113.9", xrip, "6.6.6.6", fwd, "for=6.6.6.7"), "203.0.113.9", false, false},
		{"empty x-forwarded-for skipped", header(xff, " , ", xrip, "198.51.100.9"), "198.51.100.9", false, false},
		// Forwarded (RFC 7239), read when neither of the others is.
		{"forwarded", header(fwd, "for=192.0.2.60;proto=http;by=203.0.113.43"), "192.0.2.60", false, false},
		{"forwarded quoted v6 with port", header(fwd, `for="[2001:db8:cafe::17]:4711"`), "2001:db8:cafe::17", false, false},
		{"forwarded quoted v4 with port", header(fwd, `for="192.0.2.60:4711"`), "192.0.2.60", false, false},
		{"forwarded names in any case", header(fwd, "By=10.0.0.1;FOR=192.0.2.60;Proto=https"), "192.0.2.60", false, false},
		{"forwarded spaces around pairs", header(fwd, " for=192.0.2.60 ; proto=https "), "192.0.2.60", false, false},
		{"forwarded several elements", header(fwd, "for=192.0.2.43, for=198.51.100.17"), "198.51.100.17", false, false},
		{"forwarded trusted element skipped", header(fwd, `for=192.0.2.43, for="[2001:db8:ffff::2]";by=10.0.0.1`), "192.0.2.43", false, false},
		{"forwarded several lines", header(fwd, "for=6.6.6.6", fwd, "for=203.0.113.9;proto=https"), "203.0.113.9", false, false},
		{"forwarded escapes and commas in quotes", header(fwd, `for=6.6.6.6, for="[2001:db8::1]:80";host="a\"b,c;d"`), "2001:db8::1", false, false},
		{"forwarded quote injected on the left", header(fwd, `for="x, for=6.6.6.6, for=203.0.113.9`), "203.0.113.9", false, false},
		{"forwarded unknown", header(fwd, "for=unknown;proto=https"), "forwarded:unknown", true, false},
		{"forwarded obfuscated", header(fwd, "for=_hidden, for=10.0.0.3"), "forwarded:_hidden", true, false},
		{"forwarded obfuscated quoted with port", header(fwd, `for="_gazonk:_p1"`), "forwarded:_gazonk", true, false},
		{"forwarded no for", header(fwd, "proto=https;by=10.0.0.1;host=client-chosen.example"), "forwarded:unknown", true, false},
		{"forwarded two fors", header(fwd, "for=1.1.1.1;for=2.2.2.2"), "forwarded:unknown", true, false},
		{"forwarded unterminated quote", header(fwd, `for="192.0.2.60`), "forwarded:%22192.0.2.60", true, false},
		{"forwarded garbage pairs ignored", header(fwd, "junk;for=192.0.2.60;=;;"), "192.0.2.60", false, false},
		{"x-real-ip before forwarded", header(xrip, "198.51.100.9", fwd, "for=6.6.6.6"), "198.51.100.9", false, false},
		// No entry anywhere: the peer is the client.
		{"no header", header(), "", false, true},
		{"only empty headers", header(xff, "", xrip, " ", fwd, ", ,"), "", false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, bad, ok := forwardedClient(tt.h, isTestTrusted)
			if ok == tt.none {
				t.Fatalf("ok = %v, want %v", ok, !tt.none)
			}
			if got != tt.want {
				t.Errorf("client %q, want %q", got, tt.want)
			}
			if (bad != nil) != tt.bad {
				t.Errorf("bad = %+v, want bad: %v", bad, tt.bad)
			}
			if bad != nil && !strings.HasPrefix(got, forwardedKeyPrefix) {
				t.Errorf("key %q of an unusable entry lacks the prefix", got)
			}
			if _, err := netip.ParseAddr(got); bad != nil && err == nil {
				t.Errorf("key %q of an unusable entry parses as an address", got)
			}
		})
	}
}

// TestForwardedBoundedWork: a header of a megabyte costs no more than the
// entries the walk reads (at most maxForwardedHops), and the key and the
// logged excerpt stay short.
func TestForwardedBoundedWork(t *testing.T) {
	const mb = 1 << 20
	manyTrusted := strings.Repeat("10.0.0.1, ", mb/10)
	for _, tt := range []struct {
		name string
		h    http.Header
		want string
	}{
		{"many entries, client on the right", header(xff, strings.Repeat("6.6.6.6, ", mb/9)+"203.0.113.9"), "203.0.113.9"},
		{"many trusted entries: the walk stops", header(xff, "203.0.113.9, "+manyTrusted+"10.0.0.2"), "10.0.0.1"},
		{"many lines", header(xff, "203.0.113.9", xff, strings.Repeat(",", mb)), "203.0.113.9"},
		{"one huge entry", header(xff, strings.Repeat("x", mb)), "forwarded:" + strings.Repeat("x", maxClientKeyBytes)},
		{"huge quoted element", header(fwd, `for="`+strings.Repeat(`\"a,`, mb/4)+`"`), "forwarded:" + strings.Repeat("%22a%2C", 9)},
		{"many forwarded elements", header(fwd, strings.Repeat("for=10.0.0.1;by=x, ", mb/20)+"for=203.0.113.9"), "203.0.113.9"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			calls := 0
			trusted := func(a netip.Addr) bool { calls++; return isTestTrusted(a) }
			got, _, _ := forwardedClient(tt.h, trusted)
			if got != tt.want {
				t.Errorf("client %.100q, want %.100q", got, tt.want)
			}
			if calls > maxForwardedHops {
				t.Errorf("%d entries checked, more than %d", calls, maxForwardedHops)
			}
			if len(got) > len(forwardedKeyPrefix)+maxClientKeyBytes {
				t.Errorf("key of %d bytes", len(got))
			}
			allocs := testing.AllocsPerRun(5, func() { forwardedClient(tt.h, isTestTrusted) })
			if allocs > 16 {
				t.Errorf("%v allocations", allocs)
			}
			for _, name := range []string{xff, fwd} {
				if ex := headerExcerpt(tt.h.Values(name), maxLoggedHeaderBytes); len(ex) > maxLoggedHeaderBytes+2 || !utf8.ValidString(ex) {
					t.Errorf("excerpt of %d bytes", len(ex))
				}
			}
		})
	}
}

func TestParseNode(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want string // "" = not an address
	}{
		{"192.0.2.1", "192.0.2.1"},
		{"192.0.2.1:0", "192.0.2.1"},
		{"192.0.2.1:65535", "192.0.2.1"},
		{"[2001:db8::1]:1", "2001:db8::1"},
		{"[::ffff:192.0.2.1]", "192.0.2.1"},
		{"::ffff:192.0.2.1", "192.0.2.1"},
		{"::", "::"},
		{"[fe80::1%25eth0]:80", "fe80::1"},
		{"", ""},
		{"[", ""},
		{"[]", ""},
		{"[2001:db8::1", ""},
		{"[2001:db8::1]:", ""},
		{"[2001:db8::1]:_", ""},
		{"[2001:db8::1]:x", ""},
		{"[2001:db8::1]]", ""},
		{"192.0.2.1:-1", ""},
		{"192.0.2.1:+1", ""},
		{"192.0.2.1/24", ""},
		{"192.0.2", ""},
		{"1.2.3.4.5", ""},
		{"unknown", ""},
		{"_hidden", ""},
		{":80", ""},
		{strings.Repeat("0", maxNodeBytes) + "1.2.3.4", ""},
	} {
		addr, ok := parseNode(tt.in)
		got := ""
		if ok {
			got = addr.String()
		}
		if got != tt.want {
			t.Errorf("parseNode(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestHeaderExcerpt(t *testing.T) {
	for _, tt := range []struct {
		lines []string
		want  string
	}{
		{nil, ""},
		{[]string{"a"}, "a"},
		{[]string{"a", "b"}, "a, b"},
		{[]string{strings.Repeat("x", 300)}, strings.Repeat("x", 10)},
		{[]string{"abcdefgh", "ijk"}, "abcdefgh, "},
		{[]string{"abcdefghi", "jk"}, "abcdefghi,"},
		{[]string{"abcdefgh\xff", "jk"}, "abcdefgh\uFFFD,"},
	} {
		if got := headerExcerpt(tt.lines, 10); got != tt.want {
			t.Errorf("headerExcerpt(%q) = %q, want %q", tt.lines, got, tt.want)
		}
	}
}

func TestWarnLimit(t *testing.T) {
	var w warnLimit
	t0 := time.Unix(1000, 0)
	step := []struct {
		at         time.Duration
		ok         bool
		suppressed int
	}{{0, true, 0}, {time.Second, false, 0}, {59 * time.Second, false, 0}, {time.Minute, true, 2}, {time.Minute, false, 0}, {3 * time.Minute, true, 1}}
	for i, s := range step {
		ok, n := w.allow(t0.Add(s.at), time.Minute)
		if ok != s.ok || n != s.suppressed {
			t.Errorf("step %d: allow = %v, %d; want %v, %d", i, ok, n, s.ok, s.suppressed)
		}
	}
}

// FuzzForwarded: whatever the headers, the parser neither panics nor
// reads past maxForwardedHops entries; the client is an address in
// canonical form, or a prefixed key that is not one, bounded and printable;
// and an untrusted address is never passed over for one left of it.
func FuzzForwarded(f *testing.F) {
	for _, s := range []string{
		"203.0.113.9", "203.0.113.9:4444", "[2001:db8::9]:4444", "::ffff:10.0.0.1, 10.0.0.2",
		"6.6.6.6, 203.0.113.9, 10.0.0.2", "unknown", "_hidden:_p", "<script>", ", ,", `"1.2.3.4"`,
		`for=192.0.2.60;proto=http;by=203.0.113.43`, `for="[2001:db8:cafe::17]:4711"`, `For="_gazonk"`,
		`for=192.0.2.43, for=198.51.100.17`, `for="x, for=1.1.1.1`, `for="a\"b", for=10.0.0.9`, "proto=https", "\xff\x00",
	} {
		f.Add(uint8(0), s, "")
		f.Add(uint8(2), s, "for=10.0.0.4")
	}
	f.Fuzz(func(t *testing.T, which uint8, line1, line2 string) {
		name := []string{xff, xrip, fwd}[int(which)%3]
		h := http.Header{}
		h.Add(name, line1)
		if line2 != "" {
			h.Add(name, line2)
		}
		calls := 0
		trusted := func(a netip.Addr) bool {
			calls++
			if a.Is4In6() || a.Zone() != "" {
				t.Errorf("trust asked of %v: not unmapped or has a zone", a)
			}
			return isTestTrusted(a)
		}
		got, bad, ok := forwardedClient(h, trusted)
		if calls > maxForwardedHops {
			t.Fatalf("%d entries checked", calls)
		}
		if name != fwd || !strings.Contains(line1+line2, `"`) {
			if want, wantBad, wantOK := naiveWalk(h.Values(name), name == fwd); got != want || (bad != nil) != wantBad || ok != wantOK {
				t.Fatalf("client %q (bad %v, ok %v), the naive walk says %q (%v, %v)", got, bad, ok, want, wantBad, wantOK)
			}
		}
		if !ok {
			if got != "" || bad != nil {
				t.Fatalf("no client but %q, %v", got, bad)
			}
			return
		}
		if bad != nil {
			key, found := strings.CutPrefix(got, forwardedKeyPrefix)
			if !found || len(key) > maxClientKeyBytes {
				t.Fatalf("key %q", got)
			}
			if _, err := netip.ParseAddr(got); err == nil {
				t.Fatalf("key %q parses as an address", got)
			}
			for i := 0; i < len(key); i++ {
				if c := key[i]; !isAlnum(c) && !strings.ContainsRune(".:_-[]%", rune(c)) {
					t.Fatalf("key %q has %q", got, c)
				}
			}
			return
		}
		addr, err := netip.ParseAddr(got)
		if err != nil || addr.String() != got || addr.Is4In6() || addr.Zone() != "" {
			t.Fatalf("client %q is not a canonical address (%v)", got, err)
		}
		_ = headerExcerpt(h.Values(name), maxLoggedHeaderBytes)
	})
}

// naiveWalk is the walk written plainly, for headers without quoted
// strings: split everything, then read from the right.
func naiveWalk(lines []string, rfc7239 bool) (client string, bad, ok bool) {
	var elems []string
	for _, l := range lines {
		for _, e := range strings.Split(l, ",") {
			if e = strings.Trim(e, " \t"); e != "" {
				elems = append(elems, e)
			}
		}
	}
	if len(elems) == 0 {
		return "", false, false
	}
	var leftmost netip.Addr
	for i := len(elems) - 1; i >= max(0, len(elems)-maxForwardedHops); i-- {
		node := unquoteLoose(elems[i])
		if rfc7239 {
			var found bool
			if node, found = forParam(elems[i]); !found {
				node = "unknown"
			}
		}
		addr, isAddr := parseNode(node)
		if !isAddr {
			return forwardedKeyPrefix + clientKey(node), true, true
		}
		if !isTestTrusted(addr) {
			return addr.String(), false, true
		}
		leftmost = addr
	}
	return leftmost.String(), false, true
}
