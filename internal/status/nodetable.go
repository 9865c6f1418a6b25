package status

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/kasync/kasync/internal/nodestatus"
)

// WriteNodeJSON writes a node's snapshot as indented JSON, one document: the shape of
// the node's /status.json.
func WriteNodeJSON(w io.Writer, s *nodestatus.Status) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(s); err != nil {
		return fmt.Errorf("status: write JSON: %w", err)
	}
	return nil
}

// WriteNodeTable writes the snapshot of the node at addr as terminal tables in the
// style of WriteTable — functions, tailers (a row per owned partition), delay rungs,
// dead letters — then what keeps the node from its work and what it could not read,
// one "!" line each. Text from the node (errors, keys, problems) is shown on one line,
// without control characters, so that it can neither break the tables nor drive the
// terminal.
func WriteNodeTable(w io.Writer, addr string, s *nodestatus.Status) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	p := &printer{w: tw}
	p.f("kasync status: from node %s (roles: %s) at %s\n", addr, strings.Join(s.Roles, ", "), s.Taken.UTC().Format(TimeLayout))

	p.f("\nFUNCTIONS (attempts ended since the node started; limit: the adaptive limit / concurrency)\n")
	p.f("FUNCTION\tTENANT\tLIMIT\tRUNNING\tQUEUED\tSUCCEEDED\tRETRIABLE\tFATAL\tSTORM GUARD\n")
	var notes []string
	for _, f := range s.Functions {
		if !f.Scheduled { // no scheduler here: its counters are not this node's
			p.f("%s\t%s\t-/%d\t-\t-\t-\t-\t-\t%s\n", f.Name, f.Tenant, f.Concurrency, guard(f.StormGuard))
		} else {
			p.f("%s\t%s\t%d/%d\t%d\t%d\t%d\t%d\t%d\t%s\n", f.Name, f.Tenant, f.Limit, f.Concurrency, f.Running, f.Queued,
				f.Succeeded, f.Retriable, f.Fatal, guard(f.StormGuard))
		}
		if f.HeldUntil != nil {
			notes = append(notes, fmt.Sprintf("function %s: new starts held until %s (its downstream asked to retry later)",
				f.Name, f.HeldUntil.UTC().Format(TimeLayout)))
		}
	}
	if len(s.Functions) == 0 {
		p.f("(none configured)\n")
	}
	p.problems(notes)

	p.f("\nTAILERS (lag: records from the watermark to the log end; age: of the oldest record read and not done)\n")
	p.f("TAILER\tKIND\tTOPIC\tFUNCTION\tGROUP\tMEMBER\tIN FLIGHT\tPARTITION\tLAG\tAGE\n")
	for _, t := range s.Tailers {
		head := fmt.Sprintf("%s\t%s\t%s\t%s\t%s\t%s\t%d", t.Name, kind(t.Ingest), t.Topic, dash(t.Function), t.Group, yesNo(t.Member), t.InFlight)
		if len(t.Partitions) == 0 {
			p.f("%s\t-\t-\t-\n", head)
			continue
		}
		for _, tp := range t.Partitions {
			p.f("%s\t%d\t%d\t%s\n", head, tp.Partition, tp.LagRecords, seconds(&tp.LagSeconds))
		}
	}
	if len(s.Tailers) == 0 {
		p.f("(none on this node: it runs no tailer role)\n")
	}

	p.f("\nDELAY RUNGS (waiting: records on the rung, over the whole cluster; oldest due: of its oldest record; held, in flight: this node's reader)\n")
	p.f("RUNG\tTOPIC\tWAITING\tOLDEST DUE\tLATE\tREADING\tHELD\tIN FLIGHT\n")
	for _, r := range s.Rungs {
		waiting, due := "-", "-" // unknown, or for the oldest due also nothing waiting
		if r.Depth != nil {
			waiting = strconv.FormatInt(*r.Depth, 10)
		}
		if r.OldestDue != nil {
			due = r.OldestDue.UTC().Format(TimeLayout)
		}
		held, inFlight := "-", "-"
		if r.Reading {
			held, inFlight = strconv.FormatInt(r.Held, 10), strconv.FormatInt(r.InFlight, 10)
		}
		p.f("%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Name, r.Topic, waiting, due, seconds(r.LatenessSeconds), yesNo(r.Reading), held, inFlight)
	}
	if len(s.Rungs) == 0 {
		p.f("(none: this node reads no Kafka)\n")
	}

	d := s.DeadLetters
	p.f("\nDEAD LETTERS %s (written by this node since it started)\n", dash(d.Topic))
	p.f("FUNCTION\tREASON\tCOUNT\n")
	for _, c := range d.Counts {
		p.f("%s\t%s\t%d\n", dash(c.Function), c.Reason, c.Count)
	}
	if len(d.Counts) == 0 {
		p.f("(none)\n")
	}
	p.f("\nLATEST DEAD LETTERS (from the topic, written by any node, newest first)\n")
	p.f("TIME\tFUNCTION\tREASON\tATTEMPT\tORIGIN\tKEY\tERROR\n")
	switch {
	case d.Latest == nil:
		p.f("(unknown: they could not be read; see the problems below)\n")
	case len(d.Latest) == 0:
		p.f("(none)\n")
	}
	for _, l := range d.Latest {
		p.f("%s\t%s\t%s\t%d\t%s\t%s\t%s\n", l.Time.UTC().Format(TimeLayout), dash(oneLine(l.Function, 0)), dash(oneLine(l.Reason, 0)),
			l.Attempt, dash(oneLine(l.Origin, 0)), dash(oneLine(l.Key, 40)), dash(oneLine(l.Error, 100)))
	}

	if len(s.NotReady)+len(s.Problems) > 0 {
		p.f("\n")
	}
	for _, r := range s.NotReady {
		p.f("! not ready: %s\n", oneLine(r, 0))
	}
	for _, pr := range s.Problems {
		p.f("! %s\n", oneLine(pr, 0))
	}
	if p.err != nil {
		return fmt.Errorf("status: write table: %w", p.err)
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("status: write table: %w", err)
	}
	return nil
}

// guard shows a storm guard: "-" without one.
func guard(g *nodestatus.StormGuard) string {
	switch {
	case g == nil:
		return "-"
	case g.Active && g.Since != nil:
		return fmt.Sprintf("ON since %s, %d/%d failed, %d trips", g.Since.UTC().Format(TimeLayout), g.Failures, g.Outcomes, g.Trips)
	case g.Active:
		return fmt.Sprintf("ON, %d/%d failed, %d trips", g.Failures, g.Outcomes, g.Trips)
	}
	return fmt.Sprintf("off, %d trips", g.Trips)
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// oneLine is s with every control character (newlines, tabs, escapes) made a space,
// cut to limit runes with "…" when limit > 0.
func oneLine(s string, limit int) string {
	r := []rune(strings.Map(func(c rune) rune {
		if c < 0x20 || c == 0x7f || (c >= 0x80 && c < 0xa0) {
			return ' '
		}
		return c
	}, s))
	if limit > 0 && len(r) > limit {
		return string(r[:limit-1]) + "…"
	}
	return string(r)
}
