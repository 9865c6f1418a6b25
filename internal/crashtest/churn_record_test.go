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
	"time"

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
}

// attribute charges each duplicate execution to the stop that caused it. The runs of
// one attempt of one event, in time order: the first is planned (unless the attempt is
// beyond the plan), and each later one re-runs work whose result the incarnation that
// ran the one before lost. So a duplicate is charged to the stop of that incarnation,
// when it was stopped before the duplicate ran: a SIGKILL, or a SIGTERM, which should
// cost nothing. When that incarnation was still running, the partition moved away from
// a live node (a rebalance), which should cost nothing either: it counts as a hand-over.
// A duplicate that follows from a duplicate of the attempt before (a re-run attempt
// failed again and so made a second rung record) is charged where that one is.
func attribute(execs []execution, incs []incarnation, churns int) duplicates {
	d := duplicates{perChurn: make([]int64, churns)}
	var byAttempt [maxAttempts][]execution
	for i := 0; i < len(execs); {
		j := i
		for j < len(execs) && execs[j].id == execs[i].id {
			j++
		}
		for a := range byAttempt {
			byAttempt[a] = byAttempt[a][:0]
		}
		for _, e := range execs[i:j] {
			byAttempt[e.attempt-1] = append(byAttempt[e.attempt-1], e)
		}
		plan := fateOf(int(execs[i].id)).attempts()
		for a := 1; a <= maxAttempts; a++ {
			for k := range byAttempt[a-1] {
				if k == 0 && a <= plan {
					continue
				}
				d.total++
				if churn, ok := blame(byAttempt[:], incs, a, k); ok {
					d.perChurn[churn]++
				} else {
					d.handover++
				}
			}
		}
		i = j
	}
	return d
}

// blame returns the churn event that the k-th run (from 0) of attempt a is charged to,
// or false for a hand-over between live nodes.
func blame(runs [][]execution, incs []incarnation, a, k int) (int, bool) {
	for a > 1 && k >= 1 && k < len(runs[a-2]) {
		a-- // the k-th run of attempt a-1 made this one
	}
	var prev execution
	switch {
	case k >= 1:
		prev = runs[a-1][k-1]
	case a > 1 && len(runs[a-2]) > 0:
		prev = runs[a-2][len(runs[a-2])-1] // an attempt beyond the plan: the one before lost its outcome
	default:
		return 0, false
	}
	inc := incs[prev.inc]
	if inc.how != running && inc.stopped <= runs[a-1][k].at {
		return inc.churn, true
	}
	return 0, false
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
