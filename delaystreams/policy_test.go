package delaystreams

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestRetryPolicyValidate(t *testing.T) {
	t.Parallel()
	ok := RetryPolicy{MaxAttempts: 5, Backoff: DefaultRungs(), Jitter: 0.2}
	require.NoError(t, ok.Validate())
	require.NoError(t, RetryPolicy{MaxAttempts: 1, Backoff: []time.Duration{0}}.Validate(), "no retries, no jitter, zero backoff")
	require.NoError(t, RetryPolicy{MaxAttempts: MaxAttempt, Backoff: []time.Duration{time.Second}, Jitter: 1}.Validate())

	for _, tc := range []struct {
		name string
		p    RetryPolicy
		want []string
	}{
		{"zero value", RetryPolicy{}, []string{
			"retry policy: MaxAttempts (retry.max_attempts) 0 is out of range; use 1 to 1000000",
			"retry policy: Backoff (retry.backoff) is empty; give at least one delay, like [30s, 1m, 5m, 30m]",
		}},
		{"negative attempts", RetryPolicy{MaxAttempts: -1, Backoff: []time.Duration{time.Second}}, []string{"MaxAttempts (retry.max_attempts) -1 is out of range"}},
		{"attempts above the clamp", RetryPolicy{MaxAttempts: MaxAttempt + 1, Backoff: []time.Duration{time.Second}},
			[]string{"MaxAttempts (retry.max_attempts) 1000001 is out of range"}},
		{"negative backoff", RetryPolicy{MaxAttempts: 3, Backoff: []time.Duration{time.Second, -time.Second, -2 * time.Second}}, []string{
			"Backoff[1] (retry.backoff[1]) -1s is negative; use 0 or a positive delay",
			"Backoff[2] (retry.backoff[2]) -2s is negative",
		}},
		{"jitter above 1", RetryPolicy{MaxAttempts: 3, Backoff: []time.Duration{time.Second}, Jitter: 1.5},
			[]string{"Jitter 1.5 is out of range; use 0 (none) to 1 (±50%)"}},
		{"negative jitter", RetryPolicy{MaxAttempts: 3, Backoff: []time.Duration{time.Second}, Jitter: -0.1}, []string{"Jitter -0.1 is out of range"}},
		{"NaN jitter", RetryPolicy{MaxAttempts: 3, Backoff: []time.Duration{time.Second}, Jitter: math.NaN()}, []string{"Jitter NaN is out of range"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := tc.p.Validate()
			require.Error(t, err)
			for _, w := range tc.want {
				require.ErrorContains(t, err, w)
			}
			require.Len(t, strings.Split(err.Error(), "\n"), len(tc.want), "one line per problem: %v", err)
		})
	}
}

func TestRetryPolicyExhausted(t *testing.T) {
	t.Parallel()
	p := RetryPolicy{MaxAttempts: 3, Backoff: []time.Duration{time.Second}}
	for attempt, want := range map[int]bool{1: false, 2: false, 3: true, 4: true, MaxAttempt: true} {
		require.Equal(t, want, p.Exhausted(attempt), "attempt %d of 3", attempt)
	}
	require.True(t, RetryPolicy{MaxAttempts: 1}.Exhausted(1), "MaxAttempts 1: the first failure is final")

	// Forged headers, clamped first: -1 is a first attempt, 10^12 is exhausted.
	require.False(t, p.Exhausted(ClampAttempt(-1)))
	require.True(t, p.Exhausted(ClampAttempt(1e12)))
	big := RetryPolicy{MaxAttempts: MaxAttempt, Backoff: []time.Duration{time.Second}}
	require.True(t, big.Exhausted(ClampAttempt(math.MaxInt64)),
		"the largest valid MaxAttempts is still reached by a clamped attempt, so nothing retries forever")
}

func TestRetryPolicyDelayBackoffList(t *testing.T) {
	t.Parallel()
	p := RetryPolicy{MaxAttempts: 10, Backoff: []time.Duration{time.Second, 5 * time.Second, 30 * time.Second}}
	for attempt, want := range map[int]time.Duration{
		math.MinInt: time.Second, -1: time.Second, 0: time.Second, // below 1 counts as the first attempt
		1: time.Second, 2: 5 * time.Second, 3: 30 * time.Second,
		4: 30 * time.Second, 100: 30 * time.Second, math.MaxInt: 30 * time.Second, // the last entry repeats
	} {
		require.Equal(t, want, p.Delay(attempt, 0, 0.7), "Delay(%d) with no jitter", attempt)
	}
	require.Equal(t, time.Duration(0), RetryPolicy{MaxAttempts: 2, Backoff: []time.Duration{0}, Jitter: 1}.Delay(1, 0, 0.9),
		"a zero backoff stays zero under jitter")
	require.Equal(t, time.Duration(0), RetryPolicy{}.Delay(1, 0, 0.5), "an invalid, empty policy does not panic")
}

func TestRetryPolicyDelayJitter(t *testing.T) {
	t.Parallel()
	const d = 10 * time.Second
	rng := rand.New(rand.NewPCG(7, 11))
	for range 20_000 {
		j := rng.Float64()
		p := RetryPolicy{MaxAttempts: 5, Backoff: []time.Duration{d}, Jitter: j}
		got := p.Delay(1, 0, rng.Float64())
		lo := time.Duration(float64(d) * (1 - j/2))
		hi := time.Duration(float64(d) * (1 + j/2))
		require.GreaterOrEqual(t, got, lo-1, "jitter %v", j)
		require.LessOrEqual(t, got, hi, "jitter %v", j)
	}

	p := RetryPolicy{MaxAttempts: 5, Backoff: []time.Duration{d}, Jitter: 0.4}
	require.Equal(t, 8*time.Second, p.Delay(1, 0, 0), "r=0 is the low end, d·(1−J/2)")
	require.Equal(t, d, p.Delay(1, 0, 0.5), "r=0.5 is the backoff itself")
	require.InDelta(t, float64(12*time.Second), float64(p.Delay(1, 0, 0.999999)), float64(time.Millisecond), "r→1 is the high end")

	// A burst of failures does not come back as a burst: r spread over [0,1) spreads
	// the delays over the whole ±20%.
	seen := map[time.Duration]bool{}
	lo, hi := time.Duration(math.MaxInt64), time.Duration(0)
	for i := range 100 {
		got := p.Delay(1, 0, float64(i)/100)
		seen[got] = true
		lo, hi = min(lo, got), max(hi, got)
	}
	require.Len(t, seen, 100)
	require.Greater(t, hi-lo, 3900*time.Millisecond)

	// Hostile r is clamped into [0, 1).
	for _, r := range []float64{math.NaN(), -1, math.Inf(-1)} {
		require.Equal(t, 8*time.Second, p.Delay(1, 0, r), "r=%v", r)
	}
	for _, r := range []float64{1, 2, math.Inf(1)} {
		got := p.Delay(1, 0, r)
		require.LessOrEqual(t, got, 12*time.Second, "r=%v", r)
		require.Greater(t, got, 11999*time.Millisecond, "r=%v", r)
	}

	// A huge backoff saturates instead of overflowing into a negative delay.
	huge := RetryPolicy{MaxAttempts: 2, Backoff: []time.Duration{math.MaxInt64}, Jitter: 1}
	require.Equal(t, time.Duration(math.MaxInt64), huge.Delay(1, 0, 0.99))
	require.Positive(t, huge.Delay(1, 0, 0.4))
}

func TestRetryPolicyDelayRetryAfter(t *testing.T) {
	t.Parallel()
	p := RetryPolicy{MaxAttempts: 5, Backoff: []time.Duration{time.Second, time.Minute}, Jitter: 0.5}
	require.Equal(t, 10*time.Second, p.Delay(1, 10*time.Second, 0.99),
		"a RetryAfter longer than the jittered backoff overrides it")
	require.Equal(t, time.Second, p.Delay(1, 100*time.Millisecond, 0.5),
		"a shorter RetryAfter does not shorten the backoff")
	require.Equal(t, time.Minute, p.Delay(2, -time.Hour, 0.5), "a negative RetryAfter is ignored")
	require.Equal(t, 2*time.Hour, p.Delay(math.MaxInt, 2*time.Hour, 0))

	// The ladder then rounds a RetryAfter up to rungs: 40s left takes 30s, then 10s
	// left takes 30s again, ending 20s late but never early.
	l := mustLadder(t, DefaultRungs(), time.Second)
	d := p.Delay(1, 40*time.Second, 0)
	require.Equal(t, []int{0, 0}, l.Plan(d))
}

func TestClampAttempt(t *testing.T) {
	t.Parallel()
	for in, want := range map[int64]int{
		math.MinInt64: 1, -1: 1, 0: 1, 1: 1, 5: 5,
		MaxAttempt: MaxAttempt, MaxAttempt + 1: MaxAttempt, 1e12: MaxAttempt, math.MaxInt64: MaxAttempt,
	} {
		require.Equal(t, want, ClampAttempt(in), "ClampAttempt(%d)", in)
	}
}

func TestClampDue(t *testing.T) {
	t.Parallel()
	now := time.UnixMilli(1_790_000_000_000)
	const maxAhead = 24 * time.Hour
	for _, tc := range []struct {
		name string
		due  time.Time
		want time.Time
	}{
		{"zero", time.Time{}, now},
		{"the epoch", time.UnixMilli(0), now},
		{"negative unix ms", time.UnixMilli(-5), now},
		{"a year ahead", now.AddDate(1, 0, 0), now.Add(maxAhead)},
		{"far future", time.UnixMilli(math.MaxInt64), now.Add(maxAhead)},
		{"just over the bound", now.Add(maxAhead + time.Millisecond), now.Add(maxAhead)},
		{"at the bound", now.Add(maxAhead), now.Add(maxAhead)},
		{"within", now.Add(time.Minute), now.Add(time.Minute)},
		{"recent past: simply due", now.Add(-time.Hour), now.Add(-time.Hour)},
	} {
		require.True(t, tc.want.Equal(ClampDue(tc.due, now, maxAhead)), "%s: ClampDue(%s) = %s, want %s",
			tc.name, tc.due, ClampDue(tc.due, now, maxAhead), tc.want)
	}
	require.True(t, now.Equal(ClampDue(now.Add(time.Second), now, -time.Hour)), "maxAhead ≤ 0 allows nothing after now")
}
