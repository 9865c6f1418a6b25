package rpc

import (
	"container/heap"
	"fmt"
	"time"

	"github.com/kasync/kasync/scheduler"
)

// Attempt timeouts are one timer per pool, not one per task: tasks with a timeout sit
// in a min-heap by deadline (guarded by the pool's mu), and the timer fires at the
// earliest deadline armed. A task leaves the heap when its Execute gets its end
// (result, timeout, lost worker, cancelled ctx), so the heap holds at most the tasks
// on workers. The timer is re-armed only for an earlier deadline; when the task it
// was armed for ended first, it fires early, finds nothing due and re-arms for the
// next deadline.

// deadlines is a min-heap of tasks by deadline; each task knows its index.
type deadlines []*poolTask

func (d deadlines) Len() int           { return len(d) }
func (d deadlines) Less(i, j int) bool { return d[i].deadline.Before(d[j].deadline) }
func (d deadlines) Swap(i, j int) {
	d[i], d[j] = d[j], d[i]
	d[i].heapIdx, d[j].heapIdx = i, j
}
func (d *deadlines) Push(x any) {
	t := x.(*poolTask)
	t.heapIdx = len(*d)
	*d = append(*d, t)
}
func (d *deadlines) Pop() any {
	old := *d
	t := old[len(old)-1]
	old[len(old)-1] = nil
	*d = old[:len(old)-1]
	t.heapIdx = -1
	return t
}

// startTimeoutLocked starts task's timeout, now. Callers hold mu.
func (p *WorkerPool) startTimeoutLocked(task *poolTask, now time.Time) {
	task.heapIdx = -1
	if task.timeout <= 0 {
		return
	}
	task.deadline = now.Add(task.timeout)
	heap.Push(&p.deadlines, task)
	if p.closed || (!p.timeoutAt.IsZero() && !p.timeoutAt.After(task.deadline)) {
		return
	}
	p.timeoutAt = task.deadline
	d := task.deadline.Sub(now)
	if p.timeouts == nil {
		p.timeouts = time.AfterFunc(d, func() { p.expireTimeouts(time.Now()) })
		return
	}
	p.timeouts.Reset(d)
}

// stopTimeoutLocked takes task out of the heap, if it is there. Callers hold mu.
func (p *WorkerPool) stopTimeoutLocked(task *poolTask) {
	if task.heapIdx >= 0 {
		heap.Remove(&p.deadlines, task.heapIdx)
	}
}

// expireTimeouts ends every task whose deadline is not after now with a retriable
// "timeout" (unless a result came first, which then already took it out of the heap),
// tells its worker to cancel it and drops its result when it comes; then it re-arms
// the timer for the next deadline.
func (p *WorkerPool) expireTimeouts(now time.Time) {
	p.mu.Lock()
	defer p.unlockAndFire()
	p.timeoutAt = time.Time{}
	if p.closed && len(p.deadlines) == 0 {
		return
	}
	for len(p.deadlines) > 0 && !p.deadlines[0].deadline.After(now) {
		task := heap.Pop(&p.deadlines).(*poolTask)
		task.abandoned = true
		p.endTaskLocked(task, taskEnd{Outcome: scheduler.Retriable(scheduler.ReasonTimeout,
			fmt.Sprintf("function %q: no result from worker %q within %v", task.function, task.wk.id, task.timeout))})
		if !task.wk.gone {
			task.wk.out.cancel(task.id)
		}
	}
	if len(p.deadlines) > 0 {
		next := p.deadlines[0].deadline
		p.timeoutAt = next
		p.timeouts.Reset(next.Sub(now))
	}
}
