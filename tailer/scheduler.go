package tailer

import (
	"context"

	"github.com/kasync/kasync/scheduler"
)

// Scheduler is what a tailer needs from a scheduler: a push stream per tailer.
// scheduler.Local (in-process) and the gRPC client in scheduler/rpc implement it, and
// both pass the conformance suite in scheduler/schedulertest.
type Scheduler interface {
	// Open starts a push stream named after the tailer. deliver is called with results,
	// in any order, from a goroutine the stream owns; it must not block for long.
	Open(ctx context.Context, name string, deliver func([]scheduler.Result)) (scheduler.Stream, error)
}
