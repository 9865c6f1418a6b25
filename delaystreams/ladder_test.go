package delaystreams

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func mustLadder(t testing.TB, rungs []time.Duration, tolerance time.Duration) *Ladder {
	t.Helper()
	l, err := NewLadder(rungs, tolerance)
	require.NoError(t, err)
	return l
}

func TestDefaultRungs(t *testing.T) {
	t.Parallel()
	want := []time.Duration{30 * time.Second, time.Minute, 5 * time.Minute, 30 * time.Minute}
	require.Equal(t, want, DefaultRungs(), "DESIGN.md: the default is exactly 30s, 1m, 5m, 30m")

	got := DefaultRungs()
	got[0] = time.Hour
	require.Equal(t, want, DefaultRungs(), "each call returns a new slice")

	l := mustLadder(t, DefaultRungs(), time.Second)
	require.Equal(t, want, l.Rungs())
	require.Equal(t, 4, l.Len())
	require.Equal(t, 5*time.Minute, l.Rung(2))
	require.Equal(t, time.Second, l.Tolerance())
}

func TestLadderCopiesRungs(t *testing.T) {
	t.Parallel()
	in := []time.Duration{time.Second, 2 * time.Second}
	l := mustLadder(t, in, 0)
	in[0] = time.Hour
	out := l.Rungs()
	out[1] = time.Hour
	require.Equal(t, []time.Duration{time.Second, 2 * time.Second}, l.Rungs(),
		"neither the caller's slice nor the returned copy can change the ladder")
}

func TestNewLadderRejects(t *testing.T) {
	t.Parallel()
	many := make([]time.Duration, MaxRungs+1)
	for i := range many {
		many[i] = time.Duration(i+1) * time.Second
	}
	for _, tc := range []struct {
		name      string
		rungs     []time.Duration
		tolerance time.Duration
		want      []string
	}{
		{"none", nil, 0, []string{"ladder: no rungs; give at least one, like [30s, 1m, 5m, 30m]"}},
		{"too many", many, 0, []string{"33 rungs; give at most 32"}},
		{"zero", []time.Duration{0, time.Second}, 0, []string{"rungs[0]: 0s is not positive"}},
		{"negative", []time.Duration{time.Second, -time.Second}, 0, []string{"rungs[1]: -1s is not positive"}},
		{"descending", []time.Duration{time.Minute, 30 * time.Second}, 0,
			[]string{"rungs[1]: 30s is not longer than rungs[0] (1m0s); list rungs in ascending order without repeats"}},
		{"repeat", []time.Duration{30 * time.Second, 30 * time.Second}, 0, []string{"rungs[1]: 30s is not longer than rungs[0] (30s)"}},
		{"negative tolerance", []time.Duration{time.Second}, -time.Nanosecond, []string{"tolerance -1ns is negative"}},
		{"tolerance as long as a rung", DefaultRungs(), 30 * time.Second,
			[]string{"tolerance 30s is not below the smallest rung (30s); use a tolerance shorter than every rung"}},
		{"every problem at once", []time.Duration{-time.Second, 2 * time.Second, time.Second}, 5 * time.Second, []string{
			"rungs[0]: -1s is not positive",
			"rungs[2]: 1s is not longer than rungs[1] (2s)",
			"tolerance 5s is not below the smallest rung (1s)",
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			l, err := NewLadder(tc.rungs, tc.tolerance)
			require.Error(t, err)
			require.Nil(t, l)
			for _, w := range tc.want {
				require.ErrorContains(t, err, w)
			}
			require.Len(t, strings.Split(err.Error(), "\n"), len(tc.want), "one line per problem: %v", err)
		})
	}
}

func TestPick(t *testing.T) {
	t.Parallel()
	l := mustLadder(t, DefaultRungs(), time.Second)
	for _, tc := range []struct {
		left time.Duration
		want int // -1: no rung
	}{
		{math.MinInt64, -1},
		{-time.Hour, -1},
		{0, -1},
		{time.Second, -1},       // within the tolerance: held in place
		{time.Second + 1, 0},    // above it: the smallest rung, although it is longer
		{29 * time.Second, 0},   //
		{30 * time.Second, 0},   // exactly a rung
		{time.Minute - 1, 0},    //
		{time.Minute, 1},        //
		{5*time.Minute - 1, 1},  //
		{5 * time.Minute, 2},    //
		{30 * time.Minute, 3},   //
		{24 * time.Hour, 3},     // days: the largest rung, again and again
		{math.MaxInt64, 3},      //
		{30*time.Minute - 1, 2}, //
	} {
		r, ok := l.Pick(tc.left)
		require.Equal(t, tc.want >= 0, ok, "Pick(%s)", tc.left)
		if ok {
			require.Equal(t, tc.want, r, "Pick(%s)", tc.left)
		}
	}

	zero := mustLadder(t, []time.Duration{5 * time.Millisecond}, 0)
	r, ok := zero.Pick(1)
	require.True(t, ok, "with no tolerance, 1ns left still takes a rung")
	require.Equal(t, 0, r)
	_, ok = zero.Pick(0)
	require.False(t, ok)
}

func TestPlanAndWait(t *testing.T) {
	t.Parallel()
	l := mustLadder(t, DefaultRungs(), time.Second)
	for _, tc := range []struct {
		d    time.Duration
		plan []int
		wait time.Duration
	}{
		{-time.Minute, nil, 0},
		{0, nil, 0},
		{500 * time.Millisecond, nil, 500 * time.Millisecond}, // held in place the whole time
		{10 * time.Second, []int{0}, 0},                       // 30s: 20s late, less than one smallest rung
		{45 * time.Minute, []int{3, 2, 2, 2}, 0},
		{90 * time.Second, []int{1, 0}, 0},
		{100 * time.Second, []int{1, 0, 0}, 0},
		{90*time.Second + 800*time.Millisecond, []int{1, 0}, 800 * time.Millisecond},
		// Greedy takes the largest rung that fits, so a delay just under a rung climbs
		// through the smaller ones: 5×5m, 4×1m, 30s, then 29s left takes 30s again.
		{30*time.Minute - time.Second, []int{2, 2, 2, 2, 2, 1, 1, 1, 1, 0, 0}, 0},
	} {
		require.Equal(t, tc.plan, l.Plan(tc.d), "Plan(%s)", tc.d)
		require.Equal(t, tc.wait, l.Wait(tc.d), "Wait(%s)", tc.d)
	}

	days := 30 * 24 * time.Hour
	plan := l.Plan(days)
	require.Len(t, plan, 30*24*2, "30 days is 1440 hops of 30m")
	require.Equal(t, time.Duration(0), l.Wait(days))

	ms := mustLadder(t, []time.Duration{5 * time.Millisecond, 10 * time.Millisecond, 50 * time.Millisecond}, time.Millisecond)
	require.Equal(t, 500*time.Microsecond, ms.Wait(days+500*time.Microsecond),
		"Wait skips the hops of the largest rung, so days on a millisecond ladder cost nothing")
	require.Equal(t, []int{2, 1, 0, 0}, ms.Plan(68*time.Millisecond))
}

// maxHops bounds the hops of a record with d left, whatever each hop's lateness:
// d/largest hops of the largest rung, then below it at most ceil(r[i+1]/r[i])−1 hops of
// each rung r[i], then one smallest rung for a rest above the tolerance. It is
// d/largest + Len() when each rung is at most twice the one before; the default ladder
// (5m→30m) needs more, see TestPlanAndWait.
func maxHops(l *Ladder, d time.Duration) int {
	n := l.Len()
	b := 1
	if d > 0 {
		b += int(d / l.Rung(n-1))
	}
	for i := 0; i+1 < n; i++ {
		b += int((l.Rung(i+1)+l.Rung(i)-1)/l.Rung(i)) - 1
	}
	return b
}

// simulate moves a record delayed by d at start through l as the router and the delay
// readers do: the due time travels in the kasync-due header (unix ms, so rounded up),
// and at every step the time left is recomputed from it. Each hop takes its rung plus
// late(). It returns when the record runs: when no rung is picked, the reader holds it
// in place until the header's due time.
func simulate(l *Ladder, start time.Time, d time.Duration, late func() time.Duration) (due, finish time.Time, hops int) {
	due = time.UnixMilli(dueHeaderMillis(start.Add(d)))
	now := start
	for {
		r, ok := l.Pick(due.Sub(now))
		if !ok {
			if now.Before(due) {
				now = due
			}
			return due, now, hops
		}
		hops++
		now = now.Add(l.Rung(r) + late())
	}
}

func dueHeaderMillis(t time.Time) int64 {
	ms := t.UnixMilli()
	if time.UnixMilli(ms).Before(t) {
		ms++
	}
	return ms
}

func latest(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// durN returns a random duration in [0, d) from rng.
func durN(rng *rand.Rand, d time.Duration) time.Duration { return time.Duration(rng.Int64N(int64(d))) }

// randomLadder returns a valid ladder: the default, the 5ms,10ms,50ms test ladder, or
// 1..8 (sometimes up to 32) rungs of milliseconds to hours whose ratios run from just
// above 1 to 4, with a tolerance from 0 to just below the smallest rung.
func randomLadder(rng *rand.Rand) *Ladder {
	var rungs []time.Duration
	switch rng.IntN(8) {
	case 0:
		rungs = DefaultRungs()
	case 1:
		rungs = []time.Duration{5 * time.Millisecond, 10 * time.Millisecond, 50 * time.Millisecond}
	default:
		// From a millisecond up: the due time travels in whole milliseconds, so a
		// shorter rung would only add hops.
		units := []time.Duration{time.Millisecond, time.Second, time.Minute}
		r := units[rng.IntN(len(units))] * time.Duration(1+rng.IntN(60))
		n := 1 + rng.IntN(8)
		if rng.IntN(16) == 0 {
			n = 1 + rng.IntN(MaxRungs)
		}
		for range n {
			rungs = append(rungs, r)
			r += 1 + durN(rng, 3*r)
			if r > 48*time.Hour {
				break
			}
		}
	}
	var tol time.Duration
	switch rng.IntN(4) {
	case 0:
	case 1:
		tol = rungs[0] - 1
	default:
		tol = durN(rng, rungs[0])
	}
	l, err := NewLadder(rungs, tol)
	if err != nil {
		panic(fmt.Sprintf("randomLadder built a bad ladder %v, %s: %v", rungs, tol, err))
	}
	return l
}

// randomDelay returns a delay for l: around its rungs, log-uniform or uniform up to
// 30 days (at most 2,000 largest rungs, so that a millisecond ladder stays cheap), or a
// sum of rungs nudged across the tolerance.
func randomDelay(rng *rand.Rand, l *Ladder) time.Duration {
	smallest, largest := l.Rung(0), l.Rung(l.Len()-1)
	maxD := min(30*24*time.Hour, 2000*largest)
	switch n := rng.IntN(32); {
	case n < 12:
		return -smallest + durN(rng, 3*largest+smallest)
	case n < 22:
		return time.Duration(math.Exp(rng.Float64() * math.Log(float64(maxD))))
	case n < 23: // rare: about 1,000 hops each
		return durN(rng, maxD+1)
	default:
		var d time.Duration
		for range 1 + rng.IntN(4) {
			d += l.Rung(rng.IntN(l.Len()))
		}
		return d + l.Tolerance() + time.Duration(rng.IntN(5)-2)
	}
}

// TestLadderProperties checks, on 10^5 random ladders and delays up to 30 days:
//   - Pick is the greedy choice (against a linear scan);
//   - a record never runs before its due time, with or without lateness of the hops;
//   - without lateness it runs less than (smallest rung − tolerance) after it, exactly
//     at sum(Plan) + Wait, and never more than maxHops hops;
//   - with each hop late by up to L, it runs less than (smallest rung − tolerance) + L
//     after it — lateness of earlier hops is absorbed by later choices, so it never
//     accumulates — and still within maxHops hops.
func TestLadderProperties(t *testing.T) {
	t.Parallel()
	cases := 100_000
	if testing.Short() {
		cases = 10_000
	}
	rng := rand.New(rand.NewPCG(20260918, 3))
	start0 := time.UnixMilli(1_790_000_000_000)
	var hopsTotal, maxSeen int
	for i := range cases {
		l := randomLadder(rng)
		d := randomDelay(rng, l)
		smallest, tol := l.Rung(0), l.Tolerance()
		start := start0.Add(durN(rng, time.Millisecond))
		// Plain ifs, not require: 10^5 cases, and the message is built only on failure.
		fail := func(format string, args ...any) {
			t.Helper()
			t.Fatalf("case %d: ladder %v tolerance %s, delay %s: %s", i, l.Rungs(), tol, d, fmt.Sprintf(format, args...))
		}

		left := d + time.Duration(rng.IntN(7)-3)
		r, ok := l.Pick(left)
		wantR, wantOK := -1, left > tol
		for j := l.Len() - 1; wantOK && j >= 0; j-- {
			if l.Rung(j) <= left || j == 0 {
				wantR = j
				break
			}
		}
		if ok != wantOK || (ok && r != wantR) {
			fail("Pick(%s) = %d, %v; the greedy choice is %d, %v", left, r, ok, wantR, wantOK)
		}

		// Exact hops.
		due, finish, hops := simulate(l, start, d, func() time.Duration { return 0 })
		if due.Before(start.Add(d)) {
			fail("the header's due time %s is before the true one %s", due, start.Add(d))
		}
		if finish.Before(due) {
			fail("ran %s early", due.Sub(finish))
		}
		// A record already past due (d ≤ 0) runs at once, so lateness counts from the
		// later of its due time and its start.
		if late := finish.Sub(latest(due, start)); late >= smallest-tol {
			fail("ran %s late, not less than smallest rung − tolerance", late)
		}
		dd := due.Sub(start)
		plan := l.Plan(dd)
		var sum time.Duration
		for _, p := range plan {
			sum += l.Rung(p)
		}
		if len(plan) != hops {
			fail("Plan has %d hops, the simulation %d", len(plan), hops)
		}
		if got, want := finish.Sub(start), sum+l.Wait(dd); got != want {
			fail("ran after %s, but sum(Plan) + Wait = %s", got, want)
		}
		if sum < dd-tol {
			fail("the hops alone (%s) end more than one tolerance before %s", sum, dd)
		}
		if hops > maxHops(l, dd) {
			fail("%d hops, above the bound %d", hops, maxHops(l, dd))
		}
		hopsTotal += hops
		maxSeen = max(maxSeen, hops)

		// Late hops: the reader, the broker or a rebalance make each hop take longer.
		lateness := []time.Duration{time.Nanosecond, smallest / 10, smallest, 3 * l.Rung(l.Len()-1)}[rng.IntN(4)]
		due, finish, lateHops := simulate(l, start, d, func() time.Duration { return durN(rng, lateness+1) })
		if finish.Before(due) {
			fail("ran %s early with hops up to %s late", due.Sub(finish), lateness)
		}
		if late := finish.Sub(latest(due, start)); late >= smallest-tol+lateness {
			fail("ran %s late with hops up to %s late: lateness accumulated", late, lateness)
		}
		if lateHops > maxHops(l, dd) {
			fail("%d hops with lateness %s, above the bound %d", lateHops, lateness, maxHops(l, dd))
		}
	}
	t.Logf("%d cases, %d hops in all, at most %d for one record", cases, hopsTotal, maxSeen)
}

// TestLadderDays runs delays of days on the default ladder: few hops, on time.
func TestLadderDays(t *testing.T) {
	t.Parallel()
	l := mustLadder(t, DefaultRungs(), time.Second)
	start := time.UnixMilli(1_790_000_000_000)
	for _, d := range []time.Duration{24 * time.Hour, 7*24*time.Hour + 17*time.Minute + 3*time.Second, 30 * 24 * time.Hour} {
		due, finish, hops := simulate(l, start, d, func() time.Duration { return 0 })
		require.Equal(t, start.Add(d), due)
		require.False(t, finish.Before(due))
		require.Less(t, finish.Sub(due), 30*time.Second)
		require.LessOrEqual(t, hops, maxHops(l, d))
		require.LessOrEqual(t, hops, int(d/(30*time.Minute))+11, "d/largest plus at most 11 hops below the largest rung")
	}
}

// TestLatenessDoesNotAccumulate contrasts the ladder's re-check with following a plan
// made up front: 1,440 hops of 30m, each 2s late, drift by 48 minutes when planned up
// front, but end within one hop's lateness when each hop starts again from the due time.
func TestLatenessDoesNotAccumulate(t *testing.T) {
	t.Parallel()
	l := mustLadder(t, DefaultRungs(), time.Second)
	start := time.UnixMilli(1_790_000_000_000)
	const d, late = 30 * 24 * time.Hour, 2 * time.Second

	upFront := start
	for _, r := range l.Plan(d) {
		upFront = upFront.Add(l.Rung(r) + late)
	}
	require.Equal(t, 48*time.Minute, upFront.Sub(start.Add(d)))

	due, finish, hops := simulate(l, start, d, func() time.Duration { return late })
	require.False(t, finish.Before(due))
	require.LessOrEqual(t, finish.Sub(due), 30*time.Second+late)
	require.LessOrEqual(t, hops, maxHops(l, d))
}

func TestMaxHopsIsTight(t *testing.T) {
	t.Parallel()
	// The bound is reached, so it is the right one to assert: on the default ladder
	// 29m59s takes 5+4+1 hops below 30m and one more smallest rung.
	l := mustLadder(t, DefaultRungs(), 0)
	d := 30*time.Minute - time.Second
	require.Len(t, l.Plan(d), maxHops(l, d))
	// A ladder whose rungs at most double keeps to d/largest + Len().
	dbl := mustLadder(t, []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second}, 0)
	for d := time.Duration(1); d < 40*time.Second; d += 7 * time.Millisecond {
		require.LessOrEqual(t, len(dbl.Plan(d)), int(d/(8*time.Second))+dbl.Len(), "d=%s", d)
	}
}

func BenchmarkPick(b *testing.B) {
	many := make([]time.Duration, MaxRungs)
	for i := range many {
		many[i] = time.Duration(i+1) * time.Second
	}
	for _, bc := range []struct {
		name  string
		rungs []time.Duration
	}{{"default", DefaultRungs()}, {"32rungs", many}} {
		l := mustLadder(b, bc.rungs, time.Millisecond)
		lefts := make([]time.Duration, 1024)
		rng := rand.New(rand.NewPCG(1, 2))
		for i := range lefts {
			lefts[i] = durN(rng, 2*l.Rung(l.Len()-1))
		}
		b.Run(bc.name, func(b *testing.B) {
			var sink int
			i := 0
			for b.Loop() {
				r, _ := l.Pick(lefts[i&1023])
				sink += r
				i++
			}
			_ = sink
		})
	}
}

func ExampleLadder_Plan() {
	l, err := NewLadder(DefaultRungs(), time.Second)
	if err != nil {
		panic(err)
	}
	for _, d := range []time.Duration{10 * time.Second, 100 * time.Second, 45 * time.Minute} {
		var hops []string
		for _, r := range l.Plan(d) {
			hops = append(hops, l.Rung(r).String())
		}
		fmt.Printf("%s: %s, then wait %s\n", d, strings.Join(hops, " → "), l.Wait(d))
	}
	// Output:
	// 10s: 30s, then wait 0s
	// 1m40s: 1m0s → 30s → 30s, then wait 0s
	// 45m0s: 30m0s → 5m0s → 5m0s → 5m0s, then wait 0s
}
