package tasks

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// Header is one header of a submitted task.
type Header struct {
	Key   string
	Value []byte
}

// Request is a task to submit, as the API received it.
type Request struct {
	Function string
	Payload  []byte
	Key      []byte
	Headers  []Header
	// Delay and RunAt say when it runs; at most one of them; neither means now.
	Delay    *time.Duration
	RunAt    *time.Time
	Priority int32
}

// Limits are what a node accepts.
type Limits struct {
	// Functions are the configured functions, each with whether it accepts submitted
	// tasks (functions[].submit).
	Functions map[string]bool
	// MaxWorkloadBytes bounds key + payload + headers (node.max_workload_bytes).
	MaxWorkloadBytes int
	// Tolerance is the delay ladder's: a task due within it of now runs now.
	Tolerance time.Duration
	// MaxAhead is the furthest ahead a task may be due (the router's MaxDelay).
	MaxAhead time.Duration
}

// Plan is where an accepted task goes.
type Plan struct {
	Due   time.Time // when it is due; now for a task that runs now
	Later bool      // onto a delay rung; otherwise the ingest topic
}

// Kind says what is wrong with a request.
type Kind int

const (
	// Invalid: the request itself is wrong (gRPC INVALID_ARGUMENT).
	Invalid Kind = iota + 1
	// NotEnabled: the function is configured but does not accept submitted tasks
	// (gRPC FAILED_PRECONDITION).
	NotEnabled
)

// Problem is why a request was refused: the field at fault and what would be right.
type Problem struct {
	Kind  Kind
	Field string
	Msg   string
}

func (p *Problem) Error() string { return p.Field + ": " + p.Msg }

func invalid(field, format string, args ...any) *Problem {
	return &Problem{Kind: Invalid, Field: field, Msg: fmt.Sprintf(format, args...)}
}

// reservedPrefix starts the names of kasync's own headers.
const reservedPrefix = "kasync-"

// Check decides, without I/O, whether r is accepted at now under l and where it goes.
// The error is a *Problem naming the first field at fault. Rules:
//
//   - function: required; configured; with submit: true (NotEnabled otherwise);
//   - headers: each with a name, none starting with "kasync-" (reserved);
//   - payload: key + payload + header names and values at most MaxWorkloadBytes;
//   - delay and run_at: not both; delay ≥ 0; due (now + delay, or run_at; a run_at in
//     the past is now) at most MaxAhead ahead;
//   - a task due more than Tolerance from now goes onto a rung (Later); else it runs now.
func Check(r Request, now time.Time, l Limits) (Plan, error) {
	switch submit, ok := l.Functions[r.Function]; {
	case r.Function == "":
		return Plan{}, invalid("function", "empty; name the function to run (one of: %s)", names(l.Functions))
	case !ok:
		return Plan{}, invalid("function", "%q is not a configured function (configured: %s)", r.Function, names(l.Functions))
	case !submit:
		return Plan{}, &Problem{Kind: NotEnabled, Field: "function",
			Msg: fmt.Sprintf("%q does not accept submitted tasks; set submit: true on it in the node's functions", r.Function)}
	}
	size := len(r.Key) + len(r.Payload)
	for i, h := range r.Headers {
		switch {
		case h.Key == "":
			return Plan{}, invalid(fmt.Sprintf("headers[%d]", i), "has no name; give every header a name")
		case strings.HasPrefix(strings.ToLower(h.Key), reservedPrefix):
			return Plan{}, invalid(fmt.Sprintf("headers[%d]", i), "%q: names starting with %q are kasync's own; use priority for kasync-priority", h.Key, reservedPrefix)
		}
		size += len(h.Key) + len(h.Value)
	}
	if l.MaxWorkloadBytes > 0 && size > l.MaxWorkloadBytes {
		return Plan{}, invalid("payload", "the task is %d bytes (key + payload + headers); node.max_workload_bytes allows at most %d", size, l.MaxWorkloadBytes)
	}
	due := now
	switch {
	case r.Delay != nil && r.RunAt != nil:
		return Plan{}, invalid("delay", "both delay and run_at are set; give one of them, or neither to run now")
	case r.Delay != nil:
		d := *r.Delay
		if d < 0 {
			return Plan{}, invalid("delay", "%s is negative; use 0 or more, or run_at for a time", d)
		}
		if d > l.MaxAhead {
			return Plan{}, invalid("delay", "%s is beyond the limit: a task may be due at most %s ahead (%s)", d, l.MaxAhead, days(l.MaxAhead))
		}
		due = now.Add(d)
	case r.RunAt != nil:
		at := *r.RunAt
		if ahead := at.Sub(now); ahead > l.MaxAhead {
			return Plan{}, invalid("run_at", "%s is %s ahead, beyond the limit: a task may be due at most %s ahead (%s)",
				at.UTC().Format(time.RFC3339), ahead.Round(time.Second), l.MaxAhead, days(l.MaxAhead))
		}
		if at.After(now) {
			due = at
		} // a time in the past runs now
	}
	return Plan{Due: due, Later: due.Sub(now) > l.Tolerance}, nil
}

func names(fns map[string]bool) string {
	if len(fns) == 0 {
		return "none"
	}
	out := make([]string, 0, len(fns))
	for name := range fns {
		out = append(out, name)
	}
	slices.Sort(out)
	return strings.Join(out, ", ")
}

func days(d time.Duration) string {
	return fmt.Sprintf("%.4g days", d.Hours()/24)
}
