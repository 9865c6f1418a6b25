package scheduler

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"slices"
	"sync"
	"sync/atomic"

	"golang.org/x/time/rate"
)

// ErrClosed is returned by operations on a Scheduler after Close.
var ErrClosed = errors.New("scheduler: closed")

// Scheduler admits workloads, queues them per function and dispatches them to each
// function's Executor, at most Function.Concurrency at a time. See the package doc for
// the guarantees it keeps.
type Scheduler struct {
	fns      map[string]*function // read-only after New: lookups take no lock
	names    []string             // sorted
	maxBytes int
	logger   *slog.Logger

	// ctx is the parent of every attempt; Close cancels it.
	ctx    context.Context
	cancel context.CancelFunc

	closing   atomic.Bool
	closeOnce sync.Once
	workers   sync.WaitGroup // every function worker goroutine
	answers   *answerer      // delivers rejections off the caller's stack
	rejected  atomic.Uint64
}

// New validates cfg and returns a running Scheduler. Worker goroutines start lazily,
// one per running attempt up to each function's Concurrency, and live until Close.
func New(cfg Config) (*Scheduler, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	ctx, cancel := context.WithCancel(context.Background())
	s := &Scheduler{
		fns:      make(map[string]*function, len(cfg.Functions)),
		maxBytes: cfg.MaxWorkloadBytes,
		logger:   cfg.Logger,
		ctx:      ctx,
		cancel:   cancel,
	}
	for _, fc := range cfg.Functions {
		f := &function{s: s, cfg: fc}
		if fc.Rate > 0 {
			f.limiter = rate.NewLimiter(rate.Limit(fc.Rate), rateBurst(fc.Rate))
		}
		f.cond.L = &f.mu
		s.fns[fc.Name] = f
		s.names = append(s.names, fc.Name)
	}
	slices.Sort(s.names)
	s.answers = newAnswerer()
	return s, nil
}

// Enqueue admits w for its function and never blocks. done is called exactly once
// with the outcome of the attempt, or with the reason the workload was refused:
//
//   - Fatal(ReasonInvalid) for a nil workload, an empty ID or Function, or an Attempt below 1;
//   - Fatal(ReasonUnknownFunction) for a function that is not configured;
//   - Fatal(ReasonTooLarge) for a workload over MaxWorkloadBytes;
//   - Retriable(ReasonShutdown) once Close has begun, or for a queued workload Close
//     drops before it ran.
//
// While the scheduler is open, done is always called on a goroutine the scheduler
// owns, never on the caller's stack, so a caller may hold a lock across Enqueue that
// done also takes. Once Close has begun there is no scheduler goroutine left to use,
// and Enqueue calls done itself before it returns; a caller that enqueues while the
// scheduler may be closing must not hold such a lock (Local never does).
//
// done must return promptly: it runs on the worker that would start the function's
// next attempt. w must not be modified until done is called. done must not be nil.
func (s *Scheduler) Enqueue(w *Workload, done func(Outcome)) {
	if done == nil {
		panic("scheduler: Enqueue called with a nil done func")
	}
	if s.closing.Load() {
		s.rejected.Add(1)
		done(shutdownOutcome)
		return
	}
	f, refusal, ok := s.admit(w)
	if !ok {
		s.reject(done, refusal)
		return
	}
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		s.reject(done, shutdownOutcome)
		return
	}
	f.q.Push(entry{w: w, done: done})
	if f.idle > 0 {
		f.idle--
		f.mu.Unlock()
		f.cond.Signal()
		return
	}
	spawn := f.workers < f.cfg.Concurrency
	if spawn {
		f.workers++
		s.workers.Add(1) // before Close can mark f closed, so before workers.Wait
	}
	f.mu.Unlock()
	if spawn {
		go f.work()
	}
}

var shutdownOutcome = Retriable(ReasonShutdown, "scheduler is shutting down; the workload did not run")

// admit checks w against the configuration; when it refuses w it returns the outcome.
func (s *Scheduler) admit(w *Workload) (*function, Outcome, bool) {
	switch {
	case w == nil:
		return nil, Fatal(ReasonInvalid, "workload is nil"), false
	case w.ID == "":
		return nil, Fatal(ReasonInvalid, fmt.Sprintf("workload for function %q has an empty ID; every workload needs a stable ID", w.Function)), false
	case w.Function == "":
		return nil, Fatal(ReasonInvalid, fmt.Sprintf("workload %q names no function; set Workload.Function", w.ID)), false
	case w.Attempt < 1:
		return nil, Fatal(ReasonInvalid, fmt.Sprintf("workload %q has attempt %d; the first run is attempt 1", w.ID, w.Attempt)), false
	}
	f := s.fns[w.Function]
	if f == nil {
		return nil, Fatal(ReasonUnknownFunction, fmt.Sprintf("function %q is not configured", w.Function)), false
	}
	if n := w.Size(); n > s.maxBytes {
		return nil, Fatal(ReasonTooLarge, fmt.Sprintf("workload %q is %d bytes, limit %d bytes (key, payload and headers)", w.ID, n, s.maxBytes)), false
	}
	return f, Outcome{}, true
}

// reject answers a refused workload from the answerer goroutine, or on the caller's
// stack once the answerer has stopped.
func (s *Scheduler) reject(done func(Outcome), o Outcome) {
	s.rejected.Add(1)
	s.logger.Debug("scheduler: workload refused", "reason", o.Reason, "err", o.Err)
	if !s.answers.post(done, o) {
		done(o)
	}
}

// Functions returns the configured function names, sorted.
func (s *Scheduler) Functions() []string { return slices.Clone(s.names) }

// Has reports whether name is a configured function.
func (s *Scheduler) Has(name string) bool { return s.fns[name] != nil }

// Stats is a snapshot of the scheduler's counters.
type Stats struct {
	// Functions holds one entry per configured function, sorted by name.
	Functions []FunctionStats
	// Refused counts workloads answered without running: invalid, unknown function,
	// too large, or refused or dropped at shutdown.
	Refused uint64
}

// Function returns the stats of the named function.
func (st Stats) Function(name string) (FunctionStats, bool) {
	for _, f := range st.Functions {
		if f.Name == name {
			return f, true
		}
	}
	return FunctionStats{}, false
}

// FunctionStats are one function's counters. Completed counts are updated before
// the workload's done is called, so a caller that has seen done sees them.
type FunctionStats struct {
	Name        string
	Concurrency int
	Queued      int // admitted, waiting for a worker (ENQUEUED)
	Running     int // handed to the executor, not finished (CLAIMED or PROCESSING)
	Succeeded   uint64
	Retriable   uint64
	Fatal       uint64
}

// Stats returns a snapshot of the counters.
func (s *Scheduler) Stats() Stats {
	st := Stats{Functions: make([]FunctionStats, 0, len(s.names)), Refused: s.rejected.Load()}
	for _, name := range s.names {
		f := s.fns[name]
		f.mu.Lock()
		queued := f.q.Len()
		f.mu.Unlock()
		st.Functions = append(st.Functions, FunctionStats{
			Name:        name,
			Concurrency: f.cfg.Concurrency,
			Queued:      queued,
			Running:     int(f.running.Load()),
			Succeeded:   f.succeeded.Load(),
			Retriable:   f.retriable.Load(),
			Fatal:       f.fatal.Load(),
		})
	}
	return st
}

// Close stops dispatching, answers every queued workload with Retriable(ReasonShutdown),
// cancels the context of running attempts and waits until each has returned and every
// goroutine of the scheduler has exited. It is safe to call more than once; every call
// returns after the first has finished.
func (s *Scheduler) Close() error {
	s.closeOnce.Do(s.close)
	return nil
}

func (s *Scheduler) close() {
	s.closing.Store(true)
	for _, name := range s.names {
		f := s.fns[name]
		f.mu.Lock()
		f.closed = true
		dropped := f.q.Drain()
		f.mu.Unlock()
		f.cond.Broadcast()
		for _, e := range dropped {
			s.reject(e.done, shutdownOutcome)
		}
	}
	s.cancel()
	s.workers.Wait()
	s.answers.stop()
	s.logger.Debug("scheduler: closed")
}

// function is the state of one configured function: its queue and its workers.
type function struct {
	s   *Scheduler
	cfg Function

	limiter *rate.Limiter // nil: no rate limit

	mu      sync.Mutex
	cond    sync.Cond // on mu; signalled when an entry arrives for an idle worker
	q       queue
	closed  bool
	workers int // started, at most cfg.Concurrency
	idle    int // waiting on cond and not yet signalled

	running   atomic.Int64
	succeeded atomic.Uint64
	retriable atomic.Uint64
	fatal     atomic.Uint64
}

// work is one worker: it runs queued attempts one at a time until Close. A function
// never has more than Concurrency workers, which is how the limit is kept.
func (f *function) work() {
	defer f.s.workers.Done()
	f.mu.Lock()
	for {
		for f.q.Len() == 0 && !f.closed {
			f.idle++
			f.cond.Wait()
		}
		if f.closed {
			f.mu.Unlock()
			return
		}
		e, _ := f.q.Pop()
		f.running.Add(1)
		f.mu.Unlock()

		o := f.startAndRun(e.w)
		switch o.Kind {
		case OutcomeSuccess:
			f.succeeded.Add(1)
		case OutcomeFatal:
			f.fatal.Add(1)
		default:
			f.retriable.Add(1)
		}
		f.running.Add(-1)
		e.done(o)

		f.mu.Lock()
	}
}

// startAndRun waits for the function's rate limit, if it has one, and runs the
// attempt. The workload was taken from the queue in order, and the limiter grants
// tokens in the order they were asked for, so starts stay in admission order. A Close
// while it waits answers the workload as shutdown, like a queued one.
func (f *function) startAndRun(w *Workload) Outcome {
	if f.limiter != nil {
		if err := f.limiter.Wait(f.s.ctx); err != nil {
			return shutdownOutcome
		}
	}
	return f.attempt(w)
}

// rateBurst is the token bucket's size for a rate: a tenth of a second's starts, at
// least one, so a limit of 500/s starts at most 50 at once and stays within 1% of 500
// over 10 s.
func rateBurst(r float64) int {
	return max(1, int(r/10))
}

// attempt runs one attempt, turning a panic or an outcome of no known kind into a
// retriable outcome.
func (f *function) attempt(w *Workload) (o Outcome) {
	defer func() {
		if v := recover(); v != nil {
			f.s.logger.Error("scheduler: executor panicked; the attempt counts as retriable",
				"function", f.cfg.Name, "workload", w.ID, "panic", v, "stack", string(debug.Stack()))
			o = Retriable(ReasonPanic, fmt.Sprintf("executor panicked: %v", v))
		}
	}()
	o = f.cfg.Executor.Execute(f.s.ctx, w, f.cfg.Timeout)
	switch o.Kind {
	case OutcomeSuccess, OutcomeRetriable, OutcomeFatal:
		return o
	}
	f.s.logger.Error("scheduler: executor returned an outcome of invalid kind; the attempt counts as retriable",
		"function", f.cfg.Name, "workload", w.ID, "kind", o.Kind, "reason", o.Reason, "err", o.Err)
	return Outcome{
		Kind:       OutcomeRetriable,
		Reason:     ReasonError,
		Err:        fmt.Sprintf("executor returned an invalid outcome kind %s (reason %q, err %q)", o.Kind, o.Reason, o.Err),
		RetryAfter: o.RetryAfter,
	}
}

// answerer calls done funcs for refused workloads on its own goroutine, so that
// Enqueue never calls back into its caller's stack while the scheduler is open.
type answerer struct {
	mu      sync.Mutex
	cond    sync.Cond
	pending []answer
	spare   []answer
	stopped bool
	exited  chan struct{}
}

type answer struct {
	done func(Outcome)
	o    Outcome
}

func newAnswerer() *answerer {
	a := &answerer{exited: make(chan struct{})}
	a.cond.L = &a.mu
	go a.run()
	return a
}

// post queues done(o); it returns false, queueing nothing, once stop has begun.
func (a *answerer) post(done func(Outcome), o Outcome) bool {
	a.mu.Lock()
	if a.stopped {
		a.mu.Unlock()
		return false
	}
	a.pending = append(a.pending, answer{done: done, o: o})
	wake := len(a.pending) == 1
	a.mu.Unlock()
	if wake {
		a.cond.Signal()
	}
	return true
}

// stop makes post refuse, then waits until every answer posted before has been given.
func (a *answerer) stop() {
	a.mu.Lock()
	a.stopped = true
	a.mu.Unlock()
	a.cond.Signal()
	<-a.exited
}

func (a *answerer) run() {
	defer close(a.exited)
	a.mu.Lock()
	for {
		for len(a.pending) == 0 && !a.stopped {
			a.cond.Wait()
		}
		if len(a.pending) == 0 { // and stopped
			a.mu.Unlock()
			return
		}
		batch := a.pending
		a.pending = a.spare[:0]
		a.mu.Unlock()
		for i, ans := range batch {
			ans.done(ans.o)
			batch[i] = answer{}
		}
		a.mu.Lock()
		a.spare = batch
	}
}
