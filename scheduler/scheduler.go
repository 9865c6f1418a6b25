package scheduler

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"

	"github.com/kasync/kasync/internal/logrepeat"
)

// ErrClosed is returned by operations on a Scheduler after Close.
var ErrClosed = errors.New("scheduler: closed")

// Scheduler admits workloads, queues them per function and dispatches them to each
// function's Executor, at most its adaptive limit (at most Function.Concurrency) at a
// time, within its tenant's quotas and MaxConcurrency. See the package doc for the
// guarantees it keeps.
type Scheduler struct {
	fns      map[string]*function // read-only after New: lookups take no lock
	names    []string             // sorted
	tenants  []*tenant            // Config.Tenants in order, then "default" if not among them
	arb      *arbiter             // nil: no MaxConcurrency and no tenant quota
	maxBytes int
	logger   *slog.Logger
	repeats  logrepeat.Limiter     // lines that can repeat per attempt: one per function and kind every 30s
	reg      prometheus.Registerer // nil: no metrics
	metrics  *collector

	epoch time.Time // the origin of inline workers' monotonic deadlines

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
		epoch:    time.Now(),
		ctx:      ctx,
		cancel:   cancel,
	}
	byName := s.newTenants(cfg.Tenants)
	if cfg.MaxConcurrency > 0 || slices.ContainsFunc(s.tenants, func(t *tenant) bool { return t.cfg.Concurrency > 0 }) {
		s.arb = newArbiter(cfg.MaxConcurrency, s.tenants)
	}
	for _, fc := range cfg.Functions {
		f := &function{s: s, cfg: fc, tenant: byName[fc.tenantName()], adapt: newAIMD(fc.Adaptive, fc.Concurrency)}
		if fc.Rate > 0 {
			f.limiter = rate.NewLimiter(rate.Limit(fc.Rate), rateBurst(fc.Rate))
		}
		f.inline, _ = fc.Executor.(InlineExecutor)
		f.gated = f.limiter != nil || f.tenant.limiter != nil || s.arb != nil
		if f.inline == nil && !f.gated {
			// A gated start waits for a token or a slot per attempt, on a worker of
			// its own; those functions keep one worker per running attempt.
			f.async, _ = fc.Executor.(AsyncExecutor)
		}
		f.cond.L = &f.mu
		f.tenant.fns = append(f.tenant.fns, f)
		s.fns[fc.Name] = f
		s.names = append(s.names, fc.Name)
	}
	slices.Sort(s.names)
	if cfg.Registerer != nil {
		s.reg, s.metrics = cfg.Registerer, newCollector(s)
		if err := s.reg.Register(s.metrics); err != nil {
			cancel()
			return nil, fmt.Errorf("scheduler: register metrics kasync_concurrency_limit, kasync_inflight, kasync_queued: %w", err)
		}
	}
	s.answers = newAnswerer()
	return s, nil
}

// newTenants builds s.tenants from the configured ones plus the built-in "default"
// when it is not among them, and returns them by name.
func (s *Scheduler) newTenants(cfgs []Tenant) map[string]*tenant {
	byName := make(map[string]*tenant, len(cfgs)+1)
	add := func(tc Tenant) {
		tc.Weight = max(1, tc.Weight)
		t := &tenant{idx: len(s.tenants), cfg: tc}
		if tc.Rate > 0 {
			t.limiter = rate.NewLimiter(rate.Limit(tc.Rate), rateBurst(tc.Rate))
		}
		s.tenants = append(s.tenants, t)
		byName[tc.Name] = t
	}
	for _, tc := range cfgs {
		add(tc)
	}
	if byName[DefaultTenant] == nil {
		add(Tenant{Name: DefaultTenant})
	}
	return byName
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
	a := wakeNone
	if f.canStart() {
		a = f.wake()
	}
	f.mu.Unlock()
	f.do(a)
}

// EnqueueBatch is Enqueue for n workloads, in order: at(i) returns the i-th workload
// and its done, and is called once per i, on the caller's goroutine, before
// EnqueueBatch returns. It keeps every promise of Enqueue for each workload; it only
// costs less: a run of workloads of one function takes the function's lock once and
// wakes one worker, which wakes the next as it starts (see function.work), not one
// per workload.
func (s *Scheduler) EnqueueBatch(n int, at func(i int) (*Workload, func(Outcome))) {
	var (
		f      *function // the function of the run being pushed; its mu is held
		pushed int       // workloads of the run pushed so far
	)
	flush := func() {
		if f == nil {
			return
		}
		// One wake-up for the run: the woken worker passes it on (function.work).
		a := wakeNone
		if pushed > 0 && f.canStart() {
			a = f.wake()
		}
		f.mu.Unlock()
		f.do(a)
		f, pushed = nil, 0
	}
	for i := range n {
		w, done := at(i)
		if done == nil {
			flush()
			panic("scheduler: EnqueueBatch called with a nil done func")
		}
		if s.closing.Load() {
			flush()
			s.rejected.Add(1)
			done(shutdownOutcome)
			continue
		}
		g, refusal, ok := s.admit(w)
		if !ok {
			flush() // reject may call done here, once the scheduler is closing
			s.reject(done, refusal)
			continue
		}
		if g != f {
			flush()
			f = g
			f.mu.Lock()
		}
		if f.closed {
			flush()
			s.reject(done, shutdownOutcome)
			continue
		}
		f.q.Push(entry{w: w, done: done})
		pushed++
	}
	flush()
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
	// Tenants holds one entry per tenant ("default" included), sorted by name.
	Tenants []TenantStats
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

// Tenant returns the stats of the named tenant.
func (st Stats) Tenant(name string) (TenantStats, bool) {
	for _, t := range st.Tenants {
		if t.Name == name {
			return t, true
		}
	}
	return TenantStats{}, false
}

// FunctionStats are one function's counters. Completed counts are updated before
// the workload's done is called, so a caller that has seen done sees them; the
// adaptive limit and hold react to an outcome just after its done returns.
type FunctionStats struct {
	Name        string
	Tenant      string
	Concurrency int
	// Limit is the adaptive concurrency limit now, in [Adaptive.Min, Concurrency].
	Limit int
	// HeldUntil, when not zero, is when new starts resume after an overloaded
	// outcome's RetryAfter.
	HeldUntil time.Time
	Queued    int // admitted, waiting for a worker (ENQUEUED)
	Running   int // handed to the executor, not finished (CLAIMED or PROCESSING)
	Succeeded uint64
	Retriable uint64
	Fatal     uint64
	// Durations are the durations of the attempts that ended, by bucket; the
	// difference of two snapshots (Sub) gives the percentiles of a period.
	Durations DurationHistogram
}

// TenantStats are one tenant's counters, summed over its functions.
type TenantStats struct {
	Name    string
	Queued  int // admitted workloads of its functions, waiting to start
	Running int // attempts of its functions running
	// Waiting is the number of its function workers waiting for a slot of
	// MaxConcurrency or of the tenant's Concurrency quota.
	Waiting int
}

// Stats returns a snapshot of the counters.
func (s *Scheduler) Stats() Stats {
	st := Stats{Functions: make([]FunctionStats, 0, len(s.names)), Refused: s.rejected.Load()}
	for _, name := range s.names {
		st.Functions = append(st.Functions, s.fns[name].stats())
	}
	for _, t := range s.tenants {
		ts := TenantStats{Name: t.cfg.Name}
		for _, f := range t.fns {
			fs, _ := st.Function(f.cfg.Name)
			ts.Queued += fs.Queued
			ts.Running += fs.Running
		}
		if s.arb != nil {
			ts.Waiting = s.arb.waiting(t.idx)
		}
		st.Tenants = append(st.Tenants, ts)
	}
	slices.SortFunc(st.Tenants, func(a, b TenantStats) int { return cmp.Compare(a.Name, b.Name) })
	return st
}

func (f *function) stats() FunctionStats {
	f.mu.Lock()
	queued, limit := f.q.Len(), f.adapt.Limit()
	var heldUntil time.Time
	if f.held {
		heldUntil = f.adapt.HeldUntil()
	}
	f.mu.Unlock()
	return FunctionStats{
		Name:        f.cfg.Name,
		Tenant:      f.tenant.cfg.Name,
		Concurrency: f.cfg.Concurrency,
		Limit:       limit,
		HeldUntil:   heldUntil,
		Queued:      queued,
		Running:     int(f.running.Load()),
		Succeeded:   f.succeeded.Load(),
		Retriable:   f.retriable.Load(),
		Fatal:       f.fatal.Load(),
		Durations:   f.durations.histogram(),
	}
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
		f.stopHold()
		dropped := f.q.Drain()
		f.mu.Unlock()
		f.cond.Broadcast()
		for _, e := range dropped {
			s.reject(e.done, shutdownOutcome)
		}
	}
	s.cancel() // ends waits for rate tokens and slots
	s.workers.Wait()
	s.answers.stop()
	s.repeats.Flush()
	if s.reg != nil {
		s.reg.Unregister(s.metrics)
	}
	s.logger.Debug("scheduler: closed")
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
