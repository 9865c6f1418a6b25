package dlq

import (
	"slices"
	"sort"
	"strings"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kasync/kasync/delaystreams"
)

// HeaderRedrivenFrom is added to every redriven record: <dead-letter
// topic>/<partition>/<offset> of the dead letter it copies.
const HeaderRedrivenFrom = "kasync-redriven-from"

// Item is one dead letter to redrive and the topic it goes to.
type Item struct {
	Entry  *Entry
	Target string
}

// Plan is what a redrive will do, decided before anything is produced.
type Plan struct {
	Items []Item // in dead-letter position order, so one key's records keep their order
	// AlreadyRedriven counts selected entries the ledger holds: skipped.
	AlreadyRedriven int
	// ValueDropped lists selected entries that were too large to dead-letter whole
	// (kasync-dropped): their value is gone, so they are not redriven.
	ValueDropped []Pos
	// Unlimited is the number of items before limit cut them.
	Unlimited int
}

// NewPlan decides the redrive of the selected entries: each goes to to, or when to is
// empty to the topic of its kasync-origin; entries in ledger and entries whose value
// was dropped are left out; at most limit items are kept (0: all), the first in
// position order. It refuses (ErrBadInput), so that nothing is produced, when an entry
// has no usable origin and to is empty, and when to is given but the entries belong to
// more than one function: one topic would run one function on another's records.
func NewPlan(selected []*Entry, ledger *Ledger, to string, limit int) (*Plan, error) {
	entries := slices.Clone(selected)
	sort.Slice(entries, func(i, j int) bool { return entries[i].Less(entries[j].Pos) })
	p := &Plan{}
	var noOrigin []*Entry
	functions := map[string]bool{}
	for _, e := range entries {
		switch {
		case ledger.Has(e.Pos):
			p.AlreadyRedriven++
			continue
		case e.Dropped != "":
			p.ValueDropped = append(p.ValueDropped, e.Pos)
			continue
		}
		target := to
		if target == "" {
			t, ok := e.OriginTopic()
			if !ok {
				noOrigin = append(noOrigin, e)
				continue
			}
			target = t
		}
		functions[e.Function] = true
		p.Items = append(p.Items, Item{Entry: e, Target: target})
	}
	if len(noOrigin) > 0 {
		return nil, badInputf("%d selected records have no usable %s, so their source topic is unknown (first: %s, origin %q); pass --to TOPIC or narrow the filter",
			len(noOrigin), delaystreams.HeaderOrigin, noOrigin[0].Pos, noOrigin[0].Origin)
	}
	if to != "" && len(functions) > 1 {
		names := make([]string, 0, len(functions))
		for f := range functions {
			names = append(names, f)
		}
		sort.Strings(names)
		return nil, badInputf("--to %s would send records of %d functions (%s) to one topic; select one with --function NAME",
			to, len(names), strings.Join(names, ", "))
	}
	p.Unlimited = len(p.Items)
	if limit > 0 && len(p.Items) > limit {
		p.Items = p.Items[:limit]
	}
	return p, nil
}

// Targets are the topics the plan produces to, sorted.
func (p *Plan) Targets() []string {
	var out []string
	for _, it := range p.Items {
		if !slices.Contains(out, it.Target) {
			out = append(out, it.Target)
		}
	}
	sort.Strings(out)
	return out
}

// RedriveRecord is the record that redrives e, read from the dead-letter topic from, to
// target: e's key and value, e's headers less kasync's own (kasync-attempt, -due,
// -origin, -first-failure, -error, -reason, -function, -dropped and any other kasync-*
// header: the copy is a new event, attempt 1, and a node would drop them anyway), but
// keeping kasync-priority, which the producer set; plus kasync-redriven-from.
func RedriveRecord(e *Entry, from, target string) *kgo.Record {
	headers := make([]kgo.RecordHeader, 0, len(e.Headers)+1)
	for _, h := range e.Headers {
		if strings.HasPrefix(h.Key, "kasync-") && h.Key != delaystreams.HeaderPriority {
			continue
		}
		headers = append(headers, h)
	}
	pos := e.Pos
	headers = append(headers, kgo.RecordHeader{Key: HeaderRedrivenFrom, Value: []byte(from + "/" + pos.String())})
	return &kgo.Record{Topic: target, Key: e.Key, Value: e.Value, Headers: headers}
}
