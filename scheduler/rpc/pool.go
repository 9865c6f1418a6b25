package rpc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	kasyncv1 "github.com/kasync/kasync/proto/kasync/v1"
	"github.com/kasync/kasync/scheduler"
)

// errProtocol is wrapped by the errors poolWorker methods return for protocol
// violations; the Work handler turns them into INVALID_ARGUMENT.
var errProtocol = errors.New("protocol violation")

// Pool defaults.
const (
	// DefaultHeartbeatTimeout is PoolOptions.HeartbeatTimeout when it is 0: three of
	// the Go SDK's default heartbeats (runtime.DefaultWorkerHeartbeat, 5s).
	DefaultHeartbeatTimeout = 15 * time.Second
	// MinHeartbeatTimeout is the smallest HeartbeatTimeout accepted.
	MinHeartbeatTimeout = 10 * time.Millisecond
	// DefaultMaxRedispatch is PoolOptions.MaxRedispatch when it is 0.
	DefaultMaxRedispatch = 2
	// MaxMaxRedispatch is the largest MaxRedispatch accepted.
	MaxMaxRedispatch = 100
)

// PoolOptions configure a WorkerPool. The zero value is valid.
type PoolOptions struct {
	// HeartbeatTimeout: a task whose worker has neither named it in a Heartbeat nor
	// answered it for this long is taken as lost (default DefaultHeartbeatTimeout, at
	// least MinHeartbeatTimeout). A worker must heartbeat its running tasks more often
	// than this; the pool tells it the value in the Work stream's response header
	// HeartbeatTimeoutHeader, and the Go SDK heartbeats at most a third of it apart.
	HeartbeatTimeout time.Duration
	// MaxRedispatch bounds how often one Execute re-dispatches an attempt whose worker
	// was lost (stream ended, or heartbeats stopped) before it returns the worker-lost
	// outcome (default DefaultMaxRedispatch, at most MaxMaxRedispatch; negative: never,
	// a lost attempt is returned at once).
	MaxRedispatch int
	// Logger receives worker losses and re-dispatches (default slog.Default()).
	Logger *slog.Logger
}

func (o PoolOptions) withDefaults() PoolOptions {
	if o.HeartbeatTimeout == 0 {
		o.HeartbeatTimeout = DefaultHeartbeatTimeout
	}
	if o.MaxRedispatch == 0 {
		o.MaxRedispatch = DefaultMaxRedispatch
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o
}

func (o PoolOptions) validate() error {
	var errs []error
	if o.HeartbeatTimeout < MinHeartbeatTimeout {
		errs = append(errs, fmt.Errorf("HeartbeatTimeout is %v; it must be at least %v (0 for the default %v)",
			o.HeartbeatTimeout, MinHeartbeatTimeout, DefaultHeartbeatTimeout))
	}
	if o.MaxRedispatch > MaxMaxRedispatch {
		errs = append(errs, fmt.Errorf("MaxRedispatch is %d; it must be at most %d (0 for the default %d, negative for none)",
			o.MaxRedispatch, MaxMaxRedispatch, DefaultMaxRedispatch))
	}
	return errors.Join(errs...)
}

// WorkerPool is the scheduler.Executor for functions that SDK workers serve. Workers
// join it through Work streams (see Server.Work); Execute hands each attempt to a
// connected worker with free capacity and waits for its result, re-dispatching it
// when that worker is lost.
type WorkerPool struct {
	log              *slog.Logger
	heartbeatTimeout time.Duration
	maxRedispatch    int // >= 0
	nextID           atomic.Uint64

	mu      sync.Mutex
	byFunc  map[string][]*poolWorker // connected workers per function
	changed map[string]chan struct{} // per function: closed when capacity may have appeared
	rr      map[string]int           // per function: round-robin offset
	closed  bool
	all     map[*poolWorker]struct{} // every connected worker
	beats   *time.Timer              // runs expireBeats; nil until the first task
	beatAt  time.Time                // when beats fires; zero when it is not armed

	deadlines deadlines   // tasks with a timeout, by deadline (timeout.go)
	timeouts  *time.Timer // runs expireTimeouts; nil until the first timeout
	timeoutAt time.Time   // when timeouts fires; zero when it is not armed

	// Started tasks (see Start): their ends are collected under mu into fired and
	// delivered by whoever unlocks (unlockAndFire), never under mu. watches groups
	// them by their ctx's Done channel, so that one context.AfterFunc per group ends
	// them all when it is done.
	fired   []firedEnd
	watches map[<-chan struct{}]*ctxWatch
}

// firedEnd is a started task's end, to deliver once mu is released.
type firedEnd struct {
	task *poolTask
	end  taskEnd
}

// ctxWatch is the started tasks of one ctx (by its Done channel) that have not ended.
type ctxWatch struct {
	n    int
	stop func() bool // stops the AfterFunc that ends them when ctx is done
}

// NewWorkerPool returns an empty pool with the default PoolOptions. logger may be nil
// (slog.Default()).
func NewWorkerPool(logger *slog.Logger) *WorkerPool {
	return newPool(PoolOptions{Logger: logger}.withDefaults())
}

// NewPool returns an empty pool configured by opts; it reports every invalid option.
func NewPool(opts PoolOptions) (*WorkerPool, error) {
	opts = opts.withDefaults()
	if err := opts.validate(); err != nil {
		return nil, fmt.Errorf("rpc: new worker pool: %w", err)
	}
	return newPool(opts), nil
}

func newPool(opts PoolOptions) *WorkerPool {
	return &WorkerPool{
		log:              opts.Logger,
		heartbeatTimeout: opts.HeartbeatTimeout,
		maxRedispatch:    max(opts.MaxRedispatch, 0),
		byFunc:           make(map[string][]*poolWorker),
		changed:          make(map[string]chan struct{}),
		rr:               make(map[string]int),
		all:              make(map[*poolWorker]struct{}),
		watches:          make(map[<-chan struct{}]*ctxWatch),
	}
}

// HeartbeatTimeout is how long a task may go without a heartbeat or result.
func (p *WorkerPool) HeartbeatTimeout() time.Duration { return p.heartbeatTimeout }

// poolWorker is one connected worker (one Work stream). Fields other than the
// immutable ones are guarded by the pool's mu.
type poolWorker struct {
	id        string
	functions []string
	capacity  int
	out       *outbox // messages to the worker, sent by the stream's sender goroutine

	free    int                  // tasks the worker granted credit for and has not been sent
	tasks   map[uint64]*poolTask // tasks sent and not answered, including abandoned ones
	gone    bool
	stalled bool // tasks of it missed heartbeats; it gets none until it sends something
}

type poolTask struct {
	id        uint64
	wk        *poolWorker
	function  string
	result    chan taskEnd // Execute's: buffered 1; written once, under the pool's mu
	abandoned bool         // the pool gave up (timeout, ctx, heartbeats); the result is dropped
	lastBeat  time.Time    // when it was sent, or last named in a heartbeat

	started *started // Start's: how it ends; nil for Execute's tasks

	timeout  time.Duration // 0: none
	deadline time.Time     // lastBeat + timeout, when timeout > 0
	heapIdx  int           // index in the pool's deadlines; -1 when not there
}

// endChans recycles the channels that carry a task's end to its Execute.
var endChans = sync.Pool{New: func() any { return make(chan taskEnd, 1) }}

// taskEnd is how a task ended for Execute.
type taskEnd struct {
	scheduler.Outcome
	lost bool // the pool took the worker as lost (not the worker's own result): re-dispatch
}

// Execute runs one attempt of w on a worker that serves w.Function. It waits, without
// a timeout but respecting ctx, for such a worker with free capacity; timeout counts
// from when the task is handed to the worker's stream.
//
// When the worker is lost before it answers (its stream ends, or it stops naming the
// task in heartbeats), the function did not fail: Execute hands the same attempt (the
// same w.Attempt) to a worker again, with a fresh timeout, up to MaxRedispatch times;
// then it returns the worker-lost outcome, so that a task that kills every worker it
// touches does not loop for ever.
func (p *WorkerPool) Execute(ctx context.Context, w *scheduler.Workload, timeout time.Duration) scheduler.Outcome {
	for redispatched := 0; ; redispatched++ {
		wk, task, o, ok := p.claim(ctx, w.Function, timeout, nil)
		if !ok {
			return o
		}
		end := p.run(ctx, wk, task, w)
		// Exactly one end is ever sent to a task (and nothing after it was abandoned),
		// and run has taken it: the channel is empty and no one else holds it.
		endChans.Put(task.result)
		if !end.lost {
			return end.Outcome
		}
		if redispatched >= p.maxRedispatch || ctx.Err() != nil {
			if redispatched > 0 {
				end.Err = fmt.Sprintf("%s (lost %d times in a row; not re-dispatched again)", end.Err, redispatched+1)
			}
			return end.Outcome
		}
		p.log.Debug("re-dispatching an attempt whose worker was lost", "function", w.Function, "workload", w.ID,
			"attempt", w.Attempt, "worker", wk.id, "redispatch", redispatched+1, "err", end.Err)
	}
}

// run sends task to wk and waits for its end (a result, the timeout, a lost worker) or
// ctx. The timeout runs from the claim (timeout.go), without a timer of its own.
func (p *WorkerPool) run(ctx context.Context, wk *poolWorker, task *poolTask, w *scheduler.Workload) taskEnd {
	wk.out.task(task.id, w, task.timeout)
	select {
	case end := <-task.result:
		return end
	case <-ctx.Done():
		return p.abandon(wk, task, scheduler.Retriable(scheduler.ReasonShutdown,
			fmt.Sprintf("function %q: attempt cancelled on worker %q: %v", w.Function, wk.id, context.Cause(ctx))))
	}
}

// claim reserves one unit of a worker's capacity for function and registers a task,
// whose timeout starts now: Execute's (st nil), with a channel for its end, or one
// handed over by Start.
func (p *WorkerPool) claim(ctx context.Context, function string, timeout time.Duration, st *started) (*poolWorker, *poolTask, scheduler.Outcome, bool) {
	for {
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			return nil, nil, scheduler.Retriable(scheduler.ReasonShutdown, "worker pool is closed"), false
		}
		if wk := p.pick(function); wk != nil {
			now := time.Now()
			task := &poolTask{id: p.nextID.Add(1), wk: wk, function: function, lastBeat: now, timeout: timeout, started: st}
			if st == nil {
				task.result = endChans.Get().(chan taskEnd)
			} else {
				p.watchLocked(st)
			}
			wk.free--
			wk.tasks[task.id] = task
			p.startTimeoutLocked(task, now)
			p.armBeatsLocked(now.Add(p.heartbeatTimeout))
			p.mu.Unlock()
			return wk, task, scheduler.Outcome{}, true
		}
		changed := p.changedLocked(function)
		p.mu.Unlock()
		select {
		case <-changed:
		case <-ctx.Done():
			return nil, nil, scheduler.Retriable(scheduler.ReasonShutdown,
				fmt.Sprintf("function %q: gave up waiting for a worker: %v", function, context.Cause(ctx))), false
		}
	}
}

// pick returns the least loaded worker of function with free capacity that is not
// stalled; ties go round robin. Callers hold mu.
func (p *WorkerPool) pick(function string) *poolWorker {
	ws := p.byFunc[function]
	if len(ws) == 0 {
		return nil
	}
	start := p.rr[function] % len(ws)
	var best *poolWorker
	for i := range ws {
		wk := ws[(start+i)%len(ws)]
		if wk.free > 0 && !wk.stalled && (best == nil || len(wk.tasks) < len(best.tasks)) {
			best = wk
		}
	}
	if best != nil {
		p.rr[function] = start + 1
	}
	return best
}

func (p *WorkerPool) changedLocked(function string) chan struct{} {
	ch, ok := p.changed[function]
	if !ok {
		ch = make(chan struct{})
		p.changed[function] = ch
	}
	return ch
}

// wakeLocked wakes the waiters of functions; callers hold mu.
func (p *WorkerPool) wakeLocked(functions []string) {
	for _, f := range functions {
		if ch, ok := p.changed[f]; ok {
			close(ch)
			delete(p.changed, f)
		}
	}
}

// abandon gives up on a task: a result that raced in wins; otherwise the worker is told
// to cancel it, and its result, when it comes, is dropped.
func (p *WorkerPool) abandon(wk *poolWorker, task *poolTask, o scheduler.Outcome) taskEnd {
	p.mu.Lock()
	select {
	case got := <-task.result:
		p.mu.Unlock()
		return got
	default:
	}
	task.abandoned = true
	p.stopTimeoutLocked(task)
	gone := wk.gone
	p.mu.Unlock()
	if !gone {
		wk.out.cancel(task.id)
	}
	return taskEnd{Outcome: o}
}

// Close fails every waiting and future Execute with a retriable "shutdown" outcome,
// and stops the heartbeat checks. Tasks already on workers still get their results
// (or their timeouts). Close does not end Work streams; stopping the gRPC server does.
func (p *WorkerPool) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil
	}
	p.closed = true
	if p.beats != nil {
		p.beats.Stop()
	}
	// Tasks on workers keep their timeouts: the timer keeps running while any is left.
	for f, ch := range p.changed {
		close(ch)
		delete(p.changed, f)
	}
	return nil
}

// WorkerInfo describes one connected worker, for status views.
type WorkerInfo struct {
	ID        string
	Functions []string
	Capacity  int
	Running   int  // tasks sent and not answered
	Free      int  // credit not yet used
	Stalled   bool // tasks of it missed heartbeats, and it has sent nothing since
}

// Workers lists the connected workers.
func (p *WorkerPool) Workers() []WorkerInfo {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]WorkerInfo, 0, len(p.all))
	for wk := range p.all {
		out = append(out, WorkerInfo{ID: wk.id, Functions: wk.functions, Capacity: wk.capacity, Running: len(wk.tasks), Free: wk.free, Stalled: wk.stalled})
	}
	return out
}

// attach adds a worker with capacity-busy initial credit.
func (p *WorkerPool) attach(id string, functions []string, capacity, busy int, out *outbox) *poolWorker {
	wk := &poolWorker{id: id, functions: functions, capacity: capacity, out: out,
		free: capacity - busy, tasks: make(map[uint64]*poolTask)}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.all[wk] = struct{}{}
	for _, f := range functions {
		p.byFunc[f] = append(p.byFunc[f], wk)
	}
	p.wakeLocked(functions)
	return wk
}

// detach removes a worker whose stream ended; each task it held is lost (its Execute
// re-dispatches it, up to MaxRedispatch).
func (p *WorkerPool) detach(wk *poolWorker, cause error) {
	p.mu.Lock()
	defer p.unlockAndFire()
	if wk.gone {
		return
	}
	wk.gone = true
	delete(p.all, wk)
	for _, f := range wk.functions {
		ws := p.byFunc[f]
		for i, x := range ws {
			if x == wk {
				ws = append(ws[:i], ws[i+1:]...)
				break
			}
		}
		if len(ws) == 0 {
			delete(p.byFunc, f)
		} else {
			p.byFunc[f] = ws
		}
	}
	lost := 0
	for id, task := range wk.tasks {
		p.stopTimeoutLocked(task)
		if !task.abandoned {
			p.endTaskLocked(task, taskEnd{lost: true, Outcome: scheduler.Retriable(scheduler.ReasonWorkerLost,
				fmt.Sprintf("worker %q went away: %v", wk.id, cause))})
			lost++
		}
		delete(wk.tasks, id)
	}
	wk.free = 0
	if lost > 0 {
		p.log.Warn("worker lost with running tasks", "worker", wk.id, "tasks", lost, "cause", cause)
	}
}

// credit adds n to a worker's free capacity.
func (p *WorkerPool) credit(wk *poolWorker, n uint32) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if n == 0 {
		return fmt.Errorf("%w: WorkCredit.n is 0; send credit only for freed slots", errProtocol)
	}
	return p.creditLocked(wk, n)
}

func (p *WorkerPool) creditLocked(wk *poolWorker, n uint32) error {
	if int64(wk.free)+int64(n)+int64(len(wk.tasks)) > int64(wk.capacity) {
		return fmt.Errorf("%w: WorkCredit of %d would give %d free slots and %d held tasks, over the capacity %d of the hello",
			errProtocol, n, int64(wk.free)+int64(n), len(wk.tasks), wk.capacity)
	}
	wk.free += int(n)
	p.aliveLocked(wk)
	p.wakeLocked(wk.functions)
	return nil
}

// result answers a task.
func (p *WorkerPool) result(wk *poolWorker, r *kasyncv1.TaskResult) error {
	return p.results(wk, nil, []*kasyncv1.TaskResult{r}, 0)
}

// results answers tasks: those in succeeded with a plain success, then those in rs in
// order, then adds credit (when positive) to the worker's free capacity, as that many
// TaskResult messages and then a WorkCredit would: a batch takes the pool's lock once.
// A result for a task the worker does not hold (unknown, or answered already, also
// earlier in the same batch) is a protocol error; so is a batch with nothing in it.
func (p *WorkerPool) results(wk *poolWorker, succeeded []uint64, rs []*kasyncv1.TaskResult, credit uint32) error {
	if len(succeeded) == 0 && len(rs) == 0 && credit == 0 {
		return fmt.Errorf("%w: TaskResultBatch has no results, no succeeded tasks and no credit", errProtocol)
	}
	// Checked before anything is applied; the outcomes are converted outside the lock.
	var one [1]scheduler.Outcome
	outcomes := one[:0]
	if len(rs) > 1 {
		outcomes = make([]scheduler.Outcome, 0, len(rs))
	}
	for _, r := range rs {
		o, err := TaskResultFromProto(r)
		if err != nil {
			return fmt.Errorf("%w: %w", errProtocol, err)
		}
		outcomes = append(outcomes, o)
	}
	p.mu.Lock()
	defer p.unlockAndFire()
	for _, id := range succeeded {
		if err := p.endLocked(wk, id, scheduler.Success()); err != nil {
			return err
		}
	}
	for i, r := range rs {
		if err := p.endLocked(wk, r.GetTaskId(), outcomes[i]); err != nil {
			return err
		}
	}
	if credit > 0 {
		return p.creditLocked(wk, credit)
	}
	p.aliveLocked(wk)
	return nil
}

// endLocked ends task id of wk with o, unless the scheduler gave up on it already.
func (p *WorkerPool) endLocked(wk *poolWorker, id uint64, o scheduler.Outcome) error {
	task, ok := wk.tasks[id]
	if !ok {
		return fmt.Errorf("%w: TaskResult for task %d, which this worker does not hold (unknown or already answered)", errProtocol, id)
	}
	delete(wk.tasks, task.id)
	if !task.abandoned {
		p.stopTimeoutLocked(task)
		p.endTaskLocked(task, taskEnd{Outcome: o})
	}
	return nil
}

// heartbeat records that tasks are alive. Unknown ids are ignored: a heartbeat may
// race with the result of its task.
func (p *WorkerPool) heartbeat(wk *poolWorker, ids []uint64) {
	now := time.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, id := range ids {
		if task, ok := wk.tasks[id]; ok {
			task.lastBeat = now
		}
	}
	p.aliveLocked(wk)
}
