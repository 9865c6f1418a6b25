package runtime

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/kasync/kasync/internal/backoff"
	"github.com/kasync/kasync/scheduler/rpc"
)

// Worker defaults.
const (
	DefaultWorkerCapacity      = 64
	DefaultWorkerHeartbeat     = 5 * time.Second
	DefaultWorkerDrainTimeout  = 30 * time.Second
	DefaultReconnectBackoff    = 100 * time.Millisecond
	DefaultMaxReconnectBackoff = 10 * time.Second
	// MaxWorkerCapacity is the largest Capacity a scheduler accepts.
	MaxWorkerCapacity = 100000
)

// ErrWorkerRejected is wrapped by the error Run returns when a scheduler refuses the
// worker's hello (a function it does not have, a malformed hello) or its identity (no
// or an unknown token: UNAUTHENTICATED; a function its identity may not serve:
// PERMISSION_DENIED). Retrying would not help: fix the worker or the scheduler's
// configuration. A TLS handshake that fails is not a refusal: the worker keeps
// reconnecting, and logs the handshake error each time.
var ErrWorkerRejected = errors.New("worker rejected by the scheduler")

// errTaskLost is returned by Task.Heartbeat when the stream that delivered the task is
// gone: the scheduler has already taken the attempt as lost (and re-dispatches it).
var errTaskLost = errors.New("the task's scheduler stream is gone; the scheduler took the attempt as lost")

// WorkerConfig configures a Worker. Zero values take the defaults named on each field.
type WorkerConfig struct {
	// Addrs are scheduler gRPC addresses ("127.0.0.1:7070"): the worker serves every one
	// of them at the same time, each on its own stream, and shares Capacity between
	// them (see Worker). At least one, no address twice.
	Addrs []string
	// Registry holds the functions served: all of Registry.Names(). Required.
	Registry *Registry
	// Capacity is the most tasks running at once, over all schedulers (default 64, at
	// most 100000, at least len(Addrs)).
	Capacity int
	// WorkerID names the worker in the scheduler's logs (default "<hostname>-<pid>").
	WorkerID string
	// Heartbeat is how often the ids of running tasks are sent (default 5s). A
	// scheduler takes a task as lost when it has not been named in a heartbeat for its
	// heartbeat timeout (rpc.PoolOptions.HeartbeatTimeout, default 15s), and announces
	// that timeout when the worker connects; the worker then heartbeats at most a third
	// of it apart, whatever this says.
	Heartbeat time.Duration
	// DrainTimeout bounds how long Run waits for running tasks after its ctx is done
	// (default 30s); then their contexts are cancelled.
	DrainTimeout time.Duration
	// ReconnectBackoff is the first wait before reconnecting (default 100ms); it
	// doubles, jittered, up to MaxReconnectBackoff (default 10s).
	ReconnectBackoff    time.Duration
	MaxReconnectBackoff time.Duration
	// DialOptions are passed to grpc.NewClient after insecure transport credentials, so
	// a grpc.WithTransportCredentials here (TLS) replaces them.
	DialOptions []grpc.DialOption
	// Logger receives connection events and task failures (default slog.Default()).
	Logger *slog.Logger
}

func (c WorkerConfig) withDefaults() WorkerConfig {
	if c.Capacity == 0 {
		c.Capacity = DefaultWorkerCapacity
	}
	if c.WorkerID == "" {
		host, err := os.Hostname()
		if err != nil || host == "" {
			host = "worker"
		}
		c.WorkerID = fmt.Sprintf("%s-%d", host, os.Getpid())
	}
	if c.Heartbeat == 0 {
		c.Heartbeat = DefaultWorkerHeartbeat
	}
	if c.DrainTimeout == 0 {
		c.DrainTimeout = DefaultWorkerDrainTimeout
	}
	if c.ReconnectBackoff == 0 {
		c.ReconnectBackoff = DefaultReconnectBackoff
	}
	if c.MaxReconnectBackoff == 0 {
		c.MaxReconnectBackoff = DefaultMaxReconnectBackoff
	}
	c.MaxReconnectBackoff = max(c.MaxReconnectBackoff, c.ReconnectBackoff)
	// Insecure credentials come first, so that credentials in DialOptions replace them.
	c.DialOptions = append([]grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}, append(rpc.DialOptions(), c.DialOptions...)...)
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// validate reports every problem at once, each naming the field and the fix.
func (c WorkerConfig) validate() error {
	var errs []error
	if len(c.Addrs) == 0 {
		errs = append(errs, errors.New(`runtime: worker: Addrs is empty; give at least one scheduler address such as "127.0.0.1:7070"`))
	}
	for i, a := range c.Addrs {
		if a == "" {
			errs = append(errs, fmt.Errorf("runtime: worker: Addrs[%d] is empty; give a host:port", i))
		} else if j := slices.Index(c.Addrs, a); j < i {
			errs = append(errs, fmt.Errorf("runtime: worker: Addrs[%d] %q repeats Addrs[%d]; list each scheduler once", i, a, j))
		}
	}
	if c.Registry == nil {
		errs = append(errs, errors.New("runtime: worker: Registry is nil; register the functions to serve with NewRegistry and Register"))
	} else if len(c.Registry.Names()) == 0 {
		errs = append(errs, errors.New("runtime: worker: Registry has no functions; Register at least one"))
	}
	if c.Capacity < 1 || c.Capacity > MaxWorkerCapacity {
		errs = append(errs, fmt.Errorf("runtime: worker: Capacity is %d; it must be in 1..%d (0 for the default %d)", c.Capacity, MaxWorkerCapacity, DefaultWorkerCapacity))
	} else if c.Capacity < len(c.Addrs) {
		errs = append(errs, fmt.Errorf("runtime: worker: Capacity is %d for %d scheduler addresses; each scheduler needs at least one slot, so raise Capacity to %d or more", c.Capacity, len(c.Addrs), len(c.Addrs)))
	}
	if c.Heartbeat < 0 {
		errs = append(errs, fmt.Errorf("Heartbeat is %v; it must be positive (0 for the default %v)", c.Heartbeat, DefaultWorkerHeartbeat))
	}
	if c.DrainTimeout < 0 {
		errs = append(errs, fmt.Errorf("DrainTimeout is %v; it must be positive (0 for the default %v)", c.DrainTimeout, DefaultWorkerDrainTimeout))
	}
	if c.ReconnectBackoff < 0 || c.MaxReconnectBackoff < 0 {
		errs = append(errs, errors.New("ReconnectBackoff and MaxReconnectBackoff must not be negative"))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("runtime: invalid worker config: %w", err)
	}
	// Dialling is lazy, so this connects nowhere: it only finds options that could never
	// work, such as a token (WithToken) without TLS.
	conn, err := grpc.NewClient(c.Addrs[0], c.DialOptions...)
	if err != nil {
		return fmt.Errorf("runtime: invalid worker config: DialOptions: %w", err)
	}
	_ = conn.Close() // never connected: nothing to fail
	return nil
}

// Worker connects to schedulers and runs tasks of the functions in its Registry: the
// Go SDK side of the Work stream (proto/kasync/v1).
//
// It keeps these invariants (proved by worker_test.go and worker_multi_test.go):
//
//  1. Flow control by free capacity: at most Capacity tasks hold a slot at once,
//     across every scheduler (TestWorkerSharesCapacityBetweenSchedulers,
//     TestSlotLedgerModel). A scheduler is offered credit only from free slots, in the
//     hello (as capacity minus busy) and after each TaskResult; so it can never send a
//     task the worker has no slot for (a scheduler that did anyway would have the excess
//     answered Retriable(ReasonOverloaded) at once, without running it). A task holds
//     its slot until it is answered: its function returned, its timeout passed, or its
//     context was cancelled (CancelTask, a broken stream, the drain timeout); a
//     function still returning then has its slot taken by the next task. One sender
//     goroutine per stream sends what has finished when it is free: a TaskResultBatch
//     (results, then their credit) to a scheduler whose welcome offered it, else
//     TaskResult messages and then one WorkCredit; plain successes go as packed task
//     ids when the welcome offered packed_successes. It never waits for more. The
//     worker takes TaskBatch messages (task_batches in its hello).
//     (TestWorkerSpeaksOneByOneToAnOldScheduler, TestWorkerPacksSuccessesWhenOffered)
//  2. Every task gets exactly one TaskResult on the stream that delivered it, unless that
//     stream breaks first; then the scheduler has taken it as lost (it re-dispatches
//     the same attempt to a live worker), and the worker cancels its context (its work
//     is wasted). (TestWorkerKilledWithTasksInFlightTheyRunElsewhere)
//  3. Liveness: the ids of running tasks are sent every Heartbeat, but at most a third
//     of the scheduler's announced heartbeat timeout apart, and at once when a function
//     calls Task.Heartbeat (which fails once the task's stream is gone).
//     (TestWorkerHeartbeatsKeepLongTasks) CancelTask cancels the task's context; a
//     panic is logged with its stack and becomes a retriable outcome in
//     Registry.RunTask, and the worker keeps serving
//     (TestWorkerRunsTasksAndReturnsOutcomes); a function that ignores cancellation
//     frees its slot at the timeout (TestWorkerHungFunctionFreesSlotAtTimeout).
//  4. Several schedulers at once: the worker keeps one Work stream per address in
//     Addrs, each re-opened on its own with jittered exponential backoff when it
//     breaks, so every scheduler of a multi-node deployment has the worker's functions
//     served (TestWorkerServesEverySchedulerAndRejoinsOne). Capacity is shared: each
//     address has a fixed share (Capacity/len(Addrs)), a scheduler never holds more
//     unused credit than its share, and a busy scheduler may fill the slots the others
//     leave free; a slot that frees goes first to a connected scheduler below its
//     share (worker_slots.go). So an idle scheduler never starves a busy one of more
//     than its share, and a scheduler that (re)connects gets its share once the
//     tasks running elsewhere end. A refused hello (unknown function, malformed hello)
//     or identity (bad token, a function it may not serve), by any scheduler, is final:
//     the other streams drain and Run returns an error wrapping ErrWorkerRejected.
//     (TestWorkerRejectedForUnconfiguredFunction, TestWorkerMutualTLS, TestWorkerTokens)
//  5. Drain: when Run's ctx ends, tasks that arrive are answered retriable at once, the
//     running ones get up to DrainTimeout to finish and send their results, and Run
//     returns nil. No goroutine of the worker outlives Run, except a function that
//     ignores the cancellation of its context.
type Worker struct {
	cfg     WorkerConfig
	log     *slog.Logger
	started atomic.Bool
	tasks   sync.WaitGroup // every task goroutine, of every session

	// The slot ledger (worker_slots.go); every session's live, share, granted and held
	// are guarded by mu too.
	mu       sync.Mutex
	free     int        // slots neither running nor offered to a scheduler
	running  int        // tasks holding a slot, of every session
	sessions []*session // the live ones: they take credit
	byLoad   []*session // scratch for topUpLocked
}

// NewWorker checks cfg and returns a Worker; Run starts it.
func NewWorker(cfg WorkerConfig) (*Worker, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	return &Worker{cfg: cfg, log: cfg.Logger.With("worker", cfg.WorkerID), free: cfg.Capacity}, nil
}

// Run connects to every scheduler of Addrs, says hello and serves tasks until ctx is
// done. When a stream breaks it reconnects to that address with jittered exponential
// backoff; tasks of the broken stream are cancelled, as the scheduler has already
// failed them. A scheduler that rejects the hello ends Run with an error wrapping
// ErrWorkerRejected, once the other streams have drained. When ctx is done Run stops
// taking tasks, waits up to DrainTimeout for the running ones, sends their results and
// returns nil. Run may be called once.
func (w *Worker) Run(ctx context.Context) error {
	if !w.started.CompareAndSwap(false, true) {
		return errors.New("runtime: worker: Run called twice")
	}
	defer w.waitTasks()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg       sync.WaitGroup
		rejectMu sync.Mutex
		rejected error
	)
	for i, addr := range w.cfg.Addrs {
		share := slotShare(w.cfg.Capacity, len(w.cfg.Addrs), i)
		wg.Go(func() {
			if err := w.connect(ctx, addr, share); err != nil {
				rejectMu.Lock()
				rejected = cmp.Or(rejected, err)
				rejectMu.Unlock()
				cancel() // the other streams drain
			}
		})
	}
	wg.Wait()
	return rejected
}

// connect keeps a session with the scheduler at addr until ctx is done (nil) or the
// scheduler refuses the worker (the error).
func (w *Worker) connect(ctx context.Context, addr string, share int) error {
	bo := backoff.Backoff{Min: w.cfg.ReconnectBackoff, Max: w.cfg.MaxReconnectBackoff}
	for {
		welcomed, err := w.serve(ctx, addr, share)
		if ctx.Err() != nil {
			return nil
		}
		if errors.Is(err, ErrWorkerRejected) {
			return err
		}
		if welcomed {
			bo.Reset()
		}
		wait := bo.Next()
		w.log.Warn("scheduler stream ended; reconnecting", "addr", addr, "err", err, "in", wait)
		if !backoff.Sleep(ctx, wait) {
			return nil
		}
	}
}

// waitTasks waits for task goroutines left over from broken or drained streams (their
// contexts are cancelled), bounded by closeGrace so a function that ignores
// cancellation cannot hold Run forever.
func (w *Worker) waitTasks() {
	done := make(chan struct{})
	go func() {
		w.tasks.Wait()
		close(done)
	}()
	t := time.NewTimer(closeGrace)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
		w.mu.Lock()
		n := w.running
		w.mu.Unlock()
		w.log.Error("functions still running after the drain timeout ignore their context; leaving them", "tasks", n)
	}
}
