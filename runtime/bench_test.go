package runtime_test

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	kruntime "github.com/kasync/kasync/runtime"
	"github.com/kasync/kasync/scheduler"
)

// BenchmarkExecuteNoop is the runtime's overhead per attempt: a goroutine hop, a
// timeout ctx and classification around a function that does nothing.
func BenchmarkExecuteNoop(b *testing.B) {
	r := kruntime.NewRegistry()
	r.MustRegister("noop", func(context.Context, *kruntime.Task) error { return nil })
	w := workload("noop")
	ctx := context.Background()
	// The difference between the two is the cost of the timeout's timer.
	for _, timeout := range []time.Duration{time.Minute, 0} {
		b.Run("timeout="+timeout.String(), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				r.Execute(ctx, w, timeout)
			}
		})
	}
}

// BenchmarkSchedulerWithRegistry is the in-process path end to end: Enqueue, a
// scheduler worker, the function, done. "inline" is what the scheduler does with a
// Registry (ExecuteInline on the worker's goroutine); "hop" hides ExecuteInline, so
// each attempt goes through Execute's goroutine and timeout ctx.
func BenchmarkSchedulerWithRegistry(b *testing.B) {
	r := kruntime.NewRegistry()
	r.MustRegister("noop", func(context.Context, *kruntime.Task) error { return nil })
	for _, c := range []struct {
		name string
		exec scheduler.Executor
	}{
		{"inline", r},
		{"hop", struct{ scheduler.Executor }{r}},
	} {
		b.Run(c.name, func(b *testing.B) {
			s, err := scheduler.New(scheduler.Config{
				Logger:    slog.New(slog.DiscardHandler),
				Functions: []scheduler.Function{{Name: "noop", Concurrency: 8, Timeout: time.Minute, Executor: c.exec}},
			})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			w := workload("noop")
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
