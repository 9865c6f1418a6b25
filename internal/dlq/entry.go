package dlq

import (
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kasync/kasync/delaystreams"
)

// Pos is the place of a dead-letter record in its topic: partition and offset. Written
// "<partition>/<offset>", it is how operators name a record and the key of the ledger.
type Pos struct {
	Partition int32
	Offset    int64
}

func (p Pos) String() string {
	return strconv.FormatInt(int64(p.Partition), 10) + "/" + strconv.FormatInt(p.Offset, 10)
}

// Less orders positions by partition, then offset.
func (p Pos) Less(q Pos) bool {
	if p.Partition != q.Partition {
		return p.Partition < q.Partition
	}
	return p.Offset < q.Offset
}

// ParsePos reads "<partition>/<offset>", both non-negative decimal numbers.
func ParsePos(s string) (Pos, error) {
	ps, offs, ok := strings.Cut(s, "/")
	if !ok {
		return Pos{}, fmt.Errorf("%q: want PARTITION/OFFSET, such as 0/42", s)
	}
	p, err := strconv.ParseInt(ps, 10, 32)
	if err != nil || p < 0 {
		return Pos{}, fmt.Errorf("%q: partition %q is not a non-negative 32-bit number", s, ps)
	}
	o, err := strconv.ParseInt(offs, 10, 64)
	if err != nil || o < 0 {
		return Pos{}, fmt.Errorf("%q: offset %q is not a non-negative number", s, offs)
	}
	return Pos{Partition: int32(p), Offset: o}, nil
}

// Entry is one dead-letter record with kasync's headers read out. Headers are read as
// they are, not trusted: a missing or garbled one leaves its field empty (Attempt 0,
// zero FirstFailure), and when a header appears more than once the last one wins, as
// in delaystreams.ParseMeta.
type Entry struct {
	Pos
	Time         time.Time // the record's timestamp: when it was dead-lettered
	Function     string    // kasync-function
	Reason       string    // kasync-reason
	Error        string    // kasync-error
	Attempt      int       // kasync-attempt; 0 when missing or not a number
	Origin       string    // kasync-origin as written: <topic>/<partition>/<offset>
	FirstFailure time.Time // kasync-first-failure; zero when missing or not unix ms
	Dropped      string    // kasync-dropped: what was left out of a too-large dead letter
	Key, Value   []byte
	Headers      []kgo.RecordHeader // every header, in order, kasync's included
}

// NewEntry reads a dead-letter record.
func NewEntry(r *kgo.Record) *Entry {
	e := &Entry{
		Pos:     Pos{Partition: r.Partition, Offset: r.Offset},
		Time:    r.Timestamp,
		Key:     r.Key,
		Value:   r.Value,
		Headers: r.Headers,
	}
	for _, h := range r.Headers {
		v := string(h.Value)
		switch h.Key {
		case delaystreams.HeaderFunction:
			e.Function = v
		case delaystreams.HeaderReason:
			e.Reason = v
		case delaystreams.HeaderError:
			e.Error = v
		case delaystreams.HeaderOrigin:
			e.Origin = v
		case delaystreams.HeaderDropped:
			e.Dropped = v
		case delaystreams.HeaderAttempt:
			e.Attempt = 0
			if a, err := strconv.Atoi(v); err == nil && a > 0 {
				e.Attempt = a
			}
		case delaystreams.HeaderFirstFailure:
			e.FirstFailure = time.Time{}
			if ms, err := strconv.ParseInt(v, 10, 64); err == nil && ms > 0 {
				e.FirstFailure = time.UnixMilli(ms)
			}
		}
	}
	return e
}

// OriginTopic is the topic of kasync-origin: the source topic the record was read from.
// ok is false when the header is missing or malformed.
func (e *Entry) OriginTopic() (string, bool) {
	o, err := delaystreams.ParseOrigin(e.Origin)
	if err != nil {
		return "", false
	}
	return o.Topic, true
}

// Text returns b for a terminal: as it is when it is UTF-8 text without control
// characters (newlines and tabs are allowed when multiline), quoted with Go escapes when
// it is UTF-8 with other control characters (so nothing can drive the terminal), and as
// a note with base64 otherwise. nil is "(null)", as Kafka distinguishes it from empty.
func Text(b []byte, multiline bool) string {
	switch {
	case b == nil:
		return "(null)"
	case len(b) == 0:
		return `""`
	case !utf8.Valid(b):
		return fmt.Sprintf("(%d bytes, not UTF-8; base64) %s", len(b), base64.StdEncoding.EncodeToString(b))
	}
	s := string(b)
	for _, r := range s {
		if (r == '\n' || r == '\t') && multiline {
			continue
		}
		if unicode.IsControl(r) || r == utf8.RuneError {
			return strconv.Quote(s)
		}
	}
	return s
}

// OneLine is s on one line for a table cell: control characters become spaces, and s
// is cut to at most width runes, marked with "…" when cut.
func OneLine(s string, width int) string {
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, s)
	if utf8.RuneCountInString(s) <= width {
		return s
	}
	runes := []rune(s)
	return string(runes[:max(width-1, 0)]) + "…"
}
