package crashtest

import (
	"fmt"
	"slices"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kasync/kasync/delaystreams"
	kruntime "github.com/kasync/kasync/runtime"
)

// maxAttempts is functions[0].retry.max_attempts of the crash and churn nodes.
const maxAttempts = 3

// fate is what the function does with an event, decided by its id and attempt alone so
// that a re-run after a crash behaves as the first run did.
type fate int

const (
	succeeds  fate = iota // at attempt 1
	failsOnce             // retriable at attempt 1 (through the ladder), then succeeds
	exhausted             // retriable at every attempt: dead letter, reason exhausted
	fatal                 // runtime.Fatal at attempt 1: dead letter, reason fatal
)

func fateOf(id int) fate {
	switch {
	case id%1999 == 0:
		return fatal
	case id%997 == 0:
		return exhausted
	case id%50 == 0:
		return failsOnce
	}
	return succeeds
}

// attempts is how many executions the fate needs: the duplicates are the executions
// beyond these.
func (f fate) attempts() int {
	switch f {
	case failsOnce:
		return 2
	case exhausted:
		return maxAttempts
	}
	return 1
}

// reason is the kasync-reason of the fate's dead letter ("" when it succeeds).
func (f fate) reason() string {
	switch f {
	case exhausted:
		return "exhausted"
	case fatal:
		return "fatal"
	}
	return ""
}

func (f fate) outcome(id, attempt int) error {
	switch {
	case f == fatal:
		return kruntime.Fatal(fmt.Errorf("event %d is fatal", id))
	case f == exhausted:
		return fmt.Errorf("event %d always fails (attempt %d)", id, attempt)
	case f == failsOnce && attempt == 1:
		return fmt.Errorf("event %d fails its first attempt", id)
	}
	return nil
}

// expectedExecutions is the executions the plan needs without any crash.
func expectedExecutions(n int) int64 {
	var sum int64
	for id := range n {
		sum += int64(fateOf(id).attempts())
	}
	return sum
}

// checkOutcomes asserts that no event of n was lost: each has a success or a dead
// letter; the dead letters are exactly the planned ones, with the planned reason and
// attempt, for events that never succeeded; and every attempt the plan needs ran. It
// returns the dead letters beyond one per dead event, and the dead events.
func checkOutcomes(t *testing.T, n int, dl *deadLetters, succeeded func(id int) bool, ran func(id, attempt int) bool) (dupDead, dead int) {
	t.Helper()
	require.Empty(t, dl.other, "dead letters whose value is no event id")
	var lost, wantDead []int
	for id := range n {
		f := fateOf(id)
		recs := dl.byID[id]
		if f.reason() != "" {
			wantDead = append(wantDead, id)
		}
		if !succeeded(id) && len(recs) == 0 {
			lost = append(lost, id)
		}
		for a := 1; a <= f.attempts(); a++ {
			require.True(t, ran(id, a), "event %d (fate %d) ran attempt %d", id, f, a)
		}
		dupDead += max(0, len(recs)-1)
		for _, r := range recs {
			require.Equal(t, f.reason(), header(r, delaystreams.HeaderReason), "event %d's dead letter reason", id)
			require.Equal(t, strconv.Itoa(f.attempts()), header(r, delaystreams.HeaderAttempt), "event %d's dead letter attempt", id)
			require.False(t, succeeded(id), "event %d was dead-lettered and also succeeded", id)
		}
	}
	require.Empty(t, lost, "events with neither a success nor a dead letter")
	gotDead := slices.Sorted(func(yield func(int) bool) {
		for id := range dl.byID {
			if !yield(id) {
				return
			}
		}
	})
	require.Equal(t, wantDead, gotDead, "the dead-lettered events are exactly the planned ones")
	return dupDead, len(wantDead)
}
