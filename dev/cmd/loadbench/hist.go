package main

import (
	"cmp"
	"math"
	"math/bits"
	"slices"
	"time"
)

// The histogram is log-linear, HDR style: values below 2^(subBits+1) have
// a bucket each, and every later power of two is split into 2^subBits
// buckets, so a bucket's width is at most 1/2^subBits (0.8 %) of its value.
const (
	subBits     = 7
	subCount    = 1 << subBits
	maxShift    = 63 - (subBits + 1) // for the largest positive int64
	histBuckets = (maxShift + 2) << subBits
)

// Histogram records durations (in nanoseconds). Its zero value is ready to
// use; it is not safe for concurrent use (give each worker its own and
// Merge them).
type Histogram struct {
	counts [histBuckets]uint64
	n      uint64
	sum    float64
	min    int64
	max    int64
}

// bucketOf returns the bucket index of v (negative values count as 0).
func bucketOf(v int64) int {
	if v < 0 {
		v = 0
	}
	u := uint64(v)
	n := bits.Len64(u)
	if n <= subBits+1 {
		return int(u)
	}
	shift := n - (subBits + 1)
	return shift<<subBits + int(u>>shift)
}

// bucketRange returns the lowest and highest value of bucket i.
func bucketRange(i int) (lo, hi int64) {
	if i < 2*subCount {
		return int64(i), int64(i)
	}
	shift := i>>subBits - 1
	m := int64(i - shift<<subBits)
	return m << shift, (m+1)<<shift - 1
}

// Record adds one duration.
func (h *Histogram) Record(d time.Duration) {
	v := int64(d)
	if v < 0 {
		v = 0
	}
	h.counts[bucketOf(v)]++
	if h.n == 0 || v < h.min {
		h.min = v
	}
	if v > h.max {
		h.max = v
	}
	h.n++
	h.sum += float64(v)
}

// Merge adds every value recorded in o.
func (h *Histogram) Merge(o *Histogram) {
	if o.n == 0 {
		return
	}
	for i, c := range o.counts {
		h.counts[i] += c
	}
	if h.n == 0 || o.min < h.min {
		h.min = o.min
	}
	if o.max > h.max {
		h.max = o.max
	}
	h.n += o.n
	h.sum += o.sum
}

// Count is the number of values recorded.
func (h *Histogram) Count() uint64 { return h.n }

// Min, Max and Mean are exact.
func (h *Histogram) Min() time.Duration { return time.Duration(h.min) }
func (h *Histogram) Max() time.Duration { return time.Duration(h.max) }
func (h *Histogram) Mean() time.Duration {
	if h.n == 0 {
		return 0
	}
	return time.Duration(h.sum / float64(h.n))
}

// Quantile returns the value at quantile q (0 < q ≤ 1): the highest value
// of the bucket holding the ceil(q·n)-th smallest value, clamped to the
// exact minimum and maximum; Quantile(0) is the minimum, and an empty
// histogram gives 0.
func (h *Histogram) Quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	if q <= 0 {
		return time.Duration(h.min)
	}
	rank := uint64(math.Ceil(q * float64(h.n)))
	if rank < 1 {
		rank = 1
	}
	if rank > h.n {
		rank = h.n
	}
	var cum uint64
	for i, c := range h.counts {
		cum += c
		if cum >= rank {
			_, hi := bucketRange(i)
			hi = min(max(hi, h.min), h.max)
			return time.Duration(hi)
		}
	}
	return time.Duration(h.max)
}

// LatencySummary is a histogram's figures, in nanoseconds, for -json.
type LatencySummary struct {
	Count uint64 `json:"count"`
	Min   int64  `json:"min_ns"`
	Mean  int64  `json:"mean_ns"`
	P50   int64  `json:"p50_ns"`
	P75   int64  `json:"p75_ns,omitempty"`
	P90   int64  `json:"p90_ns"`
	P99   int64  `json:"p99_ns"`
	P999  int64  `json:"p999_ns"`
	Max   int64  `json:"max_ns"`
}

// Summary returns the histogram's figures.
func (h *Histogram) Summary() LatencySummary {
	return LatencySummary{
		Count: h.n,
		Min:   int64(h.Min()),
		Mean:  int64(h.Mean()),
		P50:   int64(h.Quantile(0.50)),
		P90:   int64(h.Quantile(0.90)),
		P99:   int64(h.Quantile(0.99)),
		P999:  int64(h.Quantile(0.999)),
		Max:   int64(h.Max()),
	}
}

// The latency of a wrk run is known by its quantiles only (the script
// prints latencyGrid's percentiles of wrk's own histogram): a side's
// slices are merged by weighting each quantile point with the share of
// its slice's requests it stands for.

// latencyGrid returns the percentiles (0 < p ≤ 100) the wrk script
// reports of every run, in order, and the share of the run's requests
// each point stands for, in units of 1/gridUnits: every 0.1 % up to
// 99 %, every 0.01 % above, and the maximum (100). Point i stands for the
// requests between grid[i-1] and grid[i], by its highest value.
func latencyGrid() (percentiles []float64, shares []uint64) {
	prev := 0
	add := func(u int) {
		percentiles = append(percentiles, float64(u)/100)
		shares = append(shares, uint64(u-prev))
		prev = u
	}
	for u := 10; u <= 9900; u += 10 {
		add(u)
	}
	for u := 9901; u <= gridUnits; u++ {
		add(u)
	}
	return percentiles, shares
}

// gridUnits is the grid's unit of share: 1/10000 of a run's requests
// (0.01 %).
const gridUnits = 10000

// latencyMix is the latency distribution of several wrk runs, each known
// by its grid of quantiles. Its zero value is ready to use.
type latencyMix struct {
	pts      []mixPoint
	total    uint64 // sum of the weights
	requests uint64
	sum      float64 // mean × requests, summed over the runs
	min, max int64
}

// mixPoint is a quantile of one run, weighted by the requests it stands
// for (in 1/gridUnits of a request).
type mixPoint struct {
	v int64
	w uint64
}

// add adds a run of requests whose latency quantiles at latencyGrid's
// percentiles are quantiles (max last), with its exact minimum and mean.
// A run without requests adds nothing.
func (m *latencyMix) add(requests uint64, quantiles []time.Duration, lo, mean time.Duration) {
	_, shares := latencyGrid()
	if requests == 0 || len(quantiles) != len(shares) {
		return
	}
	for i, q := range quantiles {
		w := shares[i] * requests
		m.pts = append(m.pts, mixPoint{int64(q), w})
		m.total += w
	}
	hi := int64(quantiles[len(quantiles)-1])
	if m.requests == 0 || int64(lo) < m.min {
		m.min = int64(lo)
	}
	if m.requests == 0 || hi > m.max {
		m.max = hi
	}
	m.requests += requests
	m.sum += float64(mean) * float64(requests)
}

// Quantile returns the lowest point at which the merged runs reach
// quantile q (0 < q ≤ 1) of their requests; Quantile(0) is the minimum,
// and an empty mix gives 0. With one run, it is that run's own quantile
// at every percentile of the grid.
func (m *latencyMix) Quantile(q float64) time.Duration {
	if m.requests == 0 {
		return 0
	}
	if q <= 0 {
		return time.Duration(m.min)
	}
	slices.SortStableFunc(m.pts, func(a, b mixPoint) int { return cmp.Compare(a.v, b.v) })
	// A relative tolerance, so that q = 0.99 lands on the 99 % point
	// although 0.99 has no exact binary form.
	rank := q * float64(m.total) * (1 - 1e-9)
	var cum uint64
	for _, p := range m.pts {
		cum += p.w
		if float64(cum) >= rank {
			return time.Duration(p.v)
		}
	}
	return time.Duration(m.max)
}

// Summary returns the merged figures: min of the minimums, mean weighted
// by requests, max of the maximums, quantiles of the merged distribution.
func (m *latencyMix) Summary() LatencySummary {
	s := LatencySummary{Count: m.requests, Min: m.min, Max: m.max}
	if m.requests > 0 {
		s.Mean = int64(m.sum / float64(m.requests))
	}
	s.P50, s.P75, s.P90 = int64(m.Quantile(0.50)), int64(m.Quantile(0.75)), int64(m.Quantile(0.90))
	s.P99, s.P999 = int64(m.Quantile(0.99)), int64(m.Quantile(0.999))
	return s
}
