package tailer

import (
	"context"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Dead-letter reasons the tailer decides itself; others come from the outcome.
const ReasonExhausted = "exhausted"

// Letter is a source record on its way to the dead-letter topic.
type Letter struct {
	Record       *kgo.Record // the record as read from the source
	Function     string
	Attempt      int    // attempts made
	Reason       string // kasync-reason: exhausted, fatal, unknown-function, too-large, ...
	Err          string // the last error
	FirstFailure time.Time
}

// DeadLetterer makes letters durable in the dead-letter topic.
type DeadLetterer interface {
	// Send returns one error per letter, nil only for a letter the broker has
	// acknowledged (acks=all). The tailer retries the others; it never drops one.
	Send(ctx context.Context, letters []Letter) []error
}
