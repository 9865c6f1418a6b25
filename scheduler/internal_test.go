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

// TestNoTenantsUnchanged: without Tenants, MaxConcurrency, quotas or rates there is no
// arbiter and no wait before a start: the dispatch path is the one without tenants.
func TestNoTenantsUnchanged(t *testing.T) {
	t.Parallel()
	exec := ExecutorFunc(func(context.Context, *Workload, time.Duration) Outcome { return Success() })
	s, err := New(Config{
		Logger:    slog.New(slog.DiscardHandler),
		Functions: []Function{{Name: "f", Concurrency: 2, Timeout: time.Second, Executor: exec}},
	})
	require.NoError(t, err)
	defer s.Close()
	require.Nil(t, s.arb)
	require.False(t, s.fns["f"].gated)
	require.Equal(t, []TenantStats{{Name: DefaultTenant}}, s.Stats().Tenants)

	// Tenants without quotas need no arbiter either; a quota or MaxConcurrency does.
	for _, c := range []struct {
		cfg     Config
		arbiter bool
	}{
		{Config{Tenants: []Tenant{{Name: "t", Weight: 3}}}, false},
		{Config{Tenants: []Tenant{{Name: "t", Concurrency: 1}}}, true},
		{Config{MaxConcurrency: 4}, true},
	} {
		c.cfg.Logger = slog.New(slog.DiscardHandler)
		c.cfg.Functions = []Function{{Name: "f", Concurrency: 2, Timeout: time.Second, Executor: exec}}
		s, err := New(c.cfg)
		require.NoError(t, err)
		require.Equal(t, c.arbiter, s.arb != nil, "%+v", c.cfg)
		require.Equal(t, c.arbiter, s.fns["f"].gated)
		require.NoError(t, s.Close())
	}
}
