package rpc

import (
	"context"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	kasyncv1 "github.com/kasync/kasync/proto/kasync/v1"
	"github.com/kasync/kasync/scheduler"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// waitTimeout bounds waits for things that must happen.
const waitTimeout = 20 * time.Second

// env is a scheduler behind a real gRPC server on 127.0.0.1, and a client of it.
type env struct {
	sched  *scheduler.Scheduler
	pool   *WorkerPool
	srv    *Server
	addr   string
	conn   *grpc.ClientConn
	client *Client
	api    kasyncv1.SchedulerClient

	mu sync.Mutex
	g  *grpc.Server
}

type envOptions struct {
	pool         PoolOptions
	server       ServerOptions
	client       ClientOptions
	interceptors []grpc.StreamServerInterceptor
	// execute serves the pool's functions through Execute only, as for a gated
	// function: one scheduler goroutine waits for each attempt. Otherwise the
	// scheduler hands attempts over with Start.
	execute bool
}

// executeOnly is a pool seen as a plain Executor.
type executeOnly struct{ p *WorkerPool }

func (x executeOnly) Execute(ctx context.Context, w *scheduler.Workload, timeout time.Duration) scheduler.Outcome {
	return x.p.Execute(ctx, w, timeout)
}

// bothWays runs test with attempts handed to the pool by Start, then by Execute.
func bothWays(t *testing.T, test func(t *testing.T, execute bool)) {
	for _, execute := range []bool{false, true} {
		name := "Start"
		if execute {
			name = "Execute"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			test(t, execute)
		})
	}
}

// newEnv starts an env for fns; a function with a nil Executor is served by the pool.
func newEnv(t testing.TB, fns []scheduler.Function, o envOptions) *env {
	t.Helper()
	logger := slog.New(slog.NewTextHandler(t.Output(), nil))
	if o.pool.Logger == nil {
		o.pool.Logger = logger
	}
	pool, err := NewPool(o.pool)
	require.NoError(t, err)
	e := &env{pool: pool}
	for i := range fns {
		if fns[i].Executor == nil {
			fns[i].Executor = e.pool
			if o.execute {
				fns[i].Executor = executeOnly{e.pool}
			}
		}
	}
	e.sched, err = scheduler.New(scheduler.Config{Functions: fns, Logger: logger})
	require.NoError(t, err)
	if o.server.Logger == nil {
		o.server.Logger = logger
	}
	e.srv, err = NewServer(e.sched, e.pool, o.server)
	require.NoError(t, err)

	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	e.addr = lis.Addr().String()
	e.serve(lis, o.interceptors)

	e.conn, err = grpc.NewClient(e.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	if o.client.Logger == nil {
		o.client.Logger = logger
	}
	if o.client.ReconnectBackoff == 0 {
		o.client.ReconnectBackoff = 5 * time.Millisecond
		o.client.MaxReconnectBackoff = 50 * time.Millisecond
	}
	e.client = NewClient(e.conn, o.client)
	e.api = kasyncv1.NewSchedulerClient(e.conn)
	t.Cleanup(func() {
		require.NoError(t, e.conn.Close())
		e.stop()
		require.NoError(t, e.pool.Close())
		require.NoError(t, e.sched.Close())
	})
	return e
}

func (e *env) serve(lis net.Listener, interceptors []grpc.StreamServerInterceptor) {
	// WaitForHandlers: Stop returns after every handler did, so none logs after its test.
	g := grpc.NewServer(append(GRPCServerOptions(), grpc.WaitForHandlers(true), grpc.ChainStreamInterceptor(interceptors...))...)
	e.srv.Register(g)
	e.mu.Lock()
	e.g = g
	e.mu.Unlock()
	go func() { _ = g.Serve(lis) }() // returns when g stops
}

func (e *env) stop() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.g.Stop()
}

// restart stops the gRPC server (breaking every stream) and serves again on the same
// address, with the same scheduler.
func (e *env) restart(t testing.TB, opts ...ServerOptions) {
	t.Helper()
	e.stop()
	if len(opts) > 0 {
		srv, err := NewServer(e.sched, e.pool, opts[0])
		require.NoError(t, err)
		e.srv = srv
	}
	var lis net.Listener
	require.Eventually(t, func() bool {
		var err error
		lis, err = net.Listen("tcp", e.addr)
		return err == nil
	}, waitTimeout, 10*time.Millisecond)
	e.serve(lis, nil)
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	t.Cleanup(cancel)
	return ctx
}

// results collects delivered results by token.
type results struct {
	mu  sync.Mutex
	got map[uint64][]scheduler.Outcome
	n   int
	ch  chan struct{} // buffered 1: something arrived
}

func newResults() *results {
	return &results{got: make(map[uint64][]scheduler.Outcome), ch: make(chan struct{}, 1)}
}

func (r *results) deliver(rs []scheduler.Result) {
	r.mu.Lock()
	for _, x := range rs {
		r.got[x.Token] = append(r.got[x.Token], x.Outcome)
		r.n++
	}
	r.mu.Unlock()
	select {
	case r.ch <- struct{}{}:
	default:
	}
}

// waitN waits until n results arrived.
func (r *results) waitN(t testing.TB, n int) {
	t.Helper()
	deadline := time.After(waitTimeout)
	for {
		r.mu.Lock()
		got := r.n
		r.mu.Unlock()
		if got >= n {
			return
		}
		select {
		case <-r.ch:
		case <-deadline:
			t.Fatalf("got %d results after %v, want %d", got, waitTimeout, n)
		}
	}
}

func (r *results) outcome(t testing.TB, token uint64) scheduler.Outcome {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	require.Len(t, r.got[token], 1, "results for token %d", token)
	return r.got[token][0]
}

// waitOutcome waits for the one result of token.
func (r *results) waitOutcome(t testing.TB, token uint64) scheduler.Outcome {
	t.Helper()
	require.Eventually(t, func() bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		return len(r.got[token]) > 0
	}, waitTimeout, time.Millisecond)
	return r.outcome(t, token)
}

func wl(function, id string) *scheduler.Workload {
	return &scheduler.Workload{ID: id, Function: function, Payload: []byte(id), Attempt: 1, Created: time.Now()}
}

func requireCode(t testing.TB, err error, want interface{ String() string }, contains ...string) {
	t.Helper()
	require.Error(t, err)
	st, ok := status.FromError(err)
	require.True(t, ok, "not a gRPC status: %v", err)
	require.Equal(t, want.String(), st.Code().String(), "status %v", err)
	for _, c := range contains {
		require.Contains(t, st.Message(), c)
	}
}

// rawWorker is a hand-driven Work stream.
type rawWorker struct {
	stream grpc.BidiStreamingClient[kasyncv1.WorkRequest, kasyncv1.WorkResponse]
	cancel context.CancelFunc
}

func dialWorker(t testing.TB, e *env, hello *kasyncv1.WorkerHello) (*rawWorker, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	t.Cleanup(cancel)
	stream, err := e.api.Work(ctx)
	require.NoError(t, err)
	require.NoError(t, stream.Send(&kasyncv1.WorkRequest{Msg: &kasyncv1.WorkRequest_Hello{Hello: hello}}))
	msg, err := stream.Recv()
	if err != nil {
		cancel()
		return nil, err
	}
	require.NotNil(t, msg.GetWelcome(), "first message %v", msg)
	return &rawWorker{stream: stream, cancel: cancel}, nil
}

func (w *rawWorker) send(t testing.TB, m *kasyncv1.WorkRequest) {
	t.Helper()
	require.NoError(t, w.stream.Send(m))
}

func (w *rawWorker) recv(t testing.TB) *kasyncv1.WorkResponse {
	t.Helper()
	m, err := w.stream.Recv()
	require.NoError(t, err)
	return m
}

func (w *rawWorker) answer(t testing.TB, id uint64, o scheduler.Outcome) {
	t.Helper()
	w.send(t, &kasyncv1.WorkRequest{Msg: &kasyncv1.WorkRequest_Result{Result: TaskResultToProto(id, o)}})
}

func (w *rawWorker) credit(t testing.TB, n uint32) {
	t.Helper()
	w.send(t, &kasyncv1.WorkRequest{Msg: &kasyncv1.WorkRequest_Credit{Credit: &kasyncv1.WorkCredit{N: n}}})
}

func (w *rawWorker) ended(t testing.TB) error {
	t.Helper()
	for {
		if _, err := w.stream.Recv(); err != nil {
			return err
		}
	}
}

// requireServes proves that w still gets and answers tasks: it pushes one workload of
// function on a fresh Push stream and answers the task w receives.
func requireServes(t testing.TB, e *env, w *rawWorker, function string) {
	t.Helper()
	r := newResults()
	st, err := e.client.Open(ctxT(t), "serves", r.deliver)
	require.NoError(t, err)
	defer func() { require.NoError(t, st.Close()) }()
	require.NoError(t, st.Push(ctxT(t), []scheduler.Pushed{{Token: 7, Workload: wl(function, "serves")}}))
	task := w.recv(t).GetTask()
	require.NotNil(t, task)
	require.Equal(t, "serves", task.GetId())
	w.answer(t, task.GetTaskId(), scheduler.Success())
	require.Equal(t, scheduler.Success(), r.waitOutcome(t, 7))
}

// pushAllOf opens a Push stream and pushes one workload per id, with tokens 1, 2, ...
func pushAllOf(t testing.TB, e *env, r *results, function string, ids ...string) {
	t.Helper()
	st, err := e.client.Open(ctxT(t), "push", r.deliver)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, st.Close()) })
	ps := make([]scheduler.Pushed, len(ids))
	for i, id := range ids {
		ps[i] = scheduler.Pushed{Token: uint64(i + 1), Workload: wl(function, id)}
	}
	require.NoError(t, st.Push(ctxT(t), ps))
}
