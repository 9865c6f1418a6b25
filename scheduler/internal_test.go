package scheduler

import (
	"context"
	"log/slog"
	"strconv"
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

// TestBurstStartsUpToConcurrency: workers wake one another (function.work passes the
// wake-up on), so a burst pushed with one wake-up still runs Concurrency attempts at
// once: every attempt here waits until all of them have started. Gated functions (an
// arbiter slot, a rate) and single Enqueues do the same.
func TestBurstStartsUpToConcurrency(t *testing.T) {
	t.Parallel()
	const concurrency = 16
	for _, tc := range []struct {
		name  string
		cfg   Config
		rate  float64
		batch bool
	}{
		{name: "batch", batch: true},
		{name: "single enqueues"},
		{name: "gated by a slot", cfg: Config{MaxConcurrency: 100}, batch: true},
		{name: "gated by a rate", rate: 1e6, batch: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var started sync.WaitGroup
			started.Add(concurrency)
			all := make(chan struct{})
			go func() { started.Wait(); close(all) }()
			exec := ExecutorFunc(func(ctx context.Context, _ *Workload, _ time.Duration) Outcome {
				started.Done()
				select {
				case <-all:
					return Success()
				case <-time.After(10 * time.Second):
					return Retriable(ReasonTimeout, "not every attempt started")
				}
			})
			cfg := tc.cfg
			cfg.Logger = slog.New(slog.DiscardHandler)
			cfg.Functions = []Function{{Name: "f", Concurrency: concurrency, Rate: tc.rate, Timeout: time.Minute, Executor: exec}}
			s, err := New(cfg)
			require.NoError(t, err)
			defer s.Close()
			outcomes := make(chan Outcome, concurrency)
			done := func(o Outcome) { outcomes <- o }
			w := &Workload{ID: "x", Function: "f", Attempt: 1}
			if tc.batch {
				s.EnqueueBatch(concurrency, func(int) (*Workload, func(Outcome)) { return w, done })
			} else {
				for range concurrency {
					s.Enqueue(w, done)
				}
			}
			for range concurrency {
				require.Equal(t, OutcomeSuccess, (<-outcomes).Kind)
			}
		})
	}
}

// TestLocalTicketsReused: a Local stream reuses its tickets without mixing them up.
// Many goroutines push through a small window to an executor that answers out of
// order; every token comes back exactly once, with the outcome of its own workload,
// and the stream never made more tickets than its window.
func TestLocalTicketsReused(t *testing.T) {
	t.Parallel()
	exec := ExecutorFunc(func(_ context.Context, w *Workload, _ time.Duration) Outcome {
		if len(w.Payload)%3 == 0 {
			time.Sleep(time.Duration(len(w.Payload)) * time.Microsecond)
		}
		return Fatal(ReasonFatal, w.ID) // the outcome names its workload
	})
	s, err := New(Config{Logger: slog.New(slog.DiscardHandler),
		Functions: []Function{{Name: "f", Concurrency: 8, Timeout: time.Minute, Executor: exec}}})
	require.NoError(t, err)
	defer s.Close()
	const window, pushers, perPusher = 7, 4, 3000
	var mu sync.Mutex
	got := make(map[uint64]string)
	all := make(chan struct{})
	st, err := NewLocal(s, window).Open(context.Background(), "t", func(rs []Result) {
		mu.Lock()
		defer mu.Unlock()
		for _, r := range rs {
			_, dup := got[r.Token]
			require.False(t, dup, "token %d delivered twice", r.Token)
			got[r.Token] = r.Outcome.Err
		}
		if len(got) == pushers*perPusher {
			close(all)
		}
	})
	require.NoError(t, err)
	var wg sync.WaitGroup
	for p := range pushers {
		wg.Go(func() {
			for i := 0; i < perPusher; {
				n := min(1+i%5, perPusher-i)
				batch := make([]Pushed, n)
				for k := range batch {
					tok := uint64(p*perPusher + i + k)
					batch[k] = Pushed{Token: tok, Workload: &Workload{ID: strconv.FormatUint(tok, 10), Function: "f",
						Attempt: 1, Payload: make([]byte, tok%7)}}
				}
				if err := st.Push(context.Background(), batch); err != nil {
					t.Error(err)
					return
				}
				i += n
			}
		})
	}
	wg.Wait()
	select {
	case <-all:
	case <-time.After(30 * time.Second):
		t.Fatal("not every result was delivered")
	}
	require.NoError(t, st.Close())
	for tok, id := range got {
		require.Equal(t, strconv.FormatUint(tok, 10), id, "token %d got another workload's outcome", tok)
	}
	ls := st.(*localStream)
	require.LessOrEqual(t, ls.tickets, window)
}
