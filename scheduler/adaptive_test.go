package scheduler

import (
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

var (
	t0         = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	overloaded = Outcome{Kind: OutcomeRetriable, Reason: ReasonOverloaded, Err: "429"}
)

func overloadedFor(d time.Duration) Outcome {
	o := overloaded
	o.RetryAfter = d
	return o
}

// TestAIMDSignals checks, one outcome at a time, which outcomes move the limit.
func TestAIMDSignals(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		o    Outcome
		want int // the limit after one attempt at a limit of 16 (max 16) ends so
	}{
		{"success at max", Success(), 16},
		{"overloaded", overloaded, 8},
		{"overloaded with retry-after", overloadedFor(time.Second), 8},
		{"timeout", Retriable(ReasonTimeout, "slow"), 8},
		{"error", Retriable(ReasonError, "boom"), 16},
		{"panic", Retriable(ReasonPanic, "boom"), 16},
		{"worker lost", Retriable(ReasonWorkerLost, "gone"), 16},
		{"shutdown", Retriable(ReasonShutdown, ""), 16},
		{"fatal", Fatal(ReasonFatal, "bad"), 16},
	}
	for _, c := range cases {
		a := newAIMD(AdaptiveConfig{}, 16)
		require.Equal(t, 16, a.Limit(), "starts at Concurrency")
		a.Observe(t0, a.Start(), c.o, time.Millisecond)
		require.Equal(t, c.want, a.Limit(), c.name)
		if c.o.RetryAfter > 0 {
			require.Equal(t, t0.Add(c.o.RetryAfter), a.HeldUntil(), c.name)
		} else {
			require.True(t, a.HeldUntil().IsZero(), c.name)
		}
	}
}

// TestAIMDOncePerRoundTrip: the 429s of the attempts running when the limit shrank
// are one overload event and halve it once; a 429 of an attempt started after the
// decrease halves it again; the limit never goes below Min.
func TestAIMDOncePerRoundTrip(t *testing.T) {
	t.Parallel()
	a := newAIMD(AdaptiveConfig{Min: 3}, 32)
	var running []uint64
	for range 32 {
		running = append(running, a.Start())
	}
	for _, seq := range running {
		a.Observe(t0, seq, overloaded, 0)
	}
	require.Equal(t, 16, a.Limit(), "32 concurrent 429s halve the limit once")
	require.EqualValues(t, 1, a.decreases)

	late := a.Start()
	a.Observe(t0, late, overloaded, 0)
	require.Equal(t, 8, a.Limit(), "an attempt started after the decrease is a new signal")
	a.Observe(t0, a.Start(), overloaded, 0)
	require.Equal(t, 4, a.Limit())
	a.Observe(t0, a.Start(), overloaded, 0)
	require.Equal(t, 3, a.Limit(), "floor(4/2) is below Min")
	a.Observe(t0, a.Start(), Retriable(ReasonTimeout, ""), 0)
	require.Equal(t, 3, a.Limit())
}

// TestAIMDAdditiveIncrease: each success adds 1/limit, about one per round trip
// (limit successes), up to Concurrency.
func TestAIMDAdditiveIncrease(t *testing.T) {
	t.Parallel()
	a := newAIMD(AdaptiveConfig{}, 10)
	a.Observe(t0, a.Start(), overloaded, 0)
	a.Observe(t0, a.Start(), overloaded, 0)
	require.Equal(t, 2, a.Limit())
	successes := 0
	for a.Limit() < 10 {
		before := a.Limit()
		n := 0
		for a.Limit() == before {
			a.Observe(t0, a.Start(), Success(), time.Millisecond)
			n++
		}
		require.Equal(t, before+1, a.Limit())
		require.LessOrEqual(t, n, before+1, "one round trip of successes at limit %d grows it by one", before)
		successes += n
	}
	require.LessOrEqual(t, successes, 3+4+5+6+7+8+9+10, "from 2 to 10 in about one round trip per step")
	for range 100 {
		a.Observe(t0, a.Start(), Success(), time.Millisecond)
	}
	require.Equal(t, 10, a.Limit(), "never above Concurrency")
	require.InDelta(t, 10, a.limit, 0)
}

// TestAIMDHold: an overloaded RetryAfter holds starts until now+RetryAfter, capped at
// MaxHold; a later, shorter hold does not shorten it.
func TestAIMDHold(t *testing.T) {
	t.Parallel()
	a := newAIMD(AdaptiveConfig{}, 4)
	a.Observe(t0, a.Start(), overloadedFor(2*time.Second), 0)
	require.Equal(t, t0.Add(2*time.Second), a.HeldUntil())
	a.Observe(t0.Add(time.Second), a.Start(), overloadedFor(100*time.Millisecond), 0)
	require.Equal(t, t0.Add(2*time.Second), a.HeldUntil(), "a shorter hold does not shorten the one running")
	a.Observe(t0.Add(time.Second), a.Start(), overloadedFor(time.Hour), 0)
	require.Equal(t, t0.Add(time.Second+MaxHold), a.HeldUntil(), "capped at MaxHold")
	a.Observe(t0, a.Start(), Outcome{Kind: OutcomeRetriable, Reason: ReasonError, RetryAfter: time.Hour}, 0)
	require.Equal(t, t0.Add(time.Second+MaxHold), a.HeldUntil(), "only an overloaded outcome holds the function")
}

func TestAIMDDisabled(t *testing.T) {
	t.Parallel()
	a := newAIMD(AdaptiveConfig{Disabled: true, LatencyFactor: 2}, 8)
	for range 10 {
		a.Observe(t0, a.Start(), overloadedFor(time.Second), time.Hour)
		a.Observe(t0, a.Start(), Success(), time.Hour)
	}
	require.Equal(t, 8, a.Limit())
	require.True(t, a.HeldUntil().IsZero())
}

// TestAIMDLatencySignal: with LatencyFactor, successes slower than the factor times
// the baseline shrink the limit (after the warm-up); without it they never do.
func TestAIMDLatencySignal(t *testing.T) {
	t.Parallel()
	for _, factor := range []float64{0, 2} {
		a := newAIMD(AdaptiveConfig{LatencyFactor: factor}, 16)
		for range latencyWarmup * 2 {
			a.Observe(t0, a.Start(), Success(), 10*time.Millisecond)
		}
		require.Equal(t, 16, a.Limit(), "steady latency is no signal")
		for range 20 { // the downstream slows down 5x
			a.Observe(t0, a.Start(), Success(), 50*time.Millisecond)
		}
		if factor == 0 {
			require.Equal(t, 16, a.Limit(), "no latency signal by default")
			continue
		}
		require.Less(t, a.Limit(), 16, "a slowdown past the factor shrinks the limit")
		require.GreaterOrEqual(t, a.Limit(), 1)
	}
	a := newAIMD(AdaptiveConfig{LatencyFactor: 2}, 16)
	for range latencyWarmup - 1 {
		a.Observe(t0, a.Start(), Success(), time.Duration(1+rand.IntN(1000))*time.Microsecond)
	}
	require.Equal(t, 16, a.Limit(), "no latency signal during the warm-up")
}

// TestAIMDModel checks the limiter against a model of the rule as the issue states
// it, through random starts and outcomes: a decrease signal halves the limit unless
// its attempt was running when the limit last shrank; a success adds 1/limit; the
// limit stays in [Min, Concurrency]; a hold is the latest overloaded RetryAfter.
func TestAIMDModel(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(5, 6))
	for run := range 200 {
		concurrency := 1 + rng.IntN(64)
		minLimit := 1 + rng.IntN(concurrency)
		a := newAIMD(AdaptiveConfig{Min: minLimit}, concurrency)
		limit := float64(concurrency)
		var held time.Time
		running := map[uint64]bool{}
		sameEvent := map[uint64]bool{} // running at the last decrease
		now := t0
		for step := range 2000 {
			now = now.Add(time.Duration(rng.IntN(1000)) * time.Microsecond)
			if len(running) < a.Limit() && rng.IntN(2) == 0 {
				running[a.Start()] = true
				continue
			}
			if len(running) == 0 {
				continue
			}
			var seq uint64
			for s := range running {
				seq = s
				break
			}
			delete(running, seq)
			var o Outcome
			switch r := rng.IntN(10); {
			case r < 6:
				o = Success()
			case r < 7:
				o = Retriable(ReasonError, "")
			case r < 8:
				o = Retriable(ReasonTimeout, "")
			default:
				o = overloadedFor(time.Duration(rng.IntN(3)) * 40 * time.Second)
			}
			a.Observe(now, seq, o, time.Millisecond)

			switch {
			case o.Kind == OutcomeSuccess:
				limit = math.Min(float64(concurrency), limit+1/limit)
			case o.Reason == ReasonOverloaded || o.Reason == ReasonTimeout:
				if o.RetryAfter > 0 && now.Add(min(o.RetryAfter, 30*time.Second)).After(held) {
					held = now.Add(min(o.RetryAfter, 30*time.Second))
				}
				if !sameEvent[seq] {
					limit = math.Max(float64(minLimit), math.Floor(limit/2))
					sameEvent = map[uint64]bool{}
					for s := range running {
						sameEvent[s] = true
					}
				}
			}
			require.InDelta(t, limit, a.limit, 1e-9, "run %d step %d", run, step)
			require.Equal(t, held, a.HeldUntil(), "run %d step %d", run, step)
			require.GreaterOrEqual(t, a.Limit(), minLimit)
			require.LessOrEqual(t, a.Limit(), concurrency)
		}
	}
}
