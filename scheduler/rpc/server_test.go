package rpc

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"

	kasyncv1 "github.com/kasync/kasync/proto/kasync/v1"
	"github.com/kasync/kasync/scheduler"
)

func okExecutor() scheduler.Executor {
	return scheduler.ExecutorFunc(func(context.Context, *scheduler.Workload, time.Duration) scheduler.Outcome {
		return scheduler.Success()
	})
}

// requireHealthy proves a Push stream still works next to whatever a test broke.
func requireHealthy(t *testing.T, e *env, function string) {
	t.Helper()
	r := newResults()
	st, err := e.client.Open(ctxT(t), "healthy", r.deliver)
	require.NoError(t, err)
	defer func() { require.NoError(t, st.Close()) }()
	require.NoError(t, st.Push(ctxT(t), []scheduler.Pushed{{Token: 42, Workload: wl(function, "healthy-1")}}))
	require.Equal(t, scheduler.Success(), r.waitOutcome(t, 42))
}

func TestPushRejectsBadHello(t *testing.T) {
	t.Parallel()
	e := newEnv(t, []scheduler.Function{{Name: "f", Concurrency: 1, Timeout: time.Second, Executor: okExecutor()}}, envOptions{})
	cases := map[string]*kasyncv1.PushRequest{
		"empty tailer":       {Msg: &kasyncv1.PushRequest_Hello{Hello: &kasyncv1.PushHello{}}},
		"batch before hello": {Msg: &kasyncv1.PushRequest_Batch{Batch: &kasyncv1.WorkloadBatch{}}},
		"empty message":      {},
	}
	for name, first := range cases {
		t.Run(name, func(t *testing.T) {
			stream, err := e.api.Push(ctxT(t))
			require.NoError(t, err)
			require.NoError(t, stream.Send(first))
			_, err = stream.Recv()
			requireCode(t, err, codes.InvalidArgument)
		})
	}
	requireHealthy(t, e, "f")
}

func TestPushOverCreditIsResourceExhausted(t *testing.T) {
	t.Parallel()
	const window = 4
	release := make(chan struct{})
	e := newEnv(t, []scheduler.Function{{Name: "f", Concurrency: 8, Timeout: time.Minute,
		Executor: scheduler.ExecutorFunc(func(ctx context.Context, w *scheduler.Workload, _ time.Duration) scheduler.Outcome {
			if w.ID == "healthy-1" {
				return scheduler.Success()
			}
			select {
			case <-release:
			case <-ctx.Done():
			}
			return scheduler.Success()
		})}}, envOptions{server: ServerOptions{PushWindow: window}})
	defer close(release)

	stream, err := e.api.Push(ctxT(t))
	require.NoError(t, err)
	require.NoError(t, stream.Send(&kasyncv1.PushRequest{Msg: &kasyncv1.PushRequest_Hello{Hello: &kasyncv1.PushHello{Tailer: "greedy"}}}))
	first, err := stream.Recv()
	require.NoError(t, err)
	require.EqualValues(t, window, first.GetCredit().GetWorkloads())
	batch := func(from, n int) *kasyncv1.PushRequest {
		ws := make([]*kasyncv1.Workload, n)
		for i := range ws {
			ws[i] = WorkloadToProto(uint64(from+i), wl("f", "g"))
		}
		return &kasyncv1.PushRequest{Msg: &kasyncv1.PushRequest_Batch{Batch: &kasyncv1.WorkloadBatch{Workloads: ws}}}
	}
	require.NoError(t, stream.Send(batch(0, window-1))) // within credit
	require.NoError(t, stream.Send(batch(window, 2)))   // one over
	_, err = stream.Recv()
	requireCode(t, err, codes.ResourceExhausted, "exceeds the remaining credit of 1")
	requireHealthy(t, e, "f")
}

func TestPushInvalidWorkloadGetsFatalOutcome(t *testing.T) {
	t.Parallel()
	e := newEnv(t, []scheduler.Function{{Name: "f", Concurrency: 1, Timeout: time.Second, Executor: okExecutor()}},
		envOptions{server: ServerOptions{MaxWorkloadBytes: 10}})
	r := newResults()
	st, err := e.client.Open(ctxT(t), "invalid", r.deliver)
	require.NoError(t, err)
	defer func() { require.NoError(t, st.Close()) }()
	zeroAttempt := wl("f", "zero")
	zeroAttempt.Attempt = 0
	noID := wl("f", "")
	big := wl("f", "big")
	big.Payload = make([]byte, 11)
	require.NoError(t, st.Push(ctxT(t), []scheduler.Pushed{
		{Token: 1, Workload: zeroAttempt}, {Token: 2, Workload: noID}, {Token: 3, Workload: big}, {Token: 4, Workload: wl("f", "ok")},
	}))
	r.waitN(t, 4)
	for token, want := range map[uint64]string{1: "attempt is 0", 2: "id is empty"} {
		o := r.outcome(t, token)
		require.Equal(t, scheduler.OutcomeFatal, o.Kind)
		require.Equal(t, scheduler.ReasonInvalid, o.Reason)
		require.Contains(t, o.Err, want)
	}
	require.Equal(t, scheduler.ReasonTooLarge, r.outcome(t, 3).Reason)
	require.Equal(t, scheduler.Success(), r.outcome(t, 4))
}

func TestWorkRejectsBadHello(t *testing.T) {
	t.Parallel()
	e := newEnv(t, []scheduler.Function{
		{Name: "f", Concurrency: 1, Timeout: time.Second},
		{Name: "g", Concurrency: 1, Timeout: time.Second, Executor: okExecutor()},
	}, envOptions{})
	good, err := dialWorker(t, e, &kasyncv1.WorkerHello{WorkerId: "good", Functions: []string{"f"}, Capacity: 1})
	require.NoError(t, err)
	defer good.cancel()
	cases := []struct {
		name     string
		hello    *kasyncv1.WorkerHello
		code     codes.Code
		contains []string
	}{
		{"no id", &kasyncv1.WorkerHello{Functions: []string{"f"}, Capacity: 1}, codes.InvalidArgument, []string{"worker_id is empty"}},
		{"no functions", &kasyncv1.WorkerHello{WorkerId: "w", Capacity: 1}, codes.InvalidArgument, []string{"functions is empty"}},
		{"empty function", &kasyncv1.WorkerHello{WorkerId: "w", Functions: []string{""}, Capacity: 1}, codes.InvalidArgument, []string{"functions[0] is empty"}},
		{"duplicate function", &kasyncv1.WorkerHello{WorkerId: "w", Functions: []string{"f", "f"}, Capacity: 1}, codes.InvalidArgument, []string{`functions[1] "f" is listed twice`}},
		{"zero capacity", &kasyncv1.WorkerHello{WorkerId: "w", Functions: []string{"f"}}, codes.InvalidArgument, []string{"capacity is 0"}},
		{"huge capacity", &kasyncv1.WorkerHello{WorkerId: "w", Functions: []string{"f"}, Capacity: MaxWorkerCapacity + 1}, codes.InvalidArgument, []string{"capacity is 100001"}},
		{"busy over capacity", &kasyncv1.WorkerHello{WorkerId: "w", Functions: []string{"f"}, Capacity: 2, Busy: 3}, codes.InvalidArgument, []string{"busy is 3"}},
		{"unknown function", &kasyncv1.WorkerHello{WorkerId: "w", Functions: []string{"f", "nope"}, Capacity: 1}, codes.FailedPrecondition,
			[]string{`"nope"`, "configured: f, g"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := dialWorker(t, e, c.hello)
			requireCode(t, err, c.code, c.contains...)
		})
	}
	require.Len(t, e.pool.Workers(), 1, "only the good worker joined")
	requireHealthy(t, e, "g")
	requireServes(t, e, good, "f")
}

// servedWorkload pushes one workload of function and returns the task a raw worker got.
func servedWorkload(t *testing.T, e *env, w *rawWorker, r *results, token uint64, function string) (*kasyncv1.Task, func(scheduler.Pushed)) {
	t.Helper()
	st, err := e.client.Open(ctxT(t), "served", r.deliver)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, st.Close()) })
	push := func(p scheduler.Pushed) { require.NoError(t, st.Push(ctxT(t), []scheduler.Pushed{p})) }
	push(scheduler.Pushed{Token: token, Workload: wl(function, "task-1")})
	task := w.recv(t).GetTask()
	require.NotNil(t, task)
	require.Equal(t, "task-1", task.GetId())
	require.Equal(t, function, task.GetFunction())
	return task, push
}

func TestWorkGarbageResultEndsOnlyThatWorker(t *testing.T) {
	t.Parallel()
	e := newEnv(t, []scheduler.Function{{Name: "f", Concurrency: 4, Timeout: time.Minute}}, envOptions{})
	bad, err := dialWorker(t, e, &kasyncv1.WorkerHello{WorkerId: "bad", Functions: []string{"f"}, Capacity: 1})
	require.NoError(t, err)
	r := newResults()
	task, push := servedWorkload(t, e, bad, r, 1, "f")
	good, err := dialWorker(t, e, &kasyncv1.WorkerHello{WorkerId: "good", Functions: []string{"f"}, Capacity: 1})
	require.NoError(t, err)
	defer good.cancel()

	bad.answer(t, task.GetTaskId()+1000, scheduler.Success()) // a task it does not hold
	requireCode(t, bad.ended(t), codes.InvalidArgument, "does not hold")

	// The task the bad worker held is lost with it and goes to the other worker, which
	// is unaffected and serves the next workload too.
	again := good.recv(t).GetTask()
	require.Equal(t, "task-1", again.GetId())
	good.answer(t, again.GetTaskId(), scheduler.Success())
	require.Equal(t, scheduler.Success(), r.waitOutcome(t, 1))
	good.credit(t, 1)
	push(scheduler.Pushed{Token: 2, Workload: wl("f", "task-2")})
	task2 := good.recv(t).GetTask()
	good.answer(t, task2.GetTaskId(), scheduler.Success())
	require.Equal(t, scheduler.Success(), r.waitOutcome(t, 2))
}

func TestWorkProtocolViolations(t *testing.T) {
	t.Parallel()
	e := newEnv(t, []scheduler.Function{{Name: "f", Concurrency: 1, Timeout: time.Minute}}, envOptions{})
	hello := &kasyncv1.WorkerHello{WorkerId: "w", Functions: []string{"f"}, Capacity: 2}
	cases := map[string]struct {
		msg  *kasyncv1.WorkRequest
		want string
	}{
		"excess credit":  {&kasyncv1.WorkRequest{Msg: &kasyncv1.WorkRequest_Credit{Credit: &kasyncv1.WorkCredit{N: 1}}}, "over the capacity 2"},
		"zero credit":    {&kasyncv1.WorkRequest{Msg: &kasyncv1.WorkRequest_Credit{Credit: &kasyncv1.WorkCredit{}}}, "WorkCredit.n is 0"},
		"second hello":   {&kasyncv1.WorkRequest{Msg: &kasyncv1.WorkRequest_Hello{Hello: hello}}, "second WorkerHello"},
		"empty message":  {&kasyncv1.WorkRequest{}, "empty or unknown"},
		"unknown result": {&kasyncv1.WorkRequest{Msg: &kasyncv1.WorkRequest_Result{Result: &kasyncv1.TaskResult{TaskId: 9, Kind: kasyncv1.OutcomeKind_OUTCOME_KIND_SUCCESS}}}, "does not hold"},
		"no kind":        {&kasyncv1.WorkRequest{Msg: &kasyncv1.WorkRequest_Result{Result: &kasyncv1.TaskResult{TaskId: 9}}}, "outcome kind 0"},
	}
	// A worker connected all along keeps serving whatever the others send.
	good, err := dialWorker(t, e, &kasyncv1.WorkerHello{WorkerId: "good", Functions: []string{"f"}, Capacity: 1})
	require.NoError(t, err)
	defer good.cancel()
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			w, err := dialWorker(t, e, hello)
			require.NoError(t, err)
			w.send(t, c.msg)
			requireCode(t, w.ended(t), codes.InvalidArgument, c.want)
			requireServes(t, e, good, "f")
			good.credit(t, 1)
		})
	}
	t.Run("garbage bytes", func(t *testing.T) {
		stream, err := e.api.Work(ctxT(t), grpc.ForceCodecV2(rawCodec{}))
		require.NoError(t, err)
		require.NoError(t, stream.Send(&kasyncv1.WorkRequest{Msg: &kasyncv1.WorkRequest_Hello{Hello: hello}}))
		welcome, err := stream.Recv()
		require.NoError(t, err)
		require.NotNil(t, welcome.GetWelcome())
		require.NoError(t, stream.SendMsg([]byte("\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff not protobuf")))
		w := &rawWorker{stream: stream}
		// gRPC refuses bytes that do not decode before the handler sees them, with
		// its own status.
		requireCode(t, w.ended(t), codes.Internal, "failed to unmarshal")
		requireServes(t, e, good, "f")
	})
	require.Len(t, e.pool.Workers(), 1, "only the good worker is left")
}

// rawCodec puts a []byte on the wire as it is and anything else as protobuf, so a test
// can send garbage on a stream.
type rawCodec struct{}

func (rawCodec) Marshal(v any) (mem.BufferSlice, error) {
	if b, ok := v.([]byte); ok {
		return mem.BufferSlice{mem.SliceBuffer(b)}, nil
	}
	b, err := proto.Marshal(v.(proto.Message))
	return mem.BufferSlice{mem.SliceBuffer(b)}, err
}

func (rawCodec) Unmarshal(data mem.BufferSlice, v any) error {
	return proto.Unmarshal(data.Materialize(), v.(proto.Message))
}

func (rawCodec) Name() string { return "proto" }

func TestWorkHeartbeatsForUnknownTasksAreIgnored(t *testing.T) {
	t.Parallel()
	e := newEnv(t, []scheduler.Function{{Name: "f", Concurrency: 1, Timeout: time.Minute}}, envOptions{})
	w, err := dialWorker(t, e, &kasyncv1.WorkerHello{WorkerId: "w", Functions: []string{"f"}, Capacity: 1})
	require.NoError(t, err)
	defer w.cancel()
	w.send(t, &kasyncv1.WorkRequest{Msg: &kasyncv1.WorkRequest_Heartbeat{Heartbeat: &kasyncv1.Heartbeat{TaskIds: []uint64{77}}}})
	r := newResults()
	task, _ := servedWorkload(t, e, w, r, 1, "f")
	w.send(t, &kasyncv1.WorkRequest{Msg: &kasyncv1.WorkRequest_Heartbeat{Heartbeat: &kasyncv1.Heartbeat{TaskIds: []uint64{task.GetTaskId()}}}})
	w.answer(t, task.GetTaskId(), scheduler.Retriable(scheduler.ReasonError, "boom"))
	require.Equal(t, scheduler.Retriable(scheduler.ReasonError, "boom"), r.waitOutcome(t, 1))
}
