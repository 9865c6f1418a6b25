package rpc

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	kasyncv1 "github.com/kasync/kasync/proto/kasync/v1"
	"github.com/kasync/kasync/scheduler"
)

func TestPoolTimeoutCancelsTaskAndDropsLateResult(t *testing.T) {
	t.Parallel()
	e := newEnv(t, []scheduler.Function{{Name: "f", Concurrency: 2, Timeout: 100 * time.Millisecond}}, envOptions{})
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
}

func TestPoolTimeoutStartsWhenTaskIsSent(t *testing.T) {
	t.Parallel()
	const timeout = 100 * time.Millisecond
	e := newEnv(t, []scheduler.Function{{Name: "f", Concurrency: 1, Timeout: timeout}}, envOptions{})
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
}

func TestPoolWorkerLostFailsItsTasksAtOnce(t *testing.T) {
	t.Parallel()
	e := newEnv(t, []scheduler.Function{{Name: "f", Concurrency: 4, Timeout: time.Hour}}, envOptions{})
	w, err := dialWorker(t, e, &kasyncv1.WorkerHello{WorkerId: "doomed", Functions: []string{"f"}, Capacity: 3})
	require.NoError(t, err)
	r := newResults()
	st, err := e.client.Open(ctxT(t), "lost", r.deliver)
	require.NoError(t, err)
	defer func() { require.NoError(t, st.Close()) }()
	require.NoError(t, st.Push(ctxT(t), []scheduler.Pushed{
		{Token: 1, Workload: wl("f", "a")}, {Token: 2, Workload: wl("f", "b")}, {Token: 3, Workload: wl("f", "c")},
	}))
	for range 3 {
		require.NotNil(t, w.recv(t).GetTask())
	}
	w.cancel() // the worker process dies
	r.waitN(t, 3)
	for token := range uint64(3) {
		o := r.outcome(t, token+1)
		require.Equal(t, scheduler.OutcomeRetriable, o.Kind)
		require.Equal(t, scheduler.ReasonWorkerLost, o.Reason)
	}
	require.Eventually(t, func() bool { return len(e.pool.Workers()) == 0 }, waitTimeout, time.Millisecond)
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
	p := NewWorkerPool(nil)
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
