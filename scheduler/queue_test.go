package scheduler

import (
	"math/rand/v2"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestQueueFIFO(t *testing.T) {
	t.Parallel()
	var q queue
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

// TestQueueModel checks the ring against a slice model through random pushes and
// pops that wrap, grow and shrink it.
func TestQueueModel(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(1, 2))
	var q queue
	var model []*Workload
	next := 0
	for step := range 60_000 {
		// Phases that favour pushes then pops make the ring grow to thousands and
		// shrink back.
		pushBias := 0.6
		if (step/3000)%2 == 1 {
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

func TestQueuePopClearsSlot(t *testing.T) {
	t.Parallel()
	var q queue
	q.Push(entry{w: &Workload{ID: "a"}, done: func(Outcome) {}})
	_, ok := q.Pop()
	require.True(t, ok)
	for _, e := range q.buf {
		require.Nil(t, e.w, "a popped workload stays referenced by the ring")
		require.Nil(t, e.done)
	}
}

func TestQueueDrain(t *testing.T) {
	t.Parallel()
	var q queue
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

func BenchmarkQueuePushPop(b *testing.B) {
	var q queue
	w := &Workload{}
	for b.Loop() {
		q.Push(entry{w: w})
		q.Pop()
	}
}
