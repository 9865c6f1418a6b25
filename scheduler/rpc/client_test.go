package rpc

import (
	"context"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/kasync/kasync/scheduler"
	"github.com/kasync/kasync/scheduler/schedulertest"
)

// TestConformance runs the scheduler conformance suite through Client → gRPC over TCP →
// Server → scheduler.Scheduler.
func TestConformance(t *testing.T) {
	t.Parallel()
	schedulertest.Run(t, func(t *testing.T, fns []scheduler.Function) schedulertest.Opener {
		e := newEnv(t, fns, envOptions{server: ServerOptions{PushWindow: schedulertest.Window}})
		return e.client
	})
}

// breakAfter is a server interceptor that fails the first `streams` Push streams after
// each received `msgs` messages, as a network break would.
type breakAfter struct {
	msgs    int64
	streams atomic.Int64
	broken  atomic.Int64
}

func (b *breakAfter) intercept(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	if info.FullMethod != "/kasync.v1.Scheduler/Push" || b.streams.Add(-1) < 0 {
		return handler(srv, ss)
	}
	return handler(srv, &breakingStream{ServerStream: ss, left: b.msgs, b: b})
}

type breakingStream struct {
	grpc.ServerStream
	left int64
	b    *breakAfter
}

func (s *breakingStream) RecvMsg(m any) error {
	if s.left--; s.left < 0 {
		s.b.broken.Add(1)
		return status.Error(codes.Unavailable, "injected break")
	}
	return s.ServerStream.RecvMsg(m)
}

// pushAll pushes n workloads of function in random batches and waits for n results.
func pushAll(t *testing.T, st scheduler.Stream, r *results, function string, n int) {
	t.Helper()
	ctx := ctxT(t)
	for sent := 0; sent < n; {
		k := min(1+rand.IntN(50), n-sent)
		batch := make([]scheduler.Pushed, k)
		for i := range batch {
			token := uint64(sent + i)
			batch[i] = scheduler.Pushed{Token: token, Workload: wl(function, "w"+strconv.FormatUint(token, 10))}
		}
		require.NoError(t, st.Push(ctx, batch))
		sent += k
	}
	r.waitN(t, n)
}

func requireExactlyOnce(t *testing.T, r *results, n int) {
	t.Helper()
	require.Never(t, func() bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		return r.n > n
	}, 50*time.Millisecond, 10*time.Millisecond, "duplicate results")
	for token := range uint64(n) {
		require.Equal(t, scheduler.Success(), r.outcome(t, token), "token %d", token)
	}
}

func TestClientResendsAfterStreamBreaks(t *testing.T) {
	t.Parallel()
	const n = 3000
	var runs atomic.Int64
	brk := &breakAfter{msgs: 7}
	brk.streams.Store(5)
	e := newEnv(t, []scheduler.Function{{Name: "f", Concurrency: 16, Timeout: time.Minute,
		Executor: scheduler.ExecutorFunc(func(context.Context, *scheduler.Workload, time.Duration) scheduler.Outcome {
			runs.Add(1)
			time.Sleep(time.Duration(rand.IntN(200)) * time.Microsecond)
			return scheduler.Success()
		})}}, envOptions{server: ServerOptions{PushWindow: 64}, interceptors: []grpc.StreamServerInterceptor{brk.intercept}})

	r := newResults()
	st, err := e.client.Open(ctxT(t), "breaks", r.deliver)
	require.NoError(t, err)
	defer func() { require.NoError(t, st.Close()) }()
	pushAll(t, st, r, "f", n)
	requireExactlyOnce(t, r, n)
	require.EqualValues(t, 5, brk.broken.Load(), "every injected break happened")
	require.GreaterOrEqual(t, runs.Load(), int64(n), "at least once")
}

func TestClientSurvivesServerRestart(t *testing.T) {
	t.Parallel()
	const n = 600
	release := make(chan struct{})
	var once sync.Once
	e := newEnv(t, []scheduler.Function{{Name: "f", Concurrency: 8, Timeout: time.Minute,
		Executor: scheduler.ExecutorFunc(func(ctx context.Context, w *scheduler.Workload, _ time.Duration) scheduler.Outcome {
			select {
			case <-release:
			case <-ctx.Done():
			}
			return scheduler.Success()
		})}}, envOptions{server: ServerOptions{PushWindow: 1000}})
	defer once.Do(func() { close(release) })

	r := newResults()
	st, err := e.client.Open(ctxT(t), "restart", r.deliver)
	require.NoError(t, err)
	defer func() { require.NoError(t, st.Close()) }()
	batch := make([]scheduler.Pushed, n)
	for i := range batch {
		batch[i] = scheduler.Pushed{Token: uint64(i), Workload: wl("f", "r"+strconv.Itoa(i))}
	}
	require.NoError(t, st.Push(ctxT(t), batch))
	// Every workload is in the scheduler and none answered: the break loses all outcomes.
	require.Eventually(t, func() bool {
		fs, ok := e.sched.Stats().Function("f")
		return ok && fs.Queued+fs.Running == n
	}, waitTimeout, time.Millisecond)
	// The new server grants a window far smaller than what is unanswered: the re-send
	// must follow its credit.
	e.restart(t, ServerOptions{PushWindow: 16, Logger: e.srv.log})
	once.Do(func() { close(release) })
	r.waitN(t, n)
	requireExactlyOnce(t, r, n)
}

func TestClientOpenFailsOnRejectedHello(t *testing.T) {
	t.Parallel()
	e := newEnv(t, []scheduler.Function{{Name: "f", Concurrency: 1, Timeout: time.Second}}, envOptions{})
	_, err := e.client.Open(ctxT(t), "", func([]scheduler.Result) {})
	require.ErrorContains(t, err, "name is empty")
	_, err = e.client.Open(ctxT(t), "x", nil)
	require.ErrorContains(t, err, "deliver is nil")
}

func TestClientDuplicateTokenIsRefused(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	e := newEnv(t, []scheduler.Function{{Name: "f", Concurrency: 1, Timeout: time.Minute,
		Executor: scheduler.ExecutorFunc(func(ctx context.Context, _ *scheduler.Workload, _ time.Duration) scheduler.Outcome {
			select {
			case <-release:
			case <-ctx.Done():
			}
			return scheduler.Success()
		})}}, envOptions{})
	defer close(release)
	st, err := e.client.Open(ctxT(t), "dup", func([]scheduler.Result) {})
	require.NoError(t, err)
	defer func() { require.NoError(t, st.Close()) }()
	require.NoError(t, st.Push(ctxT(t), []scheduler.Pushed{{Token: 1, Workload: wl("f", "a")}}))
	err = st.Push(ctxT(t), []scheduler.Pushed{{Token: 1, Workload: wl("f", "b")}})
	require.ErrorContains(t, err, "token 1 already has a workload")
}

func TestClientAnswersUnsendableWorkloadLocally(t *testing.T) {
	t.Parallel()
	e := newEnv(t, []scheduler.Function{{Name: "f", Concurrency: 1, Timeout: time.Minute,
		Executor: scheduler.ExecutorFunc(func(context.Context, *scheduler.Workload, time.Duration) scheduler.Outcome {
			return scheduler.Success()
		})}}, envOptions{client: ClientOptions{MaxMessageBytes: 4096}})
	r := newResults()
	st, err := e.client.Open(ctxT(t), "big", r.deliver)
	require.NoError(t, err)
	defer func() { require.NoError(t, st.Close()) }()
	big := wl("f", "big")
	big.Payload = make([]byte, 8192)
	require.NoError(t, st.Push(ctxT(t), []scheduler.Pushed{{Token: 1, Workload: big}, {Token: 2, Workload: wl("f", "small")}}))
	r.waitN(t, 2)
	o := r.outcome(t, 1)
	require.Equal(t, scheduler.OutcomeFatal, o.Kind)
	require.Equal(t, scheduler.ReasonTooLarge, o.Reason)
	require.Equal(t, scheduler.Success(), r.outcome(t, 2))
}

// BenchmarkPushNoop measures workloads/s through Client → gRPC → Server → a no-op executor.
func BenchmarkPushNoop(b *testing.B) {
	e := newEnv(b, []scheduler.Function{{Name: "noop", Concurrency: 64, Timeout: time.Minute,
		Executor: scheduler.ExecutorFunc(func(context.Context, *scheduler.Workload, time.Duration) scheduler.Outcome {
			return scheduler.Success()
		})}}, envOptions{})
	r := newResults()
	st, err := e.client.Open(ctxT(b), "bench", r.deliver)
	require.NoError(b, err)
	defer func() { require.NoError(b, st.Close()) }()
	const batchSize = 500
	payload := make([]byte, 100)
	b.ResetTimer()
	start := time.Now()
	for sent := 0; sent < b.N; {
		k := min(batchSize, b.N-sent)
		batch := make([]scheduler.Pushed, k)
		for i := range batch {
			batch[i] = scheduler.Pushed{Token: uint64(sent + i), Workload: &scheduler.Workload{
				ID: "bench/0/" + strconv.Itoa(sent+i), Function: "noop", Payload: payload, Attempt: 1}}
		}
		require.NoError(b, st.Push(context.Background(), batch))
		sent += k
	}
	r.waitN(b, b.N)
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "workloads/s")
}
