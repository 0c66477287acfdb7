package server

import "testing"

func TestHolderKey(t *testing.T) {
	for in, want := range map[string]string{
		"192.0.2.1":            "192.0.2.1",
		"::ffff:192.0.2.1":     "192.0.2.1",
		"2001:db8:1:2::1":      "2001:db8:1:2::/64",
		"2001:db8:1:2:ffff::9": "2001:db8:1:2::/64",
		"fe80::1%eth0":         "fe80::/64",
		"forwarded:unknown":    "forwarded:unknown",
		"":                     "",
	} {
		if got := holderKey(in); got != want {
			t.Errorf("holderKey(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestPerClientLimitDerived(t *testing.T) {
	for _, c := range []struct{ perClient, maxConcurrent, want int }{
		{0, 0, 0}, {0, 2, 4}, {0, 16, 4}, {0, 64, 8}, {0, 512, 64},
		{3, 0, 3}, {3, 512, 3}, {-1, 512, 0},
	} {
		if got := perClientLimit(Options{MaxConcurrentPerClient: c.perClient, MaxConcurrent: c.maxConcurrent}); got != c.want {
			t.Errorf("perClientLimit(%d, %d) = %d, want %d", c.perClient, c.maxConcurrent, got, c.want)
		}
	}
}

// TestClientCountsBounded: a count is deleted when it is back to 0, so
// the table holds only the clients holding something.
func TestClientCountsBounded(t *testing.T) {
	c := newClientCounts(2)
	for i, want := range []bool{true, true, false} {
		if got := c.acquire("a"); got != want {
			t.Fatalf("acquire %d of a limit of 2: %t", i+1, got)
		}
	}
	if !c.acquire("b") {
		t.Fatal("another key is held back")
	}
	c.release("a")
	if !c.acquire("a") {
		t.Fatal("a released slot is not given again")
	}
	c.release("a")
	c.release("a")
	c.release("b")
	if len(c.held) != 0 {
		t.Errorf("counts left at 0: %v", c.held)
	}
	var none *clientCounts
	if !none.acquire("a") {
		t.Error("no bound refuses")
	}
	none.release("a")
}
