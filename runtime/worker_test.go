package runtime

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/kasync/kasync/internal/testutil"
	"github.com/kasync/kasync/scheduler"
	"github.com/kasync/kasync/scheduler/rpc"
)

const waitTimeout = 20 * time.Second

// cluster is a scheduler whose functions are all served by SDK workers, behind a gRPC
// server on 127.0.0.1, and a push stream into it.
type cluster struct {
	addr   string
	pool   *rpc.WorkerPool
	sched  *scheduler.Scheduler
	stream scheduler.Stream

	mu      sync.Mutex
	results map[uint64][]scheduler.Outcome
	arrived chan struct{} // buffered 1
}

func newCluster(t testing.TB, timeout time.Duration, functions ...string) *cluster {
	t.Helper()
	return newClusterWith(t, clusterOptions{timeout: timeout}, functions...)
}

type clusterOptions struct {
	timeout     time.Duration
	concurrency int // per function; default 64
	pool        rpc.PoolOptions
	// auth, serverOpts and dial secure the cluster (worker_auth_test.go): the server's
	// Auth, its TLS and interceptors, and the push client's credentials (default insecure).
	auth       *rpc.Auth
	serverOpts []grpc.ServerOption
	dial       []grpc.DialOption
}

func newClusterWith(t testing.TB, o clusterOptions, functions ...string) *cluster {
	t.Helper()
	logger := slog.New(slog.NewTextHandler(t.Output(), nil))
	if o.pool.Logger == nil {
		o.pool.Logger = logger
	}
	if o.concurrency == 0 {
		o.concurrency = 64
	}
	pool, err := rpc.NewPool(o.pool)
	require.NoError(t, err)
	c := &cluster{pool: pool, results: make(map[uint64][]scheduler.Outcome), arrived: make(chan struct{}, 1)}
	fns := make([]scheduler.Function, len(functions))
	for i, name := range functions {
		fns[i] = scheduler.Function{Name: name, Concurrency: o.concurrency, Timeout: o.timeout, Executor: c.pool}
	}
	sched, err := scheduler.New(scheduler.Config{Functions: fns, Logger: logger})
	require.NoError(t, err)
	c.sched = sched
	srv, err := rpc.NewServer(sched, c.pool, rpc.ServerOptions{Logger: logger, Auth: o.auth})
	require.NoError(t, err)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	c.addr = lis.Addr().String()
	g := grpc.NewServer(append([]grpc.ServerOption{grpc.WaitForHandlers(true)}, o.serverOpts...)...) // Stop waits for handlers, which log
	srv.Register(g)
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = g.Serve(lis)
	}()
	if o.dial == nil {
		o.dial = []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}
	}
	conn, err := grpc.NewClient(c.addr, o.dial...)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	c.stream, err = rpc.NewClient(conn, rpc.ClientOptions{}).Open(ctx, "test", c.deliver)
	require.NoError(t, err)
	t.Cleanup(func() {
		require.NoError(t, c.stream.Close())
		require.NoError(t, conn.Close())
		g.Stop()
		<-served
		require.NoError(t, c.pool.Close())
		require.NoError(t, sched.Close())
	})
	return c
}

func (c *cluster) deliver(rs []scheduler.Result) {
	c.mu.Lock()
	for _, r := range rs {
		c.results[r.Token] = append(c.results[r.Token], r.Outcome)
	}
	c.mu.Unlock()
	select {
	case c.arrived <- struct{}{}:
	default:
	}
}

func (c *cluster) push(t *testing.T, token uint64, function, payload string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	w := &scheduler.Workload{ID: "t/0/" + strconv.FormatUint(token, 10), Function: function, Payload: []byte(payload), Attempt: 1}
	require.NoError(t, c.stream.Push(ctx, []scheduler.Pushed{{Token: token, Workload: w}}))
}

// outcome waits for the single result of token.
func (c *cluster) outcome(t *testing.T, token uint64) scheduler.Outcome {
	t.Helper()
	deadline := time.After(waitTimeout)
	for {
		c.mu.Lock()
		got := c.results[token]
		c.mu.Unlock()
		if len(got) > 0 {
			require.Len(t, got, 1, "results of token %d", token)
			return got[0]
		}
		select {
		case <-c.arrived:
		case <-deadline:
			t.Fatalf("no result for token %d after %v", token, waitTimeout)
		}
	}
}

// killableDialer lets a test cut a worker's TCP connections, as a crash would; once
// dead, it also refuses new ones, as a process that is gone never reconnects.
type killableDialer struct {
	mu    sync.Mutex
	conns []net.Conn
	dials int
	dead  bool
}

func (k *killableDialer) option() grpc.DialOption {
	return grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) {
		k.mu.Lock()
		dead := k.dead
		k.mu.Unlock()
		if dead {
			return nil, errors.New("killed: this worker process is gone")
		}
		c, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
		if err == nil {
			k.mu.Lock()
			k.conns = append(k.conns, c)
			k.dials++
			k.mu.Unlock()
		}
		return c, err
	})
}

func (k *killableDialer) kill() { k.cut(false) }

// killForGood cuts the connections and refuses new ones: kill -9 of the process.
func (k *killableDialer) killForGood() { k.cut(true) }

func (k *killableDialer) cut(forGood bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.dead = forGood
	for _, c := range k.conns {
		_ = c.Close()
	}
	k.conns = nil
}

// runWorker starts w.Run. stop cancels it and returns Run's error; done is closed when
// Run returned, and then result is its error.
func runWorker(t testing.TB, w *Worker) (stop func() error, done <-chan struct{}, result func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	finished := make(chan struct{})
	var err error
	go func() {
		defer close(finished)
		err = w.Run(ctx)
	}()
	result = func() error {
		<-finished
		return err
	}
	stop = func() error {
		cancel()
		select {
		case <-finished:
		case <-time.After(waitTimeout):
			t.Fatalf("Run did not return within %v of cancel", waitTimeout)
		}
		return err
	}
	t.Cleanup(func() { _ = stop() })
	return stop, finished, result
}

func newTestWorker(t testing.TB, addr string, reg *Registry, mutate ...func(*WorkerConfig)) *Worker {
	t.Helper()
	logger := slog.New(slog.NewTextHandler(t.Output(), nil))
	reg.SetLogger(logger)
	cfg := WorkerConfig{
		Addrs: []string{addr}, Registry: reg, Capacity: 4, WorkerID: t.Name(),
		Heartbeat: 20 * time.Millisecond, DrainTimeout: 5 * time.Second,
		Logger:           logger,
		ReconnectBackoff: 5 * time.Millisecond, MaxReconnectBackoff: 50 * time.Millisecond,
	}
	for _, m := range mutate {
		m(&cfg)
	}
	w, err := NewWorker(cfg)
	require.NoError(t, err)
	return w
}

func TestWorkerRunsTasksAndReturnsOutcomes(t *testing.T) {
	t.Parallel()
	c := newCluster(t, 10*time.Second, "work")
	reg := NewRegistry()
	require.NoError(t, reg.Register("work", func(ctx context.Context, task *Task) error {
		if err := task.Heartbeat(ctx); err != nil {
			return Fatal(err) // fails the "ok" case below
		}
		switch string(task.Payload) {
		case "fatal":
			return Fatal(errors.New("card declined"))
		case "error":
			return errors.New("connection refused")
		case "panic":
			panic("boom")
		}
		return nil
	}))
	w := newTestWorker(t, c.addr, reg)
	logs := &testutil.Buffer{}
	reg.SetLogger(slog.New(slog.NewTextHandler(logs, nil)))
	stop, _, _ := runWorker(t, w)

	c.push(t, 1, "work", "ok")
	c.push(t, 2, "work", "fatal")
	c.push(t, 3, "work", "error")
	c.push(t, 4, "work", "panic")
	require.Equal(t, scheduler.Success(), c.outcome(t, 1))
	require.Equal(t, scheduler.OutcomeFatal, c.outcome(t, 2).Kind)
	require.Contains(t, c.outcome(t, 2).Err, "card declined")
	require.Equal(t, scheduler.OutcomeRetriable, c.outcome(t, 3).Kind)
	require.Equal(t, scheduler.ReasonPanic, c.outcome(t, 4).Reason)
	logged := logs.String()
	require.Contains(t, logged, "function panicked")
	require.Contains(t, logged, "panic=boom")
	require.Contains(t, logged, "runtime/debug.Stack", "the stack is logged")
	require.Contains(t, logged, "TestWorkerRunsTasksAndReturnsOutcomes", "down to the function that panicked")

	// Many more than the capacity of 4, after the panic: credit keeps flowing as tasks
	// finish, and the worker keeps serving.
	for token := uint64(100); token < 400; token++ {
		c.push(t, token, "work", "ok")
	}
	for token := uint64(100); token < 400; token++ {
		require.Equal(t, scheduler.Success(), c.outcome(t, token), "token %d", token)
	}
	require.NoError(t, stop())
}

func TestWorkerKilledMidTaskIsRedispatchedAfterReconnect(t *testing.T) {
	t.Parallel()
	c := newCluster(t, time.Hour, "slow")
	started := make(chan *Task, 4)
	cancelled := make(chan struct{}, 4)
	var mu sync.Mutex
	runs := make(map[string]int) // runs per task id
	reg := NewRegistry()
	require.NoError(t, reg.Register("slow", func(ctx context.Context, task *Task) error {
		mu.Lock()
		runs[task.ID]++
		first := runs[task.ID] == 1
		mu.Unlock()
		if !first {
			return nil // the re-dispatched attempt succeeds
		}
		started <- task
		<-ctx.Done()
		cancelled <- struct{}{}
		return ctx.Err()
	}))
	dialer := &killableDialer{}
	w := newTestWorker(t, c.addr, reg, func(cfg *WorkerConfig) { cfg.DialOptions = append(cfg.DialOptions, dialer.option()) })
	stop, _, _ := runWorker(t, w)

	c.push(t, 1, "slow", "block")
	c.push(t, 2, "slow", "block")
	var task *Task
	for range 2 {
		select {
		case task = <-started:
		case <-time.After(waitTimeout):
			t.Fatal("tasks did not start")
		}
	}
	dialer.kill()
	for range 2 {
		select {
		case <-cancelled: // the worker cancels tasks whose stream is gone
		case <-time.After(waitTimeout):
			t.Fatal("tasks of the broken stream were not cancelled")
		}
	}
	require.ErrorIs(t, task.Heartbeat(context.Background()), errTaskLost)

	// The worker reconnects by itself, and the lost attempts run again on it, still
	// as attempt 1.
	require.Equal(t, scheduler.Success(), c.outcome(t, 1))
	require.Equal(t, scheduler.Success(), c.outcome(t, 2))
	mu.Lock()
	require.Equal(t, map[string]int{"t/0/1": 2, "t/0/2": 2}, runs)
	mu.Unlock()
	dialer.mu.Lock()
	require.GreaterOrEqual(t, dialer.dials, 2)
	dialer.mu.Unlock()
	require.NoError(t, stop())
}

func TestWorkerDrainFinishesRunningTasks(t *testing.T) {
	t.Parallel()
	c := newCluster(t, time.Hour, "held")
	started := make(chan struct{}, 4)
	release := make(chan struct{})
	reg := NewRegistry()
	require.NoError(t, reg.Register("held", func(ctx context.Context, _ *Task) error {
		started <- struct{}{}
		select {
		case <-release:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}))
	stop, done, _ := runWorker(t, newTestWorker(t, c.addr, reg))
	c.push(t, 1, "held", "")
	c.push(t, 2, "held", "")
	<-started
	<-started

	stopped := make(chan error, 1)
	go func() { stopped <- stop() }()
	select {
	case <-done:
		t.Fatal("Run returned with tasks still running")
	case <-time.After(50 * time.Millisecond):
	}
	close(release)
	require.NoError(t, <-stopped)
	require.Equal(t, scheduler.Success(), c.outcome(t, 1), "results of running tasks are sent while draining")
	require.Equal(t, scheduler.Success(), c.outcome(t, 2))
}

func TestWorkerDrainTimeoutCancelsTasks(t *testing.T) {
	t.Parallel()
	c := newCluster(t, time.Hour, "stuck")
	started := make(chan struct{}, 1)
	cancelled := make(chan error, 1)
	reg := NewRegistry()
	require.NoError(t, reg.Register("stuck", func(ctx context.Context, _ *Task) error {
		started <- struct{}{}
		<-ctx.Done()
		cancelled <- ctx.Err()
		return ctx.Err()
	}))
	stop, _, _ := runWorker(t, newTestWorker(t, c.addr, reg, func(cfg *WorkerConfig) { cfg.DrainTimeout = 50 * time.Millisecond }))
	c.push(t, 1, "stuck", "")
	<-started
	require.NoError(t, stop())
	require.ErrorIs(t, <-cancelled, context.Canceled, "the drain timeout cancels the running task")

	// Its attempt was lost with the worker, not failed: the next worker runs it.
	next := NewRegistry()
	require.NoError(t, next.Register("stuck", func(context.Context, *Task) error { return nil }))
	stopNext, _, _ := runWorker(t, newTestWorker(t, c.addr, next, func(cfg *WorkerConfig) { cfg.WorkerID = "next" }))
	require.Equal(t, scheduler.Success(), c.outcome(t, 1))
	require.NoError(t, stopNext())
}

func TestWorkerRejectedForUnconfiguredFunction(t *testing.T) {
	t.Parallel()
	c := newCluster(t, time.Second, "configured")
	reg := NewRegistry()
	require.NoError(t, reg.Register("configured", func(context.Context, *Task) error { return nil }))
	require.NoError(t, reg.Register("stray", func(context.Context, *Task) error { return nil }))
	_, done, result := runWorker(t, newTestWorker(t, c.addr, reg))
	select {
	case <-done:
		err := result()
		require.ErrorIs(t, err, ErrWorkerRejected)
		require.ErrorContains(t, err, `"stray"`)
		require.ErrorContains(t, err, "configured: configured")
	case <-time.After(waitTimeout):
		t.Fatal("Run kept retrying a rejected hello")
	}
}

// TestWorkerServesTheLiveSchedulerWhileAnotherIsDown: one address that never answers
// does not keep the worker from serving the other.
func TestWorkerServesTheLiveSchedulerWhileAnotherIsDown(t *testing.T) {
	t.Parallel()
	c := newCluster(t, 10*time.Second, "f")
	dead, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	deadAddr := dead.Addr().String()
	require.NoError(t, dead.Close()) // nothing listens there now
	reg := NewRegistry()
	require.NoError(t, reg.Register("f", func(context.Context, *Task) error { return nil }))
	stop, _, _ := runWorker(t, newTestWorker(t, c.addr, reg, func(cfg *WorkerConfig) { cfg.Addrs = []string{deadAddr, c.addr} }))
	c.push(t, 1, "f", "")
	require.Equal(t, scheduler.Success(), c.outcome(t, 1))
	require.NoError(t, stop())
}

func TestNewWorkerValidatesConfig(t *testing.T) {
	t.Parallel()
	_, err := NewWorker(WorkerConfig{Capacity: -1, Heartbeat: -time.Second})
	require.Error(t, err)
	for _, want := range []string{"Addrs is empty", "Registry is nil", "Capacity is -1", "Heartbeat is -1s"} {
		require.ErrorContains(t, err, want)
	}
	_, err = NewWorker(WorkerConfig{Addrs: []string{""}, Registry: NewRegistry()})
	require.ErrorContains(t, err, "Addrs[0] is empty")
	require.ErrorContains(t, err, "Registry has no functions")

	reg := NewRegistry()
	require.NoError(t, reg.Register("f", func(context.Context, *Task) error { return nil }))
	w, err := NewWorker(WorkerConfig{Addrs: []string{"127.0.0.1:1"}, Registry: reg})
	require.NoError(t, err)
	require.Equal(t, DefaultWorkerCapacity, w.cfg.Capacity)
	require.NotEmpty(t, w.cfg.WorkerID)
}

func TestWorkerCancelTaskCancelsFunction(t *testing.T) {
	t.Parallel()
	c := newCluster(t, time.Hour, "long") // only a CancelTask can end it early
	started := make(chan struct{}, 1)
	cancelled := make(chan error, 1)
	reg := NewRegistry()
	require.NoError(t, reg.Register("long", func(ctx context.Context, _ *Task) error {
		started <- struct{}{}
		<-ctx.Done()
		cancelled <- ctx.Err()
		return ctx.Err()
	}))
	stop, _, _ := runWorker(t, newTestWorker(t, c.addr, reg))
	c.push(t, 1, "long", "")
	<-started
	// Closing the scheduler cancels the attempt; the pool tells the worker.
	require.NoError(t, c.sched.Close())
	select {
	case err := <-cancelled:
		require.ErrorIs(t, err, context.Canceled)
	case <-time.After(waitTimeout):
		t.Fatal("the function's context was not cancelled by CancelTask")
	}
	require.NoError(t, stop())
}
