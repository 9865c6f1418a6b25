package scheduler

import (
	"math/rand/v2"
	"slices"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestRingFIFO(t *testing.T) {
	t.Parallel()
	var q ring
	_, ok := q.Pop()
	require.False(t, ok, "empty queue pops nothing")
	for i := range 100 {
		q.Push(entry{w: &Workload{ID: strconv.Itoa(i)}})
	}
	require.Equal(t, 100, q.Len())
	for i := range 100 {
		e, ok := q.Pop()
		require.True(t, ok)
		require.Equal(t, strconv.Itoa(i), e.w.ID)
	}
	require.Equal(t, 0, q.Len())
}

// TestRingModel checks the ring against a slice model through random pushes and
// pops that wrap, grow and shrink it.
func TestRingModel(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(1, 2))
	var q ring
	var model []*Workload
	next := 0
	for step := range 200_000 {
		// Phases that favour pushes then pops make the ring grow to thousands, past
		// minQueueCap, and shrink back.
		pushBias := 0.6
		if (step/20000)%2 == 1 {
			pushBias = 0.4
		}
		if rng.Float64() < pushBias {
			w := &Workload{ID: strconv.Itoa(next)}
			next++
			q.Push(entry{w: w})
			model = append(model, w)
		} else {
			e, ok := q.Pop()
			require.Equal(t, len(model) > 0, ok, "step %d", step)
			if ok {
				require.Same(t, model[0], e.w, "step %d", step)
				model = model[1:]
			}
		}
		require.Equal(t, len(model), q.Len())
		require.Zero(t, len(q.buf)&(len(q.buf)-1), "ring size %d is a power of two", len(q.buf))
		if len(q.buf) > minQueueCap {
			require.Greater(t, q.Len(), len(q.buf)/4, "ring of %d holds only %d: it should have shrunk", len(q.buf), q.Len())
		}
	}
}

func TestRingPopClearsSlot(t *testing.T) {
	t.Parallel()
	var q ring
	q.Push(entry{w: &Workload{ID: "a"}, done: func(Outcome) {}})
	_, ok := q.Pop()
	require.True(t, ok)
	for _, e := range q.buf {
		require.Nil(t, e.w, "a popped workload stays referenced by the ring")
		require.Nil(t, e.done)
	}
}

func TestRingDrain(t *testing.T) {
	t.Parallel()
	var q ring
	for i := range 10 {
		q.Push(entry{w: &Workload{ID: strconv.Itoa(i)}})
	}
	got := q.Drain()
	require.Len(t, got, 10)
	for i, e := range got {
		require.Equal(t, strconv.Itoa(i), e.w.ID)
	}
	require.Zero(t, q.Len())
}

func BenchmarkRingPushPop(b *testing.B) {
	var q ring
	w := &Workload{}
	for b.Loop() {
		q.Push(entry{w: w})
		q.Pop()
	}
}

// popModel is the queue's rule on a plain slice: on every agingEvery-th pop the
// oldest entry, otherwise the oldest of the highest priority.
func popModel(model []*Workload, seqs []uint64, pops uint64) int {
	pick := 0
	for i := range model {
		older := seqs[i] < seqs[pick]
		if pops%agingEvery == 0 {
			if older {
				pick = i
			}
			continue
		}
		if model[i].Priority > model[pick].Priority || model[i].Priority == model[pick].Priority && older {
			pick = i
		}
	}
	return pick
}

// TestQueueModel checks the priority queue against popModel through random pushes of
// random priorities and pops.
func TestQueueModel(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(3, 4))
	var q queue
	var model []*Workload
	var seqs []uint64
	var seq, pops uint64
	for step := range 50_000 {
		if rng.Float64() < 0.55 || len(model) == 0 && rng.IntN(2) == 0 {
			w := &Workload{ID: strconv.Itoa(step), Priority: int32(rng.IntN(5)) - 2}
			if rng.IntN(100) == 0 {
				w.Priority = int32(rng.Int32()) // now and then a priority of its own
			}
			q.Push(entry{w: w})
			model = append(model, w)
			seqs = append(seqs, seq)
			seq++
		} else {
			e, ok := q.Pop()
			require.Equal(t, len(model) > 0, ok, "step %d", step)
			if ok {
				pops++
				i := popModel(model, seqs, pops)
				require.Same(t, model[i], e.w, "step %d (pop %d)", step, pops)
				model = slices.Delete(model, i, i+1)
				seqs = slices.Delete(seqs, i, i+1)
			}
		}
		require.Equal(t, len(model), q.Len())
		require.LessOrEqual(t, len(q.levels)-q.nonEmpty(), maxEmptyLevels+1, "empty levels are bounded")
	}
}

// TestQueueLowPriorityIsNotStarved: under a flood of high-priority workloads, a
// low-priority one is popped within agingEvery pops of becoming the oldest.
func TestQueueLowPriorityIsNotStarved(t *testing.T) {
	t.Parallel()
	var q queue
	for i := range 5 {
		q.Push(entry{w: &Workload{ID: "high-" + strconv.Itoa(i), Priority: 10}})
	}
	q.Push(entry{w: &Workload{ID: "low", Priority: -1}})
	next := 5
	for pop := 1; ; pop++ {
		q.Push(entry{w: &Workload{ID: "high-" + strconv.Itoa(next), Priority: 10}}) // the flood never stops
		next++
		e, ok := q.Pop()
		require.True(t, ok)
		if e.w.ID == "low" {
			require.LessOrEqual(t, pop, 5+agingEvery, "low ran at pop %d", pop)
			return
		}
		require.Less(t, pop, 1000, "low-priority workload starved")
	}
}

func TestQueueDrainOldestFirst(t *testing.T) {
	t.Parallel()
	var q queue
	for i := range 20 {
		q.Push(entry{w: &Workload{ID: strconv.Itoa(i), Priority: int32(i % 3)}})
	}
	got := q.Drain()
	require.Len(t, got, 20)
	for i, e := range got {
		require.Equal(t, strconv.Itoa(i), e.w.ID)
	}
	require.Zero(t, q.Len())
	_, ok := q.Pop()
	require.False(t, ok)
}

// BenchmarkQueuePushPop: one priority (the common case), and three.
func BenchmarkQueuePushPop(b *testing.B) {
	for _, levels := range []int{1, 3} {
		b.Run(strconv.Itoa(levels)+"-priorities", func(b *testing.B) {
			var q queue
			ws := make([]*Workload, levels)
			for i := range ws {
				ws[i] = &Workload{Priority: int32(i)}
			}
			for i := range 100 { // a standing backlog
				q.Push(entry{w: ws[i%levels]})
			}
			i := 0
			for b.Loop() {
				q.Push(entry{w: ws[i%levels]})
				q.Pop()
				i++
			}
		})
	}
}

// TestRingShrinksBackAfterBurst: a burst far above minQueueCap grows the ring; once it
// is drained the ring is back to minQueueCap, and smaller bursts reuse it as it is.
func TestRingShrinksBackAfterBurst(t *testing.T) {
	t.Parallel()
	var q ring
	for range 20 * minQueueCap {
		q.Push(entry{w: &Workload{}})
	}
	require.GreaterOrEqual(t, len(q.buf), 20*minQueueCap)
	for q.Len() > 0 {
		q.Pop()
	}
	require.Equal(t, minQueueCap, len(q.buf))
	buf := &q.buf[0]
	for range 10 {
		for range minQueueCap / 2 {
			q.Push(entry{w: &Workload{}})
		}
		for q.Len() > 0 {
			q.Pop()
		}
	}
	require.Same(t, buf, &q.buf[0], "bursts within minQueueCap must not resize the ring")
}
