package status

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// TimeLayout is how times are shown: UTC, RFC 3339 with milliseconds (as `kasync dlq`).
const TimeLayout = "2006-01-02T15:04:05.000Z07:00"

// WriteJSON writes r as indented JSON, one document.
func WriteJSON(w io.Writer, r *Report) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(r); err != nil {
		return fmt.Errorf("status: write JSON: %w", err)
	}
	return nil
}

// WriteTable writes r as three terminal tables — tailers (a row per partition), delay
// rungs (a row per rung) and the dead letter — each followed by its problems, if any.
// dlqList is the command that counts dead letters by function and reason, shown after
// the dead-letter table.
func WriteTable(w io.Writer, r *Report, dlqList string) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	p := &printer{w: tw}
	p.f("kasync status: from %s %s at %s\n", r.Source, strings.Join(r.Brokers, ","), r.Time.UTC().Format(TimeLayout))

	p.f("\nTAILERS (lag: records from the committed offset to the log end; age: of the record at the committed offset)\n")
	p.f("TAILER\tKIND\tGROUP\tSTATE\tMEMBERS\tTOPIC\tPARTITION\tCOMMITTED\tEND\tLAG\tAGE\n")
	var problems []string
	for _, t := range r.Tailers {
		if t.Error != "" {
			problems = append(problems, fmt.Sprintf("group %s: %s", t.Group, t.Error))
		}
		if len(t.Partitions) == 0 {
			p.f("%s\t%s\t%s\t%s\t%d\t-\t-\t-\t-\t-\t-\n", dash(t.Name), kind(t.Ingest), t.Group, dash(t.State), t.Members)
			continue
		}
		for _, tp := range t.Partitions {
			p.f("%s\t%s\t%s\t%s\t%d\t%s\t%d\t%s\t%d\t%d\t%s\n", dash(t.Name), kind(t.Ingest), t.Group, dash(t.State), t.Members,
				tp.Topic, tp.Partition, offset(tp.Committed), tp.LogEnd, tp.Lag, seconds(tp.LagSeconds))
		}
	}
	if len(r.Tailers) == 0 {
		p.f("(none: no --config tailers, no --group, and no consumer group on the cluster looks like kasync's)\n")
	}
	p.problems(problems)

	p.f("\nDELAY RUNGS (waiting: records from the rung group's committed offset to the log end)\n")
	p.f("RUNG\tTOPIC\tSTATE\tMEMBERS\tPARTITIONS\tWAITING\tOLDEST DUE\tLATE\n")
	problems = nil
	for _, rung := range r.Rungs {
		if rung.Error != "" {
			problems = append(problems, fmt.Sprintf("rung %s: %s", rung.Topic, rung.Error))
		}
		due := "-"
		if rung.OldestDue != nil {
			due = rung.OldestDue.UTC().Format(TimeLayout)
		}
		p.f("%s\t%s\t%s\t%d\t%d\t%d\t%s\t%s\n", dash(rung.Delay), rung.Topic, dash(rung.State), rung.Members,
			len(rung.Partitions), rung.Waiting, due, seconds(rung.LatenessSeconds))
	}
	if len(r.Rungs) == 0 {
		p.f("(none: no rung topics found)\n")
	}
	p.problems(problems)

	d := r.DeadLetter
	p.f("\nDEAD LETTER (records: log end minus log start, summed over partitions)\n")
	p.f("TOPIC\tPARTITIONS\tRECORDS\n")
	p.f("%s\t%d\t%d\n", d.Topic, len(d.Partitions), d.Records)
	if d.Error != "" {
		p.problems([]string{"dead letter " + d.Topic + ": " + d.Error})
	}
	if dlqList != "" {
		p.f("counts by function and reason, and the errors: %s\n", dlqList)
	}
	if p.err != nil {
		return fmt.Errorf("status: write table: %w", p.err)
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("status: write table: %w", err)
	}
	return nil
}

// printer keeps the first write error, so the tables read as a list of lines.
type printer struct {
	w   io.Writer
	err error
}

func (p *printer) f(format string, args ...any) {
	if p.err == nil {
		_, p.err = fmt.Fprintf(p.w, format, args...)
	}
}

func (p *printer) problems(list []string) {
	for _, s := range list {
		p.f("! %s\n", s)
	}
}

// kind is a tailer's KIND: "ingest" for the tailer of a function's ingest topic,
// "source" for one of a source topic.
func kind(ingest bool) string {
	if ingest {
		return "ingest"
	}
	return "source"
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func offset(o int64) string {
	if o < 0 {
		return "-"
	}
	return strconv.FormatInt(o, 10)
}

// seconds shows a duration in seconds as Go does (1h2m3s), to the second from 10s on
// and to the millisecond below; nil is "-".
func seconds(s *float64) string {
	if s == nil {
		return "-"
	}
	d := time.Duration(*s * float64(time.Second))
	if d >= 10*time.Second {
		return d.Round(time.Second).String()
	}
	return d.Round(time.Millisecond).String()
}
