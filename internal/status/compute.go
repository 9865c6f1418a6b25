package status

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/kasync/kasync/delaystreams"
)

// Offsets are offsets by topic and partition.
type Offsets map[string]map[int32]int64

// Set records o[topic][partition] = offset.
func (o Offsets) Set(topic string, partition int32, offset int64) {
	if o[topic] == nil {
		o[topic] = map[int32]int64{}
	}
	o[topic][partition] = offset
}

// Logs are the log start and end offsets of the partitions of topics; a topic absent
// from End does not exist.
type Logs struct{ Start, End Offsets }

// Group is what the broker says of one consumer group.
type Group struct {
	// Exists is false when the broker knows no such group.
	Exists  bool
	State   string
	Members int
	// Committed are the group's committed offsets.
	Committed Offsets
	// Assigned are the topics its members were assigned, committed or not.
	Assigned []string
	// Err is why the group could not be described or its offsets fetched.
	Err error
}

// Topics are the topics g committed offsets for or its members are assigned, sorted.
func (g Group) Topics() []string {
	set := map[string]bool{}
	for t := range g.Committed {
		set[t] = true
	}
	for _, t := range g.Assigned {
		set[t] = true
	}
	return slices.Sorted(func(yield func(string) bool) {
		for t := range set {
			if !yield(t) {
				return
			}
		}
	})
}

func (g Group) state() string {
	if !g.Exists {
		return StateNoGroup
	}
	return g.State
}

// committed is g's commit for topic/partition, -1 when there is none.
func (g Group) committed(topic string, partition int32) int64 {
	if c, ok := g.Committed[topic][partition]; ok {
		return c
	}
	return -1
}

// ReadFrom is the offset of the oldest record not done: the committed offset, or the
// log start when nothing was committed (-1) or retention removed the committed offset.
func ReadFrom(committed, start int64) int64 { return max(committed, start) }

// Lag is the number of records from ReadFrom(committed, start) to end, at least 0 (a
// committed offset past the end, as after a topic was deleted and created again, is
// no lag).
func Lag(committed, start, end int64) int64 { return max(0, end-ReadFrom(committed, start)) }

// TailerSpec names what to report on for one tailer.
type TailerSpec struct {
	Name  string // the configured tailer's name, empty for a group not from a config
	Group string
	// Topic is the configured tailer's topic; empty to report every topic the group
	// committed to or is assigned.
	Topic string
	// Ingest marks the tailer of a function's ingest topic (IngestSpec, IsIngest).
	Ingest bool
}

// NewTailer builds the tailer rows of spec from its group and the logs of its topics.
// Every partition of the topics is a row, committed or not. LagSeconds is 0 where there
// is no lag and unknown (nil) elsewhere until ApplyPeeks.
func NewTailer(spec TailerSpec, g Group, logs Logs) Tailer {
	t := Tailer{Name: spec.Name, Group: spec.Group, State: g.state(), Members: g.Members, Ingest: spec.Ingest}
	var problems []string
	if g.Err != nil {
		problems = append(problems, g.Err.Error())
	}
	topics := g.Topics()
	if spec.Topic != "" {
		topics = []string{spec.Topic}
	}
	for _, topic := range topics {
		ends, ok := logs.End[topic]
		if !ok {
			problems = append(problems, fmt.Sprintf("topic %s does not exist", topic))
			continue
		}
		for _, p := range sortedPartitions(ends) {
			row := TailerPartition{Topic: topic, Partition: p, Committed: g.committed(topic, p),
				LogStart: logs.Start[topic][p], LogEnd: ends[p]}
			row.Lag = Lag(row.Committed, row.LogStart, row.LogEnd)
			if row.Lag == 0 {
				row.LagSeconds = new(0.0)
			}
			t.Partitions = append(t.Partitions, row)
		}
	}
	t.Error = strings.Join(problems, "; ")
	t.summarize()
	return t
}

func (t *Tailer) summarize() {
	t.Lag, t.MaxLagSeconds = 0, new(0.0)
	for _, p := range t.Partitions {
		t.Lag += p.Lag
		switch {
		case p.LagSeconds == nil:
			t.MaxLagSeconds = nil
		case t.MaxLagSeconds != nil:
			*t.MaxLagSeconds = max(*t.MaxLagSeconds, *p.LagSeconds)
		}
	}
}

// RungSpec names one rung topic; its group is named after it.
type RungSpec struct {
	Topic string
	Delay time.Duration // 0 when unknown
}

// NewRung builds the rows of one rung from its group and the logs of its topic.
func NewRung(spec RungSpec, g Group, logs Logs) Rung {
	r := Rung{Topic: spec.Topic, Group: spec.Topic, State: g.state(), Members: g.Members}
	if spec.Delay > 0 {
		r.Delay = delaystreams.RungName(spec.Delay)
	}
	var problems []string
	if g.Err != nil {
		problems = append(problems, g.Err.Error())
	}
	ends, ok := logs.End[spec.Topic]
	if !ok {
		problems = append(problems, fmt.Sprintf("topic %s does not exist (kasync nodes create it at start)", spec.Topic))
	}
	for _, p := range sortedPartitions(ends) {
		row := RungPartition{Partition: p, Committed: g.committed(spec.Topic, p),
			LogStart: logs.Start[spec.Topic][p], LogEnd: ends[p]}
		row.Waiting = Lag(row.Committed, row.LogStart, row.LogEnd)
		r.Partitions = append(r.Partitions, row)
	}
	r.Error = strings.Join(problems, "; ")
	r.summarize(time.Time{})
	return r
}

// summarize sums the partitions and, with now set, computes the lateness.
func (r *Rung) summarize(now time.Time) {
	r.Waiting, r.OldestDue, r.LatenessSeconds = 0, nil, nil
	known := true
	for _, p := range r.Partitions {
		r.Waiting += p.Waiting
		switch {
		case p.Waiting == 0:
		case p.Due == nil:
			known = false
		case r.OldestDue == nil || p.Due.Before(*r.OldestDue):
			r.OldestDue = new(*p.Due)
		}
	}
	if !known || r.OldestDue == nil {
		r.OldestDue = nil
		return
	}
	if !now.IsZero() {
		r.LatenessSeconds = new(max(0, now.Sub(*r.OldestDue).Seconds()))
	}
}

// NewDeadLetter builds the dead-letter rows of topic from its logs.
func NewDeadLetter(topic string, logs Logs) DeadLetter {
	d := DeadLetter{Topic: topic}
	ends, ok := logs.End[topic]
	if !ok {
		d.Error = fmt.Sprintf("topic %s does not exist (kasync nodes create it at start)", topic)
		return d
	}
	for _, p := range sortedPartitions(ends) {
		row := DeadLetterPartition{Partition: p, LogStart: logs.Start[topic][p], LogEnd: ends[p]}
		row.Records = max(0, row.LogEnd-row.LogStart)
		d.Records += row.Records
		d.Partitions = append(d.Partitions, row)
	}
	return d
}

func sortedPartitions(m map[int32]int64) []int32 {
	ps := make([]int32, 0, len(m))
	for p := range m {
		ps = append(ps, p)
	}
	slices.Sort(ps)
	return ps
}

// PeekTarget is one record to read: the oldest not done of a lagging partition.
type PeekTarget struct {
	Topic     string
	Partition int32
	Offset    int64
}

// Peeked is what a peek read: the first record at or after the target offset (the
// target itself unless compaction or a transaction marker took it).
type Peeked struct {
	Timestamp time.Time
	// Due is the record's kasync-due time; zero when it has none or it is not unix
	// milliseconds.
	Due time.Time
}

// PeekTargets are the records whose timestamps (tailers) and due times (rungs) r needs:
// one per partition with lag or waiting records, at ReadFrom, sorted, without
// duplicates (two groups may be at the same offset of one topic).
func (r *Report) PeekTargets() []PeekTarget {
	set := map[PeekTarget]bool{}
	for _, t := range r.Tailers {
		for _, p := range t.Partitions {
			if p.Lag > 0 {
				set[PeekTarget{p.Topic, p.Partition, ReadFrom(p.Committed, p.LogStart)}] = true
			}
		}
	}
	for _, rung := range r.Rungs {
		for _, pt := range rung.PeekTargets() {
			set[pt] = true
		}
	}
	out := make([]PeekTarget, 0, len(set))
	for pt := range set {
		out = append(out, pt)
	}
	slices.SortFunc(out, func(a, b PeekTarget) int {
		return cmp.Or(strings.Compare(a.Topic, b.Topic), cmp.Compare(a.Partition, b.Partition), cmp.Compare(a.Offset, b.Offset))
	})
	return out
}

// ApplyPeeks sets the ages of lagging tailer partitions and the due times of waiting
// rung partitions from peeked records (those not in peeked are unknown), then the
// totals, all as of r.Time. An age is never negative: a timestamp ahead of r.Time
// (another clock) is age 0.
func (r *Report) ApplyPeeks(peeked map[PeekTarget]Peeked) {
	for i := range r.Tailers {
		t := &r.Tailers[i]
		for j := range t.Partitions {
			p := &t.Partitions[j]
			if p.Lag == 0 {
				continue
			}
			p.LagSeconds = nil
			if rec, ok := peeked[PeekTarget{p.Topic, p.Partition, ReadFrom(p.Committed, p.LogStart)}]; ok && !rec.Timestamp.IsZero() {
				p.LagSeconds = new(max(0, r.Time.Sub(rec.Timestamp).Seconds()))
			}
		}
		t.summarize()
	}
	for i := range r.Rungs {
		r.Rungs[i].ApplyPeeks(peeked, r.Time)
	}
}

// PeekTargets are the heads of r's partitions with records waiting (the record at
// ReadFrom, the oldest not done), by partition: the records whose kasync-due times
// give r's OldestDue. A running node asks for them too (internal/node's Status), from
// the offsets it lists for the rung's depth.
func (r *Rung) PeekTargets() []PeekTarget {
	var out []PeekTarget
	for _, p := range r.Partitions {
		if p.Waiting > 0 {
			out = append(out, PeekTarget{r.Topic, p.Partition, ReadFrom(p.Committed, p.LogStart)})
		}
	}
	return out
}

// ApplyPeeks sets the due time of each of r's partitions with records waiting from
// its head in peeked (unknown when the head is not there or has no kasync-due), then
// r's Waiting, OldestDue and, as of now, LatenessSeconds: now minus OldestDue, at
// least 0. OldestDue is unknown (nil) when any waiting partition's due time is, as a
// later due time of the others would be a guess of the earliest; it is nil too when
// nothing waits.
func (r *Rung) ApplyPeeks(peeked map[PeekTarget]Peeked, now time.Time) {
	for j := range r.Partitions {
		p := &r.Partitions[j]
		if p.Waiting == 0 {
			continue
		}
		p.Due = nil
		if rec, ok := peeked[PeekTarget{r.Topic, p.Partition, ReadFrom(p.Committed, p.LogStart)}]; ok && !rec.Due.IsZero() {
			p.Due = new(rec.Due.UTC())
		}
	}
	r.summarize(now)
}
