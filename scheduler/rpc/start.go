package rpc

import (
	"context"
	"fmt"
	"time"

	"github.com/kasync/kasync/scheduler"
)

// Started tasks (Start) keep every promise of Execute without a goroutine waiting for
// each: their ends are collected under the pool's mu wherever they happen (a result, a
// timeout, a lost worker, a done ctx) and delivered once mu is released. A started task
// whose worker was lost is re-dispatched like Execute's, by a goroutine of its own: a
// rare path, which may have to wait for capacity.

// started is how a task handed over by Start ends.
type started struct {
	ctx          context.Context
	done         <-chan struct{} // ctx.Done(): the task's group in the pool's watches; nil: never done
	w            *scheduler.Workload
	timeout      time.Duration
	end          func(scheduler.Outcome)
	redispatched int
}

// Start implements scheduler.AsyncExecutor: it hands one attempt of w to a worker that
// serves w.Function and returns; end gets the outcome, as Execute would return it,
// once the worker answers (or the attempt times out, its worker is lost more than
// MaxRedispatch times, or ctx is done). Start waits, within ctx, for a worker with free
// capacity; it calls end itself when ctx ends first or the pool is closed.
func (p *WorkerPool) Start(ctx context.Context, w *scheduler.Workload, timeout time.Duration, end func(scheduler.Outcome)) {
	p.dispatch(&started{ctx: ctx, done: ctx.Done(), w: w, timeout: timeout, end: end})
}

// dispatch claims a worker for st and sends it the task, or ends st when none can be
// had.
func (p *WorkerPool) dispatch(st *started) {
	wk, task, o, ok := p.claim(st.ctx, st.w.Function, st.timeout, st)
	if !ok {
		st.end(o)
		return
	}
	wk.out.task(task.id, st.w, task.timeout)
}

// watchLocked counts a started task in its ctx's group, watching the group's ctx when
// it is the first. Callers hold mu.
func (p *WorkerPool) watchLocked(st *started) {
	if st.done == nil {
		return
	}
	cw := p.watches[st.done]
	if cw == nil {
		done := st.done
		cw = &ctxWatch{}
		cw.stop = context.AfterFunc(st.ctx, func() { p.ctxDone(done) })
		p.watches[done] = cw
	}
	cw.n++
}

// unwatchLocked takes an ended started task out of its group; the last one out stops
// the watch. Callers hold mu.
func (p *WorkerPool) unwatchLocked(st *started) {
	if st.done == nil {
		return
	}
	cw := p.watches[st.done]
	if cw == nil {
		return // the group's ctx is done: ctxDone removed it
	}
	if cw.n--; cw.n == 0 {
		cw.stop()
		delete(p.watches, st.done)
	}
}

// ctxDone ends every started task of the group of done, which the tasks' ctx closed,
// as Execute ends its task when its ctx is done: retriable, the worker told to cancel
// it, its result dropped when it comes.
func (p *WorkerPool) ctxDone(done <-chan struct{}) {
	p.mu.Lock()
	defer p.unlockAndFire()
	if p.watches[done] == nil {
		return // every task of the group ended meanwhile
	}
	delete(p.watches, done)
	for wk := range p.all {
		for _, task := range wk.tasks {
			st := task.started
			if task.abandoned || st == nil || st.done != done {
				continue
			}
			task.abandoned = true
			p.stopTimeoutLocked(task)
			p.fired = append(p.fired, firedEnd{task: task, end: taskEnd{Outcome: scheduler.Retriable(scheduler.ReasonShutdown,
				fmt.Sprintf("function %q: attempt cancelled on worker %q: %v", task.function, wk.id, context.Cause(st.ctx)))}})
			wk.out.cancel(task.id)
		}
	}
}

// endTaskLocked ends task: Execute's gets end on its channel, a started task's end is
// delivered once mu is released. Exactly once per task, and never after it was
// abandoned. Callers hold mu.
func (p *WorkerPool) endTaskLocked(task *poolTask, end taskEnd) {
	if task.started == nil {
		task.result <- end
		return
	}
	p.unwatchLocked(task.started)
	p.fired = append(p.fired, firedEnd{task: task, end: end})
}

// unlockAndFire releases mu, then delivers the ends of started tasks collected under
// it.
func (p *WorkerPool) unlockAndFire() {
	fired := p.fired
	p.fired = nil
	p.mu.Unlock()
	for i := range fired {
		p.fire(fired[i].task, fired[i].end)
	}
}

// fire delivers a started task's end: to its end func, or, when its worker was lost
// and it may still be re-dispatched, to another worker.
func (p *WorkerPool) fire(task *poolTask, end taskEnd) {
	st := task.started
	if end.lost {
		if st.redispatched < p.maxRedispatch && st.ctx.Err() == nil {
			st.redispatched++
			p.log.Debug("re-dispatching an attempt whose worker was lost", "function", st.w.Function, "workload", st.w.ID,
				"attempt", st.w.Attempt, "worker", task.wk.id, "redispatch", st.redispatched, "err", end.Err)
			go p.dispatch(st) // it may wait for capacity; it ends within st.ctx
			return
		}
		if st.redispatched > 0 {
			end.Err = fmt.Sprintf("%s (lost %d times in a row; not re-dispatched again)", end.Err, st.redispatched+1)
		}
	}
	st.end(end.Outcome)
}
