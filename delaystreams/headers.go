package delaystreams

import (
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Headers kasync adds to the records it writes to delay rungs and the dead-letter topic.
// Users and tools rely on these names (DESIGN.md, "Records that kasync writes").
const (
	HeaderFunction     = "kasync-function"
	HeaderAttempt      = "kasync-attempt"
	HeaderDue          = "kasync-due"           // unix milliseconds
	HeaderOrigin       = "kasync-origin"        // <topic>/<partition>/<offset>
	HeaderFirstFailure = "kasync-first-failure" // unix milliseconds
	HeaderError        = "kasync-error"         // the last error, at most MaxErrorBytes
	HeaderReason       = "kasync-reason"        // dead letter only
	HeaderDropped      = "kasync-dropped"       // dead letter only: "value" or "value,headers" left out to fit
	// HeaderScheduled marks a submitted task produced straight onto a rung for a later
	// time (Router.Scheduled): "1". No attempt has run yet, so kasync-attempt is 0,
	// the record may carry no kasync-origin (its own position is its origin: the task
	// id), and it runs as attempt 1 when due. Hops keep it until the first run.
	HeaderScheduled = "kasync-scheduled"
	// HeaderPriority is the one kasync header a producer sets: the workload's priority,
	// a decimal 32-bit integer, higher first (it overrides the tailer's priority). A
	// value that is not one is ignored, and the tailer's priority used. kasync writes it
	// on rung records, so a retry keeps its priority.
	HeaderPriority = "kasync-priority"
)

// parsePriority reads a kasync-priority value; ok is false for one that is not a
// decimal 32-bit integer.
func parsePriority(v []byte) (int32, bool) {
	p, err := strconv.ParseInt(string(v), 10, 32)
	if err != nil {
		return 0, false
	}
	return int32(p), true
}

// recordPriority is the priority a record's kasync-priority header gives, or def.
func recordPriority(headers []kgo.RecordHeader, def int32) int32 {
	for i := len(headers) - 1; i >= 0; i-- { // the last one wins, as in ParseMeta
		if headers[i].Key == HeaderPriority {
			if p, ok := parsePriority(headers[i].Value); ok {
				return p
			}
			return def
		}
	}
	return def
}

// MaxErrorBytes bounds the kasync-error header.
const MaxErrorBytes = 1024

// headerPrefix marks kasync's own headers; a record's copies of them are replaced, never
// duplicated or trusted.
const headerPrefix = "kasync-"

// truncateError cuts s to at most MaxErrorBytes without splitting a UTF-8 sequence.
func truncateError(s string) string {
	if len(s) <= MaxErrorBytes {
		return s
	}
	const marker = "…"
	cut := MaxErrorBytes - len(marker)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + marker
}

// Origin names the source record a workload came from.
type Origin struct {
	Topic     string
	Partition int32
	Offset    int64
}

func (o Origin) String() string {
	return o.Topic + "/" + strconv.FormatInt(int64(o.Partition), 10) + "/" + strconv.FormatInt(o.Offset, 10)
}

// ParseOrigin decodes a kasync-origin header value. Topic names cannot contain '/', so
// the last two '/'-separated fields are the partition and the offset.
func ParseOrigin(s string) (Origin, error) {
	j := strings.LastIndexByte(s, '/')
	if j < 0 {
		return Origin{}, fmt.Errorf("origin %q: want <topic>/<partition>/<offset>", s)
	}
	i := strings.LastIndexByte(s[:j], '/')
	if i <= 0 {
		return Origin{}, fmt.Errorf("origin %q: want <topic>/<partition>/<offset>", s)
	}
	p, err := strconv.ParseInt(s[i+1:j], 10, 32)
	if err != nil || p < 0 {
		return Origin{}, fmt.Errorf("origin %q: partition %q is not a non-negative 32-bit number", s, s[i+1:j])
	}
	off, err := strconv.ParseInt(s[j+1:], 10, 64)
	if err != nil || off < 0 {
		return Origin{}, fmt.Errorf("origin %q: offset %q is not a non-negative number", s, s[j+1:])
	}
	return Origin{Topic: s[:i], Partition: int32(p), Offset: off}, nil
}
