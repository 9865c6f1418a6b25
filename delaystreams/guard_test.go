package delaystreams

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
)

// guardClock is a fake clock that is safe for concurrent use.
type guardClock struct{ ns atomic.Int64 }

func newGuardClock() *guardClock {
	c := &guardClock{}
	c.ns.Store(time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC).UnixNano())
	return c
}

func (c *guardClock) Now() time.Time          { return time.Unix(0, c.ns.Load()).UTC() }
func (c *guardClock) Advance(d time.Duration) { c.ns.Add(int64(d)) }
func (c *guardClock) Set(t time.Time)         { c.ns.Store(t.UnixNano()) }

// guardLog is a slog destination that is safe for concurrent use.
type guardLog struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *guardLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *guardLog) Lines() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := strings.TrimSuffix(l.buf.String(), "\n")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

type guardBundle struct {
	g     *Guard
	clock *guardClock
	log   *guardLog
	reg   *prometheus.Registry
}

// guardSetup builds a Guard on a fake clock, a log buffer and its own registry; cfg's
// Now, Logger and Registerer are filled in.
func guardSetup(t testing.TB, cfg GuardConfig) guardBundle {
	t.Helper()
	b := guardBundle{clock: newGuardClock(), log: &guardLog{}, reg: prometheus.NewRegistry()}
	cfg.Now = b.clock.Now
	cfg.Logger = slog.New(slog.NewTextHandler(b.log, &slog.HandlerOptions{Level: slog.LevelDebug}))
	cfg.Registerer = b.reg
	g, err := NewGuard(cfg)
	require.NoError(t, err)
	b.g = g
	return b
}

// guardGauges gathers kasync_storm_guard_active from reg, by function. (It reads the
// gathered families rather than using prometheus/testutil, whose dependencies are not
// in go.mod.)
func guardGauges(t testing.TB, reg prometheus.Gatherer) map[string]float64 {
	t.Helper()
	families, err := reg.Gather()
	require.NoError(t, err)
	out := map[string]float64{}
	for _, f := range families {
		if f.GetName() != "kasync_storm_guard_active" {
			continue
		}
		for _, m := range f.GetMetric() {
			require.Len(t, m.GetLabel(), 1)
			require.Equal(t, "function", m.GetLabel()[0].GetName())
			out[m.GetLabel()[0].GetValue()] = m.GetGauge().GetValue()
		}
	}
	return out
}

func (b guardBundle) gauge(t testing.TB, fn string) float64 {
	t.Helper()
	v, ok := guardGauges(t, b.reg)[fn]
	require.True(t, ok, "no gauge for function %q", fn)
	return v
}

func (b guardBundle) state(t testing.TB, fn string) GuardState {
	t.Helper()
	for _, s := range b.g.Snapshot() {
		if s.Function == fn {
			return s
		}
	}
	t.Fatalf("no state for function %q", fn)
	return GuardState{}
}

func TestGuardDefaults(t *testing.T) {
	t.Parallel()
	g, err := NewGuard(GuardConfig{})
	require.NoError(t, err)
	require.Equal(t, 30*time.Second, g.window)
	require.Equal(t, 3*time.Second, g.width, "10 buckets per window")
	require.Equal(t, 20, g.minOutcomes)
	require.InDelta(t, 0.9, g.threshold, 0)
	require.Same(t, slog.Default(), g.log)
	require.Nil(t, g.gauge, "no Registerer, no gauge")
	require.False(t, g.Active("f"))
	require.Empty(t, g.Snapshot())
}

func TestGuardTripsExactlyAtThreshold(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name      string
		threshold float64
		successes int
		failures  int
		tripAt    int // 1-based index of the failure that trips it; 0: never
	}{
		{"all failures trip at MinOutcomes", 0.9, 0, 30, 20},
		{"18 of 20", 0.9, 2, 30, 18},
		{"27 of 30", 0.9, 3, 40, 27},
		{"threshold 1 needs every outcome failed", 1, 1, 200, 0},
		{"threshold 1 trips at MinOutcomes", 1, 0, 25, 20},
		{"half", 0.5, 10, 30, 10},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := guardSetup(t, GuardConfig{Window: 10 * time.Second, MinOutcomes: 20, Threshold: tc.threshold})
			for range tc.successes {
				require.False(t, b.g.Observe("f", false))
			}
			tripped := 0
			for i := 1; i <= tc.failures; i++ {
				b.clock.Advance(time.Millisecond)
				on := b.g.Observe("f", true)
				if on && tripped == 0 {
					tripped = i
					st := b.state(t, "f")
					require.Equal(t, tc.successes+i, st.Outcomes)
					require.Equal(t, i, st.Failures)
					require.Equal(t, b.clock.Now(), st.Since, "Since is the trip time")
				}
				require.Equal(t, tripped != 0, on, "failure %d: once on, it stays on", i)
				require.Equal(t, on, b.g.Active("f"))
			}
			require.Equal(t, tc.tripAt, tripped)
			st := b.state(t, "f")
			if tc.tripAt == 0 {
				require.False(t, st.Active)
				require.Zero(t, st.Trips)
				require.InDelta(t, 0, b.gauge(t, "f"), 0)
			} else {
				require.True(t, st.Active)
				require.Equal(t, int64(1), st.Trips)
				require.InDelta(t, 1, b.gauge(t, "f"), 0)
			}
		})
	}
}

func TestGuardSuccessCanCompleteMinOutcomes(t *testing.T) {
	t.Parallel()
	// The rule is about the window, not the last outcome: 19 failures then a success
	// is 19/20 = 0.95 over 20 outcomes, which trips it.
	b := guardSetup(t, GuardConfig{MinOutcomes: 20, Threshold: 0.9})
	for range 19 {
		require.False(t, b.g.Observe("f", true))
	}
	require.True(t, b.g.Observe("f", false))
}

func TestGuardNeedsMinOutcomes(t *testing.T) {
	t.Parallel()
	b := guardSetup(t, GuardConfig{MinOutcomes: 50, Threshold: 0.5})
	for range 49 {
		require.False(t, b.g.Observe("f", true), "100% failures, but too few outcomes to judge")
	}
	st := b.state(t, "f")
	require.Equal(t, GuardState{Function: "f", Since: b.clock.Now(), Outcomes: 49, Failures: 49}, st)
	require.Empty(t, b.log.Lines())
	require.True(t, b.g.Observe("f", true))
}

func TestGuardOldOutcomesLeaveWindow(t *testing.T) {
	t.Parallel()
	b := guardSetup(t, GuardConfig{Window: 10 * time.Second, MinOutcomes: 20, Threshold: 0.9})
	start := b.clock.Now()
	for range 15 {
		require.False(t, b.g.Observe("f", true))
	}
	b.clock.Set(start.Add(10*time.Second - time.Nanosecond))
	require.Equal(t, 15, b.state(t, "f").Outcomes, "still within the window")
	b.clock.Set(start.Add(10 * time.Second))
	require.Zero(t, b.state(t, "f").Outcomes, "a full window later they are gone")
	for range 19 {
		require.False(t, b.g.Observe("f", true), "the old failures must not count")
	}
	require.True(t, b.g.Observe("f", true))

	// One failure per second: the window holds the last 10 seconds, as it slides.
	b2 := guardSetup(t, GuardConfig{Window: 10 * time.Second, MinOutcomes: 1000, Threshold: 0.9})
	for i := range 30 {
		b2.g.Observe("f", i%2 == 0)
		require.Equal(t, min(i+1, 10), b2.state(t, "f").Outcomes, "second %d", i)
		b2.clock.Advance(time.Second)
	}

	// A silence far longer than the window empties it, in O(1).
	b2.clock.Advance(1000 * time.Hour)
	require.Zero(t, b2.state(t, "f").Outcomes)
	b2.g.Observe("f", true)
	require.Equal(t, 1, b2.state(t, "f").Outcomes)
}

// TestGuardWindowBounds compares the bucketed window with an exact list of outcomes:
// at any time it counts every outcome younger than 0.9 × Window and none as old as
// Window, whatever the pattern of arrivals (including a clock that steps back).
func TestGuardWindowBounds(t *testing.T) {
	t.Parallel()
	const window = 10 * time.Second
	rng := rand.New(rand.NewPCG(1, 2))
	for run := range 50 {
		b := guardSetup(t, GuardConfig{Window: window, MinOutcomes: math.MaxInt, Threshold: 1})
		b.clock.Advance(time.Duration(rng.Int64N(int64(time.Second)))) // not aligned to a bucket
		type outcome struct {
			at     time.Time
			failed bool
		}
		var all []outcome
		for step := range 400 {
			switch r := rng.IntN(100); {
			case r < 2:
				b.clock.Advance(time.Duration(rng.Int64N(int64(3 * window))))
			case r < 40:
				b.clock.Advance(time.Duration(rng.Int64N(int64(window / 5))))
			}
			failed := rng.IntN(3) > 0
			b.g.Observe("f", failed)
			all = append(all, outcome{b.clock.Now(), failed})

			now := b.clock.Now()
			var lo, hi, loF, hiF int
			for _, o := range all {
				age := now.Sub(o.at)
				if age < window {
					hi++
					if o.failed {
						hiF++
					}
				}
				if age < window-window/guardBuckets {
					lo++
					if o.failed {
						loF++
					}
				}
			}
			st := b.state(t, "f")
			require.GreaterOrEqual(t, st.Outcomes, lo, "run %d step %d", run, step)
			require.LessOrEqual(t, st.Outcomes, hi, "run %d step %d", run, step)
			require.GreaterOrEqual(t, st.Failures, loF, "run %d step %d", run, step)
			require.LessOrEqual(t, st.Failures, hiF, "run %d step %d", run, step)
		}
	}
}

func TestGuardClockBackwards(t *testing.T) {
	t.Parallel()
	b := guardSetup(t, GuardConfig{Window: 10 * time.Second, MinOutcomes: 3, Threshold: 1})
	b.clock.Advance(-time.Hour) // before the guard's origin
	require.False(t, b.g.Observe("f", true))
	b.clock.Advance(time.Second)
	require.False(t, b.g.Observe("f", true))
	b.clock.Advance(-30 * time.Minute) // back again: counts in the newest bucket
	require.True(t, b.g.Observe("f", true))
	require.Equal(t, 3, b.state(t, "f").Outcomes)
}

func TestGuardProbeSuccessTurnsOffAndClears(t *testing.T) {
	t.Parallel()
	b := guardSetup(t, GuardConfig{MinOutcomes: 20, Threshold: 0.9})
	for range 20 {
		b.g.Observe("f", true)
	}
	require.True(t, b.g.Active("f"))
	tripped := b.clock.Now()
	for range 100 {
		b.clock.Advance(time.Second)
		require.True(t, b.g.Observe("f", true), "failures while on change nothing")
	}
	st := b.state(t, "f")
	require.Equal(t, GuardState{Function: "f", Active: true, Since: tripped, Outcomes: 20, Failures: 20, Trips: 1}, st,
		"while on, the state shows the window that tripped it")

	require.False(t, b.g.Observe("f", false), "a probe success turns it off")
	require.False(t, b.g.Active("f"))
	require.InDelta(t, 0, b.gauge(t, "f"), 0)
	st = b.state(t, "f")
	require.Equal(t, GuardState{Function: "f", Since: b.clock.Now(), Trips: 1}, st, "the window is cleared")

	for range 19 {
		require.False(t, b.g.Observe("f", true), "it takes MinOutcomes fresh outcomes to trip again")
	}
	require.True(t, b.g.Observe("f", true))
	require.Equal(t, int64(2), b.state(t, "f").Trips)
	require.InDelta(t, 1, b.gauge(t, "f"), 0)
}

func TestGuardFunctionsAreIsolated(t *testing.T) {
	t.Parallel()
	b := guardSetup(t, GuardConfig{MinOutcomes: 5, Threshold: 0.9})
	for range 10 {
		b.g.Observe("pay", true)
		b.g.Observe("ship", false)
	}
	b.g.Observe("audit", true)
	require.True(t, b.g.Active("pay"))
	require.False(t, b.g.Active("ship"))
	require.False(t, b.g.Active("audit"))
	require.False(t, b.g.Active("never-seen"))

	snap := b.g.Snapshot()
	require.Len(t, snap, 3)
	require.Equal(t, []string{"audit", "pay", "ship"},
		[]string{snap[0].Function, snap[1].Function, snap[2].Function}, "sorted by function")
	require.Equal(t, 10, snap[2].Outcomes)
	require.Zero(t, snap[2].Failures)

	require.InDelta(t, 1, b.gauge(t, "pay"), 0)
	require.InDelta(t, 0, b.gauge(t, "ship"), 0)
	require.InDelta(t, 0, b.gauge(t, "audit"), 0)
	require.Len(t, guardGauges(t, b.reg), 3, "a function's gauge exists from its first outcome")

	b.g.Observe("pay", false)
	require.False(t, b.g.Active("pay"))
	require.Equal(t, 10, b.state(t, "ship").Outcomes, "turning one off leaves the others alone")
}

func TestGuardLogsOncePerChange(t *testing.T) {
	t.Parallel()
	b := guardSetup(t, GuardConfig{Window: 30 * time.Second, MinOutcomes: 20, Threshold: 0.9})
	for cycle := 1; cycle <= 2; cycle++ {
		for range 10_000 {
			b.g.Observe("charge", true)
		}
		b.clock.Advance(90 * time.Second)
		b.g.Observe("charge", false)
		b.g.Observe("charge", false) // already off: not a change
		lines := b.log.Lines()
		require.Len(t, lines, 2*cycle, "one line per change, none per record")

		on, off := lines[2*cycle-2], lines[2*cycle-1]
		require.Contains(t, on, "level=WARN")
		require.Contains(t, on, "failure-storm guard on")
		require.Contains(t, on, "source partitions pause; failing work retries in place until a probe succeeds")
		require.Contains(t, on, "function=charge")
		if cycle == 1 {
			require.Contains(t, on, "ratio=1 outcomes=20 failures=20")
		} else {
			// The second success of cycle 1 came after the window was cleared, so it
			// counts: 19 failures and it make 20 outcomes, a ratio of 0.95.
			require.Contains(t, on, "ratio=0.95 outcomes=20 failures=19")
		}
		require.Contains(t, on, "window=30s")
		require.Contains(t, on, fmt.Sprintf("trips=%d", cycle))
		require.Contains(t, off, "level=INFO")
		require.Contains(t, off, "failure-storm guard off")
		require.Contains(t, off, "function=charge")
		require.Contains(t, off, "on_for=1m30s")
	}
}

func TestGuardConfigValidate(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		cfg      GuardConfig
		problems int
		want     []string
	}{
		{"threshold above 1", GuardConfig{Threshold: 1.5}, 1,
			[]string{"Threshold 1.5 is out of range; use a ratio in (0, 1], like 0.9"}},
		{"negative threshold", GuardConfig{Threshold: -0.1}, 1, []string{"Threshold -0.1", "(0, 1]"}},
		{"NaN threshold", GuardConfig{Threshold: math.NaN()}, 1, []string{"Threshold NaN", "(0, 1]"}},
		{"negative window", GuardConfig{Window: -time.Second}, 1,
			[]string{"Window -1s is negative; use a duration of at least 1ms, like 30s"}},
		{"tiny window", GuardConfig{Window: time.Microsecond}, 1,
			[]string{"Window 1µs is too short; use at least 1ms, like 30s"}},
		{"negative min outcomes", GuardConfig{MinOutcomes: -3}, 1,
			[]string{"MinOutcomes -3 is negative; use 1 or more, like 20"}},
		{"every problem at once", GuardConfig{Window: -1, MinOutcomes: -1, Threshold: 2}, 3,
			[]string{"Window", "MinOutcomes", "Threshold"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			reg := prometheus.NewRegistry()
			tc.cfg.Registerer = reg
			g, err := NewGuard(tc.cfg)
			require.Error(t, err)
			require.Nil(t, g)
			for _, w := range tc.want {
				require.Contains(t, err.Error(), w)
			}
			require.Len(t, strings.Split(err.Error(), "\n"), tc.problems, "one line per problem")
			require.NoError(t, reg.Register(prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "kasync_storm_guard_active"}, []string{"function"})),
				"a rejected config registers nothing")
		})
	}
	require.NoError(t, GuardConfig{}.Validate(), "zero fields take defaults")
	require.NoError(t, GuardConfig{Window: time.Millisecond, MinOutcomes: 1, Threshold: 1}.Validate())
}

func TestGuardRegistrationError(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	_, err := NewGuard(GuardConfig{Registerer: reg})
	require.NoError(t, err)
	_, err = NewGuard(GuardConfig{Registerer: reg})
	require.Error(t, err)
	require.Contains(t, err.Error(), "kasync_storm_guard_active")
	var already prometheus.AlreadyRegisteredError
	require.True(t, errors.As(err, &already), "the registry's error is wrapped: %v", err)
}

func TestNilGuardIsNeverActive(t *testing.T) {
	t.Parallel()
	var g *Guard
	require.False(t, g.Active("f"))
	for range 100 {
		require.False(t, g.Observe("f", true))
	}
	require.Nil(t, g.Snapshot())
}

func TestGuardConcurrent(t *testing.T) {
	t.Parallel()
	b := guardSetup(t, GuardConfig{Window: time.Second, MinOutcomes: 10, Threshold: 0.8})
	fns := []string{"a", "b", "c", "d"}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for w := range 8 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 7))
			for i := range 5000 {
				fn := fns[rng.IntN(len(fns))]
				// Mostly failures, so guards trip; a few successes, so they turn off.
				b.g.Observe(fn, rng.IntN(100) < 95)
				if i%50 == 0 {
					b.clock.Advance(10 * time.Millisecond)
				}
			}
		})
	}
	var readers sync.WaitGroup
	for range 2 {
		readers.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				for _, fn := range fns {
					b.g.Active(fn)
				}
				b.g.Snapshot()
			}
		})
	}
	wg.Wait()
	close(stop)
	readers.Wait()

	lines := b.log.Lines()
	var allOffs int64
	for _, st := range b.g.Snapshot() {
		require.Positive(t, st.Trips, "function %s never tripped; the test would prove little", st.Function)
		var ons, offs int64
		for _, l := range lines {
			if !strings.Contains(l, "function="+st.Function+" ") {
				continue
			}
			if strings.Contains(l, "guard on") {
				ons++
			} else if strings.Contains(l, "guard off") {
				offs++
			}
		}
		require.Equal(t, st.Trips, ons, "one Warn line per trip of %s", st.Function)
		wantOffs := st.Trips
		if st.Active {
			wantOffs--
		}
		require.Equal(t, wantOffs, offs, "one Info line per probe success of %s", st.Function)
		allOffs += offs
		require.Equal(t, st.Active, b.g.Active(st.Function))
		require.InDelta(t, map[bool]float64{true: 1, false: 0}[st.Active], b.gauge(t, st.Function), 0)
	}
	require.Positive(t, allOffs, "no guard ever turned off; the test would prove little")
}

func TestGuardActiveDoesNotAllocate(t *testing.T) {
	b := guardSetup(t, GuardConfig{MinOutcomes: 5})
	for range 5 {
		b.g.Observe("on", true)
	}
	b.g.Observe("off", false)
	require.Zero(t, testing.AllocsPerRun(1000, func() {
		b.g.Active("on")
		b.g.Active("off")
		b.g.Active("unknown")
	}))
	require.Zero(t, testing.AllocsPerRun(1000, func() {
		b.g.Observe("on", true)
		b.g.Observe("off", false)
	}), "Observe allocates nothing once a function is known")
}

func BenchmarkGuardObserve(b *testing.B) {
	for _, bc := range []struct {
		name string
		fail func(i int) bool
	}{
		{"off", func(i int) bool { return i%4 == 0 }},
		{"storm", func(int) bool { return true }},
	} {
		b.Run(bc.name, func(b *testing.B) {
			g, err := NewGuard(GuardConfig{Logger: slog.New(slog.DiscardHandler)})
			require.NoError(b, err)
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				i := 0
				for pb.Next() {
					g.Observe("f", bc.fail(i))
					i++
				}
			})
		})
	}
}

func BenchmarkGuardActive(b *testing.B) {
	g, err := NewGuard(GuardConfig{Logger: slog.New(slog.DiscardHandler)})
	require.NoError(b, err)
	for _, fn := range []string{"a", "b", "c", "d", "e", "f", "g", "h"} {
		g.Observe(fn, true)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			g.Active("e")
		}
	})
}

// TestObserveSuccessesIsRepeatedObserve: a random history of successes and failures,
// fed to one guard one outcome at a time and to another with each run of successes
// as one ObserveSuccesses, leaves both in the same state at every step, across
// trips, probes and window expiry.
func TestObserveSuccessesIsRepeatedObserve(t *testing.T) {
	t.Parallel()
	for seed := range uint64(30) {
		rng := rand.New(rand.NewPCG(seed, 7))
		cfg := GuardConfig{Window: time.Second, MinOutcomes: 10, Threshold: 0.6}
		one, batched := guardSetup(t, cfg), guardSetup(t, cfg)
		for step := range 300 {
			d := time.Duration(rng.IntN(200)) * time.Millisecond
			one.clock.Advance(d)
			batched.clock.Advance(d)
			if rng.IntN(3) == 0 {
				n := rng.IntN(5)
				for range n {
					one.g.Observe("f", false)
				}
				batched.g.ObserveSuccesses("f", n)
			} else {
				require.Equal(t, one.g.Observe("f", true), batched.g.Observe("f", true))
			}
			require.Equal(t, one.g.Snapshot(), batched.g.Snapshot(), "seed %d step %d", seed, step)
		}
	}
}
