package delaystreams

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kasync/kasync/scheduler"
)

// ReasonInvalidHeaders is the kasync-reason of a rung record whose kasync-* headers
// cannot be routed at all (ParseMeta returned an error).
const ReasonInvalidHeaders scheduler.Reason = "invalid-headers"

// ErrInvalidHeaders is wrapped by every ParseMeta error: the record cannot be routed and
// goes to the dead letter with ReasonInvalidHeaders (InvalidHeadersFailure builds it).
var ErrInvalidHeaders = errors.New("delaystreams: invalid kasync headers")

// maxFunctionBytes bounds a function name read from a header, like a topic name.
const maxFunctionBytes = 249

// maxOriginBytes bounds a kasync-origin header: a topic name (at most 249 bytes), a
// partition and an offset, with room to spare.
const maxOriginBytes = 320

// Meta is what kasync's own headers say about a record on a rung.
type Meta struct {
	Function     string
	Attempt      int       // attempts made so far (≥ 1)
	Due          time.Time // absolute due time
	Origin       Origin    // source record
	FirstFailure time.Time
	LastError    string
	Priority     int32 // kasync-priority; 0 when missing or not a 32-bit integer
	// Scheduled: kasync-scheduled is "1", a submitted task whose first attempt has not
	// run (Router.Scheduled). Attempt is then 1, the attempt to come, whatever
	// kasync-attempt says, and a missing kasync-origin leaves Origin zero: the record's
	// own position is its origin (RungReader.Next fills it in).
	Scheduled bool
}

// ParseMeta reads the kasync-* headers of a rung or dead-letter record. The headers
// were written by some node, or forged by anyone who can produce to the topic, so every
// value is checked and clamped to sane bounds:
//
//   - kasync-attempt: garbage or missing → 1; otherwise ClampAttempt.
//   - kasync-due: garbage or missing → now; otherwise ClampDue(due, now, maxAhead).
//   - kasync-first-failure: garbage, missing, at or before the epoch, or after now → now.
//   - kasync-error: invalid UTF-8 replaced, then at most MaxErrorBytes.
//
// Each fix is described in fixed, for one log line per record. When a kasync-* header
// appears more than once, the last one wins (like a map built in order) and that is
// reported in fixed too.
//
// The error, wrapping ErrInvalidHeaders, is for a record that cannot be routed at all:
// no kasync-function (or one that is empty, longer than 249 bytes or not UTF-8), or no
// kasync-origin that ParseOrigin accepts. m is still filled as far as it could be
// read, so that the dead letter of such a record says what it can (see
// InvalidHeadersFailure); such a record never stops a partition.
func ParseMeta(headers []kgo.RecordHeader, now time.Time, maxAhead time.Duration) (m Meta, fixed []string, err error) {
	var (
		vals  = map[string][]byte{}
		count = map[string]int{}
	)
	for _, h := range headers {
		if !strings.HasPrefix(h.Key, headerPrefix) {
			continue
		}
		vals[h.Key] = h.Value
		count[h.Key]++
	}
	fix := func(format string, args ...any) { fixed = append(fixed, fmt.Sprintf(format, args...)) }
	for _, k := range []string{HeaderFunction, HeaderAttempt, HeaderDue, HeaderOrigin, HeaderFirstFailure, HeaderError, HeaderReason, HeaderPriority} {
		if n := count[k]; n > 1 {
			fix("%s appears %d times; the last one wins", k, n)
		}
	}

	var problems []string
	fn, ok := vals[HeaderFunction]
	switch {
	case !ok:
		problems = append(problems, HeaderFunction+" is missing")
	case len(fn) == 0:
		problems = append(problems, HeaderFunction+" is empty")
	case len(fn) > maxFunctionBytes:
		problems = append(problems, fmt.Sprintf("%s is %d bytes long; a function name has at most %d", HeaderFunction, len(fn), maxFunctionBytes))
	case !utf8.Valid(fn):
		problems = append(problems, HeaderFunction+" is not valid UTF-8")
	default:
		m.Function = string(fn)
	}

	m.Scheduled = string(vals[HeaderScheduled]) == "1"
	m.Attempt = 1
	if m.Scheduled { // no attempt yet: kasync-attempt is 0 and not read
	} else if v, ok := vals[HeaderAttempt]; !ok {
		fix("%s is missing; taken as 1", HeaderAttempt)
	} else if a, perr := strconv.ParseInt(string(v), 10, 64); perr != nil {
		fix("%s %s is not a number; taken as 1", HeaderAttempt, quote(v))
	} else if m.Attempt = ClampAttempt(a); int64(m.Attempt) != a {
		fix("%s %d is out of range; clamped to %d", HeaderAttempt, a, m.Attempt)
	}

	m.Due = now
	if v, ok := vals[HeaderDue]; !ok {
		fix("%s is missing; due now", HeaderDue)
	} else if ms, perr := strconv.ParseInt(string(v), 10, 64); perr != nil {
		fix("%s %s is not unix milliseconds; due now", HeaderDue, quote(v))
	} else {
		due := time.UnixMilli(ms)
		if m.Due = ClampDue(due, now, maxAhead); !m.Due.Equal(due) {
			fix("%s %d is out of range; clamped to %d", HeaderDue, ms, m.Due.UnixMilli())
		}
	}

	if v, ok := vals[HeaderOrigin]; !ok {
		if !m.Scheduled {
			problems = append(problems, HeaderOrigin+" is missing")
		}
	} else if len(v) > maxOriginBytes {
		problems = append(problems, fmt.Sprintf("%s is %d bytes long; an origin has at most %d", HeaderOrigin, len(v), maxOriginBytes))
	} else if o, perr := ParseOrigin(string(v)); perr != nil {
		problems = append(problems, fmt.Sprintf("%s: %v", HeaderOrigin, perr))
	} else {
		m.Origin = o
	}

	m.FirstFailure = now
	if v, ok := vals[HeaderFirstFailure]; !ok {
		fix("%s is missing; taken as now", HeaderFirstFailure)
	} else if ms, perr := strconv.ParseInt(string(v), 10, 64); perr != nil {
		fix("%s %s is not unix milliseconds; taken as now", HeaderFirstFailure, quote(v))
	} else if first := time.UnixMilli(ms); ms <= 0 || first.After(now) {
		fix("%s %d is out of range; taken as now", HeaderFirstFailure, ms)
	} else {
		m.FirstFailure = first
	}

	if v, ok := vals[HeaderPriority]; ok {
		if p, ok := parsePriority(v); ok {
			m.Priority = p
		} else {
			fix("%s %s is not a 32-bit integer; taken as 0", HeaderPriority, quote(v))
		}
	}

	if v, ok := vals[HeaderError]; ok {
		m.LastError = cleanError(string(v))
		if m.LastError != string(v) {
			fix("%s was not valid UTF-8 or longer than %d bytes; cleaned", HeaderError, MaxErrorBytes)
		}
	}

	if len(problems) > 0 {
		return m, fixed, fmt.Errorf("%w: %s; such a record is dead-lettered with reason %s",
			ErrInvalidHeaders, strings.Join(problems, "; "), ReasonInvalidHeaders)
	}
	return m, fixed, nil
}

// quote shows a header value in a fix message, cut short: it may be huge and hostile.
func quote(v []byte) string {
	const maxShown = 64
	if len(v) > maxShown {
		return strconv.Quote(string(v[:maxShown])) + "…"
	}
	return strconv.Quote(string(v))
}

// cleanError makes an error text safe to carry in kasync-error: valid UTF-8, at most
// MaxErrorBytes.
func cleanError(s string) string {
	return truncateError(strings.ToValidUTF8(s, "\uFFFD"))
}

// InvalidHeadersFailure is the failure of a rung record that ParseMeta could not route
// (err from ParseMeta): a fatal outcome with reason ReasonInvalidHeaders, so that
// Router.Decide sends it to the dead letter. Its origin is the one in the headers when
// that parsed, otherwise the rung record's own position.
func InvalidHeadersFailure(rec *kgo.Record, m Meta, err error) Failure {
	origin := m.Origin
	if origin.Topic == "" {
		origin = Origin{Topic: rec.Topic, Partition: rec.Partition, Offset: rec.Offset}
	}
	msg := ""
	if err != nil {
		msg = err.Error()
	}
	return Failure{
		Record:       rec,
		Function:     m.Function,
		Attempt:      max(m.Attempt, 1),
		Outcome:      scheduler.Fatal(ReasonInvalidHeaders, msg),
		FirstFailure: m.FirstFailure,
		Origin:       origin,
	}
}

// outHeaders is what kasync writes about a record on a rung or in the dead letter: the
// encoding side of Meta, shared by Router.Record and Router.Hop, so every record kasync
// writes has the same shape.
type outHeaders struct {
	Function     string
	Attempt      int
	Due          time.Time // zero: no kasync-due (dead letters)
	Origin       Origin
	FirstFailure time.Time
	Err          string
	DeadLetter   bool // adds kasync-reason
	Reason       string
	Priority     int32 // kasync-priority, written when not 0
	// Scheduled writes kasync-scheduled "1" and kasync-attempt 0 (Attempt is ignored),
	// and kasync-origin only when Origin is set.
	Scheduled bool
}

// kasyncRecord builds the record kasync writes to topic for src: src's key, value and
// headers less any kasync-* ones (dropped, never trusted or duplicated), then kasync's
// headers in a fixed order: function, attempt, due (rung records), origin,
// first-failure, error, reason (dead letters).
func kasyncRecord(topic string, src *kgo.Record, h outHeaders) *kgo.Record {
	headers := make([]kgo.RecordHeader, 0, len(src.Headers)+7)
	for _, sh := range src.Headers {
		if !strings.HasPrefix(sh.Key, headerPrefix) {
			headers = append(headers, sh)
		}
	}
	attempt := int64(h.Attempt)
	if h.Scheduled {
		attempt = 0
	}
	headers = append(headers,
		kgo.RecordHeader{Key: HeaderFunction, Value: []byte(h.Function)},
		kgo.RecordHeader{Key: HeaderAttempt, Value: strconv.AppendInt(nil, attempt, 10)},
	)
	if !h.Due.IsZero() {
		headers = append(headers, kgo.RecordHeader{Key: HeaderDue, Value: strconv.AppendInt(nil, h.Due.UnixMilli(), 10)})
	}
	if !h.Scheduled || h.Origin.Topic != "" {
		headers = append(headers, kgo.RecordHeader{Key: HeaderOrigin, Value: []byte(h.Origin.String())})
	}
	headers = append(headers,
		kgo.RecordHeader{Key: HeaderFirstFailure, Value: strconv.AppendInt(nil, h.FirstFailure.UnixMilli(), 10)},
		kgo.RecordHeader{Key: HeaderError, Value: []byte(cleanError(h.Err))},
	)
	if h.DeadLetter {
		headers = append(headers, kgo.RecordHeader{Key: HeaderReason, Value: []byte(h.Reason)})
	}
	if h.Priority != 0 {
		headers = append(headers, kgo.RecordHeader{Key: HeaderPriority, Value: strconv.AppendInt(nil, int64(h.Priority), 10)})
	}
	if h.Scheduled {
		headers = append(headers, kgo.RecordHeader{Key: HeaderScheduled, Value: []byte("1")})
	}
	return &kgo.Record{Topic: topic, Key: src.Key, Value: src.Value, Headers: headers}
}

// ceilMilli rounds t up to the millisecond: a due time written in unix ms must never be
// earlier than the one decided.
func ceilMilli(t time.Time) time.Time {
	ms := time.UnixMilli(t.UnixMilli())
	if ms.Before(t) {
		ms = ms.Add(time.Millisecond)
	}
	return ms
}
