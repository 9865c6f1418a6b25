package rpc

import (
	"fmt"
	"time"

	"github.com/kasync/kasync/scheduler"
)

// HeartbeatTimeoutHeader is the response header of a Work stream that tells the worker
// the pool's heartbeat timeout, in milliseconds (decimal). A worker should heartbeat
// its running tasks at most a third of it apart; the Go SDK does.
const HeartbeatTimeoutHeader = "kasync-heartbeat-timeout-ms"

// The heartbeat check is one timer per pool (no goroutine while it waits, none per
// task): it fires at the earliest time a held task could have gone HeartbeatTimeout
// without a sign of life, takes every such task as lost, and re-arms itself for the
// next. A heartbeat only moves deadlines later, so a timer that fires early finds
// nothing and re-arms; a task sent later has a later deadline than any armed one.

// beatSlack is the fraction of HeartbeatTimeout the check may be late by, so that
// tasks whose deadlines fall close together are taken in one pass (and one log line
// per worker) rather than one timer each.
const beatSlack = 20

// armBeatsLocked makes sure the heartbeat check runs no later than at. Callers hold mu.
func (p *WorkerPool) armBeatsLocked(at time.Time) {
	if p.closed || (!p.beatAt.IsZero() && !p.beatAt.After(at)) {
		return
	}
	p.beatAt = at
	d := time.Until(at)
	if p.beats == nil {
		p.beats = time.AfterFunc(d, func() { p.expireBeats(time.Now()) })
		return
	}
	p.beats.Reset(d)
}

// expireBeats takes as lost every task that has had no heartbeat naming it, and no
// result, for HeartbeatTimeout before now: the worker is told to cancel it, its result
// will be dropped, and its Execute gets a worker-lost end (and re-dispatches it). A
// worker that lost tasks this way is stalled: it gets no new task until it sends a
// message. Then it re-arms the check for the next deadline.
func (p *WorkerPool) expireBeats(now time.Time) {
	p.mu.Lock()
	defer p.unlockAndFire()
	p.beatAt = time.Time{}
	if p.closed {
		return
	}
	var next time.Time
	for wk := range p.all {
		lost := 0
		for _, task := range wk.tasks {
			if task.abandoned {
				continue
			}
			deadline := task.lastBeat.Add(p.heartbeatTimeout)
			if deadline.After(now) {
				if next.IsZero() || deadline.Before(next) {
					next = deadline
				}
				continue
			}
			task.abandoned = true
			p.stopTimeoutLocked(task)
			p.endTaskLocked(task, taskEnd{lost: true, Outcome: scheduler.Retriable(scheduler.ReasonWorkerLost,
				fmt.Sprintf("worker %q sent no heartbeat for task %d in %v", wk.id, task.id, p.heartbeatTimeout))})
			wk.out.cancel(task.id)
			lost++
		}
		if lost > 0 {
			wk.stalled = true
			p.log.Warn("worker sent no heartbeats for running tasks; taking them as lost and sending it no more until it answers",
				"worker", wk.id, "tasks", lost, "heartbeat_timeout", p.heartbeatTimeout)
		}
	}
	if !next.IsZero() {
		p.armBeatsLocked(later(next, now.Add(p.heartbeatTimeout/beatSlack)))
	}
}

// aliveLocked records that wk sent a message: a stalled worker gets tasks again.
// Callers hold mu.
func (p *WorkerPool) aliveLocked(wk *poolWorker) {
	if !wk.stalled {
		return
	}
	wk.stalled = false
	p.log.Info("stalled worker is answering again; sending it tasks", "worker", wk.id)
	p.wakeLocked(wk.functions)
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
