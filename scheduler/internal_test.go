package scheduler

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestWorkersBounded checks the goroutine bound: a burst far larger than the
// concurrency starts no more workers than the concurrency.
func TestWorkersBounded(t *testing.T) {
	t.Parallel()
	s, err := New(Config{
		Logger: slog.New(slog.DiscardHandler),
		Functions: []Function{{Name: "f", Concurrency: 3, Timeout: time.Second,
			Executor: ExecutorFunc(func(context.Context, *Workload, time.Duration) Outcome { return Success() })}},
	})
	require.NoError(t, err)
	defer s.Close()
	var wg sync.WaitGroup
	wg.Add(5000)
	for range 5000 {
		s.Enqueue(&Workload{ID: "x", Function: "f", Attempt: 1}, func(Outcome) { wg.Done() })
	}
	wg.Wait()
	f := s.fns["f"]
	f.mu.Lock()
	defer f.mu.Unlock()
	require.LessOrEqual(t, f.workers, 3)
	require.Positive(t, f.workers)
}
