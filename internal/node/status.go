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
	"github.com/kasync/kasync/scheduler"
	"github.com/kasync/kasync/tailer"
)

// Status is a snapshot of a node (see package nodestatus): what the dashboard shows
// and /status.json serves.
type Status = nodestatus.Status

// statusTimeout bounds the broker round trips of one Status (readiness, rung depths
// and the latest dead letters, asked at once), like /readyz's and a scrape's.
const statusTimeout = 2 * time.Second

// StatusDeadLetters is how many of the latest dead letters a Status holds.
const StatusDeadLetters = 20

// Status takes a snapshot of the node from its live state: the scheduler's counters
// (scheduler.Stats), the storm guard (Guard.Snapshot), the tailers' lag and in-flight
// counts, and the dead-letter counters the router keeps; and, from the broker, within
// statusTimeout: readiness (as /readyz), each rung's depth (as kasync_delay_records)
// and the latest dead letters (read with a direct consumer, no group). What the broker
// does not answer in time is left out and named in Problems. It is safe to call
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
		depths   map[string]int64
		depthErr error
		latest   []nodestatus.DeadLetter
		dlErr    error
	)
	wg.Go(func() { notReady = n.ready(ctx) })
	if n.adm != nil && len(n.rungGroups) > 0 {
		wg.Go(func() { depths, depthErr = rungDepths(ctx, n.adm, n.rungGroups, n.log) })
	}
	if n.deadLetters != nil {
		wg.Go(func() { latest, dlErr = n.deadLetters.latest(ctx, StatusDeadLetters) })
	}
	wg.Wait()

	st.NotReady = notReady
	st.Rungs = n.rungStatus(depths)
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

// rungStatus lists the rungs shortest first, with their depth where depths has it and
// this node's reader counts where it reads them.
func (n *Node) rungStatus(depths map[string]int64) []nodestatus.Rung {
	out := make([]nodestatus.Rung, 0, len(n.rungGroups))
	for i, rg := range n.rungGroups {
		r := nodestatus.Rung{Name: rg.name, Topic: rg.topic, DelaySeconds: n.cfg.Delay.Rungs[i].Std().Seconds()}
		if d, ok := depths[rg.name]; ok {
			r.Depth = &d
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
