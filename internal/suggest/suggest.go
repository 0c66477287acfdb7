package suggest

import (
	"math"
	"strings"
	"unicode/utf8"
)

// Closest returns the name in known closest to name, and false when none
// is close: at most two edits apart (ignoring case, "-" and "_"; a swap of
// two adjacent letters is one edit), or one a prefix of the other when no
// other name shares that prefix.
func Closest(name string, known []string) (string, bool) {
	norm := func(s string) string {
		return strings.NewReplacer("_", "", "-", "").Replace(strings.ToLower(s))
	}
	n := norm(name)
	best, bestScore, ties := "", math.MaxInt, 0
	for _, k := range known {
		nk := norm(k)
		score := math.MaxInt
		if d := editDistance(n, nk, 2); d <= 2 && d < utf8.RuneCountInString(n) {
			score = d
		} else if len(n) >= 3 && len(nk) >= 3 && (strings.HasPrefix(nk, n) || strings.HasPrefix(n, nk)) {
			score = 3
		}
		switch {
		case score < bestScore:
			best, bestScore, ties = k, score, 1
		case score == bestScore:
			ties++
		}
	}
	if best == "" || (bestScore == 3 && ties > 1) {
		return "", false // nothing close, or several names it could be the start of
	}
	return best, true
}

// editDistance is the optimal string alignment distance between a and b
// (insertions, deletions, substitutions and transpositions of adjacent
// runes), or max+1 when it is certainly more than max.
func editDistance(a, b string, maxDist int) int {
	ra, rb := []rune(a), []rune(b)
	if d := len(ra) - len(rb); d > maxDist || -d > maxDist {
		return maxDist + 1
	}
	prev2 := make([]int, len(rb)+1)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && ra[i-1] == rb[j-2] && ra[i-2] == rb[j-1] {
				cur[j] = min(cur[j], prev2[j-2]+1)
			}
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return prev[len(rb)]
}
