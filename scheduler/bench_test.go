package scheduler_test

import (
	"context"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kasync/kasync/scheduler"
)

// BenchmarkEnqueue measures Enqueue→done throughput with a no-op executor, the
// scheduler's own overhead per workload.
func BenchmarkEnqueue(b *testing.B) {
	for _, concurrency := range []int{1, 8, 64} {
		b.Run("concurrency="+strconv.Itoa(concurrency), func(b *testing.B) {
			s, err := scheduler.New(scheduler.Config{
				Logger:    slog.New(slog.DiscardHandler),
				Functions: []scheduler.Function{fn("noop", concurrency, noop)},
			})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			w := wl("noop", "bench")
			var wg sync.WaitGroup
			done := func(scheduler.Outcome) { wg.Done() }
			b.ReportAllocs()
			start := time.Now()
			wg.Add(b.N)
			for range b.N {
				s.Enqueue(w, done)
			}
			wg.Wait()
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "workloads/s")
		})
	}
}

// BenchmarkLocalPushDeliver measures a stream end to end: Push in batches through
// the credit window to delivered results.
func BenchmarkLocalPushDeliver(b *testing.B) {
	for _, batchSize := range []int{1, 100, 500} {
		b.Run("batch="+strconv.Itoa(batchSize), func(b *testing.B) {
			s, err := scheduler.New(scheduler.Config{
				Logger:    slog.New(slog.DiscardHandler),
				Functions: []scheduler.Function{fn("noop", 8, noop)},
			})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			var got atomic.Int64
			all := make(chan struct{})
			want := int64(b.N)
			st, err := scheduler.NewLocal(s, 10_000).Open(context.Background(), "bench", func(rs []scheduler.Result) {
				if got.Add(int64(len(rs))) == want {
					close(all)
				}
			})
			if err != nil {
				b.Fatal(err)
			}
			defer st.Close()
			w := wl("noop", "bench")
			batch := make([]scheduler.Pushed, batchSize)
			for i := range batch {
				batch[i] = scheduler.Pushed{Token: uint64(i), Workload: w}
			}
			b.ReportAllocs()
			start := time.Now()
			for left := b.N; left > 0; left -= batchSize {
				if err := st.Push(context.Background(), batch[:min(batchSize, left)]); err != nil {
					b.Fatal(err)
				}
			}
			<-all
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "workloads/s")
		})
	}
}
