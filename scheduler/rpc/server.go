package rpc

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"runtime"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	kasyncv1 "github.com/kasync/kasync/proto/kasync/v1"
	"github.com/kasync/kasync/scheduler"
)

// DefaultPushWindow is the credit granted to each Push stream when ServerOptions.PushWindow
// is 0: how many workloads one tailer may have unanswered on one stream.
const DefaultPushWindow = 10000

// maxOutcomesPerBatch bounds one OutcomeBatch message (each outcome carries at most
// maxErrorText bytes of error, so a batch stays well under gRPC's 4 MiB default).
const maxOutcomesPerBatch = 512

// ServerOptions configure a Server. The zero value is valid.
type ServerOptions struct {
	// PushWindow is the credit of each Push stream (default DefaultPushWindow).
	PushWindow int
	// MaxWorkloadBytes, when positive, answers a workload whose Size is larger with a
	// fatal "too-large" outcome before it reaches the scheduler. 0: no check here (the
	// scheduler's own limit still applies).
	MaxWorkloadBytes int
	// Logger receives stream lifecycle and protocol errors (default slog.Default()).
	Logger *slog.Logger
	// Auth, when set, is consulted by every Push and Work stream: the caller's
	// Identity (put in the stream's context by Auth's interceptors, which the gRPC
	// server must install: Auth.ServerOptions) must be allowed by its Policy. Nil: no
	// authentication or authorization.
	Auth *Auth
}

func (o ServerOptions) withDefaults() ServerOptions {
	if o.PushWindow == 0 {
		o.PushWindow = DefaultPushWindow
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o
}

func (o ServerOptions) validate() error {
	var errs []error
	if o.PushWindow < 1 || o.PushWindow > math.MaxUint32 {
		errs = append(errs, fmt.Errorf("PushWindow is %d; it must be in 1..%d (0 for the default %d)", o.PushWindow, uint32(math.MaxUint32), DefaultPushWindow))
	}
	if o.MaxWorkloadBytes < 0 {
		errs = append(errs, fmt.Errorf("MaxWorkloadBytes is %d; it must be >= 0 (0: no limit here)", o.MaxWorkloadBytes))
	}
	return errors.Join(errs...)
}

// Server serves the Scheduler gRPC service: Push streams from tailers go into a
// scheduler.Scheduler, Work streams from SDK workers join a WorkerPool.
type Server struct {
	kasyncv1.UnimplementedSchedulerServer

	sched *scheduler.Scheduler
	pool  *WorkerPool
	opts  ServerOptions
	log   *slog.Logger
}

// NewServer builds a Server over s. pool may be nil when no function is served by SDK
// workers; Work streams are then refused with FAILED_PRECONDITION.
func NewServer(s *scheduler.Scheduler, pool *WorkerPool, opts ServerOptions) (*Server, error) {
	if s == nil {
		return nil, errors.New("rpc: new server: scheduler is nil")
	}
	opts = opts.withDefaults()
	if err := opts.validate(); err != nil {
		return nil, fmt.Errorf("rpc: new server: %w", err)
	}
	return &Server{sched: s, pool: pool, opts: opts, log: opts.Logger}, nil
}

// Register adds the Scheduler service to g.
func (s *Server) Register(g *grpc.Server) { kasyncv1.RegisterSchedulerServer(g, s) }

// Push serves one tailer's push stream.
func (s *Server) Push(stream grpc.BidiStreamingServer[kasyncv1.PushRequest, kasyncv1.PushResponse]) error {
	if err := s.authorizePush(stream.Context()); err != nil {
		return err
	}
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	hello := first.GetHello()
	if hello == nil {
		return status.Error(codes.InvalidArgument, "push: the first message must be a PushHello")
	}
	if hello.GetTailer() == "" {
		return status.Error(codes.InvalidArgument, "push: hello.tailer is empty; name the tailer")
	}
	log := s.log.With("tailer", hello.GetTailer())

	ps := &pushStream{stream: stream, notify: make(chan struct{}, 1), stop: make(chan struct{}),
		packed: hello.GetPackedSuccesses(), creditInBatch: hello.GetCreditInOutcomes()}
	// The first grant is sent before the sender starts, so it always comes first.
	if err := stream.Send(creditMsg(s.opts.PushWindow)); err != nil {
		return err
	}
	ps.credit = s.opts.PushWindow

	sendErr, senderDone := make(chan error, 1), make(chan struct{})
	go func() {
		defer close(senderDone)
		sendErr <- ps.sendLoop()
	}()
	defer func() {
		ps.end()
		awaitSender(senderDone)
	}()
	log.Debug("push stream open")

	for {
		req, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			log.Debug("push stream closed by tailer")
			return nil
		}
		if err != nil {
			select {
			case serr := <-sendErr:
				if serr != nil {
					return serr
				}
			default:
			}
			return err
		}
		batch := req.GetBatch()
		if batch == nil {
			return status.Error(codes.InvalidArgument, "push: after the hello only WorkloadBatch messages may be sent")
		}
		if err := ps.take(len(batch.GetWorkloads())); err != nil {
			log.Warn("push stream over credit", "err", err)
			return err
		}
		s.enqueue(ps, batch.GetWorkloads(), log)
	}
}

// enqueue hands a received batch to the scheduler in one EnqueueBatch; workloads that
// are malformed or too large are answered here instead.
func (s *Server) enqueue(ps *pushStream, pws []*kasyncv1.Workload, log *slog.Logger) {
	tasks := make([]pushTask, 0, len(pws))
	for _, pw := range pws {
		token := pw.GetToken()
		w, err := WorkloadFromProto(pw)
		if err != nil {
			// Per workload: it is answered fatal and dead-lettered with reason invalid,
			// which the tailer sums up in its log and kasync_dead_letter_total counts.
			log.Debug("invalid workload", "err", err)
			ps.add(token, scheduler.Fatal(scheduler.ReasonInvalid, err.Error()))
			continue
		}
		if limit := s.opts.MaxWorkloadBytes; limit > 0 && w.Size() > limit {
			ps.add(token, scheduler.Fatal(scheduler.ReasonTooLarge,
				fmt.Sprintf("workload %q is %d bytes; the limit is %d", w.ID, w.Size(), limit)))
			continue
		}
		tasks = append(tasks, pushTask{ps: ps, token: token, w: w})
	}
	s.sched.EnqueueBatch(len(tasks), func(i int) (*scheduler.Workload, func(scheduler.Outcome)) {
		return tasks[i].w, tasks[i].done
	})
}

// pushTask is one received workload in the scheduler: its done queues its outcome on
// the stream. The tasks of a batch are allocated together.
type pushTask struct {
	ps    *pushStream
	token uint64
	w     *scheduler.Workload
}

func (t *pushTask) done(o scheduler.Outcome) { t.ps.add(t.token, o) }

// outcomeBatch is the wire form of rs: plain successes as packed tokens when packed,
// every other outcome as an Outcome. Fresh arrays per message: gRPC may read a sent
// message lazily (stats handlers), so nothing in it is reused; the outcomes are one
// allocation.
func outcomeBatch(rs []scheduler.Result, packed bool) *kasyncv1.OutcomeBatch {
	b := &kasyncv1.OutcomeBatch{}
	others := len(rs)
	if packed {
		ok := 0
		for _, r := range rs {
			if IsPlainSuccess(r.Outcome) {
				ok++
			}
		}
		b.Succeeded = make([]uint64, 0, ok)
		others -= ok
	}
	protos := make([]kasyncv1.Outcome, others)
	b.Outcomes = make([]*kasyncv1.Outcome, others)
	i := 0
	for _, r := range rs {
		if packed && IsPlainSuccess(r.Outcome) {
			b.Succeeded = append(b.Succeeded, r.Token)
			continue
		}
		outcomeToProto(&protos[i], r.Token, r.Outcome)
		b.Outcomes[i] = &protos[i]
		i++
	}
	return b
}

func creditMsg(n int) *kasyncv1.PushResponse {
	return &kasyncv1.PushResponse{Msg: &kasyncv1.PushResponse_Credit{Credit: &kasyncv1.Credit{Workloads: uint32(n)}}}
}

// pushStream is the server's state of one Push stream: the credit the tailer has left
// and the outcomes not yet sent. Outcomes are collected from scheduler callbacks and
// flushed in batches by the stream's one sender goroutine.
type pushStream struct {
	stream grpc.BidiStreamingServer[kasyncv1.PushRequest, kasyncv1.PushResponse]
	notify chan struct{} // buffered 1: outcomes are waiting
	stop   chan struct{} // closed by end
	packed bool          // the tailer takes successes as OutcomeBatch.succeeded
	// creditInBatch: the tailer takes the credit a batch frees as OutcomeBatch.credit,
	// not as a Credit message after it.
	creditInBatch bool

	mu      sync.Mutex
	credit  int                // workloads the tailer may still send
	pending []scheduler.Result // outcomes not yet sent; converted to protos by sendLoop
	ended   bool
}

// take accounts for n received workloads.
func (ps *pushStream) take(n int) error {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if n > ps.credit {
		return status.Errorf(codes.ResourceExhausted,
			"push: batch of %d workloads exceeds the remaining credit of %d; wait for Credit messages", n, ps.credit)
	}
	ps.credit -= n
	return nil
}

// add queues one outcome; it is dropped once the stream has ended.
func (ps *pushStream) add(token uint64, o scheduler.Outcome) {
	ps.mu.Lock()
	if ps.ended {
		ps.mu.Unlock()
		return
	}
	ps.pending = append(ps.pending, scheduler.Result{Token: token, Outcome: o})
	ps.mu.Unlock()
	select {
	case ps.notify <- struct{}{}:
	default:
	}
}

func (ps *pushStream) end() {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if !ps.ended {
		ps.ended = true
		ps.pending = nil
		close(ps.stop)
	}
}

// sendLoop flushes outcomes, each batch with the credit it frees: in the batch when
// the tailer takes it there, else as a Credit message after it. The outcomes are
// converted to protos here, off the scheduler's workers, into one array per batch.
func (ps *pushStream) sendLoop() error {
	var spare []scheduler.Result // reused between flushes
	for {
		select {
		case <-ps.stop:
			return nil
		case <-ps.notify:
		}
		// Let the attempts that are finishing add their outcomes first, so they go in
		// the same message; a lone outcome waits for nothing.
		runtime.Gosched()
		ps.mu.Lock()
		all := ps.pending
		ps.pending = spare[:0]
		ps.mu.Unlock()
		for rest := all; len(rest) > 0; {
			n := min(len(rest), maxOutcomesPerBatch)
			b := outcomeBatch(rest[:n], ps.packed)
			// Credit is returned before the tailer can see it, so a tailer that spends
			// it at once is never over its credit here.
			ps.mu.Lock()
			ps.credit += n
			ps.mu.Unlock()
			if ps.creditInBatch {
				b.Credit = uint32(n)
			}
			if err := ps.stream.Send(&kasyncv1.PushResponse{Msg: &kasyncv1.PushResponse_Outcomes{Outcomes: b}}); err != nil {
				return err
			}
			if !ps.creditInBatch {
				if err := ps.stream.Send(creditMsg(n)); err != nil {
					return err
				}
			}
			rest = rest[n:]
		}
		clear(all)
		spare = all[:0]
	}
}
