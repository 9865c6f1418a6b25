package scheduler_test

import (
	"context"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kasync/kasync/scheduler"
)

// peakCounter counts attempts running at once and the most seen.
type peakCounter struct{ cur, peak atomic.Int64 }

func (c *peakCounter) enter() {
	n := c.cur.Add(1)
	for p := c.peak.Load(); n > p && !c.peak.CompareAndSwap(p, n); p = c.peak.Load() {
	}
}

func (c *peakCounter) leave() { c.cur.Add(-1) }

func tenantFn(name, tenant string, concurrency int, exec scheduler.ExecutorFunc) scheduler.Function {
	f := fn(name, concurrency, exec)
	f.Tenant = tenant
	return f
}

func TestTenantConfigValidates(t *testing.T) {
	t.Parallel()
	_, err := scheduler.New(scheduler.Config{
		MaxConcurrency: -1,
		Tenants: []scheduler.Tenant{
			{Name: "a", Weight: -1, Concurrency: -2, Rate: -3},
			{Name: "a"},
			{Name: ""},
		},
		Functions: []scheduler.Function{
			tenantFn("f", "nope", 1, noop),
			{Name: "g", Concurrency: 2, Timeout: time.Second, Executor: scheduler.ExecutorFunc(noop),
				Adaptive: scheduler.AdaptiveConfig{Min: 3, LatencyFactor: 0.5}},
		},
	})
	require.Error(t, err)
	for _, want := range []string{
		"MaxConcurrency is -1; set the most attempts running at once over all functions, or 0 for no cap",
		`Tenants[0] ("a"): Weight is -1; set a positive share such as 1, or 0 for the default 1`,
		`Tenants[0] ("a"): Concurrency is -2`,
		`Tenants[0] ("a"): Rate is -3`,
		`Tenants[1] ("a"): Name duplicates Tenants[0]`,
		`Tenants[2] (""): Name is empty`,
		`Functions[0] ("f"): Tenant "nope" is not in Tenants; add it to Tenants or leave Tenant empty for "default"`,
		`Functions[1] ("g"): Adaptive.Min is 3; set it between 1 and Concurrency (2), or 0 for 1`,
		`Functions[1] ("g"): Adaptive.LatencyFactor is 0.5; set a factor above 1`,
	} {
		require.ErrorContains(t, err, want)
	}
	// A Tenants entry named "default" overrides the built-in one.
	s := newScheduler(t, scheduler.Config{
		Tenants:   []scheduler.Tenant{{Name: "default", Concurrency: 1}},
		Functions: []scheduler.Function{fn("f", 1, noop)},
	})
	require.Len(t, s.Stats().Tenants, 1)
}

// TestTenantConcurrencyQuota: the attempts of a tenant's functions, counted by the
// executors themselves, never exceed its quota, while another tenant's function runs
// to its own concurrency.
func TestTenantConcurrencyQuota(t *testing.T) {
	t.Parallel()
	var quota, free peakCounter
	release := make(chan struct{})
	blocking := func(c *peakCounter) scheduler.ExecutorFunc {
		return func(context.Context, *scheduler.Workload, time.Duration) scheduler.Outcome {
			c.enter()
			defer c.leave()
			<-release
			return scheduler.Success()
		}
	}
	s := newScheduler(t, scheduler.Config{
		Tenants: []scheduler.Tenant{{Name: "t", Concurrency: 3}, {Name: "u"}},
		Functions: []scheduler.Function{
			tenantFn("t1", "t", 4, blocking(&quota)),
			tenantFn("t2", "t", 4, blocking(&quota)),
			tenantFn("u1", "u", 4, blocking(&free)),
		},
	})
	var wg sync.WaitGroup
	for _, name := range []string{"t1", "t2", "u1"} {
		for i := range 10 {
			wg.Add(1)
			s.Enqueue(wl(name, strconv.Itoa(i)), func(scheduler.Outcome) { wg.Done() })
		}
	}
	require.Eventually(t, func() bool {
		st := s.Stats()
		tt, _ := st.Tenant("t")
		return quota.cur.Load() == 3 && free.cur.Load() == 4 && tt.Running == 3 && tt.Waiting > 0
	}, 10*time.Second, time.Millisecond)
	tt, _ := s.Stats().Tenant("t")
	require.Equal(t, 17, tt.Queued)
	close(release)
	wg.Wait()
	require.EqualValues(t, 3, quota.peak.Load(), "tenant t's quota")
	require.EqualValues(t, 4, free.peak.Load(), "tenant u has no quota")
}

// TestMaxConcurrency: no more attempts run at once over all functions and tenants
// than MaxConcurrency; every workload still runs.
func TestMaxConcurrency(t *testing.T) {
	t.Parallel()
	var all peakCounter
	exec := func(context.Context, *scheduler.Workload, time.Duration) scheduler.Outcome {
		all.enter()
		defer all.leave()
		time.Sleep(100 * time.Microsecond)
		return scheduler.Success()
	}
	s := newScheduler(t, scheduler.Config{
		MaxConcurrency: 5,
		Tenants:        []scheduler.Tenant{{Name: "x", Weight: 3}},
		Functions:      []scheduler.Function{fn("f1", 4, exec), tenantFn("f2", "x", 4, exec), tenantFn("f3", "x", 4, exec)},
	})
	var wg sync.WaitGroup
	for i := range 300 {
		wg.Add(1)
		s.Enqueue(wl([]string{"f1", "f2", "f3"}[i%3], strconv.Itoa(i)), func(scheduler.Outcome) { wg.Done() })
	}
	wg.Wait()
	require.LessOrEqual(t, all.peak.Load(), int64(5))
	st := s.Stats()
	for _, name := range []string{"f1", "f2", "f3"} {
		fs, _ := st.Function(name)
		require.EqualValues(t, 100, fs.Succeeded, name)
	}
	for _, ts := range st.Tenants {
		require.Zero(t, ts.Running+ts.Queued+ts.Waiting, ts.Name)
	}
}

// TestTenantRate: a tenant limited to r starts per second over two functions starts
// r per second (±5% past the first second's burst); a function of another tenant
// is not slowed by it.
func TestTenantRate(t *testing.T) {
	t.Parallel()
	const r = 200.0
	span := 4 * time.Second
	if testing.Short() {
		span = 2 * time.Second
	}
	var mu sync.Mutex
	var starts []time.Time
	limited := func(context.Context, *scheduler.Workload, time.Duration) scheduler.Outcome {
		mu.Lock()
		starts = append(starts, time.Now())
		mu.Unlock()
		return scheduler.Success()
	}
	var free atomic.Int64
	s := newScheduler(t, scheduler.Config{
		Tenants: []scheduler.Tenant{{Name: "slow", Rate: r}},
		Functions: []scheduler.Function{
			tenantFn("a", "slow", 16, limited),
			tenantFn("b", "slow", 16, limited),
			fn("free", 4, func(context.Context, *scheduler.Workload, time.Duration) scheduler.Outcome {
				free.Add(1)
				return scheduler.Success()
			}),
		},
	})
	total := int(r*span.Seconds()) + int(r)
	for i := range total {
		s.Enqueue(wl([]string{"a", "b"}[i%2], strconv.Itoa(i)), func(scheduler.Outcome) {})
	}
	const frees = 5000
	for i := range frees {
		s.Enqueue(wl("free", strconv.Itoa(i)), func(scheduler.Outcome) {})
	}
	require.Eventually(t, func() bool { return free.Load() == frees }, 10*time.Second, time.Millisecond)
	n := steadyStarts(t, &mu, &starts, span)
	want := r * (span - time.Second).Seconds()
	t.Logf("tenant rate %v/s: %d starts in %v (want %.0f)", r, n, span-time.Second, want)
	require.InEpsilon(t, want, float64(n), 0.05)
}

// TestTenantPrioritiesKept: with a tenant quota of one, waiting workloads still
// start highest priority first: a worker pops only once it holds a slot.
func TestTenantPrioritiesKept(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	var mu sync.Mutex
	var order []string
	s := newScheduler(t, scheduler.Config{
		Tenants: []scheduler.Tenant{{Name: "t", Concurrency: 1}},
		Functions: []scheduler.Function{tenantFn("f", "t", 4, func(_ context.Context, w *scheduler.Workload, _ time.Duration) scheduler.Outcome {
			if w.ID == "blocker" {
				<-release
			}
			mu.Lock()
			order = append(order, w.ID)
			mu.Unlock()
			return scheduler.Success()
		})},
	})
	s.Enqueue(wl("f", "blocker"), func(scheduler.Outcome) {})
	require.Eventually(t, func() bool { fs, _ := s.Stats().Function("f"); return fs.Running == 1 }, 10*time.Second, time.Millisecond)
	var wg sync.WaitGroup
	enqueueMixedPriorities(s, &wg)
	require.Eventually(t, func() bool { ts, _ := s.Stats().Tenant("t"); return ts.Waiting == 3 }, 10*time.Second, time.Millisecond,
		"the function's other workers wait for the tenant's slot")
	close(release)
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	require.Equal(t, []string{"blocker", "p9", "p5-a", "p5-b", "p1", "p0", "p-3"}, order)
}

// TestCloseEndsSlotWaits: workers waiting for a tenant's slot or a global slot end at
// Close, and every workload gets its one outcome.
func TestCloseEndsSlotWaits(t *testing.T) {
	t.Parallel()
	s, err := scheduler.New(scheduler.Config{
		Logger:         slog.New(slog.DiscardHandler),
		MaxConcurrency: 2,
		Tenants:        []scheduler.Tenant{{Name: "t", Concurrency: 1, Rate: 1000}},
		Functions: []scheduler.Function{
			tenantFn("f", "t", 4, func(ctx context.Context, _ *scheduler.Workload, _ time.Duration) scheduler.Outcome {
				<-ctx.Done()
				return scheduler.Retriable(scheduler.ReasonTimeout, "cancelled")
			}),
			fn("g", 4, func(ctx context.Context, _ *scheduler.Workload, _ time.Duration) scheduler.Outcome {
				<-ctx.Done()
				return scheduler.Retriable(scheduler.ReasonTimeout, "cancelled")
			}),
		},
	})
	require.NoError(t, err)
	var calls [12]atomic.Int32
	for i := range calls {
		s.Enqueue(wl([]string{"f", "g"}[i%2], strconv.Itoa(i)), func(scheduler.Outcome) { calls[i].Add(1) })
	}
	require.Eventually(t, func() bool {
		st := s.Stats()
		tt, _ := st.Tenant("t")
		dt, _ := st.Tenant("default")
		// Both slots are taken (which tenant got them depends on who asked first, as
		// no tenant waited yet), t within its quota, and every other worker waits.
		return tt.Running+dt.Running == 2 && tt.Running <= 1 && tt.Waiting+dt.Waiting == 6
	}, 10*time.Second, time.Millisecond)
	require.NoError(t, s.Close())
	for i := range calls {
		require.EqualValues(t, 1, calls[i].Load(), "workload %d", i)
	}
	require.EqualValues(t, 10, s.Stats().Refused, "the ten that never started are answered as shutdown")
}

// latencies returns the p50 and p99 of ds.
func latencies(ds []time.Duration) (p50, p99 time.Duration) {
	slices.Sort(ds)
	return ds[len(ds)/2], ds[len(ds)*99/100]
}

// TestTenantIsolation: with MaxConcurrency 8 shared by tenants A and B (weight 1
// each), B's steady, modest load keeps its latency (enqueue to done) while A floods
// the scheduler with thousands of waiting workloads, and while A fails every attempt
// at once (2000 queued, then 20,000 more a second): B's p99 stays within 2x its level
// alone (plus a few ms for a noisy machine).
//
// While A's flood holds every slot, a workload of B waits for the next release: at
// most one of A's attempts (here 2 ms, so B's latency roughly doubles at worst). A
// tenant whose attempts are long should have a Concurrency quota below
// MaxConcurrency, which leaves the others room to start at once.
//
// It measures latency, so it does not run in parallel with the package's other tests.
func TestTenantIsolation(t *testing.T) { // not t.Parallel: a latency measurement
	const (
		work       = 2 * time.Millisecond
		phase      = 2 * time.Second
		bInterval  = 4 * time.Millisecond // B offers 250/s: about half a slot of work
		population = 2000                 // A's waiting workloads at the start of its phase
		stormRate  = 20_000               // A's failing workloads a second in the storm
	)
	var failing atomic.Bool
	aExec := func(context.Context, *scheduler.Workload, time.Duration) scheduler.Outcome {
		if failing.Load() {
			return scheduler.Retriable(scheduler.ReasonError, "tenant A's downstream is down")
		}
		time.Sleep(work)
		return scheduler.Success()
	}
	bExec := func(context.Context, *scheduler.Workload, time.Duration) scheduler.Outcome {
		time.Sleep(work)
		return scheduler.Success()
	}
	s := newScheduler(t, scheduler.Config{
		MaxConcurrency: 8,
		Tenants:        []scheduler.Tenant{{Name: "A", Weight: 1}, {Name: "B", Weight: 1}},
		Functions: []scheduler.Function{
			tenantFn("a1", "A", 8, aExec),
			tenantFn("a2", "A", 8, aExec),
			tenantFn("b", "B", 8, bExec),
		},
	})

	// runA queues population workloads of A. In a flood it tops them up as they
	// finish (a backlog that never drains); in a storm every attempt fails at once and
	// A's source adds stormRate more a second, as a tailer reading a busy topic would
	// (failures leave for the delay rungs, they are not retried in a hot loop). After
	// stop is closed, finished waits for all of A's workloads.
	runA := func(storm bool, stop <-chan struct{}) (finished func()) {
		var stopped atomic.Bool
		var pending sync.WaitGroup
		var next atomic.Int64
		var enqueue func()
		enqueue = func() {
			pending.Add(1)
			i := next.Add(1)
			s.Enqueue(wl([]string{"a1", "a2"}[i%2], strconv.FormatInt(i, 10)), func(scheduler.Outcome) {
				if !storm && !stopped.Load() {
					enqueue()
				}
				pending.Done()
			})
		}
		for range population {
			enqueue()
		}
		source := make(chan struct{})
		go func() {
			defer close(source)
			if !storm {
				<-stop
				return
			}
			tick := time.NewTicker(time.Millisecond)
			defer tick.Stop()
			for {
				select {
				case <-stop:
					return
				case <-tick.C:
					for range stormRate / 1000 {
						enqueue()
					}
				}
			}
		}()
		return func() {
			<-source
			stopped.Store(true)
			pending.Wait()
		}
	}
	// measureB offers B's load for one phase and returns its latencies.
	measureB := func() []time.Duration {
		var mu sync.Mutex
		var lat []time.Duration
		var wg sync.WaitGroup
		tick := time.NewTicker(bInterval)
		defer tick.Stop()
		end := time.After(phase)
		for i := 0; ; i++ {
			select {
			case <-end:
				wg.Wait()
				return lat
			case <-tick.C:
			}
			wg.Add(1)
			start := time.Now()
			s.Enqueue(wl("b", strconv.Itoa(i)), func(scheduler.Outcome) {
				d := time.Since(start)
				mu.Lock()
				lat = append(lat, d)
				mu.Unlock()
				wg.Done()
			})
		}
	}
	withA := func(fail bool) ([]time.Duration, uint64) {
		failing.Store(fail)
		before := s.Stats()
		stop := make(chan struct{})
		finished := runA(fail, stop)
		lat := measureB()
		close(stop)
		finished()
		after := s.Stats()
		var ran uint64
		for _, name := range []string{"a1", "a2"} {
			b, _ := before.Function(name)
			a, _ := after.Function(name)
			ran += a.Succeeded + a.Retriable - b.Succeeded - b.Retriable
		}
		return lat, ran
	}

	alone := measureB()
	flood, floodRan := withA(false)
	storm, stormRan := withA(true)

	p50Alone, p99Alone := latencies(alone)
	p50Flood, p99Flood := latencies(flood)
	p50Storm, p99Storm := latencies(storm)
	t.Logf("B alone:                 %4d workloads, p50 %v, p99 %v", len(alone), p50Alone, p99Alone)
	t.Logf("B with A flooding:       %4d workloads, p50 %v, p99 %v (A ran %d attempts)", len(flood), p50Flood, p99Flood, floodRan)
	t.Logf("B with A failing (100%%): %4d workloads, p50 %v, p99 %v (A ran %d attempts)", len(storm), p50Storm, p99Storm, stormRan)

	const slack = 10 * time.Millisecond // a shared 2-core machine stalls for ms now and then
	require.LessOrEqual(t, p99Flood, 2*p99Alone+slack, "B's p99 while A floods")
	require.LessOrEqual(t, p99Storm, 2*p99Alone+slack, "B's p99 while A fails")
	require.Greater(t, floodRan, uint64(phase/work), "A used the capacity B left: more than one slot's worth")
}
