package benchproto

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestHistogramQuantilesWithinPrecision(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var h Histogram
	var all []time.Duration
	for range 100_000 {
		// log-uniform from 1µs to 10s
		d := time.Duration(math.Exp(r.Float64()*math.Log(1e7)) * 1e3)
		h.Record(d)
		all = append(all, d)
	}
	slices.Sort(all)
	for _, q := range []float64{0.01, 0.5, 0.9, 0.99, 0.999, 1} {
		want := all[int(math.Ceil(q*float64(len(all))))-1]
		got := h.Quantile(q)
		if rel := math.Abs(float64(got-want)) / float64(want); rel > 1.0/64 {
			t.Errorf("q%.3f = %v, exact %v: off by %.2f%%", q, got, want, rel*100)
		}
	}
	if h.Count() != int64(len(all)) || h.Max() != all[len(all)-1] {
		t.Errorf("count %d max %v, want %d %v", h.Count(), h.Max(), len(all), all[len(all)-1])
	}
}

func TestHistogramEdges(t *testing.T) {
	var h Histogram
	if h.Quantile(0.5) != 0 {
		t.Fatal("empty histogram has a quantile")
	}
	h.Record(-time.Second) // counts as 0
	h.Record(time.Duration(math.MaxInt64))
	if h.Quantile(0) != 0 || h.Quantile(1) != time.Duration(math.MaxInt64) {
		t.Fatalf("edges: q0 %v q1 %v", h.Quantile(0), h.Quantile(1))
	}
	for v := int64(0); v < 5000; v++ {
		if lo, w := bounds(bucketOf(v)); v < lo || v >= lo+w {
			t.Fatalf("%d outside its bucket [%d,%d)", v, lo, lo+w)
		}
	}
}

func TestHistogramMergeAndJSON(t *testing.T) {
	var a, b Histogram
	for i := range 1000 {
		a.Record(time.Duration(i) * time.Microsecond)
		b.Record(time.Duration(i) * time.Millisecond)
	}
	a.Merge(&b)
	raw, err := json.Marshal(&a)
	if err != nil {
		t.Fatal(err)
	}
	var back Histogram
	if err := json.Unmarshal(raw, &back); err != nil {
		t.Fatal(err)
	}
	if back.Count() != 2000 || back.Max() != a.Max() || back.Quantile(0.99) != a.Quantile(0.99) {
		t.Fatalf("round trip: count %d max %v p99 %v; want 2000 %v %v", back.Count(), back.Max(), back.Quantile(0.99), a.Max(), a.Quantile(0.99))
	}
	for _, bad := range []string{`{"buckets":[[99999,1]]}`, `{"max_ns":-1}`, `[]`} {
		if err := json.Unmarshal([]byte(bad), &back); err == nil {
			t.Errorf("%s: no error", bad)
		}
	}
}

func TestEventsRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	w := NewWriter(&buf)
	var h Histogram
	h.Record(3 * time.Millisecond)
	for _, e := range []Event{{Event: EventReady}, {Event: EventProgress, Done: 7},
		{Event: EventResult, Result: &Result{Count: 3, FirstStart: 1e9, LastStart: 2e9, Latency: &h}}} {
		if err := w.Write(e); err != nil {
			t.Fatal(err)
		}
	}
	r := NewReader(&buf)
	var got []Event
	for {
		e, err := r.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, e)
	}
	if len(got) != 3 || got[1].Done != 7 || got[2].Result.Rate() != 2 || got[2].Result.Latency.Count() != 1 {
		t.Fatalf("got %+v", got)
	}
	for _, bad := range []string{"not json\n", `{"event":"bogus"}` + "\n", `{"event":"result"}` + "\n"} {
		if _, err := NewReader(strings.NewReader(bad)).Next(); err == nil || errors.Is(err, io.EOF) {
			t.Errorf("%q: err %v", bad, err)
		}
	}
}

func TestStamp(t *testing.T) {
	p := make([]byte, 16)
	now := time.Now()
	Stamp(p, now)
	got, ok := Stamped(p)
	if !ok || !got.Equal(time.Unix(0, now.UnixNano())) {
		t.Fatalf("stamp %v, %v; want %v", got, ok, now)
	}
	if _, ok := Stamped(p[:7]); ok {
		t.Fatal("a 7-byte payload has a stamp")
	}
}

func FuzzReader(f *testing.F) {
	f.Add([]byte(`{"event":"result","result":{"count":1,"latency":{"buckets":[[3,4]],"max_ns":3}}}` + "\n"))
	f.Add([]byte(`{"event":"progress","done":3}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		r := NewReader(bytes.NewReader(b))
		for range 100 {
			e, err := r.Next()
			if err != nil {
				return
			}
			if e.Result != nil && e.Result.Latency != nil {
				_ = e.Result.Latency.Quantile(0.99)
				_ = e.Result.Rate()
			}
		}
	})
}

func TestRateCountsFromSubscribed(t *testing.T) {
	r := Result{Count: 1000, FirstStart: 2e9, LastStart: 3e9}
	if got := r.Rate(); got != 999 {
		t.Fatalf("without Subscribed: %v, want 999 (first to last)", got)
	}
	r.Subscribed = 1e9
	if got := r.Rate(); got != 500 {
		t.Fatalf("with Subscribed: %v, want 500 (subscribed to last)", got)
	}
	r.Subscribed = 2.5e9 // after the first start: not a real subscription time
	if got := r.Rate(); got != 999 {
		t.Fatalf("Subscribed after the first start: %v, want 999", got)
	}
}
