package runtime

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"sync/atomic"
	"time"

	"github.com/kasync/kasync/internal/deadlinectx"
	kasyncv1 "github.com/kasync/kasync/proto/kasync/v1"
	"github.com/kasync/kasync/scheduler"
	"github.com/kasync/kasync/scheduler/rpc"
)

// workerTask is one task a session runs. The function runs on the task's own goroutine
// (no second hop); its ctx carries the task's deadline (a deadlinectx, which arms no
// timer unless the function waits on it). The task is answered exactly once, by
// whichever comes first: the function returning, its timeout (the session's watch, so
// a function that ignores its ctx still frees its slot then), or abort (CancelTask, a
// broken stream, the drain timeout). A function still running when the task is
// answered is left to finish on its own and its outcome dropped, as Registry.Execute
// does.
type workerTask struct {
	s        *session
	id       uint64
	task     Task
	timeout  time.Duration
	deadline time.Time // when timeout > 0
	ctx      context.Context
	dctx     *deadlinectx.Context // ctx, when timeout > 0
	cancel   context.CancelFunc   // ends ctx, when timeout <= 0
	answered atomic.Bool
}

// start runs tasks, each on its own goroutine, each in a slot of the ledger; tasks that
// arrive while draining are answered at once as retriable, so another worker can take
// them. The tasks of one
// message are allocated together and registered under one lock.
func (s *session) start(pts []*kasyncv1.Task) {
	w := s.w
	wts := make([]workerTask, len(pts))
	now := time.Now()
	for i, pt := range pts {
		wts[i].init(s, pt, now)
	}
	// Under s.mu, so that a drain (which leaves the ledger, then counts the tasks under
	// s.mu) either sees these tasks or they find the session no longer live.
	s.mu.Lock()
	w.mu.Lock()
	live := s.live
	ok := w.takeLocked(s, len(wts))
	w.mu.Unlock()
	if ok < len(wts) {
		// No slot: a draining session (not live) or a scheduler over its credit.
		o := scheduler.Retriable(scheduler.ReasonShutdown, "the worker is shutting down")
		if live {
			w.log.Warn("the scheduler sent more tasks than its credit; answering them retriable without running them",
				"tasks", len(wts)-ok)
			o = scheduler.Retriable(scheduler.ReasonOverloaded, "the worker has no free slot: the scheduler sent more tasks than its credit")
		}
		for i := range wts[ok:] {
			wts[ok+i].end()
			s.queue(&pendingResult{id: wts[ok+i].id, o: o}, false)
		}
		wts = wts[:ok]
	}
	for i := range wts {
		s.tasks[wts[i].id] = &wts[i]
		if wts[i].timeout > 0 {
			s.watchLocked(wts[i].deadline)
		}
	}
	s.mu.Unlock()
	w.tasks.Add(len(wts))
	for i := range wts {
		go wts[i].run()
	}
}

// init sets up the task carried by pt, received at now. Its ctx is not derived from
// Run's ctx: a drain lets running tasks finish.
func (wt *workerTask) init(s *session, pt *kasyncv1.Task, now time.Time) {
	wt.s, wt.id = s, pt.GetTaskId()
	wt.task = Task{
		ID:       pt.GetId(),
		Function: pt.GetFunction(),
		Key:      pt.GetKey(),
		Payload:  pt.GetPayload(),
		Headers:  rpc.HeadersFromProto(pt.GetHeaders()),
		Attempt:  int(min(pt.GetAttempt(), math.MaxInt32)),
	}
	wt.task.heartbeatFunc = wt.heartbeat
	wt.timeout = rpc.TaskTimeout(pt)
	if wt.timeout > 0 {
		wt.deadline = now.Add(wt.timeout)
		wt.dctx = deadlinectx.New(context.Background(), wt.deadline)
		wt.ctx = wt.dctx
	} else {
		wt.ctx, wt.cancel = context.WithCancel(context.Background())
	}
}

// end ends the task's ctx: cancelled, unless it reported its deadline first.
func (wt *workerTask) end() {
	if wt.dctx != nil {
		_ = wt.dctx.Err() // a deadline that passed stays DeadlineExceeded
		wt.dctx.Release()
		return
	}
	wt.cancel()
}

func (wt *workerTask) heartbeat(context.Context) error { return wt.s.heartbeat([]uint64{wt.id}) }

// run runs the function and answers the task, unless it was answered first.
func (wt *workerTask) run() {
	t := &wt.task
	r := wt.s.w.cfg.Registry
	var o scheduler.Outcome
	defer func() { // also after a runtime.Goexit
		wt.answer(o)
		wt.end()
	}()
	f, ok := r.Lookup(t.Function)
	if !ok {
		o = unknown(t.Function)
		return
	}
	r.call(wt.ctx, f, t, &o)
}

// timedOut answers the task at its timeout, if the function has not returned.
func (wt *workerTask) timedOut() {
	// The ctx is not cancelled here: its own deadline ends it with DeadlineExceeded.
	t := &wt.task
	if wt.answer(scheduler.Retriable(scheduler.ReasonTimeout,
		fmt.Sprintf("function %q ran past its timeout of %v", t.Function, wt.timeout))) {
		reg := wt.s.w.cfg.Registry
		reg.repeats.Log(reg.log(), slog.LevelWarn, "timeout "+t.Function, "runtime: function ran past its timeout; its slot is freed and its goroutine left to finish",
			"function", t.Function, "workload", t.ID, "attempt", t.Attempt, "timeout", wt.timeout)
	}
}

// abort cancels the task's ctx and answers it as cancelled, if the function has not
// returned: CancelTask, a broken stream, the drain timeout.
func (wt *workerTask) abort() {
	wt.end()
	wt.answer(cancelled(wt.ctx, &wt.task))
}

// answer finishes the task with o, unless it was answered already; it reports whether
// it did.
func (wt *workerTask) answer(o scheduler.Outcome) bool {
	if !wt.answered.CompareAndSwap(false, true) {
		return false
	}
	wt.s.finish(wt.id, o)
	wt.s.w.tasks.Done()
	return true
}
