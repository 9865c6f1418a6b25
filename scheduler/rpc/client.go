package rpc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/kasync/kasync/internal/backoff"
	"github.com/kasync/kasync/internal/logrepeat"
	kasyncv1 "github.com/kasync/kasync/proto/kasync/v1"
	"github.com/kasync/kasync/scheduler"
)

// Client defaults.
const (
	DefaultReconnectBackoff    = 50 * time.Millisecond
	DefaultMaxReconnectBackoff = 5 * time.Second
	DefaultMaxBatchBytes       = 1 << 20
	// DefaultMaxMessageBytes is gRPC's default limit on a received message.
	DefaultMaxMessageBytes = 4 << 20
)

// ClientOptions configure a Client. The zero value is valid.
type ClientOptions struct {
	// Logger receives reconnects and protocol errors (default slog.Default()).
	Logger *slog.Logger
	// ReconnectBackoff is the first wait before re-opening a broken stream (default
	// 50ms); it doubles, jittered, up to MaxReconnectBackoff (default 5s).
	ReconnectBackoff    time.Duration
	MaxReconnectBackoff time.Duration
	// MaxBatchBytes splits a Push into WorkloadBatch messages of about this many
	// encoded bytes (default 1 MiB); a larger workload goes alone.
	MaxBatchBytes int
	// MaxMessageBytes is the largest message the server accepts (default 4 MiB, gRPC's
	// default). A workload that cannot fit is answered locally with a fatal
	// "too-large" outcome rather than breaking the stream on every re-send.
	MaxMessageBytes int
}

func (o ClientOptions) withDefaults() ClientOptions {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.ReconnectBackoff <= 0 {
		o.ReconnectBackoff = DefaultReconnectBackoff
	}
	if o.MaxReconnectBackoff <= 0 {
		o.MaxReconnectBackoff = DefaultMaxReconnectBackoff
	}
	o.MaxReconnectBackoff = max(o.MaxReconnectBackoff, o.ReconnectBackoff)
	if o.MaxBatchBytes <= 0 {
		o.MaxBatchBytes = DefaultMaxBatchBytes
	}
	if o.MaxMessageBytes <= 0 {
		o.MaxMessageBytes = DefaultMaxMessageBytes
	}
	return o
}

// Client opens Push streams to a remote scheduler. It implements tailer.Scheduler.
type Client struct {
	api  kasyncv1.SchedulerClient
	opts ClientOptions
}

// NewClient returns a Client over conn. The caller owns conn and closes it after every
// stream of the client is closed.
func NewClient(conn *grpc.ClientConn, opts ClientOptions) *Client {
	return &Client{api: kasyncv1.NewSchedulerClient(conn), opts: opts.withDefaults()}
}

// Open starts a push stream named name. It waits, within ctx, for the scheduler to
// accept the stream's hello; later breaks are repaired in the background.
func (c *Client) Open(ctx context.Context, name string, deliver func([]scheduler.Result)) (scheduler.Stream, error) {
	if name == "" {
		return nil, errors.New("rpc: open: name is empty; name the stream after its tailer")
	}
	if deliver == nil {
		return nil, errors.New("rpc: open: deliver is nil")
	}
	sctx, cancel := context.WithCancel(context.Background())
	st := &clientStream{
		c: c, name: name, deliverFunc: deliver,
		ctx: sctx, cancel: cancel,
		log:     c.opts.Logger.With("stream", name),
		pending: make(map[uint64]*kasyncv1.Workload),
		changed: make(chan struct{}),
		results: make(chan struct{}, 1),
	}
	first, credit, err := st.connect(ctx)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("rpc: open stream %q: %w", name, err)
	}
	st.install(first, credit)
	st.wg.Go(func() { st.run(first) })
	st.wg.Go(st.deliverLoop)
	return st, nil
}

// wire is one gRPC Push stream. Sends are serialized by mu.
type wire struct {
	mu     sync.Mutex
	stream grpc.BidiStreamingClient[kasyncv1.PushRequest, kasyncv1.PushResponse]
	cancel context.CancelFunc
}

func (w *wire) send(ws []*kasyncv1.Workload) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.stream.Send(&kasyncv1.PushRequest{Msg: &kasyncv1.PushRequest_Batch{Batch: &kasyncv1.WorkloadBatch{Workloads: ws}}})
}

// clientStream is a scheduler.Stream over a sequence of wires: when one breaks, the
// next one re-sends every unanswered workload.
type clientStream struct {
	c           *Client
	name        string
	deliverFunc func([]scheduler.Result)
	log         *slog.Logger
	ctx         context.Context // ends with Close
	cancel      context.CancelFunc
	wg          sync.WaitGroup // run and deliverLoop
	results     chan struct{}  // buffered 1: ready has results

	mu      sync.Mutex
	closed  bool
	cur     *wire                         // nil while reconnecting
	credit  int                           // workloads cur may still carry
	pending map[uint64]*kasyncv1.Workload // pushed, no result delivered yet
	resend  []uint64                      // tokens of pending to send on cur first
	changed chan struct{}                 // closed when credit, cur or closed change
	ready   []scheduler.Result            // results waiting for deliverLoop

	repeats logrepeat.Limiter // lines that can repeat per message: one per kind every 30s
}

// connect opens a wire and waits for the scheduler's first credit.
func (st *clientStream) connect(ctx context.Context) (*wire, int, error) {
	wctx, wcancel := context.WithCancel(st.ctx)
	stop := context.AfterFunc(ctx, wcancel) // ctx bounds only the opening
	defer stop()
	stream, err := st.c.api.Push(wctx, grpc.WaitForReady(true))
	if err != nil {
		wcancel()
		return nil, 0, err
	}
	hello := &kasyncv1.PushRequest{Msg: &kasyncv1.PushRequest_Hello{Hello: &kasyncv1.PushHello{Tailer: st.name, PackedSuccesses: true, CreditInOutcomes: true}}}
	if err := stream.Send(hello); err != nil {
		_, err = stream.Recv() // the real error is the stream's status
		wcancel()
		return nil, 0, err
	}
	first, err := stream.Recv()
	if err != nil {
		wcancel()
		return nil, 0, err
	}
	credit := first.GetCredit()
	if credit == nil {
		wcancel()
		return nil, 0, errors.New("scheduler sent no initial credit after the hello")
	}
	return &wire{stream: stream, cancel: wcancel}, int(credit.GetWorkloads()), nil
}

// install makes w the current wire: everything unanswered is re-sent on it first.
func (st *clientStream) install(w *wire, credit int) {
	st.mu.Lock()
	st.cur, st.credit = w, credit
	st.resend = slices.Sorted(mapKeys(st.pending))
	chunks := st.takeResendLocked()
	st.broadcastLocked()
	st.mu.Unlock()
	st.sendChunks(w, chunks)
}

// takeResendLocked takes as many workloads to re-send as credit allows.
func (st *clientStream) takeResendLocked() [][]*kasyncv1.Workload {
	var (
		chunks [][]*kasyncv1.Workload
		chunk  []*kasyncv1.Workload
		bytes  int
	)
	for st.credit > 0 && len(st.resend) > 0 {
		pw, ok := st.pending[st.resend[0]]
		st.resend = st.resend[1:]
		if !ok {
			continue // answered meanwhile
		}
		size := pw.SizeVT()
		if len(chunk) > 0 && bytes+size > st.c.opts.MaxBatchBytes {
			chunks, chunk, bytes = append(chunks, chunk), nil, 0
		}
		chunk = append(chunk, pw)
		bytes += size
		st.credit--
	}
	if len(chunk) > 0 {
		chunks = append(chunks, chunk)
	}
	return chunks
}

func (st *clientStream) sendChunks(w *wire, chunks [][]*kasyncv1.Workload) {
	for _, c := range chunks {
		// A failed send means the wire broke; run notices on Recv and re-sends.
		if err := w.send(c); err != nil {
			return
		}
	}
}

func (st *clientStream) broadcastLocked() {
	close(st.changed)
	st.changed = make(chan struct{})
}

// Push implements scheduler.Stream. Workloads accepted before an error (ctx done,
// Close) still get their results; the rest were not sent.
func (st *clientStream) Push(ctx context.Context, batch []scheduler.Pushed) error {
	for len(batch) > 0 {
		st.mu.Lock()
		if st.closed {
			st.mu.Unlock()
			return scheduler.ErrStreamClosed
		}
		if st.cur == nil || st.credit == 0 || len(st.resend) > 0 {
			changed := st.changed
			st.mu.Unlock()
			select {
			case <-changed:
				continue
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		w := st.cur
		var (
			chunk []*kasyncv1.Workload
			bytes int
			n     int
		)
		for n < len(batch) && len(chunk) < st.credit {
			p := batch[n]
			if _, dup := st.pending[p.Token]; dup {
				st.mu.Unlock()
				return fmt.Errorf("rpc: push: token %d already has a workload without a result; tokens must be unique among unanswered workloads", p.Token)
			}
			pw := WorkloadToProto(p.Token, p.Workload)
			size := pw.SizeVT()
			if size > st.c.opts.MaxMessageBytes-1024 {
				// Answered here: sending it would break the stream on every attempt.
				st.pending[p.Token] = pw
				st.answerLocked([]scheduler.Result{{Token: p.Token, Outcome: scheduler.Fatal(scheduler.ReasonTooLarge,
					fmt.Sprintf("workload %q encodes to %d bytes; the scheduler accepts at most %d per message", p.Workload.ID, size, st.c.opts.MaxMessageBytes))}})
				n++
				continue
			}
			if len(chunk) > 0 && bytes+size > st.c.opts.MaxBatchBytes {
				break
			}
			st.pending[p.Token] = pw
			chunk = append(chunk, pw)
			bytes += size
			n++
		}
		st.credit -= len(chunk)
		st.mu.Unlock()
		if len(chunk) > 0 {
			st.sendChunks(w, [][]*kasyncv1.Workload{chunk})
		}
		batch = batch[n:]
	}
	return nil
}

// answerLocked moves the results of pending tokens to the delivery queue; results for
// tokens not pending (already answered) are dropped.
func (st *clientStream) answerLocked(rs []scheduler.Result) {
	added := false
	for _, r := range rs {
		if _, ok := st.pending[r.Token]; !ok {
			continue
		}
		delete(st.pending, r.Token)
		st.ready = append(st.ready, r)
		added = true
	}
	if added {
		select {
		case st.results <- struct{}{}:
		default:
		}
	}
}

// run reads the current wire and replaces it when it breaks, until Close.
func (st *clientStream) run(w *wire) {
	bo := backoff.Backoff{Min: st.c.opts.ReconnectBackoff, Max: st.c.opts.MaxReconnectBackoff}
	for {
		err := st.read(w)
		w.cancel()
		st.mu.Lock()
		if st.cur == w {
			st.cur, st.credit, st.resend = nil, 0, nil
			st.broadcastLocked()
		}
		closed := st.closed
		st.mu.Unlock()
		if closed {
			return
		}
		st.log.Warn("push stream broke; reconnecting", "err", err, "unanswered", st.unanswered())
		for {
			wait := bo.Next()
			if !backoff.Sleep(st.ctx, wait) {
				return
			}
			next, credit, err := st.connect(st.ctx)
			if err == nil {
				w = next
				st.install(w, credit)
				st.log.Info("push stream reconnected", "resent", st.unanswered())
				bo.Reset()
				break
			}
			if st.ctx.Err() != nil {
				return
			}
			level := slog.LevelWarn
			switch status.Code(err) {
			case codes.InvalidArgument, codes.Unimplemented, codes.Unauthenticated, codes.PermissionDenied:
				level = slog.LevelError // a misconfiguration; retrying will not fix it alone
			}
			st.log.Log(st.ctx, level, "push stream reconnect failed", "err", err, "waited", wait)
		}
	}
}

func (st *clientStream) unanswered() int {
	st.mu.Lock()
	defer st.mu.Unlock()
	return len(st.pending)
}

// read handles messages of one wire until it breaks.
func (st *clientStream) read(w *wire) error {
	for {
		msg, err := w.stream.Recv()
		if err != nil {
			return err
		}
		switch m := msg.GetMsg().(type) {
		case *kasyncv1.PushResponse_Credit:
			st.mu.Lock()
			st.credit += int(m.Credit.GetWorkloads())
			chunks := st.takeResendLocked()
			st.broadcastLocked()
			st.mu.Unlock()
			st.sendChunks(w, chunks)
		case *kasyncv1.PushResponse_Outcomes:
			ok := m.Outcomes.GetSucceeded()
			rs := make([]scheduler.Result, 0, len(ok)+len(m.Outcomes.GetOutcomes()))
			for _, token := range ok {
				rs = append(rs, scheduler.Result{Token: token, Outcome: scheduler.Success()})
			}
			for _, po := range m.Outcomes.GetOutcomes() {
				r, err := OutcomeFromProto(po)
				if err != nil {
					// A scheduler bug; keep the workload pending so the next wire retries it.
					st.repeats.Log(st.log, slog.LevelError, "malformed outcome", "dropping malformed outcome; the workload stays pending", "err", err)
					continue
				}
				rs = append(rs, r)
			}
			st.mu.Lock()
			st.answerLocked(rs)
			var chunks [][]*kasyncv1.Workload
			if n := m.Outcomes.GetCredit(); n > 0 {
				st.credit += int(n)
				chunks = st.takeResendLocked()
				st.broadcastLocked()
			}
			st.mu.Unlock()
			st.sendChunks(w, chunks)
		default:
			st.repeats.Log(st.log, slog.LevelWarn, "unknown message", "ignoring unknown push response message", "type", fmt.Sprintf("%T", m))
		}
	}
}

// deliverLoop calls deliver with queued results until Close.
func (st *clientStream) deliverLoop() {
	for {
		select {
		case <-st.ctx.Done():
			return
		case <-st.results:
		}
		st.mu.Lock()
		rs := st.ready
		st.ready = nil
		closed := st.closed
		st.mu.Unlock()
		if closed {
			return
		}
		if len(rs) > 0 {
			st.deliverFunc(rs)
		}
	}
}

// Close implements scheduler.Stream. It must not be called from deliver.
func (st *clientStream) Close() error {
	st.mu.Lock()
	if st.closed {
		st.mu.Unlock()
		return nil
	}
	st.closed = true
	st.broadcastLocked()
	st.mu.Unlock()
	st.cancel()
	st.wg.Wait()
	return nil
}

func mapKeys[K comparable, V any](m map[K]V) func(func(K) bool) {
	return func(yield func(K) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}
