package node_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/kasync/kasync/internal/config"
	"github.com/kasync/kasync/internal/kafkatest"
	"github.com/kasync/kasync/internal/node"
	kasyncv1 "github.com/kasync/kasync/proto/kasync/v1"
	kruntime "github.com/kasync/kasync/runtime"
	"github.com/kasync/kasync/scheduler"
)

// submitNode starts a node whose function fn (named after the test, so that ingest
// topics never meet on a shared cluster) accepts submitted tasks, and returns a Tasks
// client to it.
func submitNode(t *testing.T, fn string, run kruntime.Func, edit ...func(*config.Config)) (kasyncv1.TasksClient, *config.Config) {
	t.Helper()
	brokers := kafkatest.Brokers(t)
	topic := kafkatest.NewTopic(t, brokers, 1)
	cfg := testConfig(t, brokers, topic, append([]func(*config.Config){func(c *config.Config) {
		c.Functions[0].Name = fn
		c.Functions[0].Submit = true
		c.Tailers[0].Function = fn
	}}, edit...)...)
	reg := kruntime.NewRegistry()
	reg.MustRegister(fn, run)
	nd := start(t, node.Options{Config: cfg, Registry: reg})
	conn, err := grpc.NewClient(nd.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	return kasyncv1.NewTasksClient(conn), cfg
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// states polls GetTask for id until its state is final, and returns every distinct
// state seen, in order, and the last status. seen is called with each new state.
func states(t *testing.T, tc kasyncv1.TasksClient, id string, seen func(kasyncv1.TaskState)) ([]kasyncv1.TaskState, *kasyncv1.TaskStatus) {
	t.Helper()
	var (
		out  []kasyncv1.TaskState
		last *kasyncv1.TaskStatus
	)
	require.Eventually(t, func() bool {
		st, err := tc.GetTask(ctxT(t), &kasyncv1.GetTaskRequest{TaskId: id})
		if status.Code(err) == codes.NotFound {
			return false // not indexed yet
		}
		require.NoError(t, err)
		last = st
		if len(out) == 0 || out[len(out)-1] != st.GetState() {
			out = append(out, st.GetState())
			if seen != nil {
				seen(st.GetState())
			}
		}
		s := st.GetState()
		return s == kasyncv1.TaskState_TASK_STATE_SUCCESS || s == kasyncv1.TaskState_TASK_STATE_FATAL_FAILURE
	}, time.Minute, 2*time.Millisecond, "task %s reaches a final state (seen %v, last %v)", id, &out, &last)
	return out, last
}

// requireInOrder: seen is a subsequence of order.
func requireInOrder(t *testing.T, seen, order []kasyncv1.TaskState) {
	t.Helper()
	i := 0
	for _, s := range seen {
		j := slices.Index(order[i:], s)
		require.GreaterOrEqual(t, j, 0, "state %s after %v is out of order %v", s, seen, order)
		i += j + 1
	}
}

// TestSubmitWithDelayRunsWhenDue: a task submitted with a 200ms delay, on the
// millisecond ladder, goes onto a rung and runs no earlier than its due time, as attempt
// 1, under the task id Submit returned; GetTask then says SUCCESS.
func TestSubmitWithDelayRunsWhenDue(t *testing.T) {
	t.Parallel()
	type start struct {
		id      string
		attempt int
		at      time.Time
	}
	ran := make(chan start, 1)
	tc, cfg := submitNode(t, "later", func(_ context.Context, task *kruntime.Task) error {
		ran <- start{task.ID, task.Attempt, time.Now()}
		return nil
	})
	resp, err := tc.Submit(ctxT(t), &kasyncv1.SubmitRequest{Function: "later", Payload: []byte("p"),
		When: &kasyncv1.SubmitRequest_DelayMs{DelayMs: 200}})
	require.NoError(t, err)
	require.True(t, resp.GetScheduled(), "200ms is beyond the ladder's 5ms tolerance: onto a rung")
	require.True(t, strings.HasPrefix(resp.GetTaskId(), cfg.Delay.TopicPrefix+"."), "the id names the rung record: %s", resp.GetTaskId())
	due := time.UnixMilli(resp.GetDueUnixMs())

	got := <-ran
	require.False(t, got.at.Before(due), "the task started %s before its due time", due.Sub(got.at))
	require.Equal(t, 1, got.attempt, "the first run is attempt 1")
	require.Equal(t, resp.GetTaskId(), got.id, "the function sees the task id as its workload id")

	seen, last := states(t, tc, resp.GetTaskId(), nil)
	require.Equal(t, kasyncv1.TaskState_TASK_STATE_SUCCESS, last.GetState(), "states seen: %v", seen)
	require.Equal(t, "later", last.GetFunction())
	require.EqualValues(t, 1, last.GetAttempts())
}

// TestGetTaskWalksToSuccess: a task submitted with a run_at in the past runs now (the
// ingest topic); GetTask shows its states in order, ENQUEUED while the function is held,
// and ends in SUCCESS. The function gets the key, headers and payload.
func TestGetTaskWalksToSuccess(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	var (
		mu  sync.Mutex
		got *kruntime.Task
	)
	tc, _ := submitNode(t, "walk", func(ctx context.Context, task *kruntime.Task) error {
		select {
		case <-release:
		case <-ctx.Done():
			return ctx.Err()
		}
		mu.Lock()
		got = task
		mu.Unlock()
		return nil
	})
	resp, err := tc.Submit(ctxT(t), &kasyncv1.SubmitRequest{Function: "walk", Payload: []byte("hello"), Key: []byte("k"),
		Headers:  []*kasyncv1.Header{{Key: []byte("trace"), Value: []byte("t-1")}},
		When:     &kasyncv1.SubmitRequest_RunAtUnixMs{RunAtUnixMs: time.Now().Add(-time.Hour).UnixMilli()},
		Priority: 3})
	require.NoError(t, err)
	require.False(t, resp.GetScheduled(), "a run_at in the past runs now")
	require.True(t, strings.HasPrefix(resp.GetTaskId(), config.IngestTopic("walk")+"/"), resp.GetTaskId())

	once := sync.OnceFunc(func() { close(release) })
	t.Cleanup(once)
	seen, last := states(t, tc, resp.GetTaskId(), func(s kasyncv1.TaskState) {
		if s == kasyncv1.TaskState_TASK_STATE_ENQUEUED {
			once() // seen while the function is held: let it finish
		}
	})
	requireInOrder(t, seen, []kasyncv1.TaskState{kasyncv1.TaskState_TASK_STATE_NEW, kasyncv1.TaskState_TASK_STATE_ENQUEUED,
		kasyncv1.TaskState_TASK_STATE_SUCCESS})
	require.Contains(t, seen, kasyncv1.TaskState_TASK_STATE_ENQUEUED)
	require.Equal(t, kasyncv1.TaskState_TASK_STATE_SUCCESS, last.GetState())
	require.EqualValues(t, 1, last.GetAttempts())
	require.NotZero(t, last.GetCreatedUnixMs())
	require.GreaterOrEqual(t, last.GetUpdatedUnixMs(), last.GetCreatedUnixMs())

	mu.Lock()
	defer mu.Unlock()
	require.Equal(t, "hello", string(got.Payload))
	require.Equal(t, "k", string(got.Key))
	require.Equal(t, resp.GetTaskId(), got.ID)
	require.Contains(t, got.Headers, scheduler.Header{Key: "trace", Value: []byte("t-1")})
}

// TestFailingSubmittedTaskShowsItsError: a task whose function always fails shows
// RETRIABLE_FAILURE with its error and next due time while it waits on a rung, then
// FATAL_FAILURE (exhausted) with the last error, after max_attempts attempts. The index
// keeps only the latest state, so the backoff is the window in which GetTask, polled
// every few milliseconds, must see RETRIABLE_FAILURE: 500ms was missed once under -race
// on a loaded machine; 3s leaves room for a stall of the poller or the node.
func TestFailingSubmittedTaskShowsItsError(t *testing.T) {
	t.Parallel()
	tc, cfg := submitNode(t, "failing", func(context.Context, *kruntime.Task) error {
		return errors.New("boom: the card was declined")
	}, func(c *config.Config) {
		c.StormGuard.Disabled = true
		c.Functions[0].Retry = config.Retry{MaxAttempts: 2, Backoff: []config.Duration{config.Duration(3 * time.Second)}}
	})
	resp, err := tc.Submit(ctxT(t), &kasyncv1.SubmitRequest{Function: "failing", Payload: []byte("x")})
	require.NoError(t, err)

	var retriable *kasyncv1.TaskStatus
	seen, last := states(t, tc, resp.GetTaskId(), func(s kasyncv1.TaskState) {
		if s == kasyncv1.TaskState_TASK_STATE_RETRIABLE_FAILURE && retriable == nil {
			st, err := tc.GetTask(ctxT(t), &kasyncv1.GetTaskRequest{TaskId: resp.GetTaskId()})
			require.NoError(t, err)
			retriable = st
		}
	})
	requireInOrder(t, seen, []kasyncv1.TaskState{kasyncv1.TaskState_TASK_STATE_NEW, kasyncv1.TaskState_TASK_STATE_ENQUEUED,
		kasyncv1.TaskState_TASK_STATE_RETRIABLE_FAILURE, kasyncv1.TaskState_TASK_STATE_ENQUEUED,
		kasyncv1.TaskState_TASK_STATE_FATAL_FAILURE})
	require.NotNil(t, retriable, "RETRIABLE_FAILURE was seen: %v", seen)
	require.Contains(t, retriable.GetLastError(), "boom: the card was declined")
	require.EqualValues(t, 1, retriable.GetAttempts())
	require.NotZero(t, retriable.GetDueUnixMs(), "a retriable failure says when the next attempt is due")

	require.Equal(t, kasyncv1.TaskState_TASK_STATE_FATAL_FAILURE, last.GetState())
	require.Contains(t, last.GetLastError(), "boom: the card was declined")
	require.Equal(t, "exhausted", last.GetReason())
	require.EqualValues(t, cfg.Functions[0].Retry.MaxAttempts, last.GetAttempts())
}

// TestSubmitBadInput: every malformed Submit is refused with INVALID_ARGUMENT (or
// FAILED_PRECONDITION for a function without submit) naming the field, and nothing is
// produced; GetTask refuses a malformed id and does not know an unknown one.
func TestSubmitBadInput(t *testing.T) {
	t.Parallel()
	tc, cfg := submitNode(t, "strict", func(context.Context, *kruntime.Task) error { return nil }, func(c *config.Config) {
		c.Node.MaxWorkloadBytes = 1024
		c.Functions = append(c.Functions, c.Functions[0])
		c.Functions[1].Name, c.Functions[1].Submit = "closed", false
	})
	far := time.Now().Add(30 * 24 * time.Hour).UnixMilli()
	for _, tt := range []struct {
		name  string
		req   *kasyncv1.SubmitRequest
		code  codes.Code
		wants []string
	}{
		{"empty function", &kasyncv1.SubmitRequest{}, codes.InvalidArgument, []string{"function: empty", "strict"}},
		{"unknown function", &kasyncv1.SubmitRequest{Function: "nope"}, codes.InvalidArgument, []string{`function: "nope" is not a configured function`}},
		{"function without submit", &kasyncv1.SubmitRequest{Function: "closed"}, codes.FailedPrecondition, []string{`function: "closed" does not accept submitted tasks`, "submit: true"}},
		{"payload over the limit", &kasyncv1.SubmitRequest{Function: "strict", Payload: make([]byte, 2000)}, codes.InvalidArgument,
			[]string{"payload: the task is 2000 bytes", "node.max_workload_bytes allows at most 1024"}},
		{"negative delay", &kasyncv1.SubmitRequest{Function: "strict", When: &kasyncv1.SubmitRequest_DelayMs{DelayMs: -5}}, codes.InvalidArgument,
			[]string{"delay: -5ms is negative"}},
		{"delay too far", &kasyncv1.SubmitRequest{Function: "strict", When: &kasyncv1.SubmitRequest_DelayMs{DelayMs: 1 << 50}}, codes.InvalidArgument,
			[]string{"delay:", "at most 168h0m0s ahead (7 days)"}},
		{"run_at too far", &kasyncv1.SubmitRequest{Function: "strict", When: &kasyncv1.SubmitRequest_RunAtUnixMs{RunAtUnixMs: far}}, codes.InvalidArgument,
			// How far ahead is measured by the server's clock, a moment after far was
			// taken: check it in tasks' TestCheck, with a fixed clock, not here.
			[]string{"run_at: " + time.UnixMilli(far).UTC().Format(time.RFC3339) + " is ", "ahead, beyond the limit", "at most 168h0m0s ahead (7 days)"}},
		{"reserved header", &kasyncv1.SubmitRequest{Function: "strict", Headers: []*kasyncv1.Header{{Key: []byte("kasync-due"), Value: []byte("1")}}},
			codes.InvalidArgument, []string{"headers[0]:", "kasync-"}},
		{"header without a name", &kasyncv1.SubmitRequest{Function: "strict", Headers: []*kasyncv1.Header{{Value: []byte("v")}}},
			codes.InvalidArgument, []string{"headers[0]: has no name"}},
	} {
		_, err := tc.Submit(ctxT(t), tt.req)
		require.Equal(t, tt.code, status.Code(err), "%s: %v", tt.name, err)
		for _, w := range tt.wants {
			require.Contains(t, status.Convert(err).Message(), w, tt.name)
		}
	}
	brokers := cfg.Kafka.Brokers
	for p, end := range kafkatest.EndOffsets(t, brokers, config.IngestTopic("strict")) {
		require.Zero(t, end, "nothing was produced to the ingest topic, partition %d", p)
	}
	for _, r := range readRungs(t, brokers, cfg) {
		t.Fatalf("a rung record was produced: %+v", r)
	}

	_, err := tc.GetTask(ctxT(t), &kasyncv1.GetTaskRequest{TaskId: "no-slashes"})
	require.Equal(t, codes.InvalidArgument, status.Code(err), "%v", err)
	require.Contains(t, status.Convert(err).Message(), "task_id:")
	_, err = tc.GetTask(ctxT(t), &kasyncv1.GetTaskRequest{TaskId: config.IngestTopic("strict") + "/0/99"})
	require.Equal(t, codes.NotFound, status.Code(err), "%v", err)
}
