package runtime

import (
	"context"
	"io"
	"log/slog"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kasync/kasync/scheduler"
)

// BenchmarkWorkerNoop is the split path end to end: a push stream (rpc.Client) into a
// gRPC scheduler whose function is served by one SDK worker over its Work stream,
// running a function that does nothing, until every result is back.
func BenchmarkWorkerNoop(b *testing.B) {
	c := newClusterWith(b, clusterOptions{timeout: time.Minute, concurrency: 256}, "noop")
	reg := NewRegistry()
	reg.MustRegister("noop", func(context.Context, *Task) error { return nil })
	w := newTestWorker(b, c.addr, reg, func(cfg *WorkerConfig) {
		cfg.Capacity = 256
		cfg.Heartbeat = time.Second
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	})
	runWorker(b, w)
	payload := make([]byte, 100)
	const batchSize = 500
	b.ResetTimer()
	start := time.Now()
	for sent := 0; sent < b.N; {
		k := min(batchSize, b.N-sent)
		batch := make([]scheduler.Pushed, k)
		for i := range batch {
			batch[i] = scheduler.Pushed{Token: uint64(sent + i), Workload: &scheduler.Workload{
				ID: "bench/0/" + strconv.Itoa(sent+i), Function: "noop", Payload: payload, Attempt: 1}}
		}
		require.NoError(b, c.stream.Push(context.Background(), batch))
		sent += k
	}
	deadline := time.After(time.Minute)
	for {
		c.mu.Lock()
		n := len(c.results)
		c.mu.Unlock()
		if n >= b.N {
			break
		}
		select {
		case <-c.arrived:
		case <-deadline:
			b.Fatalf("%d of %d results after a minute", n, b.N)
		}
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "workloads/s")
}
