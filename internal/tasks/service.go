package tasks

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/kasync/kasync/delaystreams"
	"github.com/kasync/kasync/internal/logrepeat"
	kasyncv1 "github.com/kasync/kasync/proto/kasync/v1"
	"github.com/kasync/kasync/scheduler/rpc"
)

// Config configures a Service.
type Config struct {
	// Client produces submitted tasks: a durable producer (acks=all, idempotent). Nil
	// on a node that does not read Kafka: Submit then answers UNAVAILABLE.
	Client *kgo.Client
	// Router puts tasks for later onto the rungs (Router.Scheduled). Nil with Client.
	Router *delaystreams.Router
	// Limits are what Submit accepts (Tolerance and MaxAhead are taken from Router).
	Limits Limits
	// IngestTopic names the ingest topic of a function.
	IngestTopic func(function string) string
	// Writer records NEW for each submitted task; nil records nothing.
	Writer *Writer
	// Index answers GetTask; nil answers UNAVAILABLE.
	Index *Index
	// Grants, when not nil, is what authenticated identities may submit to (and read
	// the tasks of): see Grants.
	Grants Grants
	Now    func() time.Time // default time.Now
	Logger *slog.Logger     // default slog.Default()
}

// Service is the Tasks gRPC service (proto kasync.v1.Tasks).
type Service struct {
	kasyncv1.UnimplementedTasksServer
	cfg Config
	// repeats keeps lines that can repeat per call (a broker that refuses every
	// submit) to one per function every 30s with a count.
	repeats logrepeat.Limiter
}

// NewService returns the Tasks service of cfg.
func NewService(cfg Config) *Service {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Router != nil {
		cfg.Limits.Tolerance = cfg.Router.Tolerance()
		cfg.Limits.MaxAhead = cfg.Router.MaxDelay()
	}
	return &Service{cfg: cfg}
}

// Register registers the service on srv.
func (s *Service) Register(srv *grpc.Server) { kasyncv1.RegisterTasksServer(srv, s) }

// Grants says which functions each identity may submit to: identity → function names,
// "*" for all. It follows node.grpc_auth.identities: an identity may submit to the
// functions its grant lists (the ones it may serve). Nil or empty grants allow every
// authenticated identity everything, like rpc.Policy.
type Grants map[string][]string

// Check returns nil when identity may submit to (and read the tasks of) function.
func (g Grants) Check(identity, function string) error {
	if len(g) == 0 {
		return nil
	}
	fns, ok := g[identity]
	switch {
	case !ok:
		return fmt.Errorf("identity %q is not in node.grpc_auth.identities, so it may not submit to function %q", identity, function)
	case slices.Contains(fns, rpc.AllFunctions) || slices.Contains(fns, function):
		return nil
	}
	return fmt.Errorf("identity %q may not submit to function %q: its grant lists functions %v", identity, function, fns)
}

func (s *Service) authorize(ctx context.Context, what, function string) error {
	if s.cfg.Grants == nil {
		return nil
	}
	id, ok := rpc.IdentityFrom(ctx)
	if !ok {
		return status.Errorf(codes.Unauthenticated, "%s: no authenticated identity", what)
	}
	if err := s.cfg.Grants.Check(id.Name, function); err != nil {
		s.cfg.Logger.Warn("tasks call refused: not authorized", "call", what, "identity", id.Name, "via", id.Via, "err", err)
		return status.Errorf(codes.PermissionDenied, "%s: %v", what, err)
	}
	return nil
}

// Submit checks the task (Check), produces it to the function's ingest topic or onto a
// delay rung, waits for the broker's ack and answers the task id.
func (s *Service) Submit(ctx context.Context, req *kasyncv1.SubmitRequest) (*kasyncv1.SubmitResponse, error) {
	r := Request{Function: req.GetFunction(), Payload: req.GetPayload(), Key: req.GetKey(), Priority: req.GetPriority()}
	for _, h := range req.GetHeaders() {
		r.Headers = append(r.Headers, Header{Key: string(h.GetKey()), Value: h.GetValue()})
	}
	switch w := req.GetWhen().(type) {
	case *kasyncv1.SubmitRequest_DelayMs:
		// Clamped so that the conversion cannot overflow; Check refuses either end.
		d := time.Duration(min(max(w.DelayMs, -1<<40), int64(s.cfg.Limits.MaxAhead/time.Millisecond)+1)) * time.Millisecond
		r.Delay = &d
	case *kasyncv1.SubmitRequest_RunAtUnixMs:
		at := time.UnixMilli(w.RunAtUnixMs)
		r.RunAt = &at
	}
	if r.Function != "" {
		if err := s.authorize(ctx, "submit", r.Function); err != nil {
			return nil, err
		}
	}
	now := s.cfg.Now()
	plan, err := Check(r, now, s.cfg.Limits)
	if p := (*Problem)(nil); errors.As(err, &p) {
		code := codes.InvalidArgument
		if p.Kind == NotEnabled {
			code = codes.FailedPrecondition
		}
		return nil, status.Error(code, "submit: "+p.Error())
	}
	if s.cfg.Client == nil || s.cfg.Router == nil {
		return nil, status.Error(codes.Unavailable, "submit: this node does not read Kafka (scheduler role only); submit to a node that runs the tailer or delay role too")
	}
	rec := &kgo.Record{Key: r.Key, Value: r.Payload}
	for _, h := range r.Headers {
		rec.Headers = append(rec.Headers, kgo.RecordHeader{Key: h.Key, Value: h.Value})
	}
	due := plan.Due
	if plan.Later {
		rec, _ = s.cfg.Router.Scheduled(rec, r.Function, r.Priority, plan.Due)
	} else {
		rec.Topic = s.cfg.IngestTopic(r.Function)
		if r.Priority != 0 {
			rec.Headers = append(rec.Headers, kgo.RecordHeader{Key: delaystreams.HeaderPriority, Value: strconv.AppendInt(nil, int64(r.Priority), 10)})
		}
	}
	if err := s.cfg.Client.ProduceSync(ctx, rec).FirstErr(); err != nil {
		s.repeats.Log(s.cfg.Logger, slog.LevelWarn, "submit "+r.Function, "submitted task not acknowledged by the broker", "function", r.Function, "topic", rec.Topic, "err", err)
		return nil, status.Errorf(codes.Unavailable, "submit: producing to %s: %v (the task may or may not have been written)", rec.Topic, err)
	}
	id := delaystreams.Origin{Topic: rec.Topic, Partition: rec.Partition, Offset: rec.Offset}.String()
	if s.cfg.Writer != nil {
		s.cfg.Writer.Write(Status{ID: id, Function: r.Function, State: StateNew, CreatedMs: now.UnixMilli(), DueMs: due.UnixMilli()})
	}
	return &kasyncv1.SubmitResponse{TaskId: id, DueUnixMs: due.UnixMilli(), Scheduled: plan.Later}, nil
}

// GetTask answers the state of a task from the index.
func (s *Service) GetTask(ctx context.Context, req *kasyncv1.GetTaskRequest) (*kasyncv1.TaskStatus, error) {
	id := req.GetTaskId()
	if err := CheckID(id); err != nil {
		return nil, status.Error(codes.InvalidArgument, "get task: task_id: "+err.Error())
	}
	if s.cfg.Index == nil {
		return nil, status.Error(codes.Unavailable, "get task: this node keeps no task index (it reads no Kafka, or no function has submit: true and no tailer task_status: true)")
	}
	st, err := s.cfg.Index.Get(id)
	if errors.Is(err, ErrNotFound) {
		return nil, status.Errorf(codes.NotFound, "get task: no task %q is known (yet: a task submitted an instant ago may take a moment to appear)", id)
	}
	if err != nil {
		return nil, status.Errorf(codes.Internal, "get task: %v", err)
	}
	if err := s.authorize(ctx, "get task", st.Function); err != nil {
		return nil, err
	}
	return ToProto(st), nil
}

// ToProto is st as the API answers it.
func ToProto(st Status) *kasyncv1.TaskStatus {
	return &kasyncv1.TaskStatus{TaskId: st.ID, Function: st.Function, State: protoState(st.State), Attempts: uint32(max(st.Attempts, 0)),
		LastError: st.LastError, Reason: st.Reason, CreatedUnixMs: st.CreatedMs, UpdatedUnixMs: st.UpdatedMs, DueUnixMs: st.DueMs}
}

func protoState(s State) kasyncv1.TaskState {
	switch s {
	case StateNew:
		return kasyncv1.TaskState_TASK_STATE_NEW
	case StateEnqueued:
		return kasyncv1.TaskState_TASK_STATE_ENQUEUED
	case StateProcessing:
		return kasyncv1.TaskState_TASK_STATE_PROCESSING
	case StateRetriable:
		return kasyncv1.TaskState_TASK_STATE_RETRIABLE_FAILURE
	case StateSuccess:
		return kasyncv1.TaskState_TASK_STATE_SUCCESS
	case StateFatal:
		return kasyncv1.TaskState_TASK_STATE_FATAL_FAILURE
	}
	return kasyncv1.TaskState_TASK_STATE_UNSPECIFIED
}
