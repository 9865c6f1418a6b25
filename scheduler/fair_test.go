package scheduler

import (
	"container/heap"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"
)

// slotEnd is a granted slot in the simulation, ending at end.
type slotEnd struct {
	end          float64
	tenant       int
	cost, charge float64
}

type slotEnds []slotEnd

func (h slotEnds) Len() int           { return len(h) }
func (h slotEnds) Less(i, j int) bool { return h[i].end < h[j].end }
func (h slotEnds) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *slotEnds) Push(x any)        { *h = append(*h, x.(slotEnd)) }
func (h *slotEnds) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// simulate runs every tenant backlogged (workers requests each, re-asked as soon as
// one ends) on f for horizon time units, tenant t's slots lasting costs[t], and
// returns the slot time each tenant used. It checks the quotas and the capacity at
// every grant.
func simulate(t *testing.T, f *fair, costs []float64, workers int, horizon float64) []float64 {
	t.Helper()
	used := make([]float64, len(costs))
	var ends slotEnds
	now := 0.0
	grant := func(tn int, charge float64) {
		heap.Push(&ends, slotEnd{end: now + costs[tn], tenant: tn, cost: costs[tn], charge: charge})
		if q := f.tenants[tn].quota; q > 0 && f.tenants[tn].running > q || f.capacity > 0 && f.used > f.capacity {
			t.Fatalf("tenant %d runs %d (quota %d), all %d (capacity %d)", tn, f.tenants[tn].running, f.tenants[tn].quota, f.used, f.capacity)
		}
	}
	ask := func(tn int) {
		if charge, ok := f.Acquire(tn); ok {
			grant(tn, charge)
		}
	}
	for range workers {
		for tn := range costs {
			ask(tn)
		}
	}
	for len(ends) > 0 {
		e := heap.Pop(&ends).(slotEnd)
		if e.end > horizon {
			break
		}
		now = e.end
		used[e.tenant] += e.cost
		if next, charge, ok := f.Release(e.tenant, e.cost, e.charge); ok {
			grant(next, charge)
		}
		ask(e.tenant) // the worker is back with more work
	}
	return used
}

func shares(used []float64) []float64 {
	total := 0.0
	for _, u := range used {
		total += u
	}
	out := make([]float64, len(used))
	for i, u := range used {
		out[i] = u / total
	}
	return out
}

// TestFairShareByWeight: backlogged tenants share the slot time by weight, whatever
// their attempts' durations, and a quota caps a tenant below its share, the others
// sharing the rest.
func TestFairShareByWeight(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name     string
		capacity int
		weights  []int
		quotas   []int
		costs    []float64
		want     []float64
	}{
		{"equal", 8, []int{1, 1}, []int{0, 0}, []float64{1, 1}, []float64{0.5, 0.5}},
		{"weights 1:2:3", 8, []int{1, 2, 3}, []int{0, 0, 0}, []float64{1, 1, 1}, []float64{1. / 6, 2. / 6, 3. / 6}},
		{"durations 1:50:0.1", 8, []int{1, 1, 1}, []int{0, 0, 0}, []float64{1, 50, 0.1}, []float64{1. / 3, 1. / 3, 1. / 3}},
		{"weights and durations", 16, []int{3, 1}, []int{0, 0}, []float64{0.1, 10}, []float64{0.75, 0.25}},
		{"quota below share", 8, []int{1, 1, 1}, []int{2, 0, 0}, []float64{1, 1, 1}, []float64{0.25, 0.375, 0.375}},
	}
	for _, c := range cases {
		f := newFair(c.capacity, 1, c.weights, c.quotas)
		got := shares(simulate(t, &f, c.costs, c.capacity, 3000))
		for i := range got {
			require.InDelta(t, c.want[i], got[i], 0.02, "%s: tenant %d's share %v", c.name, i, got)
		}
		t.Logf("%s: slot-time shares %.3f (want %.3f)", c.name, got, c.want)
	}
}

// TestFairIdleTenantBanksNoCredit: a tenant that waited for nothing while another
// ran alone does not, when it starts asking, take every slot until it has caught up;
// the two share from then on.
func TestFairIdleTenantBanksNoCredit(t *testing.T) {
	t.Parallel()
	f := newFair(1, 1, []int{1, 1}, []int{0, 0})
	charge, ok := f.Acquire(0)
	require.True(t, ok)
	for range 1000 { // tenant 0 alone, one slot after the other
		_, _, next := f.Release(0, 1, charge)
		require.False(t, next)
		charge, ok = f.Acquire(0)
		require.True(t, ok)
	}
	// Both backlogged now: tenant 1 asks, tenant 0 asks again while it holds the slot.
	_, ok = f.Acquire(1)
	require.False(t, ok)
	_, ok = f.Acquire(0)
	require.False(t, ok)
	held, grants := 0, [2]int{}
	for range 200 {
		next, nextCharge, ok := f.Release(held, 1, charge)
		require.True(t, ok)
		grants[next]++
		held, charge = next, nextCharge
		_, ok = f.Acquire(next) // still backlogged
		require.False(t, ok)
	}
	require.InDelta(t, 100, grants[0], 2, "grants after tenant 1 woke up: %v", grants)
}

// TestFairModel drives the core with random acquires, releases (random hold times)
// and cancels, checking after each that quotas and the capacity hold, the counts
// match, and the core is work-conserving: no waiting tenant could have a slot.
func TestFairModel(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(7, 8))
	for run := range 50 {
		n := 1 + rng.IntN(5)
		capacity := rng.IntN(10)
		weights, quotas := make([]int, n), make([]int, n)
		for i := range n {
			weights[i], quotas[i] = 1+rng.IntN(5), rng.IntN(4)
		}
		f := newFair(capacity, 1, weights, quotas)
		type slot struct {
			tenant int
			charge float64
		}
		var held []slot
		waiting := make([]int, n)
		for step := range 1000 {
			switch r := rng.IntN(10); {
			case r < 5:
				tn := rng.IntN(n)
				if charge, ok := f.Acquire(tn); ok {
					held = append(held, slot{tn, charge})
				} else {
					waiting[tn]++
				}
			case r < 9 && len(held) > 0:
				i := rng.IntN(len(held))
				s := held[i]
				held = append(held[:i], held[i+1:]...)
				if next, charge, ok := f.Release(s.tenant, rng.Float64()*3, s.charge); ok {
					waiting[next]--
					require.GreaterOrEqual(t, waiting[next], 0, "run %d step %d: granted a tenant that did not wait", run, step)
					held = append(held, slot{next, charge})
				}
			default:
				if tn := rng.IntN(n); waiting[tn] > 0 {
					f.Cancel(tn)
					waiting[tn]--
				}
			}
			running := make([]int, n)
			for _, s := range held {
				running[s.tenant]++
			}
			require.Equal(t, len(held), f.used, "run %d step %d", run, step)
			if capacity > 0 {
				require.LessOrEqual(t, f.used, capacity, "run %d step %d", run, step)
			}
			for tn := range n {
				require.Equal(t, running[tn], f.Running(tn), "run %d step %d", run, step)
				require.Equal(t, waiting[tn], f.Waiting(tn), "run %d step %d", run, step)
				if quotas[tn] > 0 {
					require.LessOrEqual(t, running[tn], quotas[tn], "run %d step %d: quota", run, step)
				}
				if waiting[tn] > 0 {
					require.False(t, f.free(tn), "run %d step %d: tenant %d waits for a free slot", run, step, tn)
				}
			}
		}
	}
}

func BenchmarkFairAcquireRelease(b *testing.B) {
	f := newFair(8, 1, []int{1, 2, 3, 1}, []int{0, 0, 4, 0})
	for tn := range 4 {
		for range 8 {
			f.Acquire(tn)
		}
	}
	charge := 1.0
	tn := 0
	for b.Loop() {
		old := tn
		next, c, ok := f.Release(tn, 1, charge)
		if !ok {
			b.Fatal("a backlogged core granted nothing")
		}
		tn, charge = next, c
		f.Acquire(old) // its worker is back with more work

	}
}
