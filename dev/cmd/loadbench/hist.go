package main

import (
	"math"
	"math/bits"
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
