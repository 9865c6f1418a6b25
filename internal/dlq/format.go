package dlq

import (
	"fmt"
	"io"
	"slices"
	"strconv"
	"text/tabwriter"
	"time"
)

// TimeLayout is how times are shown: UTC, RFC 3339 with milliseconds.
const TimeLayout = "2006-01-02T15:04:05.000Z07:00"

// errorWidth is the most runes of kasync-error a table shows.
const errorWidth = 60

func showTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(TimeLayout)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// WriteTable writes entries as a table, one line each; ledger (may be nil) marks those
// already redriven.
func WriteTable(w io.Writer, entries []*Entry, ledger *Ledger) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "POS\tTIME\tFUNCTION\tREASON\tATTEMPT\tORIGIN\tREDRIVEN\tERROR")
	for _, e := range entries {
		attempt := "-"
		if e.Attempt > 0 {
			attempt = strconv.Itoa(e.Attempt)
		}
		redriven := "-"
		if ledger.Has(e.Pos) {
			redriven = "yes"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", e.Pos, showTime(e.Time),
			orDash(OneLine(e.Function, 40)), orDash(OneLine(e.Reason, 24)), attempt,
			orDash(OneLine(e.Origin, 60)), redriven, orDash(OneLine(e.Error, errorWidth)))
	}
	return tw.Flush()
}

// WriteEntry writes one dead letter in full: position, time, every header in order,
// the key and the value (see Text), and whether and where it was redriven.
func WriteEntry(w io.Writer, topic string, e *Entry, ledger *Ledger) error {
	var err error
	p := func(format string, args ...any) {
		if err == nil {
			_, err = fmt.Fprintf(w, format, args...)
		}
	}
	p("record:    %s/%s\n", topic, e.Pos)
	p("time:      %s\n", showTime(e.Time))
	p("key:       %s\n", Text(e.Key, false))
	p("headers:   %d\n", len(e.Headers))
	for _, h := range e.Headers {
		p("  %s: %s\n", Text([]byte(h.Key), false), Text(h.Value, false))
	}
	if !e.FirstFailure.IsZero() {
		p("failed:    first at %s\n", showTime(e.FirstFailure))
	}
	if e.Dropped != "" {
		p("dropped:   %s (too large to dead-letter whole; it cannot be redriven)\n", e.Dropped)
	}
	switch m, ok := ledger.Get(e.Pos); {
	case ok:
		p("redriven:  to %s at %s\n", m.To, showTime(time.UnixMilli(m.At)))
	default:
		p("redriven:  no\n")
	}
	p("value:     %d bytes\n%s\n", len(e.Value), Text(e.Value, true))
	return err
}

// Newest keeps the n newest entries given to Add (by time, then position); n ≤ 0
// keeps all. It holds at most 2n entries at a time.
type Newest struct {
	n  int
	es []*Entry
}

// NewNewest returns a Newest that keeps n entries.
func NewNewest(n int) *Newest { return &Newest{n: n} }

// Add offers e.
func (k *Newest) Add(e *Entry) {
	k.es = append(k.es, e)
	if k.n > 0 && len(k.es) >= 2*k.n {
		k.trim()
	}
}

func (k *Newest) trim() {
	slices.SortStableFunc(k.es, func(a, b *Entry) int {
		if c := a.Time.Compare(b.Time); c != 0 {
			return c
		}
		if a.Less(b.Pos) {
			return -1
		}
		if b.Less(a.Pos) {
			return 1
		}
		return 0
	})
	if k.n > 0 && len(k.es) > k.n {
		k.es = slices.Delete(k.es, 0, len(k.es)-k.n)
	}
}

// Entries returns the entries kept, oldest first.
func (k *Newest) Entries() []*Entry {
	k.trim()
	return k.es
}
