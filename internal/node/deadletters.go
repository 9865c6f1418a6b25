package node

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/kasync/kasync/internal/dlq"
	"github.com/kasync/kasync/internal/kafka"
	"github.com/kasync/kasync/internal/nodestatus"
)

// deadLetterKeyWidth is how much of a dead letter's key a Status shows.
const deadLetterKeyWidth = 40

// deadLetterTail reads the latest dead letters for Status with internal/dlq's reader:
// a dlq.Conn opened on first use and kept until the node closes, whose Tail reads with
// a short-lived direct consumer (no group, no commits) per call. One read at a time, as
// a dlq.Conn wants; a caller waits for its turn only as long as its context allows.
type deadLetterTail struct {
	cc    kafka.ClientConfig
	topic string
	turn  chan struct{} // holds a token while a read (or close) runs

	conn   *dlq.Conn // under turn
	closed bool      // under turn
}

func newDeadLetterTail(cc kafka.ClientConfig, topic string) *deadLetterTail {
	return &deadLetterTail{cc: cc, topic: topic, turn: make(chan struct{}, 1)}
}

// latest returns the newest n records of the dead-letter topic, newest first.
func (d *deadLetterTail) latest(ctx context.Context, n int) ([]nodestatus.DeadLetter, error) {
	select {
	case d.turn <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("dead-letter topic %s: waiting for another read: %w", d.topic, ctx.Err())
	}
	defer func() { <-d.turn }()
	if d.closed {
		return nil, errors.New("the node is stopping")
	}
	if d.conn == nil {
		conn, err := dlq.Open(ctx, d.cc, d.topic)
		if err != nil {
			return nil, fmt.Errorf("dead-letter topic %s: %w", d.topic, err)
		}
		d.conn = conn
	}
	var all []nodestatus.DeadLetter
	err := d.conn.Tail(ctx, n, func(e *dlq.Entry) error {
		all = append(all, deadLetterOf(e))
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("dead-letter topic %s: read the latest: %w", d.topic, err)
	}
	return newestFirst(all, n), nil
}

// close closes the Conn, after a read in progress has ended; later reads fail.
func (d *deadLetterTail) close() {
	d.turn <- struct{}{}
	defer func() { <-d.turn }()
	d.closed = true
	if d.conn != nil {
		d.conn.Close()
		d.conn = nil
	}
}

// newestFirst sorts dead letters newest first (ties by position, later first) and
// keeps the first n.
func newestFirst(all []nodestatus.DeadLetter, n int) []nodestatus.DeadLetter {
	slices.SortFunc(all, func(a, b nodestatus.DeadLetter) int {
		return cmp.Or(b.Time.Compare(a.Time), cmp.Compare(b.Partition, a.Partition), cmp.Compare(b.Offset, a.Offset))
	})
	if all == nil {
		all = []nodestatus.DeadLetter{} // read, and empty: not "unknown"
	}
	return all[:min(n, len(all))]
}

// deadLetterOf is the status view of a dead-letter entry: its headers as written, text
// made valid UTF-8, the key printable and short; no value.
func deadLetterOf(e *dlq.Entry) nodestatus.DeadLetter {
	valid := func(s string) string { return strings.ToValidUTF8(s, "\uFFFD") }
	return nodestatus.DeadLetter{
		Partition: e.Partition,
		Offset:    e.Offset,
		Time:      e.Time,
		Function:  valid(e.Function),
		Reason:    valid(e.Reason),
		Error:     valid(e.Error),
		Attempt:   e.Attempt,
		Origin:    valid(e.Origin),
		Key:       dlq.OneLine(dlq.Text(e.Key, false), deadLetterKeyWidth),
	}
}
