package benchproto

import (
	"encoding/json"
	"fmt"
	"math/bits"
	"time"
)

// subBits sets the precision: values below 2^subBits ns are exact, larger ones fall
// in buckets 2^-(subBits-1) of their size wide.
const subBits = 7

const (
	subCount = 1 << subBits
	halfSub  = subCount / 2
	// nBuckets covers every int64.
	nBuckets = subCount + (63-subBits+1)*halfSub
)

// Histogram counts durations in log-linear buckets (relative error < 1/64). The zero
// value is empty and ready; it is not safe for concurrent use.
type Histogram struct {
	counts []uint64
	total  uint64
	max    time.Duration
}

func bucketOf(v int64) int {
	if v < subCount {
		return int(v)
	}
	exp := bits.Len64(uint64(v)) - subBits // ≥ 1
	mant := v >> exp                       // in [halfSub, subCount)
	return subCount + (exp-1)*halfSub + int(mant-halfSub)
}

// bounds are the smallest value of bucket i and its width.
func bounds(i int) (lo, width int64) {
	if i < subCount {
		return int64(i), 1
	}
	exp := (i-subCount)/halfSub + 1
	mant := int64((i-subCount)%halfSub + halfSub)
	return mant << exp, int64(1) << exp
}

// Record counts one duration.
func (h *Histogram) Record(d time.Duration) {
	if d < 0 {
		d = 0
	}
	if h.counts == nil {
		h.counts = make([]uint64, nBuckets)
	}
	h.counts[bucketOf(int64(d))]++
	h.total++
	h.max = max(h.max, d)
}

// Count is how many durations were recorded.
func (h *Histogram) Count() int64 { return int64(h.total) }

// Max is the largest duration recorded, exactly.
func (h *Histogram) Max() time.Duration { return h.max }

// Quantile is the duration below which a fraction q (0..1) of the recorded ones fall:
// the middle of the bucket holding it, never above Max; Max itself for the last rank.
// 0 when empty.
func (h *Histogram) Quantile(q float64) time.Duration {
	if h.total == 0 {
		return 0
	}
	q = min(max(q, 0), 1)
	rank := uint64(q*float64(h.total) + 0.5)
	rank = min(max(rank, 1), h.total)
	if rank == h.total {
		return h.max
	}
	var seen uint64
	for i, c := range h.counts {
		if seen += c; seen >= rank {
			lo, w := bounds(i)
			return min(time.Duration(lo+w/2), h.max)
		}
	}
	return h.max
}

// Merge adds o's counts to h.
func (h *Histogram) Merge(o *Histogram) {
	if o == nil || o.total == 0 {
		return
	}
	if h.counts == nil {
		h.counts = make([]uint64, nBuckets)
	}
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.total += o.total
	h.max = max(h.max, o.max)
}

// histJSON is the wire form: the non-empty buckets as [index, count] pairs.
type histJSON struct {
	Buckets [][2]uint64 `json:"buckets"`
	MaxNS   int64       `json:"max_ns"`
}

// MarshalJSON writes the non-empty buckets.
func (h *Histogram) MarshalJSON() ([]byte, error) {
	out := histJSON{Buckets: [][2]uint64{}, MaxNS: int64(h.max)}
	for i, c := range h.counts {
		if c > 0 {
			out.Buckets = append(out.Buckets, [2]uint64{uint64(i), c})
		}
	}
	return json.Marshal(out)
}

// UnmarshalJSON reads what MarshalJSON wrote and refuses bucket indexes out of range.
func (h *Histogram) UnmarshalJSON(b []byte) error {
	var in histJSON
	if err := json.Unmarshal(b, &in); err != nil {
		return fmt.Errorf("benchproto: histogram: %w", err)
	}
	if in.MaxNS < 0 {
		return fmt.Errorf("benchproto: histogram: max_ns %d is negative", in.MaxNS)
	}
	*h = Histogram{max: time.Duration(in.MaxNS)}
	for _, bc := range in.Buckets {
		if bc[0] >= nBuckets {
			return fmt.Errorf("benchproto: histogram: bucket %d out of range (0..%d)", bc[0], nBuckets-1)
		}
		if h.counts == nil {
			h.counts = make([]uint64, nBuckets)
		}
		h.counts[bc[0]] += bc[1]
		h.total += bc[1]
	}
	return nil
}
