package authn

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"golang.org/x/crypto/bcrypt"

	"git.sr.ht/~zozs/srht-registry/internal/identity"
)

// The timing of a password check is shown here without a clock: every
// bcrypt comparison goes through compareHashAndPassword, so a test can list
// the cost of each hash compared, and the work of a check is the sum of
// 2^cost over them (bcrypt at cost c runs 2^c rounds of its key schedule).
// A known user's failure and an unknown user's check must come to the same
// work. BenchmarkUnknownVsKnownUser measures the times.

// recordBcrypt records the cost of every hash compared, for the duration of
// a test.
func recordBcrypt(t *testing.T) func() []int {
	t.Helper()
	var mu sync.Mutex
	var costs []int
	orig := compareHashAndPassword
	compareHashAndPassword = func(hash, pw []byte) error {
		cost, err := bcrypt.Cost(hash)
		if err != nil {
			t.Errorf("compared against a hash bcrypt cannot read: %v", err)
		}
		mu.Lock()
		costs = append(costs, cost)
		mu.Unlock()
		return orig(hash, pw)
	}
	t.Cleanup(func() { compareHashAndPassword = orig })
	return func() []int {
		mu.Lock()
		defer mu.Unlock()
		got := costs
		costs = nil
		return got
	}
}

// work is the number of bcrypt rounds of a check that compared hashes of
// these costs.
func work(costs []int) int {
	n := 0
	for _, c := range costs {
		n += 1 << c
	}
	return n
}

// hashAt hashes password at cost.
func hashAt(t testing.TB, password string, cost int) string {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(password), cost)
	if err != nil {
		t.Fatal(err)
	}
	return string(h)
}

// fileOf makes an htpasswd file of "user:hash" lines.
func fileOf(t testing.TB, lines ...string) *Htpasswd {
	t.Helper()
	h, err := ParseHtpasswd([]byte(strings.Join(lines, "\n") + "\n"))
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// dummyCost is the cost of the hash an unknown user is compared against
// (before the padding to the top cost).
func dummyCost(t *testing.T, h *Htpasswd) int {
	t.Helper()
	tb := h.table.Load()
	cost, err := bcrypt.Cost(tb.dummies[tb.usual])
	if err != nil {
		t.Fatalf("dummy hash: %v", err)
	}
	return cost
}

// TestDummyHashes: the dummies, made at the minimum cost and relabelled,
// are hashes bcrypt checks at their labelled cost and that no password
// matches (a parse error instead of a mismatch would end the check early).
func TestDummyHashes(t *testing.T) {
	for _, top := range []int{bcrypt.MinCost, 5, bcrypt.DefaultCost, maxCost} {
		dummies, err := dummyHashes(top)
		if err != nil {
			t.Fatal(err)
		}
		if len(dummies) != top+1 {
			t.Fatalf("top %d: %d dummies, want %d", top, len(dummies), top+1)
		}
		for cost, d := range dummies {
			if cost < bcrypt.MinCost {
				if d != nil {
					t.Errorf("a dummy below the minimum cost: %s", d)
				}
				continue
			}
			if got, err := bcrypt.Cost(d); err != nil || got != cost {
				t.Errorf("dummies[%d] = %s has cost %d (%v)", cost, d, got, err)
			}
			if !isBcrypt(string(d)) || len(d) != 60 {
				t.Errorf("dummies[%d] = %s is not a well-formed bcrypt hash", cost, d)
			}
			if cost <= 6 { // higher costs are checked by the same code, slowly
				for _, pw := range []string{"", "password", strings.Repeat("x", 72)} {
					if err := bcrypt.CompareHashAndPassword(d, []byte(pw)); !errors.Is(err, bcrypt.ErrMismatchedHashAndPassword) {
						t.Errorf("dummies[%d] against %q: %v, want a mismatch", cost, pw, err)
					}
				}
			}
		}
	}
	// A fresh password each time: nothing to learn from one process's dummy.
	a, _ := dummyHashes(bcrypt.MinCost)
	b, _ := dummyHashes(bcrypt.MinCost)
	if string(a[bcrypt.MinCost]) == string(b[bcrypt.MinCost]) {
		t.Error("two dummy hashes are the same")
	}
}

// TestDummyCostFollowsTheFile: an unknown user is compared at the cost most
// users in the file have, then padded to the highest cost in the file, whatever
// they are: not at least bcrypt's default (a file of `htpasswd -B` lines is at
// cost 5, and a dummy at 10 made every unknown name 32 times slower than a
// known one), and not at most 13 (a user at 14 or more was told apart by
// being slower).
func TestDummyCostFollowsTheFile(t *testing.T) {
	relabel := func(hash string, cost int) string { // a line not to be checked
		return fmt.Sprintf("$2y$%02d$%s", cost, hash[len("$2a$04$"):])
	}
	base := hashAt(t, "pw", bcrypt.MinCost)
	tests := []struct {
		name       string
		lines      []string
		dummy, top int
	}{
		{"no users", nil, bcrypt.DefaultCost, bcrypt.DefaultCost},
		{"htpasswd -B lines (cost 5)", []string{"a:" + relabel(base, 5), "b:" + relabel(base, 5)}, 5, 5},
		{"the minimum cost", []string{"a:" + base}, bcrypt.MinCost, bcrypt.MinCost},
		{"mixed, the highest is a minority", []string{"a:" + relabel(base, 5), "b:" + relabel(base, 5), "c:" + relabel(base, 12)}, 5, 12},
		{"mixed, the lowest is a minority", []string{"a:" + relabel(base, 4), "b:" + relabel(base, 10), "c:" + relabel(base, 10)}, 10, 10},
		{"as many of each: the higher", []string{"a:" + relabel(base, 6), "root:" + relabel(base, 17)}, 17, 17},
		{"as many of each, below the top", []string{"a:" + relabel(base, 5), "b:" + relabel(base, 7), "c:" + relabel(base, 12), "d:" + relabel(base, 5), "e:" + relabel(base, 7)}, 7, 12},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := fileOf(t, tt.lines...)
			if got := dummyCost(t, h); got != tt.dummy {
				t.Errorf("dummy cost %d, want %d", got, tt.dummy)
			}
			if got := h.table.Load().top; got != tt.top {
				t.Errorf("failures padded to cost %d, want %d", got, tt.top)
			}
		})
	}
}

// TestFailureWorkIsEqual: with costs mixed in the file, a wrong password for
// a user at any cost, and any password for an unknown user, do the same
// bcrypt work: that of one check at the file's highest cost. A right
// password is not padded.
func TestFailureWorkIsEqual(t *testing.T) {
	ctx := context.Background()
	h := fileOf(t,
		"low:"+hashAt(t, "low-pw", 4),
		"mid:"+hashAt(t, "mid-pw", 5),
		"mid2:"+hashAt(t, "mid2-pw", 5), // the usual cost: 5
		"high:"+hashAt(t, "high-pw", 7),
	)
	const top = 7
	for _, cache := range []bool{false, true} {
		t.Run(fmt.Sprintf("cache %v", cache), func(t *testing.T) {
			if cache {
				h.EnableCache(time.Hour, 100, time.Now)
			}
			costs := recordBcrypt(t)
			tests := []struct {
				user, password string
				ok             bool
				want           []int // costs compared, in order
			}{
				{"nobody", "x", false, []int{5, 5, 6}}, // as a wrong password for mid
				{"nobody", "low-pw", false, []int{5, 5, 6}},
				{"high", "wrong", false, []int{7}},
				{"mid", "wrong", false, []int{5, 5, 6}},
				{"low", "wrong", false, []int{4, 4, 5, 6}},
				{"low", "mid-pw", false, []int{4, 4, 5, 6}},
				{"low", "low-pw", true, []int{4}},
				{"mid", "mid-pw", true, []int{5}},
			}
			for _, tt := range tests {
				_, err := h.Authenticate(ctx, tt.user, identity.Secret(tt.password))
				if tt.ok != (err == nil) {
					t.Fatalf("%s/%s: err = %v", tt.user, tt.password, err)
				}
				got := costs()
				if cache && tt.ok {
					// Remembered now: the same login again costs nothing.
					if _, err := h.Authenticate(ctx, tt.user, identity.Secret(tt.password)); err != nil {
						t.Fatal(err)
					}
					if again := costs(); len(again) != 0 {
						t.Errorf("%s again, from the cache: compared %v", tt.user, again)
					}
				}
				if !slices.Equal(got, tt.want) {
					t.Errorf("%s/%s: compared at costs %v, want %v", tt.user, tt.password, got, tt.want)
				}
				if !tt.ok && work(got) != 1<<top {
					t.Errorf("%s/%s: a failure did %d rounds, want %d (one check at cost %d)", tt.user, tt.password, work(got), 1<<top, top)
				}
			}
		})
	}
}

// TestFailurePaddingNotCounted: the padding of a failure is not a
// verification in the metrics: one wrong password is one mismatch.
func TestFailurePaddingNotCounted(t *testing.T) {
	h := fileOf(t, "low:"+hashAt(t, "low-pw", 4), "high:"+hashAt(t, "high-pw", 6))
	calls := countBcrypt(t)
	if _, err := h.Authenticate(context.Background(), "low", "wrong"); err == nil {
		t.Fatal("a wrong password accepted")
	}
	if n := calls.Load(); n != 3 {
		t.Errorf("%d comparisons, want 3 (the user's, then padding at 4 and 5)", n)
	}
	var m dto.Metric
	if err := h.metrics.mismatch.Write(&m); err != nil {
		t.Fatal(err)
	}
	if v := m.GetCounter().GetValue(); v != 1 {
		t.Errorf("mismatch counter %v, want 1", v)
	}
}

// TestDummyFollowsReload: Update swaps in the new file's dummy and padding,
// at the new file's costs, up or down; a reload of the same file keeps them.
func TestDummyFollowsReload(t *testing.T) {
	ctx := context.Background()
	costs := recordBcrypt(t)
	unknown := func(h *Htpasswd) []int {
		if _, err := h.Authenticate(ctx, "nobody", "x"); err == nil {
			t.Fatal("unknown user accepted")
		}
		return costs()
	}
	low := "a:" + hashAt(t, "a", 4)
	h := fileOf(t, low)
	h.EnableCache(time.Hour, 10, time.Now)
	if got := unknown(h); !slices.Equal(got, []int{4}) {
		t.Fatalf("before the reload: compared at %v, want [4]", got)
	}
	h.Update(fileOf(t, low, "b:"+hashAt(t, "b", 6)))
	if got := unknown(h); !slices.Equal(got, []int{6}) {
		t.Errorf("after a reload adding a cost-6 user: compared at %v, want [6]", got)
	}
	if _, err := h.Authenticate(ctx, "a", "wrong"); err == nil {
		t.Fatal("a wrong password accepted")
	}
	if got := costs(); work(got) != 1<<6 {
		t.Errorf("the cost-4 user's failure after the reload: %v, not the work of cost 6", got)
	}
	h.Update(fileOf(t, low))
	if got := unknown(h); !slices.Equal(got, []int{4}) {
		t.Errorf("after a reload removing it: compared at %v, want [4]", got)
	}
	before := h.table.Load().dummies
	h.Update(fileOf(t, low))
	if after := h.table.Load().dummies; &after[4][0] != &before[4][0] {
		t.Error("a reload of the same file replaced the table")
	}
}

// TestHtpasswdMalformedSalt: a line whose salt is not bcrypt's base64 is
// refused: bcrypt would fail it at once, without the work of its cost, so
// the user could never log in and the quick failure would show the name
// exists.
func TestHtpasswdMalformedSalt(t *testing.T) {
	good := hashAt(t, "pw", bcrypt.MinCost)
	bad := good[:len("$2a$04$")] + "!!!!!!!!!!!!!!!!!!!!!!" + good[len("$2a$04$")+22:]
	if err := bcrypt.CompareHashAndPassword([]byte(bad), []byte("pw")); err == nil || errors.Is(err, bcrypt.ErrMismatchedHashAndPassword) {
		t.Fatalf("bcrypt's answer for a bad salt: %v; the test's premise is wrong", err)
	}
	_, err := ParseHtpasswd([]byte("carol:" + bad + "\n"))
	if err == nil || !strings.Contains(err.Error(), `line 1 (user "carol"): not a bcrypt hash`) || strings.Contains(err.Error(), bad) {
		t.Fatalf("err = %v, want line 1 refused without the hash", err)
	}
	for _, ok := range []string{good, "$2y$" + good[len("$2a$"):], "$2b$" + good[len("$2a$"):]} {
		if _, err := ParseHtpasswd([]byte("carol:" + ok + "\n")); err != nil {
			t.Errorf("%s refused: %v", ok[:4], err)
		}
	}
}

// BenchmarkUnknownVsKnownUser measures a check of an unknown user and of
// wrong passwords for users at costs 6 and 12 in one file (the file of the
// report that found the leak: 3.6 ms for the cost-6 user against 237 ms for
// an unknown name). The failures should take the same time; the right
// password of the cost-6 user stays fast.
//
//	go test ./internal/authn/ -run '^$' -bench UnknownVsKnownUser -benchtime 20x
func BenchmarkUnknownVsKnownUser(b *testing.B) {
	h := fileOf(b, "six:"+hashAt(b, "six-pw", 6), "twelve:"+hashAt(b, "twelve-pw", 12))
	ctx := context.Background()
	cases := []struct {
		name, user, password string
		ok                   bool
	}{
		{"unknown", "nobody", "guess", false},
		{"known-cost12-wrong", "twelve", "guess", false},
		{"known-cost6-wrong", "six", "guess", false},
		{"known-cost6-right", "six", "six-pw", true},
	}
	check := func(b *testing.B, i int) {
		c := cases[i]
		if _, err := h.Authenticate(ctx, c.user, identity.Secret(c.password)); c.ok != (err == nil) {
			b.Fatalf("%s: %v", c.user, err)
		}
	}
	for i, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				check(b, i)
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/check")
		})
	}
	// The cases in turn, each iteration one check of each, and the median
	// of each: a load that changes during the run (other processes) falls
	// on all of them alike.
	b.Run("interleaved", func(b *testing.B) {
		times := make([][]time.Duration, len(cases))
		for b.Loop() {
			for i := range cases {
				start := time.Now()
				check(b, i)
				times[i] = append(times[i], time.Since(start))
			}
		}
		for i, c := range cases {
			slices.Sort(times[i])
			b.ReportMetric(float64(times[i][len(times[i])/2].Microseconds())/1000, c.name+"-ms")
		}
	})
}
