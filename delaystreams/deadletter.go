package delaystreams

import (
	"context"
	"errors"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
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
//
// A letter refused as too large (kasync's headers can push a record that fit its source
// topic over the dead-letter topic's max.message.bytes) is sent again without its value,
// then also without the source record's headers, with kasync-dropped saying what was
// left out: a dead letter that can never be written would hold its source partition's
// checkpoint forever. The full record stays in the source topic at kasync-origin.
func (d *DeadLetterWriter) Send(ctx context.Context, letters []tailer.Letter) []error {
	recs := make([]*kgo.Record, len(letters))
	for i := range letters {
		recs[i] = d.Record(&letters[i])
	}
	errs := d.produce(ctx, recs)
	for _, drop := range []string{droppedValue, droppedValueAndHeaders} {
		var again []int
		for i, err := range errs {
			if errors.Is(err, kerr.MessageTooLarge) {
				again = append(again, i)
			}
		}
		if len(again) == 0 {
			break
		}
		trimmed := make([]*kgo.Record, len(again))
		for j, i := range again {
			trimmed[j] = trim(recs[i], drop)
		}
		for j, err := range d.produce(ctx, trimmed) {
			errs[again[j]] = err
		}
	}
	return errs
}

// What kasync-dropped says was left out of a dead letter that was too large.
const (
	droppedValue           = "value"
	droppedValueAndHeaders = "value,headers"
)

// trim returns rec without its value and, for droppedValueAndHeaders, without the source
// record's own headers (kasync's are kept), marked with kasync-dropped.
func trim(rec *kgo.Record, drop string) *kgo.Record {
	out := &kgo.Record{Topic: rec.Topic, Key: rec.Key}
	for _, h := range rec.Headers {
		if drop == droppedValueAndHeaders && !strings.HasPrefix(h.Key, headerPrefix) {
			continue
		}
		out.Headers = append(out.Headers, h)
	}
	out.Headers = append(out.Headers, kgo.RecordHeader{Key: HeaderDropped, Value: []byte(drop)})
	return out
}

func (d *DeadLetterWriter) produce(ctx context.Context, recs []*kgo.Record) []error {
	errs := make([]error, len(recs))
	var wg sync.WaitGroup
	wg.Add(len(recs))
	for i, rec := range recs {
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
