package runtime

import (
	"context"

	"github.com/kasync/kasync/scheduler"
)

// Task is one attempt of a workload as a function sees it. Key, Payload and Headers
// are shared with the scheduler's workload: read them, do not modify them, and do
// not keep them after the function returns.
type Task struct {
	// ID is stable across retries: for a Kafka record, "<topic>/<partition>/<offset>"
	// of the origin record. Use it as an idempotency key.
	ID       string
	Function string
	Key      []byte
	Payload  []byte
	Headers  []scheduler.Header
	// Attempt is 1 for the first run.
	Attempt int

	// heartbeatFunc reports the task alive to whoever dispatched it; nil in-process.
	// The SDK worker sets it.
	heartbeatFunc func(context.Context) error
}

// Heartbeat tells the scheduler that a long task is alive, so it is not taken for a
// lost worker's. In-process there is no one to tell and it returns nil.
func (t *Task) Heartbeat(ctx context.Context) error {
	if t.heartbeatFunc == nil {
		return nil
	}
	return t.heartbeatFunc(ctx)
}

// Func is a function kasync runs, once per attempt of each event. Return nil for
// success, Fatal(err) for input no attempt can handle, RetryAfter(d, err) to be
// retried no sooner than d, and any other error to be retried by the ladder. It
// should return soon after ctx is done; see Registry.Execute for what happens if it
// does not.
type Func func(ctx context.Context, t *Task) error
