package scheduler_test

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kasync/kasync/scheduler"
	"github.com/kasync/kasync/scheduler/schedulertest"
)

func TestLocalConformance(t *testing.T) {
	t.Parallel()
	schedulertest.Run(t, func(t *testing.T, fns []scheduler.Function) schedulertest.Opener {
		return scheduler.NewLocal(newScheduler(t, scheduler.Config{Functions: fns}), schedulertest.Window)
	})
}

func TestLocalOpenErrors(t *testing.T) {
	t.Parallel()
	s := newScheduler(t, scheduler.Config{Functions: []scheduler.Function{fn("f", 1, noop)}})
	l := scheduler.NewLocal(s, 0)
	deliver := func([]scheduler.Result) {}

	_, err := l.Open(context.Background(), "", deliver)
	require.ErrorContains(t, err, "name is empty")
	_, err = l.Open(context.Background(), "t", nil)
	require.ErrorContains(t, err, "deliver is nil")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = l.Open(ctx, "t", deliver)
	require.ErrorIs(t, err, context.Canceled)

	require.NoError(t, s.Close())
	_, err = l.Open(context.Background(), "t", deliver)
	require.ErrorIs(t, err, scheduler.ErrClosed)
}

// TestLocalSchedulerClosedUnderStream checks that a stream whose scheduler closes
// gets shutdown results (Enqueue then answers on Push's own stack) without deadlock.
func TestLocalSchedulerClosedUnderStream(t *testing.T) {
	t.Parallel()
	s, err := scheduler.New(scheduler.Config{Logger: slog.New(slog.DiscardHandler), Functions: []scheduler.Function{fn("f", 1, noop)}})
	require.NoError(t, err)
	got := make(chan []scheduler.Result, 10)
	st, err := scheduler.NewLocal(s, 4).Open(context.Background(), "t", func(rs []scheduler.Result) { got <- rs })
	require.NoError(t, err)
	defer st.Close()
	require.NoError(t, s.Close())

	// Ten workloads through a window of four: credit must come back from shutdown results.
	batch := make([]scheduler.Pushed, 10)
	for i := range batch {
		batch[i] = scheduler.Pushed{Token: uint64(i), Workload: wl("f", "x")}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, st.Push(ctx, batch))
	n := 0
	for n < len(batch) {
		select {
		case rs := <-got:
			for _, r := range rs {
				require.Equal(t, scheduler.ReasonShutdown, r.Outcome.Reason)
			}
			n += len(rs)
		case <-ctx.Done():
			t.Fatalf("got %d of %d results", n, len(batch))
		}
	}
}

func TestLocalCloseTwice(t *testing.T) {
	t.Parallel()
	s := newScheduler(t, scheduler.Config{Functions: []scheduler.Function{fn("f", 1, noop)}})
	st, err := scheduler.NewLocal(s, 1).Open(context.Background(), "t", func([]scheduler.Result) {})
	require.NoError(t, err)
	var wg sync.WaitGroup
	errs := make(chan error, 3)
	for range 3 {
		wg.Go(func() { errs <- st.Close() })
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
}
