package runtime

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	kasyncv1 "github.com/kasync/kasync/proto/kasync/v1"
	"github.com/kasync/kasync/scheduler"
	"github.com/kasync/kasync/scheduler/rpc"
)

// closeGrace bounds the wait for the scheduler to end a stream after the worker
// half-closed it at the end of a drain.
const closeGrace = 5 * time.Second

// session is one Work stream. Results and credit are queued by finishing tasks and sent
// by the session's sender goroutine (sendLoop), several per message when the scheduler
// takes batches. Every send holds sendMu; once the stream is half-closed or broken
// (dead), sends are skipped.
type session struct {
	w       *Worker
	stream  grpc.BidiStreamingClient[kasyncv1.WorkRequest, kasyncv1.WorkResponse]
	batches bool // the scheduler takes TaskResultBatch (its welcome said so); set before any send
	packed  bool // ... and successes as TaskResultBatch.succeeded

	sendMu sync.Mutex
	dead   bool            // guarded by sendMu
	spare  []pendingResult // guarded by sendMu: the queue's other buffer

	beatEvery time.Duration // the heartbeat interval: Heartbeat, or less if the scheduler asks

	// The session's part of the slot ledger (worker_slots.go), guarded by w.mu.
	share   int  // its address's share of Capacity
	live    bool // it takes credit: from the hello until it breaks or drains
	granted int  // credit its scheduler holds and has not used
	held    int  // its tasks holding a slot

	mu      sync.Mutex
	tasks   map[uint64]*workerTask
	changed chan struct{} // buffered 1: a task ended
	// watch answers tasks that run past their timeout (see expire): one timer for the
	// session, armed for the earliest deadline it knows of (watchAt; zero when not
	// armed), instead of a timer per task. Guarded by mu.
	watch     *time.Timer
	watchAt   time.Time
	unwatched bool // the session ended: arm nothing more

	qmu     sync.Mutex
	queued  []pendingResult // results not yet sent, in the order the tasks ended
	credit  uint32          // slots freed and not yet credited
	qnotify chan struct{}   // buffered 1: something was queued
}

// pendingResult is a task's outcome waiting for the sender.
type pendingResult struct {
	id uint64
	o  scheduler.Outcome
}

// serve runs one session against addr until the stream breaks or ctx is done (then it
// drains). welcomed reports whether the scheduler accepted the hello.
func (w *Worker) serve(ctx context.Context, addr string, share int) (welcomed bool, err error) {
	conn, err := grpc.NewClient(addr, w.cfg.DialOptions...)
	if err != nil {
		return false, fmt.Errorf("runtime: worker: dial %s: %w", addr, err)
	}
	defer conn.Close()
	// The stream outlives ctx, so results can still be sent while draining; until the
	// welcome, ctx aborts it.
	sctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	stopAbort := context.AfterFunc(ctx, cancel)
	stream, err := kasyncv1.NewSchedulerClient(conn).Work(sctx)
	if err != nil {
		return false, fmt.Errorf("runtime: worker: open stream to %s: %w", addr, err)
	}
	s := &session{w: w, stream: stream, tasks: make(map[uint64]*workerTask), share: share,
		changed: make(chan struct{}, 1), qnotify: make(chan struct{}, 1)}
	defer s.unwatch()
	defer s.leave() // also when the hello fails
	if err := s.hello(); err != nil {
		if _, rerr := stream.Recv(); rerr != nil {
			err = rerr // the stream's status says why the send failed
		}
		return false, w.helloError(addr, err)
	}
	msg, err := stream.Recv()
	if err != nil {
		return false, w.helloError(addr, err)
	}
	if msg.GetWelcome() == nil {
		return false, fmt.Errorf("runtime: worker: scheduler %s answered the hello with %T, not a welcome", addr, msg.GetMsg())
	}
	s.batches = msg.GetWelcome().GetResultBatches()
	s.packed = s.batches && msg.GetWelcome().GetPackedSuccesses()
	if !stopAbort() {
		return true, ctx.Err() // ctx ended during the hello; nothing ran yet
	}
	var schedTimeout time.Duration
	s.beatEvery, schedTimeout = w.heartbeatInterval(stream)
	w.log.Info("connected to scheduler", "addr", addr, "functions", w.cfg.Registry.Names(), "capacity", w.cfg.Capacity, "share", share,
		"heartbeat", s.beatEvery, "heartbeat_timeout", schedTimeout, "result_batches", s.batches, "packed_successes", s.packed)

	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel() // ends the receive loop and the heartbeats, before wg.Wait
	recvErr := make(chan error, 1)
	wg.Go(func() { recvErr <- s.receive() })
	wg.Go(func() { s.heartbeats(sctx) })
	wg.Go(func() { s.sendLoop(sctx) })

	select {
	case err := <-recvErr:
		s.broken()
		if errors.Is(err, io.EOF) {
			err = errors.New("the scheduler closed the stream")
		}
		return true, fmt.Errorf("runtime: worker: stream to %s: %w", addr, err)
	case <-ctx.Done():
		s.drain(recvErr)
		return true, nil
	}
}

// hello sends the WorkerHello. The session joins the slot ledger in the same step that
// decides its first credit, offered as capacity minus busy: the slots the ledger gives
// it now. Credit it gets later is queued for its sender, which starts after the welcome.
func (s *session) hello() error {
	s.sendMu.Lock()
	defer s.sendMu.Unlock()
	w := s.w
	w.mu.Lock()
	busy := w.cfg.Capacity - w.joinLocked(s)
	w.mu.Unlock()
	return s.stream.Send(&kasyncv1.WorkRequest{Msg: &kasyncv1.WorkRequest_Hello{Hello: &kasyncv1.WorkerHello{
		WorkerId:    w.cfg.WorkerID,
		Functions:   w.cfg.Registry.Names(),
		Capacity:    uint32(w.cfg.Capacity),
		Busy:        uint32(busy),
		TaskBatches: true,
	}}})
}

// heartbeatInterval is how often the session heartbeats: cfg.Heartbeat, but at most a
// third of the heartbeat timeout the scheduler announced in the stream's header, so
// that a missed or late heartbeat does not get running tasks taken as lost. It also
// returns that timeout (0 when the scheduler did not announce one).
func (w *Worker) heartbeatInterval(stream grpc.ClientStream) (every, schedTimeout time.Duration) {
	every = w.cfg.Heartbeat
	md, err := stream.Header() // received with the welcome; does not block now
	if err != nil {
		return every, 0
	}
	vals := md.Get(rpc.HeartbeatTimeoutHeader)
	if len(vals) == 0 {
		return every, 0
	}
	ms, err := strconv.ParseInt(vals[0], 10, 64)
	if err != nil || ms <= 0 || ms > math.MaxInt64/int64(time.Millisecond) {
		w.log.Warn("ignoring a malformed heartbeat timeout from the scheduler", "header", rpc.HeartbeatTimeoutHeader, "value", vals[0])
		return every, 0
	}
	schedTimeout = time.Duration(ms) * time.Millisecond
	return min(every, max(schedTimeout/3, time.Millisecond)), schedTimeout
}

// helloError turns a failed hello into Run's error: a refusal is permanent.
func (w *Worker) helloError(addr string, err error) error {
	if errors.Is(err, io.EOF) {
		// Send reports io.EOF when the server ended the stream; its status is on Recv.
		err = errors.New("stream closed during the hello")
	}
	switch status.Code(err) {
	case codes.FailedPrecondition, codes.InvalidArgument, codes.PermissionDenied, codes.Unauthenticated:
		return fmt.Errorf("runtime: worker: scheduler %s: %w (%s): %s", addr, ErrWorkerRejected, status.Code(err), status.Convert(err).Message())
	}
	return fmt.Errorf("runtime: worker: hello to %s: %w", addr, err)
}

// receive handles the scheduler's messages until the stream ends.
func (s *session) receive() error {
	var one [1]*kasyncv1.Task
	for {
		msg, err := s.stream.Recv()
		if err != nil {
			return err
		}
		switch m := msg.GetMsg().(type) {
		case *kasyncv1.WorkResponse_Task:
			one[0] = m.Task
			s.start(one[:])
			one[0] = nil
		case *kasyncv1.WorkResponse_Tasks:
			s.start(m.Tasks.GetTasks())
		case *kasyncv1.WorkResponse_Cancel:
			s.mu.Lock()
			wt := s.tasks[m.Cancel.GetTaskId()]
			s.mu.Unlock()
			if wt != nil {
				wt.abort()
			}
		default:
			s.w.log.Warn("ignoring unexpected message from the scheduler", "type", fmt.Sprintf("%T", m))
		}
	}
}

// finish queues a task's result and frees its slot; the sender goroutine sends them.
func (s *session) finish(id uint64, o scheduler.Outcome) {
	// The result is queued under w.mu, with the slot's credit when the ledger gives the
	// slot back to this session: no other goroutine can hand this slot to this session
	// as credit queued ahead of the result. And it is queued before the task is
	// forgotten: a draining session sends what is queued and half-closes its stream as
	// soon as it has no tasks, and a result queued after that is lost (the scheduler
	// would report the task's worker as lost although it succeeded).
	w := s.w
	w.mu.Lock()
	credit := w.releaseLocked(s)
	s.queue(&pendingResult{id: id, o: o}, credit > 0)
	w.mu.Unlock()
	s.mu.Lock()
	delete(s.tasks, id)
	s.mu.Unlock()
	select {
	case s.changed <- struct{}{}:
	default:
	}
}

// leave takes the session out of the slot ledger: it gets no more credit, and the
// credit its scheduler held goes to the other sessions.
func (s *session) leave() {
	s.w.mu.Lock()
	s.w.leaveLocked(s)
	s.w.mu.Unlock()
}

// watchLocked makes sure the watch fires by deadline. Called with s.mu held.
func (s *session) watchLocked(deadline time.Time) {
	if s.unwatched || (!s.watchAt.IsZero() && !deadline.Before(s.watchAt)) {
		return
	}
	s.watchAt = deadline
	if s.watch == nil {
		s.watch = time.AfterFunc(time.Until(deadline), s.expire)
	} else {
		s.watch.Reset(time.Until(deadline))
	}
}

// expire is the watch's timer: it answers the tasks whose deadline has passed and
// re-arms for the earliest deadline left. A stream of short tasks arms it about once
// per timeout, and each firing looks at the running tasks once.
func (s *session) expire() {
	now := time.Now()
	var late []*workerTask
	next := time.Time{}
	s.mu.Lock()
	s.watchAt = time.Time{}
	for _, wt := range s.tasks {
		switch {
		case wt.timeout <= 0:
		case !now.Before(wt.deadline):
			late = append(late, wt)
		case next.IsZero() || wt.deadline.Before(next):
			next = wt.deadline
		}
	}
	if !next.IsZero() {
		s.watchLocked(next)
	}
	s.mu.Unlock()
	for _, wt := range late {
		wt.timedOut()
	}
}

// unwatch stops the watch when the session ends; by then broken or the drain has
// answered every task.
func (s *session) unwatch() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.unwatched = true
	if s.watch != nil {
		s.watch.Stop()
	}
}

// send sends m unless the stream is gone; a failed send is noticed by receive.
func (s *session) send(m *kasyncv1.WorkRequest) bool {
	s.sendMu.Lock()
	defer s.sendMu.Unlock()
	if s.dead {
		return false
	}
	return s.stream.Send(m) == nil
}

func (s *session) heartbeat(ids []uint64) error {
	if !s.send(&kasyncv1.WorkRequest{Msg: &kasyncv1.WorkRequest_Heartbeat{Heartbeat: &kasyncv1.Heartbeat{TaskIds: ids}}}) {
		return fmt.Errorf("runtime: heartbeat: %w", errTaskLost)
	}
	return nil
}

// heartbeats sends the ids of running tasks every beatEvery until ctx ends.
func (s *session) heartbeats(ctx context.Context) {
	t := time.NewTicker(s.beatEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		s.mu.Lock()
		ids := make([]uint64, 0, len(s.tasks))
		for id := range s.tasks {
			ids = append(ids, id)
		}
		s.mu.Unlock()
		if len(ids) > 0 {
			_ = s.heartbeat(ids)
		}
	}
}

// broken marks the stream gone and cancels its tasks: the scheduler has taken them as
// lost (it re-dispatches them, to this worker once it reconnects or to another), so
// their work is wasted and their slots are better freed.
func (s *session) broken() {
	s.leave() // before the tasks free their slots, so that none is credited here
	s.sendMu.Lock()
	s.dead = true
	s.sendMu.Unlock()
	s.mu.Lock()
	wts := make([]*workerTask, 0, len(s.tasks))
	for _, wt := range s.tasks {
		wts = append(wts, wt)
	}
	s.mu.Unlock()
	for _, wt := range wts {
		wt.abort() // answering takes s.mu
	}
}

// drain stops taking tasks, waits up to DrainTimeout for the running ones to send their
// results, then half-closes the stream and waits for the scheduler to end it.
func (s *session) drain(recvErr <-chan error) {
	s.leave()
	s.mu.Lock()
	n := len(s.tasks)
	s.mu.Unlock()
	log := s.w.log
	log.Info("draining", "running", n, "timeout", s.w.cfg.DrainTimeout)
	timeout := time.NewTimer(s.w.cfg.DrainTimeout)
	defer timeout.Stop()
wait:
	for {
		s.mu.Lock()
		n = len(s.tasks)
		s.mu.Unlock()
		if n == 0 {
			break
		}
		select {
		case <-s.changed:
		case err := <-recvErr:
			log.Warn("stream broke while draining; running tasks are lost", "err", err, "running", n)
			s.broken()
			return
		case <-timeout.C:
			log.Warn("drain timeout; cancelling running tasks", "running", n)
			break wait
		}
	}
	s.flush()  // the results of the tasks that finished
	s.broken() // cancels what is left; no more sends
	s.sendMu.Lock()
	_ = s.stream.CloseSend()
	s.sendMu.Unlock()
	grace := time.NewTimer(closeGrace)
	defer grace.Stop()
	select {
	case err := <-recvErr:
		log.Debug("stream closed after drain", "err", err)
	case <-grace.C:
	}
	log.Info("drained")
}
