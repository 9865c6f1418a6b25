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
// batches and it sends one Task per message. It records what the worker sends.
type oldScheduler struct {
	kasyncv1.UnimplementedSchedulerServer
	tasks int
	got   chan *kasyncv1.WorkRequest
}

func (o *oldScheduler) Work(stream grpc.BidiStreamingServer[kasyncv1.WorkRequest, kasyncv1.WorkResponse]) error {
	hello, err := stream.Recv()
	if err != nil {
		return err
	}
	o.got <- hello
	if err := stream.Send(&kasyncv1.WorkResponse{Msg: &kasyncv1.WorkResponse_Welcome{Welcome: &kasyncv1.WorkerWelcome{}}}); err != nil {
		return err
	}
	for i := range o.tasks {
		task := &kasyncv1.Task{TaskId: uint64(i + 1), Id: "old/0/1", Function: "f", Attempt: 1, TimeoutMs: 60000}
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

func TestWorkerSpeaksOneByOneToAnOldScheduler(t *testing.T) {
	t.Parallel()
	const n = 20
	old := &oldScheduler{tasks: n, got: make(chan *kasyncv1.WorkRequest, 4*n)}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	g := grpc.NewServer()
	kasyncv1.RegisterSchedulerServer(g, old)
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = g.Serve(lis)
	}()
	defer func() {
		g.Stop()
		<-served
	}()
	reg := NewRegistry()
	reg.MustRegister("f", func(context.Context, *Task) error { return nil })
	stop, _, _ := runWorker(t, newTestWorker(t, lis.Addr().String(), reg, func(cfg *WorkerConfig) { cfg.Capacity = n }))

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
