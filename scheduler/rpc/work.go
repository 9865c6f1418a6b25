package rpc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	kasyncv1 "github.com/kasync/kasync/proto/kasync/v1"
)

// MaxWorkerCapacity is the largest WorkerHello.capacity accepted.
const MaxWorkerCapacity = 100000

// Work serves one SDK worker's stream: it checks the hello, joins the worker to the
// pool and relays tasks, results, credit and heartbeats until the stream ends. Then
// every task the worker held is lost (and re-dispatched by its Execute). The response
// header HeartbeatTimeoutHeader tells the worker the pool's heartbeat timeout.
func (s *Server) Work(stream grpc.BidiStreamingServer[kasyncv1.WorkRequest, kasyncv1.WorkResponse]) error {
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	hello := first.GetHello()
	if err := s.checkWorkerHello(stream.Context(), hello); err != nil {
		s.log.Warn("worker refused", "worker", hello.GetWorkerId(), "err", err)
		return err
	}
	log := s.log.With("worker", hello.GetWorkerId())
	// The header goes out with the welcome.
	if err := stream.SetHeader(metadata.Pairs(HeartbeatTimeoutHeader,
		strconv.FormatInt(s.pool.HeartbeatTimeout().Milliseconds(), 10))); err != nil {
		return err
	}
	welcome := &kasyncv1.WorkerWelcome{ResultBatches: true, PackedSuccesses: true}
	if err := stream.Send(&kasyncv1.WorkResponse{Msg: &kasyncv1.WorkResponse_Welcome{Welcome: welcome}}); err != nil {
		return err
	}

	out := newOutbox()
	wk := s.pool.attach(hello.GetWorkerId(), hello.GetFunctions(), int(hello.GetCapacity()), int(hello.GetBusy()), out)
	log.Info("worker joined", "functions", hello.GetFunctions(), "capacity", hello.GetCapacity(), "busy", hello.GetBusy(),
		"task_batches", hello.GetTaskBatches())

	stop, senderDone := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(senderDone)
		sendOutbox(stream, out, stop, hello.GetTaskBatches())
	}()
	err = s.serveWorker(stream, wk)
	s.pool.detach(wk, err)
	close(stop)
	awaitSender(senderDone)
	if errors.Is(err, io.EOF) {
		log.Info("worker left")
		return nil
	}
	log.Warn("worker stream ended", "err", err)
	return err
}

func (s *Server) serveWorker(stream grpc.BidiStreamingServer[kasyncv1.WorkRequest, kasyncv1.WorkResponse], wk *poolWorker) error {
	for {
		req, err := stream.Recv()
		if err != nil {
			// Bytes that do not decode as a WorkRequest end here too: gRPC itself has
			// then ended the stream with INTERNAL ("failed to unmarshal").
			return err
		}
		switch m := req.GetMsg().(type) {
		case *kasyncv1.WorkRequest_Credit:
			err = s.pool.credit(wk, m.Credit.GetN())
		case *kasyncv1.WorkRequest_Result:
			err = s.pool.result(wk, m.Result)
		case *kasyncv1.WorkRequest_Results:
			err = s.pool.results(wk, m.Results.GetSucceeded(), m.Results.GetResults(), m.Results.GetCredit())
		case *kasyncv1.WorkRequest_Heartbeat:
			s.pool.heartbeat(wk, m.Heartbeat.GetTaskIds())
		case *kasyncv1.WorkRequest_Hello:
			err = fmt.Errorf("%w: a second WorkerHello on one stream", errProtocol)
		default:
			err = fmt.Errorf("%w: empty or unknown WorkRequest message", errProtocol)
		}
		if err != nil {
			return status.Error(codes.InvalidArgument, "work: "+err.Error())
		}
	}
}

// sendOutbox sends queued messages until stop is closed or a send fails (the stream is
// then broken, and the receive loop sees it too). batches: the worker takes TaskBatch.
func sendOutbox(stream grpc.BidiStreamingServer[kasyncv1.WorkRequest, kasyncv1.WorkResponse], out *outbox, stop <-chan struct{}, batches bool) {
	var buf []outMsg
	for {
		select {
		case <-stop:
			return
		case <-out.notify:
		}
		// Let the goroutines that are about to queue more run first: what they queue
		// meanwhile goes in the same message. A lone task waits for nothing.
		runtime.Gosched()
		buf = out.take(buf)
		if err := sendMsgs(stream.Send, buf, batches); err != nil {
			return
		}
		clear(buf)
	}
}

func (s *Server) checkWorkerHello(ctx context.Context, h *kasyncv1.WorkerHello) error {
	if h == nil {
		return status.Error(codes.InvalidArgument, "work: the first message must be a WorkerHello")
	}
	var problems []string
	if h.GetWorkerId() == "" {
		problems = append(problems, "worker_id is empty; name the worker (for example host-pid)")
	}
	if len(h.GetFunctions()) == 0 {
		problems = append(problems, "functions is empty; list the functions the worker serves")
	}
	seen := make(map[string]bool, len(h.GetFunctions()))
	for i, f := range h.GetFunctions() {
		switch {
		case f == "":
			problems = append(problems, fmt.Sprintf("functions[%d] is empty", i))
		case seen[f]:
			problems = append(problems, fmt.Sprintf("functions[%d] %q is listed twice", i, f))
		}
		seen[f] = true
	}
	if c := h.GetCapacity(); c < 1 || c > MaxWorkerCapacity {
		problems = append(problems, fmt.Sprintf("capacity is %d; it must be in 1..%d", c, MaxWorkerCapacity))
	} else if h.GetBusy() > c {
		problems = append(problems, fmt.Sprintf("busy is %d; it must be at most capacity %d", h.GetBusy(), c))
	}
	if len(problems) > 0 {
		return status.Error(codes.InvalidArgument, "work: invalid WorkerHello: "+strings.Join(problems, "; "))
	}
	// Before the functions are checked against the scheduler's, so that a caller who may
	// not serve them does not learn which functions are configured.
	if err := s.authorizeWork(ctx, h.GetFunctions()); err != nil {
		return err
	}
	if s.pool == nil {
		return status.Error(codes.FailedPrecondition, "work: this scheduler has no worker pool; no function is served by SDK workers")
	}
	for _, f := range h.GetFunctions() {
		if !s.sched.Has(f) {
			return status.Errorf(codes.FailedPrecondition,
				"work: worker %q serves function %q, which this scheduler does not have (configured: %s); configure it or remove it from the worker",
				h.GetWorkerId(), f, strings.Join(s.sched.Functions(), ", "))
		}
	}
	return nil
}

// senderGrace is how long a stream handler waits for its sender goroutine before
// returning. The sender only lingers when it is blocked in Send on a peer that does not
// read; returning ends the stream, which unblocks that Send, so the goroutine still
// ends with the stream.
const senderGrace = time.Second

func awaitSender(done <-chan struct{}) {
	t := time.NewTimer(senderGrace)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
	}
}
