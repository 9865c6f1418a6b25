package dlq

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"golang.org/x/time/rate"
)

// maxBatch bounds the records one produce request of a redrive carries, and so the
// records a crash between their ack and their mark can replay.
const maxBatch = 100

// markTimeout bounds the produce of a batch's marks. Marks are written even after the
// redrive's context is cancelled: their records are already acknowledged, and an
// unmarked one would be redriven again.
const markTimeout = 30 * time.Second

// RedriveOptions tune Conn.Redrive.
type RedriveOptions struct {
	// Rate is the most records produced per second; 0 or less: no limit.
	Rate float64
	// Progress, when set, is called after each batch with the records redriven so far.
	Progress func(done int)
	// Now is the clock of the marks; default time.Now.
	Now func() time.Time
}

// batchSize is the records per batch at rate r: a tenth of a second's worth, so that
// a batch waits at most ~100ms for its tokens, between 1 and maxBatch.
func batchSize(r float64) int {
	if r <= 0 {
		return maxBatch
	}
	return max(1, min(maxBatch, int(r/10)))
}

// Redrive produces plan's items in batches, at most o.Rate a second: each batch to its
// targets, then, for every record the broker acknowledged (acks=all, idempotent), its
// mark to the ledger topic, then the marks are added to ledger. A record is never
// marked before it is acknowledged; a record not acknowledged is not marked, and the
// redrive stops there with the error. It returns the number of records redriven and
// marked. The ledger topic must exist (EnsureLedger).
func (c *Conn) Redrive(ctx context.Context, plan *Plan, ledger *Ledger, o RedriveOptions) (int, error) {
	now := o.Now
	if now == nil {
		now = time.Now
	}
	size := batchSize(o.Rate)
	var limiter *rate.Limiter
	if o.Rate > 0 {
		limiter = rate.NewLimiter(rate.Limit(o.Rate), size)
	}
	done := 0
	for len(plan.Items[done:]) > 0 {
		batch := plan.Items[done:min(done+size, len(plan.Items))]
		if limiter != nil {
			if err := limiter.WaitN(ctx, len(batch)); err != nil {
				return done, fmt.Errorf("dlq: redrive stopped after %d of %d records: %w", done, len(plan.Items), err)
			}
		}
		n, err := c.redriveBatch(ctx, batch, ledger, now)
		done += n
		if o.Progress != nil {
			o.Progress(done)
		}
		if err != nil {
			return done, err
		}
	}
	return done, nil
}

// redriveBatch produces batch, then marks the records acknowledged.
func (c *Conn) redriveBatch(ctx context.Context, batch []Item, ledger *Ledger, now func() time.Time) (int, error) {
	recs := make([]*kgo.Record, len(batch))
	for i, it := range batch {
		recs[i] = RedriveRecord(it.Entry, c.topic, it.Target)
	}
	results := c.cl.ProduceSync(ctx, recs...)
	var (
		marks    []*kgo.Record
		marked   []Pos
		markOf   []Mark
		firstErr error
	)
	for i, res := range results {
		if res.Err != nil {
			if firstErr == nil {
				firstErr = fmt.Errorf("dlq: redrive %s/%s to %s: %w (not marked; a next run retries it)",
					c.topic, batch[i].Entry.Pos, batch[i].Target, res.Err)
			}
			continue
		}
		to := res.Record.Topic + "/" + strconv.FormatInt(int64(res.Record.Partition), 10) + "/" + strconv.FormatInt(res.Record.Offset, 10)
		m := ledger.NewMark(to, now())
		marks = append(marks, MarkRecord(c.Ledger(), batch[i].Entry.Pos, m))
		marked = append(marked, batch[i].Entry.Pos)
		markOf = append(markOf, m)
	}
	if len(marks) == 0 {
		return 0, firstErr
	}
	mctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), markTimeout)
	defer cancel()
	n, unmarked := 0, 0
	var firstUnmarked string
	var markErr error
	for i, res := range c.cl.ProduceSync(mctx, marks...) {
		if res.Err != nil {
			if unmarked == 0 {
				firstUnmarked, markErr = c.topic+"/"+marked[i].String(), res.Err
			}
			unmarked++
			if firstErr == nil {
				firstErr = fmt.Errorf("dlq: mark %s/%s redriven in %s: %w", c.topic, marked[i], c.Ledger(), res.Err)
			}
			continue
		}
		ledger.Add(marked[i], markOf[i])
		n++
	}
	if unmarked > 0 { // one line per batch: a broker refusing every mark refuses them all
		c.log.Error("dlq: redriven records could not be marked; a next run with the same filter redrives them again",
			"records", unmarked, "first", firstUnmarked, "ledger", c.Ledger(), "err", markErr)
	}
	return n, firstErr
}
