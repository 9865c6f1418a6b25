package rpc

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kasync/kasync/scheduler"
)

// ends collects the outcomes of started tasks by workload id, failing on a second
// end for one id.
type ends struct {
	t testing.TB
	c chan endOf
}

type endOf struct {
	id string
	o  scheduler.Outcome
}

func newEnds(t testing.TB) *ends { return &ends{t: t, c: make(chan endOf, 100)} }

func (e *ends) of(id string) func(scheduler.Outcome) {
	return func(o scheduler.Outcome) { e.c <- endOf{id: id, o: o} }
}

func (e *ends) next() endOf {
	e.t.Helper()
	select {
	case got := <-e.c:
		return got
	case <-time.After(waitTimeout):
		e.t.Fatal("no end")
		return endOf{}
	}
}

// taskIDs returns the ids of the tasks wk holds, by workload id (as sent).
func taskIDs(t *testing.T, out *outbox) map[string]uint64 {
	t.Helper()
	ids := map[string]uint64{}
	for _, m := range out.take(nil) {
		require.NotNil(t, m.w, "a task, not a cancel")
		ids[m.w.ID] = m.id
	}
	return ids
}

// A done ctx ends the started tasks of that ctx, and only those: retriable, the
// worker told to cancel them, their late results dropped. Each task ends once, and
// the pool keeps no watch once none is left.
func TestPoolStartEndsTasksOfADoneCtx(t *testing.T) {
	t.Parallel()
	p := NewWorkerPool(nil)
	defer func() { require.NoError(t, p.Close()) }()
	wk, out := fakeWorker(p, "a", 8, "f")
	defer p.detach(wk, context.Canceled)
	e := newEnds(t)
	ctx1, cancel1 := context.WithCancel(context.Background())
	ctx2, cancel2 := context.WithCancel(context.Background())
	defer cancel2()
	for _, id := range []string{"1a", "1b", "1c"} {
		p.Start(ctx1, wl("f", id), 0, e.of(id))
	}
	p.Start(ctx2, wl("f", "2a"), time.Hour, e.of("2a"))
	ids := taskIDs(t, out)
	require.Len(t, ids, 4)

	require.NoError(t, p.result(wk, TaskResultToProto(ids["1a"], scheduler.Success())))
	require.Equal(t, endOf{id: "1a", o: scheduler.Success()}, e.next())
	cancel1()
	for range 2 {
		got := e.next()
		require.Contains(t, []string{"1b", "1c"}, got.id)
		require.Equal(t, scheduler.ReasonShutdown, got.o.Reason)
		require.Contains(t, got.o.Err, "attempt cancelled")
	}
	cancels := map[uint64]bool{}
	for _, m := range out.take(nil) {
		require.Nil(t, m.w, "only cancels")
		cancels[m.id] = true
	}
	require.Equal(t, map[uint64]bool{ids["1b"]: true, ids["1c"]: true}, cancels)
	// Late results of the cancelled tasks are dropped; the other ctx's task goes on.
	require.NoError(t, p.result(wk, TaskResultToProto(ids["1b"], scheduler.Success())))
	require.NoError(t, p.result(wk, TaskResultToProto(ids["2a"], scheduler.Fatal(scheduler.ReasonFatal, "no"))))
	require.Equal(t, endOf{id: "2a", o: scheduler.Fatal(scheduler.ReasonFatal, "no")}, e.next())
	require.Empty(t, e.c, "every task ended once")
	p.mu.Lock()
	defer p.mu.Unlock()
	require.Empty(t, p.watches, "no watch left")
	require.Empty(t, p.deadlines, "no timeout left")
}

// Start waits for capacity within its ctx, and ends the attempt itself when the ctx
// ends first or the pool is closed.
func TestPoolStartWithoutCapacity(t *testing.T) {
	t.Parallel()
	p := NewWorkerPool(nil)
	e := newEnds(t)
	ctx, cancel := context.WithCancel(context.Background())
	returned := make(chan struct{})
	go func() {
		defer close(returned)
		p.Start(ctx, wl("f", "waits"), time.Second, e.of("waits"))
	}()
	cancel()
	got := e.next()
	require.Equal(t, "waits", got.id)
	require.Equal(t, scheduler.ReasonShutdown, got.o.Reason)
	require.Contains(t, got.o.Err, "gave up waiting for a worker")
	<-returned

	require.NoError(t, p.Close())
	p.Start(context.Background(), wl("f", "closed"), time.Second, e.of("closed"))
	require.Len(t, e.c, 1, "ended before Start returned")
	require.Equal(t, endOf{id: "closed", o: scheduler.Retriable(scheduler.ReasonShutdown, "worker pool is closed")}, e.next())
}

// A started task whose timeout passes ends as a timeout, once, and its watch goes.
func TestPoolStartTimeout(t *testing.T) {
	t.Parallel()
	p := NewWorkerPool(nil)
	defer func() { require.NoError(t, p.Close()) }()
	wk, out := fakeWorker(p, "a", 1, "f")
	defer p.detach(wk, context.Canceled)
	e := newEnds(t)
	p.Start(context.Background(), wl("f", "slow"), 20*time.Millisecond, e.of("slow"))
	got := e.next()
	require.Equal(t, scheduler.ReasonTimeout, got.o.Reason)
	require.Len(t, out.take(nil), 2, "the task, then its cancel")
	p.mu.Lock()
	defer p.mu.Unlock()
	require.Empty(t, p.watches)
}
