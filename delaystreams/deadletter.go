package delaystreams

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kasync/kasync/tailer"
)

// DeadLetterWriter writes letters to the dead-letter topic. It implements
// tailer.DeadLetterer.
type DeadLetterWriter struct {
	cl    *kgo.Client
	topic string
	now   func() time.Time
}

// NewDeadLetterWriter writes to topic with cl, which must be a durable producer: acks
// from all in-sync replicas and idempotence, franz-go's defaults (see
// internal/kafka.ProducerOpts). The caller owns cl.
func NewDeadLetterWriter(cl *kgo.Client, topic string) (*DeadLetterWriter, error) {
	if cl == nil {
		return nil, errors.New("delaystreams: dead-letter writer: nil client")
	}
	if topic == "" {
		return nil, errors.New("delaystreams: dead-letter writer: empty topic; set dead_letter.topic")
	}
	return &DeadLetterWriter{cl: cl, topic: topic, now: time.Now}, nil
}

// Send produces every letter and waits for the broker's acknowledgements. The error for
// a letter is nil only once the broker has it durably.
func (d *DeadLetterWriter) Send(ctx context.Context, letters []tailer.Letter) []error {
	errs := make([]error, len(letters))
	var wg sync.WaitGroup
	wg.Add(len(letters))
	for i := range letters {
		rec := d.Record(&letters[i])
		d.cl.Produce(ctx, rec, func(_ *kgo.Record, err error) {
			errs[i] = err
			wg.Done()
		})
	}
	wg.Wait()
	return errs
}

// Record builds the dead-letter record of l: the original key, value and headers (less
// any kasync-* headers it carried) plus kasync's headers. It is the same record the
// Router writes for a dead letter (kasyncRecord builds both; TestDeadLetterSameShape).
func (d *DeadLetterWriter) Record(l *tailer.Letter) *kgo.Record {
	src := l.Record
	first := l.FirstFailure
	if first.IsZero() {
		first = d.now()
	}
	return kasyncRecord(d.topic, src, outHeaders{
		Function:     l.Function,
		Attempt:      ClampAttempt(int64(l.Attempt)),
		Origin:       Origin{Topic: src.Topic, Partition: src.Partition, Offset: src.Offset},
		FirstFailure: first,
		Err:          l.Err,
		DeadLetter:   true,
		Reason:       l.Reason,
	})
}
