package rpc

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	kasyncv1 "github.com/kasync/kasync/proto/kasync/v1"
	"github.com/kasync/kasync/scheduler"
)

func TestPoolTimeoutCancelsTaskAndDropsLateResult(t *testing.T) {
	t.Parallel()
	bothWays(t, func(t *testing.T, execute bool) {
		e := newEnv(t, []scheduler.Function{{Name: "f", Concurrency: 2, Timeout: 100 * time.Millisecond}}, envOptions{execute: execute})
		w, err := dialWorker(t, e, &kasyncv1.WorkerHello{WorkerId: "slow", Functions: []string{"f"}, Capacity: 1})
		require.NoError(t, err)
		defer w.cancel()
		r := newResults()
		task, push := servedWorkload(t, e, w, r, 1, "f")
		require.EqualValues(t, 100, task.GetTimeoutMs())

		o := r.waitOutcome(t, 1)
		require.Equal(t, scheduler.OutcomeRetriable, o.Kind)
		require.Equal(t, scheduler.ReasonTimeout, o.Reason)
		require.Equal(t, task.GetTaskId(), w.recv(t).GetCancel().GetTaskId(), "the worker is told to cancel")

		// The late result is accepted (not a protocol error) and dropped; the freed slot
		// then serves the next workload.
		w.answer(t, task.GetTaskId(), scheduler.Success())
		w.credit(t, 1)
		push(scheduler.Pushed{Token: 2, Workload: wl("f", "task-2")})
		task2 := w.recv(t).GetTask()
		require.NotNil(t, task2)
		w.answer(t, task2.GetTaskId(), scheduler.Success())
		require.Equal(t, scheduler.Success(), r.waitOutcome(t, 2))
		require.Equal(t, scheduler.OutcomeRetriable, r.outcome(t, 1).Kind, "token 1 still has exactly one result")
	})
}

func TestPoolTimeoutStartsWhenTaskIsSent(t *testing.T) {
	t.Parallel()
	bothWays(t, func(t *testing.T, execute bool) {
		const timeout = 100 * time.Millisecond
		e := newEnv(t, []scheduler.Function{{Name: "f", Concurrency: 1, Timeout: timeout}}, envOptions{execute: execute})
		r := newResults()
		st, err := e.client.Open(ctxT(t), "waits", r.deliver)
		require.NoError(t, err)
		defer func() { require.NoError(t, st.Close()) }()
		require.NoError(t, st.Push(ctxT(t), []scheduler.Pushed{{Token: 1, Workload: wl("f", "early")}}))
		require.Eventually(t, func() bool {
			fs, _ := e.sched.Stats().Function("f")
			return fs.Running == 1
		}, waitTimeout, time.Millisecond, "the attempt is waiting in the pool")
		// No worker for three timeouts: had the clock started, the attempt would have failed.
		time.Sleep(3 * timeout)
		r.mu.Lock()
		require.Zero(t, r.n, "no result while no worker is connected")
		r.mu.Unlock()

		w, err := dialWorker(t, e, &kasyncv1.WorkerHello{WorkerId: "late", Functions: []string{"f"}, Capacity: 1})
		require.NoError(t, err)
		defer w.cancel()
		task := w.recv(t).GetTask()
		w.answer(t, task.GetTaskId(), scheduler.Success())
		require.Equal(t, scheduler.Success(), r.waitOutcome(t, 1))
	})
}

func TestPoolLostWorkerTasksAreRedispatched(t *testing.T) {
	t.Parallel()
	bothWays(t, func(t *testing.T, execute bool) {
		e := newEnv(t, []scheduler.Function{{Name: "f", Concurrency: 4, Timeout: time.Hour}}, envOptions{execute: execute})
		doomed, err := dialWorker(t, e, &kasyncv1.WorkerHello{WorkerId: "doomed", Functions: []string{"f"}, Capacity: 3})
		require.NoError(t, err)
		r := newResults()
		pushAllOf(t, e, r, "f", "a", "b", "c")
		first := make(map[string]uint64)
		for range 3 {
			task := doomed.recv(t).GetTask()
			first[task.GetId()] = task.GetTaskId()
		}
		doomed.cancel() // the worker process dies
		require.Eventually(t, func() bool { return len(e.pool.Workers()) == 0 }, waitTimeout, time.Millisecond)

		// The attempts wait for a worker, and the next one gets them as they were.
		heir, err := dialWorker(t, e, &kasyncv1.WorkerHello{WorkerId: "heir", Functions: []string{"f"}, Capacity: 3})
		require.NoError(t, err)
		defer heir.cancel()
		for range 3 {
			task := heir.recv(t).GetTask()
			require.Contains(t, first, task.GetId())
			require.NotEqual(t, first[task.GetId()], task.GetTaskId(), "a new task id for the new dispatch")
			require.EqualValues(t, 1, task.GetAttempt(), "the lost attempt is not counted again")
			delete(first, task.GetId())
			heir.answer(t, task.GetTaskId(), scheduler.Success())
		}
		r.waitN(t, 3)
		for token := range uint64(3) {
			require.Equal(t, scheduler.Success(), r.outcome(t, token+1))
		}
	})
}

func TestPoolRedispatchIsBounded(t *testing.T) {
	t.Parallel()
	bothWays(t, func(t *testing.T, execute bool) {
		e := newEnv(t, []scheduler.Function{{Name: "f", Concurrency: 1, Timeout: time.Hour}}, envOptions{execute: execute, pool: PoolOptions{MaxRedispatch: 2}})
		r := newResults()
		pushAllOf(t, e, r, "f", "deadly")
		for i := range 3 { // the first dispatch and 2 re-dispatches
			w, err := dialWorker(t, e, &kasyncv1.WorkerHello{WorkerId: fmt.Sprintf("victim-%d", i), Functions: []string{"f"}, Capacity: 1})
			require.NoError(t, err)
			task := w.recv(t).GetTask()
			require.Equal(t, "deadly", task.GetId())
			require.EqualValues(t, 1, task.GetAttempt())
			r.mu.Lock()
			require.Zero(t, r.n, "no outcome while re-dispatches are left")
			r.mu.Unlock()
			w.cancel() // the task kills its worker
			require.Eventually(t, func() bool { return len(e.pool.Workers()) == 0 }, waitTimeout, time.Millisecond)
		}
		o := r.waitOutcome(t, 1)
		require.Equal(t, scheduler.OutcomeRetriable, o.Kind)
		require.Equal(t, scheduler.ReasonWorkerLost, o.Reason)
		require.Contains(t, o.Err, "lost 3 times in a row")
	})
}

func TestPoolHeartbeatTimeoutRedispatchesAndDropsLateResult(t *testing.T) {
	t.Parallel()
	bothWays(t, func(t *testing.T, execute bool) {
		// Long enough that the healthy worker, which answers at once, never misses one.
		const beat = 500 * time.Millisecond
		e := newEnv(t, []scheduler.Function{{Name: "f", Concurrency: 2, Timeout: time.Hour}}, envOptions{execute: execute, pool: PoolOptions{HeartbeatTimeout: beat}})
		hung, err := dialWorker(t, e, &kasyncv1.WorkerHello{WorkerId: "hung", Functions: []string{"f"}, Capacity: 2})
		require.NoError(t, err)
		defer hung.cancel()
		md, err := hung.stream.Header()
		require.NoError(t, err)
		require.Equal(t, []string{"500"}, md.Get(HeartbeatTimeoutHeader), "the worker is told the timeout")

		r := newResults()
		pushed := time.Now()
		pushAllOf(t, e, r, "f", "a", "b")
		held := make(map[uint64]string)
		for range 2 {
			task := hung.recv(t).GetTask()
			held[task.GetTaskId()] = task.GetId()
		}
		// The stream stays open, but no heartbeat comes: the tasks go to a live worker.
		good, err := dialWorker(t, e, &kasyncv1.WorkerHello{WorkerId: "good", Functions: []string{"f"}, Capacity: 2})
		require.NoError(t, err)
		defer good.cancel()
		ids := make(map[string]bool)
		for range 2 {
			task := good.recv(t).GetTask()
			require.GreaterOrEqual(t, time.Since(pushed), beat, "not taken as lost before the heartbeat timeout")
			require.EqualValues(t, 1, task.GetAttempt())
			ids[task.GetId()] = true
			good.answer(t, task.GetTaskId(), scheduler.Success())
		}
		require.Equal(t, map[string]bool{"a": true, "b": true}, ids)
		r.waitN(t, 2)
		require.Equal(t, scheduler.Success(), r.outcome(t, 1))
		require.Equal(t, scheduler.Success(), r.outcome(t, 2))

		// The hung worker was told to cancel both; its late results are dropped, and
		// answering makes it eligible for tasks again.
		for range 2 {
			cancel := hung.recv(t).GetCancel()
			require.Contains(t, held, cancel.GetTaskId())
		}
		requireStalled(t, e, "hung", true)
		for id := range held {
			hung.answer(t, id, scheduler.Fatal(scheduler.ReasonFatal, "too late"))
		}
		requireStalled(t, e, "hung", false)
		hung.credit(t, 2) // the stream is still good: its slots are its again
		require.Eventually(t, func() bool {
			for _, w := range e.pool.Workers() {
				if w.ID == "hung" {
					return w.Free == 2 && w.Running == 0
				}
			}
			return false
		}, waitTimeout, time.Millisecond)
		r.mu.Lock()
		require.Len(t, r.got[1], 1)
		require.Len(t, r.got[2], 1)
		r.mu.Unlock()
	})
}

func requireStalled(t *testing.T, e *env, worker string, want bool) {
	t.Helper()
	require.Eventually(t, func() bool { return stalled(e.pool, worker) == want },
		waitTimeout, time.Millisecond, "worker %q stalled=%v", worker, want)
}

func stalled(p *WorkerPool, worker string) bool {
	for _, w := range p.Workers() {
		if w.ID == worker {
			return w.Stalled
		}
	}
	return false
}

func TestPoolHeartbeatsKeepTasksAlive(t *testing.T) {
	t.Parallel()
	const beat = time.Hour // the pool's own timer never fires here; the test drives the check
	p, err := NewPool(PoolOptions{HeartbeatTimeout: beat})
	require.NoError(t, err)
	defer func() { require.NoError(t, p.Close()) }()
	a, outA := fakeWorker(p, "a", 1, "f")
	done := make(chan scheduler.Outcome, 1)
	go func() { done <- p.Execute(context.Background(), wl("f", "x"), 0) }()
	require.Eventually(t, func() bool { return len(outA.take(nil)) == 1 }, waitTimeout, time.Millisecond)
	p.mu.Lock()
	var task *poolTask
	for _, task = range a.tasks {
	}
	sent := task.lastBeat
	p.mu.Unlock()

	// A heartbeat moves the deadline: a check just past the first deadline keeps it.
	p.heartbeat(a, []uint64{task.id})
	p.mu.Lock()
	beaten := task.lastBeat
	p.mu.Unlock()
	require.True(t, !beaten.Before(sent))
	p.expireBeats(beaten.Add(beat - time.Nanosecond))
	require.Empty(t, outA.take(nil), "alive: no CancelTask")
	require.False(t, stalled(p, "a"))

	// No heartbeat for HeartbeatTimeout: lost, cancelled, the worker stalled.
	p.expireBeats(beaten.Add(beat))
	msgs := outA.take(nil)
	require.Len(t, msgs, 1)
	require.Nil(t, msgs[0].w, "a CancelTask")
	require.Equal(t, task.id, msgs[0].id)
	require.True(t, stalled(p, "a"))
	select {
	case o := <-done:
		t.Fatalf("Execute returned %v instead of re-dispatching", o)
	default:
	}
	p.mu.Lock()
	a.free = 1 // as if the worker had credited a slot: a stalled worker still gets nothing
	p.mu.Unlock()

	b, outB := fakeWorker(p, "b", 1, "f")
	require.Eventually(t, func() bool { return len(outB.take(nil)) == 1 }, waitTimeout, time.Millisecond, "re-dispatched to b")
	require.Empty(t, outA.take(nil))
	p.mu.Lock()
	var again uint64
	for again = range b.tasks {
	}
	p.mu.Unlock()
	require.NoError(t, p.result(a, TaskResultToProto(task.id, scheduler.Fatal(scheduler.ReasonFatal, "late"))), "a late result is no protocol error")
	require.False(t, stalled(p, "a"), "answering un-stalls a worker")
	require.NoError(t, p.result(b, TaskResultToProto(again, scheduler.Success())))
	require.Equal(t, scheduler.Success(), <-done, "the late result was dropped")
	p.detach(a, context.Canceled)
	p.detach(b, context.Canceled)
}

func TestNewPoolValidates(t *testing.T) {
	t.Parallel()
	_, err := NewPool(PoolOptions{HeartbeatTimeout: time.Millisecond, MaxRedispatch: MaxMaxRedispatch + 1})
	require.ErrorContains(t, err, "HeartbeatTimeout is 1ms")
	require.ErrorContains(t, err, "MaxRedispatch is 101")
	_, err = NewPool(PoolOptions{HeartbeatTimeout: -time.Second})
	require.ErrorContains(t, err, "HeartbeatTimeout is -1s")
	p, err := NewPool(PoolOptions{MaxRedispatch: -1})
	require.NoError(t, err)
	require.Equal(t, DefaultHeartbeatTimeout, p.HeartbeatTimeout())
	require.Zero(t, p.maxRedispatch)
	require.NoError(t, p.Close())
	q := NewWorkerPool(nil)
	require.Equal(t, DefaultMaxRedispatch, q.maxRedispatch)
	require.NoError(t, q.Close())
}

// fakeWorker attaches a worker to a pool without a stream.
func fakeWorker(p *WorkerPool, id string, capacity int, functions ...string) (*poolWorker, *outbox) {
	out := newOutbox()
	return p.attach(id, functions, capacity, 0, out), out
}

func TestPoolPicksLeastLoadedWorker(t *testing.T) {
	t.Parallel()
	p := NewWorkerPool(nil)
	a, outA := fakeWorker(p, "a", 4, "f")
	b, outB := fakeWorker(p, "b", 4, "f")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan scheduler.Outcome, 4)
	for range 4 {
		go func() { done <- p.Execute(ctx, wl("f", "x"), 0) }()
	}
	require.Eventually(t, func() bool {
		p.mu.Lock()
		defer p.mu.Unlock()
		return len(a.tasks)+len(b.tasks) == 4
	}, waitTimeout, time.Millisecond)
	p.mu.Lock()
	require.Len(t, a.tasks, 2)
	require.Len(t, b.tasks, 2)
	p.mu.Unlock()
	cancel()
	for range 4 {
		require.Equal(t, scheduler.ReasonShutdown, (<-done).Reason)
	}
	require.Len(t, outA.take(nil), 4, "2 tasks and 2 cancels")
	require.Len(t, outB.take(nil), 4)
	p.detach(a, context.Canceled)
	p.detach(b, context.Canceled)
	require.NoError(t, p.Close())
}

func TestPoolCloseReleasesWaiters(t *testing.T) {
	t.Parallel()
	p := NewWorkerPool(nil)
	done := make(chan scheduler.Outcome, 1)
	go func() { done <- p.Execute(context.Background(), wl("f", "x"), time.Second) }()
	select {
	case o := <-done:
		t.Fatalf("Execute returned %v with no worker", o)
	case <-time.After(20 * time.Millisecond):
	}
	require.NoError(t, p.Close())
	o := <-done
	require.Equal(t, scheduler.OutcomeRetriable, o.Kind)
	require.Equal(t, scheduler.ReasonShutdown, o.Reason)
	require.Equal(t, scheduler.ReasonShutdown, p.Execute(context.Background(), wl("f", "y"), time.Second).Reason)
	require.NoError(t, p.Close(), "Close twice")
}

func TestPoolWaiterWakesOnCredit(t *testing.T) {
	t.Parallel()
	p, err := NewPool(PoolOptions{MaxRedispatch: -1}) // a lost attempt returns at once
	require.NoError(t, err)
	defer func() { require.NoError(t, p.Close()) }()
	wk, out := fakeWorker(p, "a", 1, "f")
	first := make(chan scheduler.Outcome, 1)
	go func() { first <- p.Execute(context.Background(), wl("f", "1"), 0) }()
	second := make(chan scheduler.Outcome, 1)
	require.Eventually(t, func() bool { return len(out.take(nil)) == 1 }, waitTimeout, time.Millisecond)
	go func() { second <- p.Execute(context.Background(), wl("f", "2"), 0) }()

	p.mu.Lock()
	var id uint64
	for id = range wk.tasks {
	}
	p.mu.Unlock()
	require.NoError(t, p.result(wk, TaskResultToProto(id, scheduler.Success())))
	require.Equal(t, scheduler.Success(), <-first)
	require.NoError(t, p.credit(wk, 1))
	require.Eventually(t, func() bool { return len(out.take(nil)) == 1 }, waitTimeout, time.Millisecond, "the waiter got the slot")
	p.detach(wk, context.Canceled)
	require.Equal(t, scheduler.ReasonWorkerLost, (<-second).Reason)
}
