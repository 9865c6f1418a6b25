package runtime

import (
	"context"
	"errors"
	"net"
	goruntime "runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"

	kasyncv1 "github.com/kasync/kasync/proto/kasync/v1"
	"github.com/kasync/kasync/scheduler"
)

// oldScheduler is a scheduler from before batches: its welcome does not offer result
// batches (unless welcome says otherwise) and it sends one Task per message. It
// records what the worker sends.
type oldScheduler struct {
	kasyncv1.UnimplementedSchedulerServer
	tasks   int
	welcome *kasyncv1.WorkerWelcome // nil: an empty welcome
	odd     string                  // function of the odd-numbered tasks; "" for "f"
	fn      string                  // function of every task when set
	timeout []int64                 // TimeoutMs of task i, when set; else 60000
	got     chan *kasyncv1.WorkRequest
}

func (o *oldScheduler) Work(stream grpc.BidiStreamingServer[kasyncv1.WorkRequest, kasyncv1.WorkResponse]) error {
	hello, err := stream.Recv()
	if err != nil {
		return err
	}
	o.got <- hello
	welcome := o.welcome
	if welcome == nil {
		welcome = &kasyncv1.WorkerWelcome{}
	}
	if err := stream.Send(&kasyncv1.WorkResponse{Msg: &kasyncv1.WorkResponse_Welcome{Welcome: welcome}}); err != nil {
		return err
	}
	for i := range o.tasks {
		fn := "f"
		if i%2 == 0 && o.odd != "" { // task ids are i+1
			fn = o.odd
		}
		if o.fn != "" {
			fn = o.fn
		}
		timeout := int64(60000)
		if i < len(o.timeout) {
			timeout = o.timeout[i]
		}
		task := &kasyncv1.Task{TaskId: uint64(i + 1), Id: "old/0/1", Function: fn, Attempt: 1, TimeoutMs: timeout}
		if err := stream.Send(&kasyncv1.WorkResponse{Msg: &kasyncv1.WorkResponse_Task{Task: task}}); err != nil {
			return err
		}
	}
	for {
		m, err := stream.Recv()
		if err != nil {
			return nil
		}
		o.got <- m
	}
}

// serve serves o on a loopback port until the test ends and returns its address.
func (o *oldScheduler) serve(t *testing.T) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	g := grpc.NewServer()
	kasyncv1.RegisterSchedulerServer(g, o)
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = g.Serve(lis)
	}()
	t.Cleanup(func() {
		g.Stop()
		<-served
	})
	return lis.Addr().String()
}

func TestWorkerSpeaksOneByOneToAnOldScheduler(t *testing.T) {
	t.Parallel()
	const n = 20
	old := &oldScheduler{tasks: n, got: make(chan *kasyncv1.WorkRequest, 4*n)}
	addr := old.serve(t)
	reg := NewRegistry()
	reg.MustRegister("f", func(context.Context, *Task) error { return nil })
	stop, _, _ := runWorker(t, newTestWorker(t, addr, reg, func(cfg *WorkerConfig) { cfg.Capacity = n }))

	hello := <-old.got
	require.True(t, hello.GetHello().GetTaskBatches(), "a new worker offers to take batches")
	results, credit := map[uint64]bool{}, uint32(0)
	deadline := time.After(waitTimeout)
	for len(results) < n || credit < n {
		select {
		case m := <-old.got:
			switch x := m.GetMsg().(type) {
			case *kasyncv1.WorkRequest_Result:
				require.False(t, results[x.Result.GetTaskId()], "one result per task")
				require.Equal(t, kasyncv1.OutcomeKind_OUTCOME_KIND_SUCCESS, x.Result.GetKind())
				results[x.Result.GetTaskId()] = true
				require.LessOrEqual(t, int(credit), len(results)-1, "credit comes after the results it frees")
			case *kasyncv1.WorkRequest_Credit:
				credit += x.Credit.GetN()
				require.LessOrEqual(t, int(credit), len(results), "no credit before the result of its slot")
			default:
				t.Fatalf("an old scheduler got %T", x)
			}
		case <-deadline:
			t.Fatalf("got %d results and %d credit of %d", len(results), credit, n)
		}
	}
	require.NoError(t, stop())
}

// With result batches, successes travel as packed task ids only when the welcome
// offers them; failures always go whole.
func TestWorkerPacksSuccessesWhenOffered(t *testing.T) {
	t.Parallel()
	for _, packed := range []bool{false, true} {
		const n = 20
		sched := &oldScheduler{tasks: n, odd: "fails", got: make(chan *kasyncv1.WorkRequest, 4*n),
			welcome: &kasyncv1.WorkerWelcome{ResultBatches: true, PackedSuccesses: packed}}
		addr := sched.serve(t)
		reg := NewRegistry()
		reg.MustRegister("f", func(context.Context, *Task) error { return nil })
		reg.MustRegister("fails", func(context.Context, *Task) error { return errors.New("nope") })
		stop, _, _ := runWorker(t, newTestWorker(t, addr, reg, func(cfg *WorkerConfig) { cfg.Capacity = n }))
		<-sched.got // hello
		ended := map[uint64]scheduler.OutcomeKind{}
		deadline := time.After(waitTimeout)
		for len(ended) < n {
			select {
			case m := <-sched.got:
				b := m.GetResults()
				require.NotNil(t, b, "a worker offered batches sends TaskResultBatch, got %T", m.GetMsg())
				if !packed {
					require.Empty(t, b.GetSucceeded(), "packed successes sent to a scheduler that did not offer them")
				}
				for _, id := range b.GetSucceeded() {
					require.NotContains(t, ended, id)
					ended[id] = scheduler.OutcomeSuccess
				}
				for _, r := range b.GetResults() {
					require.NotContains(t, ended, r.GetTaskId())
					if packed {
						require.NotEqual(t, kasyncv1.OutcomeKind_OUTCOME_KIND_SUCCESS, r.GetKind(), "a plain success sent whole")
					}
					ended[r.GetTaskId()] = map[kasyncv1.OutcomeKind]scheduler.OutcomeKind{
						kasyncv1.OutcomeKind_OUTCOME_KIND_SUCCESS:   scheduler.OutcomeSuccess,
						kasyncv1.OutcomeKind_OUTCOME_KIND_RETRIABLE: scheduler.OutcomeRetriable,
					}[r.GetKind()]
				}
			case <-deadline:
				t.Fatalf("packed=%v: %d of %d tasks ended", packed, len(ended), n)
			}
		}
		for id, kind := range ended {
			want := scheduler.OutcomeSuccess
			if id%2 == 1 {
				want = scheduler.OutcomeRetriable
			}
			require.Equal(t, want, kind, "task %d", id)
		}
		require.NoError(t, stop())
	}
}

// The session's one watch times out a task whose deadline comes before the one it is
// armed for: a short timeout after a long one is not left waiting for the long one.
func TestWorkerWatchRearmsForAnEarlierDeadline(t *testing.T) {
	t.Parallel()
	sched := &oldScheduler{tasks: 2, fn: "hang", timeout: []int64{3_600_000, 50}, got: make(chan *kasyncv1.WorkRequest, 16),
		welcome: &kasyncv1.WorkerWelcome{ResultBatches: true, PackedSuccesses: true}}
	addr := sched.serve(t)
	release := make(chan struct{})
	reg := NewRegistry()
	reg.MustRegister("hang", func(context.Context, *Task) error {
		<-release // ignores its ctx
		return nil
	})
	stop, _, _ := runWorker(t, newTestWorker(t, addr, reg, func(cfg *WorkerConfig) {
		cfg.Capacity = 2
		cfg.DrainTimeout = time.Millisecond
	}))
	<-sched.got // hello; the tasks are sent after it, so their deadlines are later
	helloAt := time.Now()
	var r *kasyncv1.TaskResult
	deadline := time.After(waitTimeout)
	for r == nil {
		select {
		case m := <-sched.got:
			if m.GetHeartbeat() != nil {
				continue
			}
			require.Len(t, m.GetResults().GetResults(), 1, "got %T", m.GetMsg())
			r = m.GetResults().GetResults()[0]
			require.GreaterOrEqual(t, time.Since(helloAt), 50*time.Millisecond, "answered before its timeout")
		case <-deadline:
			t.Fatal("the task with the 50ms timeout was not timed out")
		}
	}
	require.EqualValues(t, 2, r.GetTaskId(), "the 50ms task, not the one-hour one")
	require.Equal(t, string(scheduler.ReasonTimeout), r.GetReason())
	close(release)
	require.NoError(t, stop())
}

func TestWorkerTaskContextAndGoexit(t *testing.T) {
	t.Parallel()
	c := newCluster(t, 10*time.Second, "deadline", "goexit")
	reg := NewRegistry()
	reg.MustRegister("deadline", func(ctx context.Context, _ *Task) error {
		d, ok := ctx.Deadline()
		if !ok || time.Until(d) > 10*time.Second || time.Until(d) < 5*time.Second {
			return Fatal(errors.New("no deadline of the task's timeout"))
		}
		return nil
	})
	reg.MustRegister("goexit", func(context.Context, *Task) error {
		goruntime.Goexit()
		return nil
	})
	stop, _, _ := runWorker(t, newTestWorker(t, c.addr, reg))
	c.push(t, 1, "deadline", "")
	c.push(t, 2, "goexit", "")
	require.Equal(t, scheduler.Success(), c.outcome(t, 1))
	o := c.outcome(t, 2)
	require.Equal(t, scheduler.OutcomeRetriable, o.Kind)
	require.Equal(t, scheduler.ReasonPanic, o.Reason)
	require.Contains(t, o.Err, "Goexit")
	require.NoError(t, stop())
}
