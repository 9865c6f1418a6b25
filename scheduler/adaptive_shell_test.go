package scheduler_test

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/require"

	"github.com/kasync/kasync/scheduler"
)

// downstream is a fake service of a given capacity: a call beyond capacity calls at
// once is answered 429 with a Retry-After, the others take work each.
type downstream struct {
	capacity   atomic.Int64
	retryAfter time.Duration
	work       time.Duration

	cur       atomic.Int64
	succeeded atomic.Int64
	refused   atomic.Int64

	mu        sync.Mutex
	starts    []time.Time
	refusals  []time.Time
	notBefore map[string]time.Time // a retry's earliest start, by workload ID
	early     []string             // retries that started before their Retry-After
}

func (d *downstream) Execute(_ context.Context, w *scheduler.Workload, _ time.Duration) scheduler.Outcome {
	now := time.Now()
	n := d.cur.Add(1)
	defer d.cur.Add(-1)
	d.mu.Lock()
	d.starts = append(d.starts, now)
	if nb, ok := d.notBefore[w.ID]; ok && now.Before(nb) {
		d.early = append(d.early, w.ID)
	}
	d.mu.Unlock()
	if n > d.capacity.Load() {
		d.mu.Lock()
		d.refusals = append(d.refusals, now)
		d.mu.Unlock()
		d.refused.Add(1)
		return scheduler.Outcome{Kind: scheduler.OutcomeRetriable, Reason: scheduler.ReasonOverloaded,
			Err: "429 Too Many Requests", RetryAfter: d.retryAfter}
	}
	time.Sleep(d.work)
	d.succeeded.Add(1)
	return scheduler.Success()
}

// TestAdaptiveLimitDownstream429: a downstream that answers 429 with a Retry-After
// above some load. The source is a closed loop of workloads that retries a 429 after
// its Retry-After, as the delay router does. The limit drops to about the
// downstream's capacity, no attempt starts while a Retry-After holds the function,
// retries start no earlier than asked, and when the downstream recovers the limit
// grows back and the throughput with it.
func TestAdaptiveLimitDownstream429(t *testing.T) {
	t.Parallel()
	const (
		concurrency = 16
		population  = 64
		phase       = 2 * time.Second
	)
	d := &downstream{retryAfter: 150 * time.Millisecond, work: 2 * time.Millisecond, notBefore: map[string]time.Time{}}
	d.capacity.Store(1000)
	s := newScheduler(t, scheduler.Config{Functions: []scheduler.Function{
		{Name: "f", Concurrency: concurrency, Timeout: time.Second, Executor: d},
	}})

	var stop atomic.Bool
	var pending sync.WaitGroup
	var badRetryAfter atomic.Int64
	var next atomic.Int64
	var enqueue func(w *scheduler.Workload)
	enqueue = func(w *scheduler.Workload) {
		pending.Add(1)
		s.Enqueue(w, func(o scheduler.Outcome) {
			defer pending.Done()
			if stop.Load() {
				return
			}
			if o.Reason != scheduler.ReasonOverloaded {
				enqueue(wl("f", strconv.FormatInt(next.Add(1), 10)))
				return
			}
			if o.RetryAfter != d.retryAfter {
				badRetryAfter.Add(1)
			}
			retry := &scheduler.Workload{ID: w.ID, Function: "f", Attempt: w.Attempt + 1}
			d.mu.Lock()
			d.notBefore[w.ID] = time.Now().Add(o.RetryAfter)
			d.mu.Unlock()
			pending.Add(1)
			time.AfterFunc(o.RetryAfter, func() { defer pending.Done(); enqueue(retry) })
		})
	}
	for range population {
		enqueue(wl("f", strconv.FormatInt(next.Add(1), 10)))
	}
	limit := func() int { fs, _ := s.Stats().Function("f"); return fs.Limit }
	throughput := func(span time.Duration) float64 {
		before := d.succeeded.Load()
		time.Sleep(span) // a measuring window, not a synchronisation
		return float64(d.succeeded.Load()-before) / span.Seconds()
	}

	healthy := throughput(phase / 2)
	require.Equal(t, concurrency, limit(), "no signal while the downstream is healthy")

	d.capacity.Store(4)
	overloadAt := time.Now()
	require.Eventually(t, func() bool { return limit() <= 4 }, 10*time.Second, time.Millisecond, "the limit drops")
	dropped := time.Since(overloadAt)
	refusedBefore := d.refused.Load()
	overloaded := throughput(phase)
	refusedDuring := d.refused.Load() - refusedBefore

	d.capacity.Store(1000)
	recoverAt := time.Now()
	require.Eventually(t, func() bool { return limit() == concurrency }, 10*time.Second, time.Millisecond,
		"the limit grows back to Concurrency")
	regrown := time.Since(recoverAt)
	recovered := throughput(phase / 2)

	stop.Store(true)
	pending.Wait()
	t.Logf("throughput: healthy %.0f/s, overloaded (capacity 4, Retry-After %v) %.0f/s with %d 429s in %v, recovered %.0f/s",
		healthy, d.retryAfter, overloaded, refusedDuring, phase, recovered)
	t.Logf("limit dropped to <= 4 in %v, grew back to %d in %v", dropped, concurrency, regrown)

	require.Zero(t, badRetryAfter.Load(), "outcomes carry the downstream's Retry-After intact")
	d.mu.Lock()
	defer d.mu.Unlock()
	require.Empty(t, d.early, "retries started before their Retry-After")
	// While held, nothing starts: an attempt may start just after a 429 only if it
	// was already dispatched (slack for a noisy machine), then none until the hold ends.
	const slack = 30 * time.Millisecond
	for _, r := range d.refusals {
		for _, st := range d.starts {
			if st.After(r.Add(slack)) && st.Before(r.Add(d.retryAfter-slack)) {
				t.Fatalf("an attempt started %v after a 429 asking for %v of quiet", st.Sub(r), d.retryAfter)
			}
		}
	}
	// Without the limit and holds, 64 workloads against a capacity of 4 would draw
	// thousands of 429s a second; with them, about one per hold.
	require.Less(t, float64(refusedDuring), 4*phase.Seconds()/d.retryAfter.Seconds()*4, "429s while overloaded")
	require.Greater(t, recovered, 0.7*healthy, "throughput recovers with the downstream")
}

// TestAdaptiveLimitCapsRunning: after a decrease, no more attempts run than the limit.
func TestAdaptiveLimitCapsRunning(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	var cur, peak atomic.Int64
	var over atomic.Value // the first start above the limit, as a message
	var s *scheduler.Scheduler
	s = newScheduler(t, scheduler.Config{Functions: []scheduler.Function{
		fn("f", 8, func(_ context.Context, w *scheduler.Workload, _ time.Duration) scheduler.Outcome {
			if w.ID == "429" {
				return scheduler.Retriable(scheduler.ReasonOverloaded, "busy")
			}
			n := cur.Add(1)
			defer cur.Add(-1)
			for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
			}
			// After the one overload the limit only grows, so the limit read now is at
			// least the one this start was admitted under.
			if fs, _ := s.Stats().Function("f"); n > int64(fs.Limit) {
				over.CompareAndSwap(nil, fmt.Sprintf("%d running under a limit of %d", n, fs.Limit))
			}
			<-release
			return scheduler.Success()
		}),
	}})
	done, got := result()
	s.Enqueue(wl("f", "429"), done)
	require.Equal(t, scheduler.ReasonOverloaded, await(t, got).Reason)
	require.Eventually(t, func() bool { fs, _ := s.Stats().Function("f"); return fs.Limit == 4 }, 10*time.Second, time.Millisecond)
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Add(1)
		s.Enqueue(wl("f", strconv.Itoa(i)), func(scheduler.Outcome) { wg.Done() })
	}
	require.Eventually(t, func() bool {
		fs, _ := s.Stats().Function("f")
		return fs.Running == 4 && fs.Queued == 16
	}, 10*time.Second, time.Millisecond)
	require.EqualValues(t, 4, peak.Load(), "while every attempt is held, a limit of 4 lets 4 run")
	close(release)
	wg.Wait()
	// As attempts succeed the limit grows by 1/limit each, and more may run at once;
	// never more than the limit.
	require.Nil(t, over.Load())
}

// TestAdaptiveHoldEndsAtClose: a Retry-After of an hour holds the function for
// MaxHold; Close answers the held workloads and stops the hold's timer at once.
func TestAdaptiveHoldEndsAtClose(t *testing.T) {
	t.Parallel()
	s, err := scheduler.New(scheduler.Config{
		Logger: slog.New(slog.DiscardHandler),
		Functions: []scheduler.Function{fn("f", 2, func(context.Context, *scheduler.Workload, time.Duration) scheduler.Outcome {
			return scheduler.Outcome{Kind: scheduler.OutcomeRetriable, Reason: scheduler.ReasonOverloaded, RetryAfter: time.Hour}
		})},
	})
	require.NoError(t, err)
	done, got := result()
	before := time.Now()
	s.Enqueue(wl("f", "first"), done)
	o := await(t, got)
	require.Equal(t, time.Hour, o.RetryAfter, "the outcome keeps its RetryAfter for the source's retry")
	var fs scheduler.FunctionStats
	require.Eventually(t, func() bool { fs, _ = s.Stats().Function("f"); return !fs.HeldUntil.IsZero() }, 10*time.Second, time.Millisecond)
	require.WithinRange(t, fs.HeldUntil, before.Add(scheduler.MaxHold), time.Now().Add(scheduler.MaxHold), "capped at MaxHold")
	require.Equal(t, 1, fs.Limit)

	done, got = result()
	s.Enqueue(wl("f", "held"), done)
	fs, _ = s.Stats().Function("f")
	require.Equal(t, 1, fs.Queued, "held, not started")
	closed := time.Now()
	require.NoError(t, s.Close())
	require.Less(t, time.Since(closed), 5*time.Second, "Close does not wait for the hold")
	require.Equal(t, scheduler.ReasonShutdown, (<-got).Reason)
}

// TestAdaptiveDisabled: with Adaptive.Disabled, overloaded outcomes change nothing.
func TestAdaptiveDisabled(t *testing.T) {
	t.Parallel()
	f := fn("f", 4, func(context.Context, *scheduler.Workload, time.Duration) scheduler.Outcome {
		return scheduler.Outcome{Kind: scheduler.OutcomeRetriable, Reason: scheduler.ReasonOverloaded, RetryAfter: time.Hour}
	})
	f.Adaptive.Disabled = true
	s := newScheduler(t, scheduler.Config{Functions: []scheduler.Function{f}})
	for i := range 10 {
		done, got := result()
		s.Enqueue(wl("f", strconv.Itoa(i)), done)
		require.Equal(t, scheduler.ReasonOverloaded, await(t, got).Reason)
	}
	fs, _ := s.Stats().Function("f")
	require.Equal(t, 4, fs.Limit)
	require.True(t, fs.HeldUntil.IsZero())
}

// gauge returns the value of the gauge name{function=fn} in reg.
func gauge(t *testing.T, reg *prometheus.Registry, name, fn string) float64 {
	t.Helper()
	m := family(t, reg, name, map[string]string{"function": fn})
	require.NotNil(t, m.GetGauge(), "%s is not a gauge", name)
	return m.GetGauge().GetValue()
}

// family returns the metrics of the family name whose labels include want.
func family(t *testing.T, reg *prometheus.Registry, name string, want map[string]string) *dto.Metric {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metrics:
		for _, m := range mf.GetMetric() {
			got := map[string]string{}
			for _, l := range m.GetLabel() {
				got[l.GetName()] = l.GetValue()
			}
			for k, v := range want {
				if got[k] != v {
					continue metrics
				}
			}
			return m
		}
	}
	t.Fatalf("no %s%v", name, want)
	return nil
}

// TestMetrics: the limit, running and queued counts of each function are gauges read
// at scrape time, with the outcome counters and the duration histogram; Close
// unregisters them.
func TestMetrics(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	release := make(chan struct{})
	newS := func() *scheduler.Scheduler {
		s, err := scheduler.New(scheduler.Config{
			Logger:     slog.New(slog.DiscardHandler),
			Registerer: reg,
			Functions: []scheduler.Function{
				fn("f", 4, func(_ context.Context, w *scheduler.Workload, _ time.Duration) scheduler.Outcome {
					if w.ID == "429" {
						return scheduler.Retriable(scheduler.ReasonOverloaded, "busy")
					}
					<-release
					return scheduler.Success()
				}),
				fn("g", 2, noop),
			},
		})
		require.NoError(t, err)
		return s
	}
	s := newS()
	_, err := scheduler.New(scheduler.Config{Registerer: reg, Functions: []scheduler.Function{fn("f", 1, noop)}})
	require.ErrorContains(t, err, "register metrics", "a second scheduler on one registry is refused")

	require.InDelta(t, 4, gauge(t, reg, "kasync_concurrency_limit", "f"), 0)
	require.InDelta(t, 2, gauge(t, reg, "kasync_concurrency_limit", "g"), 0)
	done, got := result()
	s.Enqueue(wl("f", "429"), done)
	await(t, got)
	require.Eventually(t, func() bool { return gauge(t, reg, "kasync_concurrency_limit", "f") == 2 }, 10*time.Second, time.Millisecond)
	for i := range 5 {
		s.Enqueue(wl("f", strconv.Itoa(i)), func(scheduler.Outcome) {})
	}
	require.Eventually(t, func() bool {
		return gauge(t, reg, "kasync_inflight", "f") == 2 && gauge(t, reg, "kasync_queued", "f") == 3
	}, 10*time.Second, time.Millisecond)
	close(release)
	require.Eventually(t, func() bool {
		return family(t, reg, "kasync_workloads_total", map[string]string{"function": "f", "outcome": "success"}).GetCounter().GetValue() == 5
	}, 10*time.Second, time.Millisecond)
	require.InDelta(t, 1, family(t, reg, "kasync_workloads_total", map[string]string{"function": "f", "outcome": "retriable"}).GetCounter().GetValue(), 0)
	require.InDelta(t, 0, family(t, reg, "kasync_workloads_total", map[string]string{"function": "f", "outcome": "fatal"}).GetCounter().GetValue(), 0)
	h := family(t, reg, "kasync_workload_duration_seconds", map[string]string{"function": "f"}).GetHistogram()
	require.EqualValues(t, 6, h.GetSampleCount(), "every ended attempt observed once")
	require.Positive(t, h.GetSampleSum())
	require.Len(t, h.GetBucket(), 21)
	require.Zero(t, family(t, reg, "kasync_workload_duration_seconds", map[string]string{"function": "g"}).GetHistogram().GetSampleCount())
	require.NoError(t, s.Close())

	s = newS() // Close unregistered the collector
	require.NoError(t, s.Close())
}
