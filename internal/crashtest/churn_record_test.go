package crashtest

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	kruntime "github.com/kasync/kasync/runtime"
)

// stopKind is how a node incarnation ended.
type stopKind int

const (
	running    stopKind = iota // not stopped by the churn (still running, or stopped after the run)
	terminated                 // SIGTERM: a clean hand-over
	killed                     // SIGKILL
)

func (k stopKind) String() string {
	switch k {
	case terminated:
		return "SIGTERM"
	case killed:
		return "SIGKILL"
	}
	return "hand-over"
}

// incarnation is one run of one node process, from its start to the churn's signal.
type incarnation struct {
	node    int
	started time.Duration // since the run began
	stopped time.Duration // when the churn signalled it, if how is not running
	how     stopKind
	churn   int // the churn event that stopped it; -1 while running
}

// execution is one run of the function, recorded at its entry by the worker of the
// incarnation that dispatched it (each incarnation has a worker of its own).
type execution struct {
	at      time.Duration // since the run began
	id      int32
	attempt int16
	inc     int16
	part    int16 // the event's source partition and offset, from Task.ID
	offset  int64
}

// churnLedger records every execution in the test process, outside the node processes.
type churnLedger struct {
	began     time.Time
	mu        sync.Mutex
	execs     []execution
	succeeded []atomic.Bool
	successes atomic.Int64
	bad       atomic.Int64 // tasks that were no event of this run
}

func newChurnLedger(n int, began time.Time) *churnLedger {
	return &churnLedger{began: began, succeeded: make([]atomic.Bool, n), execs: make([]execution, 0, n+n/10)}
}

// fn is the function as incarnation inc's worker serves it.
func (l *churnLedger) fn(inc int) kruntime.Func {
	return func(_ context.Context, t *kruntime.Task) error {
		at := time.Since(l.began)
		id, err := strconv.Atoi(string(t.Payload))
		part, offset, ok := origin(t.ID)
		if err != nil || !ok || id < 0 || id >= len(l.succeeded) || t.Attempt < 1 || t.Attempt > maxAttempts {
			l.bad.Add(1)
			return kruntime.Fatal(fmt.Errorf("task %s (payload %q, attempt %d) is no event of this run", t.ID, t.Payload, t.Attempt))
		}
		l.mu.Lock()
		l.execs = append(l.execs, execution{at: at, id: int32(id), attempt: int16(t.Attempt), inc: int16(inc), part: int16(part), offset: offset})
		l.mu.Unlock()
		f := fateOf(id)
		err = f.outcome(id, t.Attempt)
		if err == nil && l.succeeded[id].CompareAndSwap(false, true) {
			l.successes.Add(1)
		}
		return err
	}
}

// origin parses a task id, "<topic>/<partition>/<offset>" of the event's source record.
func origin(id string) (part int, offset int64, ok bool) {
	rest, off, ok1 := cutLast(id)
	_, p, ok2 := cutLast(rest)
	part, err1 := strconv.Atoi(p)
	offset, err2 := strconv.ParseInt(off, 10, 64)
	return part, offset, ok1 && ok2 && err1 == nil && err2 == nil
}

func cutLast(s string) (before, after string, ok bool) {
	i := strings.LastIndexByte(s, '/')
	if i < 0 {
		return s, "", false
	}
	return s[:i], s[i+1:], true
}

// snapshot returns the executions so far, sorted by event, attempt and time.
func (l *churnLedger) snapshot() []execution {
	l.mu.Lock()
	execs := slices.Clone(l.execs)
	l.mu.Unlock()
	slices.SortFunc(execs, func(a, b execution) int {
		return cmp.Or(cmp.Compare(a.id, b.id), cmp.Compare(a.attempt, b.attempt), cmp.Compare(a.at, b.at))
	})
	return execs
}

// duplicates is the attribution of every execution beyond the plan.
type duplicates struct {
	total    int64   // executions beyond those the plan needs
	perChurn []int64 // charged to the SIGKILL or SIGTERM of that churn event
	handover int64   // charged to no stop: a partition that moved between live nodes
	// handovers describe the first hand-over duplicates, for the failure message.
	handovers []string
}

// Causes of a run, besides the index of the churn event it is charged to.
const (
	planned  = -2 // not a duplicate
	handOver = -1 // charged to no stop
)

// attribute charges each duplicate execution to the stop that caused it. Of the runs of
// one attempt of one event, in time order, the first is planned (unless the attempt is
// beyond the plan). A later one has one of two causes. A duplicate of the attempt
// before that ran earlier (and so made one more rung record) explains one such run,
// which is charged where that one is. Otherwise the run re-ran work whose result the
// incarnation that ran the run before lost: it is charged to that incarnation's stop
// when that came before the duplicate ran — a SIGKILL, or a SIGTERM, which should cost
// nothing — and else to a hand-over between live nodes (a rebalance), which should cost
// nothing either.
func attribute(execs []execution, incs []incarnation, churns int) duplicates {
	d := duplicates{perChurn: make([]int64, churns)}
	var runs [maxAttempts][]execution
	var cause [maxAttempts][]int
	for i := 0; i < len(execs); {
		j := i
		for j < len(execs) && execs[j].id == execs[i].id {
			j++
		}
		for a := range runs {
			runs[a], cause[a] = runs[a][:0], cause[a][:0]
		}
		for _, e := range execs[i:j] {
			runs[e.attempt-1] = append(runs[e.attempt-1], e)
		}
		plan := fateOf(int(execs[i].id)).attempts()
		for a := 1; a <= maxAttempts; a++ {
			chain := 0 // the next run of attempt a-1 that may explain one of attempt a
			for k, r := range runs[a-1] {
				c := planned
				if k > 0 || a > plan {
					c = handOver
					explained := false
					for a > 1 && chain < len(runs[a-2]) {
						if cause[a-2][chain] == planned {
							chain++
							continue
						}
						if runs[a-2][chain].at < r.at {
							c, explained = cause[a-2][chain], true
							chain++
						}
						break
					}
					if !explained {
						c = blame(runs[:], incs, a, k)
					}
					d.total++
					if c >= 0 {
						d.perChurn[c]++
					} else {
						d.handover++
						if len(d.handovers) < 20 {
							d.handovers = append(d.handovers, describeRuns(runs[:], incs, a, k))
						}
					}
				}
				cause[a-1] = append(cause[a-1], c)
			}
		}
		i = j
	}
	return d
}

// blame returns the cause of the k-th run (from 0) of attempt a when it re-ran work
// whose result the incarnation of the run before lost.
func blame(runs [][]execution, incs []incarnation, a, k int) int {
	var prev execution
	switch {
	case k >= 1:
		prev = runs[a-1][k-1]
	case a > 1 && len(runs[a-2]) > 0:
		prev = runs[a-2][len(runs[a-2])-1] // an attempt beyond the plan: the one before lost its outcome
	default:
		return handOver
	}
	inc := incs[prev.inc]
	if inc.how != running && inc.stopped <= runs[a-1][k].at {
		return inc.churn
	}
	return handOver
}

// describeRuns tells the runs of an event up to the k-th run of attempt a.
func describeRuns(runs [][]execution, incs []incarnation, a, k int) string {
	var b strings.Builder
	e := runs[a-1][k]
	fmt.Fprintf(&b, "event %d (source %d/%d), run %d of attempt %d; its runs:", e.id, e.part, e.offset, k+1, a)
	for _, rs := range runs {
		for _, r := range rs {
			inc := incs[r.inc]
			fmt.Fprintf(&b, " [attempt %d at %s by node %d incarnation %d (started %s, %s at %s)]", r.attempt,
				r.at.Round(time.Millisecond), inc.node, r.inc, inc.started.Round(time.Millisecond), inc.how, inc.stopped.Round(time.Millisecond))
		}
	}
	return b.String()
}

// startedBelow returns, by source partition and offset o, the time by which attempt 1
// of every event below o+1 there had started; -1 where one of them never started.
func startedBelow(execs []execution, end map[int32]int64) map[int32][]time.Duration {
	first := make(map[int32][]time.Duration, len(end))
	for p, e := range end {
		first[p] = make([]time.Duration, e)
		for o := range first[p] {
			first[p][o] = -1
		}
	}
	for _, e := range execs {
		runs := first[int32(e.part)]
		if e.attempt != 1 || e.offset < 0 || e.offset >= int64(len(runs)) {
			continue
		}
		if runs[e.offset] < 0 || e.at < runs[e.offset] {
			runs[e.offset] = e.at
		}
	}
	for _, runs := range first {
		for o := 1; o < len(runs); o++ {
			if runs[o-1] < 0 || runs[o] >= 0 && runs[o] < runs[o-1] {
				runs[o] = runs[o-1]
			}
		}
	}
	return first
}

// TestAttribute checks the charging of duplicates on histories seen in churn runs.
func TestAttribute(t *testing.T) {
	ms := func(n int) time.Duration { return time.Duration(n) * time.Millisecond }
	incs := []incarnation{
		{node: 0, how: killed, stopped: ms(100), churn: 0},
		{node: 0, started: ms(120), how: terminated, stopped: ms(500), churn: 1},
		{node: 1},
	}
	const ok, once = 1, 50 // fateOf: succeeds, fails once
	cases := []struct {
		name            string
		execs           []execution
		perChurn        []int64
		handover, total int64
	}{
		{name: "no duplicate", execs: []execution{{id: ok, attempt: 1, at: ms(10), inc: 2}}, perChurn: []int64{0, 0}},
		{name: "re-run after a kill", perChurn: []int64{1, 0}, total: 1, execs: []execution{
			{id: ok, attempt: 1, at: ms(90), inc: 0}, {id: ok, attempt: 1, at: ms(200), inc: 2}}},
		{name: "re-run after a term", perChurn: []int64{0, 1}, total: 1, execs: []execution{
			{id: ok, attempt: 1, at: ms(400), inc: 1}, {id: ok, attempt: 1, at: ms(600), inc: 2}}},
		{name: "re-run from a live node", perChurn: []int64{0, 0}, handover: 1, total: 1, execs: []execution{
			{id: ok, attempt: 1, at: ms(10), inc: 2}, {id: ok, attempt: 1, at: ms(200), inc: 1}}},
		// The kill lost both the source's and the rung's checkpoint: attempt 1 ran
		// again (a second rung record) and so did the first rung record.
		{name: "a kill re-runs a source record and a rung record", perChurn: []int64{3, 0}, total: 3, execs: []execution{
			{id: once, attempt: 1, at: ms(90), inc: 0}, {id: once, attempt: 2, at: ms(95), inc: 0},
			{id: once, attempt: 2, at: ms(300), inc: 1}, {id: once, attempt: 1, at: ms(310), inc: 1},
			{id: once, attempt: 2, at: ms(320), inc: 1}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			execs := slices.Clone(tc.execs)
			slices.SortFunc(execs, func(a, b execution) int {
				return cmp.Or(cmp.Compare(a.id, b.id), cmp.Compare(a.attempt, b.attempt), cmp.Compare(a.at, b.at))
			})
			d := attribute(execs, incs, 2)
			require.Equal(t, tc.perChurn, d.perChurn)
			require.Equal(t, tc.handover, d.handover, d.handovers)
			require.Equal(t, tc.total, d.total)
		})
	}
}
