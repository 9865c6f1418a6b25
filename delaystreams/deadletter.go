package delaystreams

import (
	"strings"

	"github.com/twmb/franz-go/pkg/kgo"
)

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
