package benchproto

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"
)

// Event kinds a measured child writes, one JSON object per line on stdout.
const (
	EventReady    = "ready"    // subscribed and able to run tasks: the harness may start producing
	EventProgress = "progress" // Done tasks started so far
	EventResult   = "result"   // the last line
)

// Event is one line of a child's standard output.
type Event struct {
	Event  string  `json:"event"`
	Done   int64   `json:"done,omitempty"`
	Result *Result `json:"result,omitempty"`
}

// Result is what a child measured. Times are unix nanoseconds.
type Result struct {
	// Count is how many distinct tasks started (first attempts).
	Count int64 `json:"count"`
	// FirstStart and LastStart bound the starts.
	FirstStart int64 `json:"first_start_ns"`
	LastStart  int64 `json:"last_start_ns"`
	// Subscribed, when set, is when the reader could begin: its consumer group had every
	// partition assigned. The rate is counted from it rather than from FirstStart.
	Subscribed int64 `json:"subscribed_ns,omitempty"`
	// Latency is produce (the time stamped in the payload) → function start.
	Latency *Histogram `json:"latency"`
	// Duplicates are starts of a task already counted.
	Duplicates int64 `json:"duplicates,omitempty"`
	// Delay mode: how late retries started after their due time, and how many started
	// before it (must be 0).
	Lateness *Histogram `json:"lateness,omitempty"`
	Early    int64      `json:"early,omitempty"`
}

// Rate is tasks per second: Count from Subscribed to the last start when Subscribed is
// set (and not after the first start), else Count-1 between the first and last start.
func (r *Result) Rate() float64 {
	if r.Subscribed > 0 && r.Subscribed <= r.FirstStart && r.LastStart > r.Subscribed {
		return float64(r.Count) / (float64(r.LastStart-r.Subscribed) / 1e9)
	}
	if r.Count < 2 || r.LastStart <= r.FirstStart {
		return 0
	}
	return float64(r.Count-1) / (float64(r.LastStart-r.FirstStart) / 1e9)
}

// Writer writes events; it is safe for concurrent use.
type Writer struct {
	mu sync.Mutex
	w  io.Writer
}

// NewWriter writes events to w (a child's stdout).
func NewWriter(w io.Writer) *Writer { return &Writer{w: w} }

// Write writes one event as a line.
func (w *Writer) Write(e Event) error {
	b, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("benchproto: %w", err)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	_, err = w.w.Write(append(b, '\n'))
	return err
}

// MaxLine is the longest event line a Reader accepts.
const MaxLine = 4 << 20

// Reader reads a child's events.
type Reader struct{ s *bufio.Scanner }

// NewReader reads events from r (a child's stdout).
func NewReader(r io.Reader) *Reader {
	s := bufio.NewScanner(r)
	s.Buffer(make([]byte, 64<<10), MaxLine)
	return &Reader{s: s}
}

// Next returns the next event, io.EOF at the end, or an error naming a bad line.
func (r *Reader) Next() (Event, error) {
	if !r.s.Scan() {
		if err := r.s.Err(); err != nil {
			return Event{}, fmt.Errorf("benchproto: reading events: %w", err)
		}
		return Event{}, io.EOF
	}
	var e Event
	if err := json.Unmarshal(r.s.Bytes(), &e); err != nil {
		return Event{}, fmt.Errorf("benchproto: bad event line %.120q: %w", r.s.Bytes(), err)
	}
	switch e.Event {
	case EventReady, EventProgress:
	case EventResult:
		if e.Result == nil {
			return Event{}, errors.New("benchproto: result event without a result")
		}
	default:
		return Event{}, fmt.Errorf("benchproto: unknown event %q", e.Event)
	}
	return e, nil
}

// StampSize is how many leading payload bytes carry the produce time.
const StampSize = 8

// Stamp writes now as unix nanoseconds into the first StampSize bytes of payload, which
// must be at least that long.
func Stamp(payload []byte, now time.Time) {
	binary.BigEndian.PutUint64(payload, uint64(now.UnixNano()))
}

// Stamped reads the produce time from payload; false when payload is too short.
func Stamped(payload []byte) (time.Time, bool) {
	if len(payload) < StampSize {
		return time.Time{}, false
	}
	return time.Unix(0, int64(binary.BigEndian.Uint64(payload))), true
}
