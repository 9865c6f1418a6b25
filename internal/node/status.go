package node

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/kasync/kasync/delaystreams"
	"github.com/kasync/kasync/internal/config"
	"github.com/kasync/kasync/internal/nodestatus"
	"github.com/kasync/kasync/internal/status"
	"github.com/kasync/kasync/scheduler"
	"github.com/kasync/kasync/tailer"
)

// Status is a snapshot of a node (see package nodestatus): what the dashboard shows
// and /status.json serves.
type Status = nodestatus.Status

// statusTimeout bounds the broker round trips of one Status (readiness, rung depths
// then the rungs' heads, and the latest dead letters, asked at once), like /readyz's
// and a scrape's.
const statusTimeout = 2 * time.Second

// StatusDeadLetters is how many of the latest dead letters a Status holds.
const StatusDeadLetters = 20

// Status takes a snapshot of the node from its live state: the scheduler's counters
// (scheduler.Stats), the storm guard (Guard.Snapshot), the tailers' lag and in-flight
// counts, and the dead-letter counters the router keeps; and, from the broker, within
// statusTimeout: readiness (as /readyz), each rung's depth (as kasync_delay_records)
// then its oldest due time and lateness (the kasync-due of the heads of its partitions
// with records waiting), and the latest dead letters (both read with direct consumers,
// no group). What the broker does not answer in time is left out and named in Problems. It is safe to call
// concurrently, also while the node stops.
func (n *Node) Status(ctx context.Context) Status {
	ctx, cancel := context.WithTimeout(ctx, statusTimeout)
	defer cancel()
	st := Status{Taken: time.Now(), Roles: n.roleNames(), Functions: n.functionStatus(), Tailers: n.tailerStatus()}
	if n.router != nil {
		st.DeadLetters.Topic = n.cfg.DeadLetter.Topic
		for _, c := range n.router.DeadLetterCounts() {
			st.DeadLetters.Counts = append(st.DeadLetters.Counts, nodestatus.DeadLetterCount{Function: c.Function, Reason: c.Reason, Count: c.Count})
		}
	}

	var (
		wg       sync.WaitGroup
		notReady []string
		depths   map[string]rungDepth
		depthErr error
		heads    map[string]rungHead
		latest   []nodestatus.DeadLetter
		dlErr    error
	)
	wg.Go(func() { notReady = n.ready(ctx) })
	if n.adm != nil && len(n.rungGroups) > 0 {
		taken := st.Taken
		wg.Go(func() {
			depths, depthErr = rungDepths(ctx, n.adm, n.rungGroups, n.log)
			heads = n.rungHeads(ctx, depths, taken)
		})
	}
	if n.deadLetters != nil {
		wg.Go(func() { latest, dlErr = n.deadLetters.latest(ctx, StatusDeadLetters) })
	}
	wg.Wait()

	st.NotReady = notReady
	st.Rungs = n.rungStatus(depths, heads)
	for _, r := range st.Rungs {
		if h := heads[r.Name]; h.unknown != "" {
			st.Problems = append(st.Problems, fmt.Sprintf("delay rung %s: oldest due unknown: %s", r.Name, h.unknown))
		}
	}
	if depthErr != nil {
		st.Problems = append(st.Problems, fmt.Sprintf("delay rungs: depth unknown: %v", depthErr))
	} else {
		var missing []string
		for _, r := range st.Rungs {
			if r.Depth == nil {
				missing = append(missing, r.Name)
			}
		}
		if len(missing) > 0 {
			st.Problems = append(st.Problems, fmt.Sprintf("delay rungs %s: depth unknown: the broker did not answer for their groups within %v",
				strings.Join(missing, ", "), statusTimeout))
		}
	}
	st.DeadLetters.Latest = latest
	if dlErr != nil {
		st.Problems = append(st.Problems, fmt.Sprintf("latest dead letters: %v", dlErr))
	}
	return st
}

func (n *Node) roleNames() []string {
	all := n.opts.Roles.all()
	var roles []string
	for _, r := range []struct {
		on   bool
		name string
	}{{n.opts.Roles.Scheduler, "scheduler"}, {n.opts.Roles.Tailer, "tailer"}, {n.opts.Roles.Delay, "delay"}} {
		if all || r.on {
			roles = append(roles, r.name)
		}
	}
	return roles
}

// functionStatus lists the configured functions by name, with this node's scheduler
// counters (when it runs one) and storm guard (when it runs one).
func (n *Node) functionStatus() []nodestatus.Function {
	var stats scheduler.Stats
	if n.sched != nil {
		stats = n.sched.Stats()
	}
	guards := map[string]delaystreams.GuardState{}
	for _, g := range n.guard.Snapshot() { // nil-safe
		guards[g.Function] = g
	}
	out := make([]nodestatus.Function, 0, len(n.cfg.Functions))
	for _, f := range n.cfg.Functions {
		fs := nodestatus.Function{Name: f.Name, Tenant: f.TenantOf(), Concurrency: f.Concurrency}
		if s, ok := stats.Function(f.Name); ok {
			fs.Scheduled = true
			fs.Limit, fs.Running, fs.Queued = s.Limit, s.Running, s.Queued
			fs.Succeeded, fs.Retriable, fs.Fatal = s.Succeeded, s.Retriable, s.Fatal
			fs.Durations = &nodestatus.Durations{BoundsSeconds: durationBounds, Counts: s.Durations.Counts[:]}
			if !s.HeldUntil.IsZero() {
				fs.HeldUntil = &s.HeldUntil
			}
		}
		if n.guard != nil {
			g := guards[f.Name] // zero, and off, before the function's first outcome
			fs.StormGuard = &nodestatus.StormGuard{Active: g.Active, Outcomes: g.Outcomes, Failures: g.Failures, Trips: g.Trips}
			if !g.Since.IsZero() {
				fs.StormGuard.Since = &g.Since
			}
		}
		out = append(out, fs)
	}
	slices.SortFunc(out, func(a, b nodestatus.Function) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// tailerStatus lists the source tailers in config order, then the ingest tailers in
// function order, with each owned partition's lag.
func (n *Node) tailerStatus() []nodestatus.Tailer {
	out := make([]nodestatus.Tailer, 0, len(n.sources)+len(n.ingest))
	for i, t := range n.sources {
		tc := n.cfg.Tailers[i] // sources are built from cfg.Tailers, in order
		out = append(out, tailerOf(t, tc.Topic, tc.Function, false))
	}
	for _, t := range n.ingest {
		out = append(out, tailerOf(t, config.IngestTopic(t.Function()), t.Function(), true))
	}
	return out
}

func tailerOf(t *tailer.Tailer, topic, function string, ingest bool) nodestatus.Tailer {
	member, _ := t.GroupMember()
	ts := nodestatus.Tailer{Name: t.Name(), Topic: topic, Function: function, Group: t.Group(), Member: member != "",
		InFlight: t.Stats().InFlight, Partitions: []nodestatus.Partition{}, Ingest: ingest}
	for _, l := range t.Lag() {
		ts.Partitions = append(ts.Partitions, nodestatus.Partition{Partition: l.Partition, LagRecords: l.Records, LagSeconds: l.Age.Seconds()})
	}
	return ts
}

// rungHead is a rung's oldest due time and lateness, from the heads of its partitions
// with records waiting.
type rungHead struct {
	oldestDue *time.Time
	lateness  *float64
	// unknown says why oldestDue is unknown although records wait; empty otherwise.
	unknown string
}

// rungHeads reads the head (the record at the group's commit, the oldest not done) of
// every partition with records waiting on each rung in depths, with one direct
// consumer (status.Peek: no group, no commits) within ctx, and computes each rung's
// oldest due and its lateness as of taken as `kasync status --brokers` does
// (status.Rung.ApplyPeeks). The offsets are those rungDepths listed: no second round
// of ListOffsets. A rung absent from depths is absent here (its depth is unknown, and
// named so).
func (n *Node) rungHeads(ctx context.Context, depths map[string]rungDepth, taken time.Time) map[string]rungHead {
	rungs := make(map[string]*status.Rung, len(depths))
	var targets []status.PeekTarget
	for _, rg := range n.rungGroups {
		d, ok := depths[rg.name]
		if !ok {
			continue
		}
		r := &status.Rung{Topic: rg.topic, Partitions: d.partitions}
		rungs[rg.name] = r
		targets = append(targets, r.PeekTargets()...)
	}
	var peeked map[status.PeekTarget]status.Peeked
	if len(targets) > 0 && ctx.Err() == nil {
		peeked = status.Peek(ctx, n.clientCfg, targets)
	}
	out := make(map[string]rungHead, len(rungs))
	for name, r := range rungs {
		r.ApplyPeeks(peeked, taken)
		h := rungHead{oldestDue: r.OldestDue, lateness: r.LatenessSeconds}
		if h.oldestDue == nil && r.Waiting > 0 {
			h.unknown = headUnknown(r, peeked)
		}
		out[name] = h
	}
	return out
}

// headUnknown says why r's oldest due is unknown: the first waiting partition whose
// head was not read in time, or whose head has no kasync-due header kasync can read.
func headUnknown(r *status.Rung, peeked map[status.PeekTarget]status.Peeked) string {
	for _, t := range r.PeekTargets() {
		rec, ok := peeked[t]
		switch {
		case !ok:
			return fmt.Sprintf("the head of partition %d (offset %d) was not read before the snapshot's deadline", t.Partition, t.Offset)
		case rec.Due.IsZero():
			return fmt.Sprintf("the head of partition %d (offset %d) has no kasync-due header in unix milliseconds", t.Partition, t.Offset)
		}
	}
	return "its heads were not read" // not reached: ApplyPeeks found one of the above
}

// rungStatus lists the rungs shortest first, with their depth where depths has it,
// their oldest due and lateness where heads has them, and this node's reader counts
// where it reads them.
func (n *Node) rungStatus(depths map[string]rungDepth, heads map[string]rungHead) []nodestatus.Rung {
	out := make([]nodestatus.Rung, 0, len(n.rungGroups))
	for i, rg := range n.rungGroups {
		r := nodestatus.Rung{Name: rg.name, Topic: rg.topic, DelaySeconds: n.cfg.Delay.Rungs[i].Std().Seconds()}
		if d, ok := depths[rg.name]; ok {
			r.Depth = &d.depth
		}
		if h, ok := heads[rg.name]; ok {
			r.OldestDue, r.LatenessSeconds = h.oldestDue, h.lateness
		}
		if i < len(n.rungReaders) {
			s := n.rungReaders[i].Stats()
			r.Reading, r.Held, r.InFlight = true, s.Held, s.InFlight
		}
		out = append(out, r)
	}
	return out
}

// durationBounds are the scheduler's duration buckets in seconds, shared by every
// function's status (read-only).
var durationBounds = func() []float64 {
	bounds := scheduler.DurationBounds()
	out := make([]float64, len(bounds))
	for i, b := range bounds {
		out[i] = b.Seconds()
	}
	return out
}()
