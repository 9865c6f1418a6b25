package delaystreams

import (
	"context"
	"errors"
	"strconv"
	"strings"
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
// any kasync-* headers it carried) plus kasync's headers.
func (d *DeadLetterWriter) Record(l *tailer.Letter) *kgo.Record {
	src := l.Record
	headers := make([]kgo.RecordHeader, 0, len(src.Headers)+7)
	for _, h := range src.Headers {
		if !strings.HasPrefix(h.Key, headerPrefix) {
			headers = append(headers, h)
		}
	}
	origin := Origin{Topic: src.Topic, Partition: src.Partition, Offset: src.Offset}
	first := l.FirstFailure
	if first.IsZero() {
		first = d.now()
	}
	headers = append(headers,
		kgo.RecordHeader{Key: HeaderFunction, Value: []byte(l.Function)},
		kgo.RecordHeader{Key: HeaderAttempt, Value: strconv.AppendInt(nil, int64(l.Attempt), 10)},
		kgo.RecordHeader{Key: HeaderOrigin, Value: []byte(origin.String())},
		kgo.RecordHeader{Key: HeaderFirstFailure, Value: strconv.AppendInt(nil, first.UnixMilli(), 10)},
		kgo.RecordHeader{Key: HeaderError, Value: []byte(truncateError(l.Err))},
		kgo.RecordHeader{Key: HeaderReason, Value: []byte(l.Reason)},
	)
	return &kgo.Record{Topic: d.topic, Key: src.Key, Value: src.Value, Headers: headers}
}
