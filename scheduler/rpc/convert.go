package rpc

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"time"
	"unicode/utf8"

	kasyncv1 "github.com/kasync/kasync/proto/kasync/v1"
	"github.com/kasync/kasync/scheduler"
)

// maxErrorText bounds the error text carried in one outcome, so that a function that
// returns a huge error cannot blow up an outcome batch (dead-letter records keep 1 KiB).
const maxErrorText = 4 << 10

// WorkloadToProto converts a workload pushed with token to its wire form. Byte slices are
// shared, not copied.
func WorkloadToProto(token uint64, w *scheduler.Workload) *kasyncv1.Workload {
	pw := &kasyncv1.Workload{
		Token:    token,
		Id:       validUTF8(w.ID),
		Function: validUTF8(w.Function),
		Key:      w.Key,
		Payload:  w.Payload,
		Headers:  headersToProto(w.Headers),
		Attempt:  clampUint32(w.Attempt),
		Priority: w.Priority,
		Source:   validUTF8(w.Source),
	}
	if !w.Created.IsZero() {
		pw.CreatedUnixMs = w.Created.UnixMilli()
	}
	return pw
}

// WorkloadFromProto converts a wire workload and checks it. The error names the field
// that is wrong; the caller answers such a workload with a fatal "invalid" outcome.
func WorkloadFromProto(pw *kasyncv1.Workload) (*scheduler.Workload, error) {
	if pw == nil {
		return nil, errors.New("workload is null")
	}
	switch {
	case pw.GetId() == "":
		return nil, fmt.Errorf("workload token %d: id is empty; set it to a stable name such as <topic>/<partition>/<offset>", pw.GetToken())
	case pw.GetFunction() == "":
		return nil, fmt.Errorf("workload %q: function is empty; name a configured function", pw.GetId())
	case pw.GetAttempt() < 1:
		return nil, fmt.Errorf("workload %q: attempt is %d; it must be >= 1 (1 for the first run)", pw.GetId(), pw.GetAttempt())
	case pw.GetAttempt() > math.MaxInt32:
		return nil, fmt.Errorf("workload %q: attempt %d is out of range", pw.GetId(), pw.GetAttempt())
	}
	w := &scheduler.Workload{
		ID:       pw.GetId(),
		Function: pw.GetFunction(),
		Key:      pw.GetKey(),
		Payload:  pw.GetPayload(),
		Headers:  HeadersFromProto(pw.GetHeaders()),
		Attempt:  int(pw.GetAttempt()),
		Priority: pw.GetPriority(),
		Source:   pw.GetSource(),
	}
	if ms := pw.GetCreatedUnixMs(); ms != 0 {
		w.Created = time.UnixMilli(ms)
	}
	return w, nil
}

func headersToProto(hs []scheduler.Header) []*kasyncv1.Header {
	if len(hs) == 0 {
		return nil
	}
	out := make([]*kasyncv1.Header, len(hs))
	for i, h := range hs {
		out[i] = &kasyncv1.Header{Key: []byte(h.Key), Value: h.Value}
	}
	return out
}

// HeadersFromProto converts wire headers (nil for none); the SDK worker shares it.
func HeadersFromProto(hs []*kasyncv1.Header) []scheduler.Header {
	if len(hs) == 0 {
		return nil
	}
	out := make([]scheduler.Header, len(hs))
	for i, h := range hs {
		out[i] = scheduler.Header{Key: string(h.GetKey()), Value: h.GetValue()}
	}
	return out
}

// KindToProto converts an outcome kind to its wire form.
func KindToProto(k scheduler.OutcomeKind) kasyncv1.OutcomeKind {
	switch k {
	case scheduler.OutcomeSuccess:
		return kasyncv1.OutcomeKind_OUTCOME_KIND_SUCCESS
	case scheduler.OutcomeRetriable:
		return kasyncv1.OutcomeKind_OUTCOME_KIND_RETRIABLE
	case scheduler.OutcomeFatal:
		return kasyncv1.OutcomeKind_OUTCOME_KIND_FATAL
	default:
		return kasyncv1.OutcomeKind_OUTCOME_KIND_UNSPECIFIED
	}
}

// KindFromProto converts a wire outcome kind; UNSPECIFIED and unknown values are errors.
func KindFromProto(k kasyncv1.OutcomeKind) (scheduler.OutcomeKind, error) {
	switch k {
	case kasyncv1.OutcomeKind_OUTCOME_KIND_SUCCESS:
		return scheduler.OutcomeSuccess, nil
	case kasyncv1.OutcomeKind_OUTCOME_KIND_RETRIABLE:
		return scheduler.OutcomeRetriable, nil
	case kasyncv1.OutcomeKind_OUTCOME_KIND_FATAL:
		return scheduler.OutcomeFatal, nil
	default:
		return 0, fmt.Errorf("outcome kind %d is not one of SUCCESS, RETRIABLE, FATAL", int32(k))
	}
}

// OutcomeToProto converts the outcome of the workload pushed with token.
func OutcomeToProto(token uint64, o scheduler.Outcome) *kasyncv1.Outcome {
	po := &kasyncv1.Outcome{}
	outcomeToProto(po, token, o)
	return po
}

// outcomeToProto fills po, a zero Outcome, as OutcomeToProto does.
func outcomeToProto(po *kasyncv1.Outcome, token uint64, o scheduler.Outcome) {
	kind := KindToProto(o.Kind)
	if kind == kasyncv1.OutcomeKind_OUTCOME_KIND_UNSPECIFIED {
		// An executor bug must not turn into a protocol error for the tailer.
		kind = kasyncv1.OutcomeKind_OUTCOME_KIND_RETRIABLE
	}
	po.Token = token
	po.Kind = kind
	po.Reason = validUTF8(string(o.Reason))
	po.Error = truncate(o.Err, maxErrorText)
	po.RetryAfterMs = o.RetryAfter.Milliseconds()
}

// OutcomeFromProto converts a wire outcome to a scheduler result.
func OutcomeFromProto(po *kasyncv1.Outcome) (scheduler.Result, error) {
	kind, err := KindFromProto(po.GetKind())
	if err != nil {
		return scheduler.Result{}, fmt.Errorf("outcome for token %d: %w", po.GetToken(), err)
	}
	return scheduler.Result{Token: po.GetToken(), Outcome: scheduler.Outcome{
		Kind:       kind,
		Reason:     scheduler.Reason(po.GetReason()),
		Err:        po.GetError(),
		RetryAfter: msDuration(po.GetRetryAfterMs()),
	}}, nil
}

// TaskResultToProto converts the outcome of task id.
func TaskResultToProto(id uint64, o scheduler.Outcome) *kasyncv1.TaskResult {
	r := &kasyncv1.TaskResult{}
	FillTaskResult(r, id, o)
	return r
}

// FillTaskResult fills r, a zero TaskResult, as TaskResultToProto does; a sender that
// builds a batch allocates its results together.
func FillTaskResult(r *kasyncv1.TaskResult, id uint64, o scheduler.Outcome) {
	var po kasyncv1.Outcome
	outcomeToProto(&po, 0, o)
	r.TaskId = id
	r.Kind = po.Kind
	r.Reason = po.Reason
	r.Error = po.Error
	r.RetryAfterMs = po.RetryAfterMs
}

// IsPlainSuccess reports whether o is a success and nothing more (no reason, error
// or retry-after): what a packed success token (OutcomeBatch.succeeded,
// TaskResultBatch.succeeded) stands for.
func IsPlainSuccess(o scheduler.Outcome) bool { return o == scheduler.Success() }

// TaskResultFromProto converts a worker's task result to an outcome.
func TaskResultFromProto(r *kasyncv1.TaskResult) (scheduler.Outcome, error) {
	kind, err := KindFromProto(r.GetKind())
	if err != nil {
		return scheduler.Outcome{}, fmt.Errorf("result for task %d: %w", r.GetTaskId(), err)
	}
	if kind == scheduler.OutcomeSuccess && r.GetReason() != "" {
		return scheduler.Outcome{}, fmt.Errorf("result for task %d: success with reason %q; reason must be empty on success", r.GetTaskId(), r.GetReason())
	}
	return scheduler.Outcome{
		Kind:       kind,
		Reason:     scheduler.Reason(r.GetReason()),
		Err:        r.GetError(),
		RetryAfter: msDuration(r.GetRetryAfterMs()),
	}, nil
}

// TaskToProto builds the task sent to a worker for one attempt of w. Byte slices are
// shared, not copied.
func TaskToProto(id uint64, w *scheduler.Workload, timeout time.Duration) *kasyncv1.Task {
	t := &kasyncv1.Task{}
	taskToProto(t, id, w, timeout)
	return t
}

// taskToProto fills t, a zero Task, as TaskToProto does.
func taskToProto(t *kasyncv1.Task, id uint64, w *scheduler.Workload, timeout time.Duration) {
	t.TaskId = id
	t.Id = validUTF8(w.ID)
	t.Function = validUTF8(w.Function)
	t.Key = w.Key
	t.Payload = w.Payload
	t.Headers = headersToProto(w.Headers)
	t.Attempt = clampUint32(w.Attempt)
	t.Priority = w.Priority
	if !w.Created.IsZero() {
		t.CreatedUnixMs = w.Created.UnixMilli()
	}
	t.TimeoutMs = timeoutMs(timeout)
	t.Source = validUTF8(w.Source)
}

// TaskWorkload is the workload a task carries (the inverse of TaskToProto).
func TaskWorkload(t *kasyncv1.Task) *scheduler.Workload {
	w := &scheduler.Workload{
		ID:       t.GetId(),
		Function: t.GetFunction(),
		Key:      t.GetKey(),
		Payload:  t.GetPayload(),
		Headers:  HeadersFromProto(t.GetHeaders()),
		Attempt:  int(min(t.GetAttempt(), math.MaxInt32)),
		Priority: t.GetPriority(),
		Source:   t.GetSource(),
	}
	if ms := t.GetCreatedUnixMs(); ms != 0 {
		w.Created = time.UnixMilli(ms)
	}
	return w
}

// TaskTimeout is the timeout a task carries; 0 means none.
func TaskTimeout(t *kasyncv1.Task) time.Duration { return msDuration(t.GetTimeoutMs()) }

func timeoutMs(d time.Duration) int64 {
	if d <= 0 {
		return 0
	}
	// Round up so that a sub-millisecond timeout does not become "no timeout".
	return int64((d + time.Millisecond - 1) / time.Millisecond)
}

func msDuration(ms int64) time.Duration {
	if ms <= 0 {
		return 0
	}
	if ms > math.MaxInt64/int64(time.Millisecond) {
		return math.MaxInt64
	}
	return time.Duration(ms) * time.Millisecond
}

func clampUint32(n int) uint32 {
	switch {
	case n < 0:
		return 0
	case n > math.MaxUint32:
		return math.MaxUint32
	default:
		return uint32(n)
	}
}

// truncate cuts s to at most n bytes of valid UTF-8 (proto3 strings must be UTF-8, and
// error texts come from user code).
func truncate(s string, n int) string {
	s = validUTF8(s)
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

func validUTF8(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}
