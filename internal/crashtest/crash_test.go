package crashtest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kasync/kasync/internal/kafkatest"
	"github.com/kasync/kasync/internal/testutil"
	kruntime "github.com/kasync/kasync/runtime"
)

// The run: its topics, the node's bounds and how many times it is killed.
const (
	events       = 100_000
	sourceTopic  = "crash.source"
	sourceParts  = 8
	sourceGroup  = "kasync.crash" // the tailer's default group: kasync.<name>
	deadLetter   = "crash.dead-letter"
	delayPrefix  = "crash.delay"
	rungCount    = 3    // 20ms, 50ms, 200ms
	srcInFlight  = 2000 // tailers[0].max_in_flight
	rungInFlight = 500  // delay.max_in_flight, per rung reader
	maxPending   = 1000 // checkpoint.max_pending

	defaultKills = 10
	longKills    = 30 // KASYNC_LONG=1
	// minProgress is how many new successes show that a restarted node works: more than
	// the worker's capacity, since tasks of the killed node may still finish after it died.
	minProgress    = 1000
	workerCapacity = 256
)

// dupBound is what a crash costs at most in re-runs of work whose result it lost. Each
// tailer (the source one and every rung reader) reads a record only while its records
// read and not durably done number less than its max_in_flight + checkpoint.max_pending
// (tailer invariant 2): max_pending completions may wait for a checkpoint sync, however
// fast records complete (a write syncs at most once per checkpoint.interval), and so
// may everything in flight. A restarted node resumes from its last synced checkpoint,
// so it re-runs at most that, per tailer.
//
// That is not all a crash costs: a re-run attempt that fails again makes one more rung
// record, so the next attempt runs once more (and so on up the ladder). Those cascades
// are counted apart, each against the duplicate failed attempt that made it.
const dupBound = (srcInFlight + maxPending) + rungCount*(rungInFlight+maxPending)

// nodeConfig is `kasync run`'s config. Ports and the data directory stay the same across
// restarts: the Pebble checkpoints must survive a kill, and the worker reconnects to the
// same gRPC address. The session timeout is the broker's least (6s): a killed node's
// partitions are given to the restarted one only once its old membership expires.
const nodeConfig = `kafka:
  brokers: ["%[1]s"]
  session_timeout: 6s
node:
  data_dir: %[2]s
  grpc_listen: %[3]s
  http_listen: %[4]s
delay:
  topic_prefix: %[5]s
  rungs: [20ms, 50ms, 200ms]
  tolerance: 5ms
  partitions: 4
  max_in_flight: %[6]d
dead_letter:
  topic: %[7]s
checkpoint:
  interval: 50ms
  max_pending: %[8]d
functions:
  - name: fn
    concurrency: 256
    timeout: 5s
    retry: {max_attempts: %[9]d, backoff: [20ms, 50ms]}
tailers:
  - name: crash
    topic: %[10]s
    function: fn
    start: earliest
    max_in_flight: %[11]d
    revoke_timeout: 1s
`

// ledger records every execution in the test process, outside the killed node.
type ledger struct {
	epoch      atomic.Int32 // crashes so far: a duplicate is charged to the latest
	runs       [][maxAttempts + 1]atomic.Int32
	succeeded  []atomic.Bool
	successes  atomic.Int64 // ids with a successful execution
	executions atomic.Int64
	dups       []atomic.Int64 // duplicate executions by epoch
	dupRetried atomic.Int64   // duplicate executions that failed and went on to the next attempt
	bad        atomic.Int64   // tasks that were no event of this run
}

func newLedger(n, kills int) *ledger {
	return &ledger{runs: make([][maxAttempts + 1]atomic.Int32, n), succeeded: make([]atomic.Bool, n),
		dups: make([]atomic.Int64, kills+1)}
}

func (l *ledger) fn(_ context.Context, t *kruntime.Task) error {
	id, err := strconv.Atoi(string(t.Payload))
	if err != nil || id < 0 || id >= len(l.runs) || t.Attempt < 1 {
		l.bad.Add(1)
		return kruntime.Fatal(fmt.Errorf("payload %q attempt %d is no event of this run", t.Payload, t.Attempt))
	}
	l.executions.Add(1)
	f := fateOf(id)
	slot := min(t.Attempt, maxAttempts+1) - 1
	dup := l.runs[id][slot].Add(1) > 1 || t.Attempt > f.attempts()
	if dup {
		l.dups[l.epoch.Load()].Add(1)
	}
	err = f.outcome(id, t.Attempt)
	if dup && err != nil && t.Attempt < f.attempts() {
		l.dupRetried.Add(1) // a second rung record: one more run of the next attempt
	}
	if err == nil && l.succeeded[id].CompareAndSwap(false, true) {
		l.successes.Add(1)
	}
	return err
}

// killPoints spreads kills over the run: the k-th kill comes when a random number of
// events in the k-th of `kills` equal slices of [5%, 90%] of them have succeeded.
func killPoints(rng *rand.Rand, kills, n int) []int64 {
	const lo, hi = 0.05, 0.90
	out := make([]int64, kills)
	width := (hi - lo) / float64(kills)
	for k := range out {
		out[k] = int64(float64(n) * (lo + width*(float64(k)+rng.Float64())))
	}
	return out
}

// crash is what the test saw around one kill.
type crash struct {
	at        time.Duration // since the first start
	succeeded int64         // ids succeeded when it was killed
	resumed   time.Duration // from the killed node's start to its first minProgress successes
}

// TestCrashSafety is issue 3's acceptance test: `kasync run`, against `kasync broker`
// in another process, is killed with SIGKILL at random moments during a 100,000-event
// run with failing events and restarted each time; afterwards every event has a success
// or a dead letter, and the duplicate executions stay within the per-crash bound.
func TestCrashSafety(t *testing.T) {
	if testing.Short() {
		t.Skip("crash-safety acceptance test: builds kasync and runs it for a while; skipped with -short")
	}
	kills := defaultKills
	if os.Getenv("KASYNC_LONG") == "1" {
		kills = longKills
	}
	seed := uint64(time.Now().UnixNano())
	rng := rand.New(rand.NewPCG(seed, seed>>1))
	t.Logf("seed %d, %d kills, %d events", seed, kills, events)

	bin := kasyncBinary(t)
	logs := t.TempDir()
	_, brokers := startBroker(t, bin, logs, t.TempDir(), sourceTopic, sourceParts)
	kafkatest.ProduceN(t, brokers, sourceTopic, events, func(i int) *kgo.Record {
		return &kgo.Record{Key: []byte(strconv.Itoa(i)), Value: []byte(strconv.Itoa(i))}
	})
	end := kafkatest.EndOffsets(t, brokers, sourceTopic)

	grpcAddr := testutil.FreeAddr(t)
	cfgPath := writeConfig(t, bin, fmt.Sprintf(nodeConfig, brokers[0], t.TempDir(), grpcAddr, testutil.FreeAddr(t), delayPrefix,
		rungInFlight, deadLetter, maxPending, maxAttempts, sourceTopic, srcInFlight))

	// The function runs here, in an SDK worker that reconnects to every restarted node.
	led := newLedger(events, kills)
	reg := kruntime.NewRegistry()
	reg.MustRegister("fn", led.fn)
	var workerLog testutil.Buffer
	w := startWorker(t, []string{grpcAddr}, reg, workerCapacity, &workerLog)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("worker log (warnings):\n%s", workerLog.String())
		}
	})

	nodeLog := newLogFile(t, logs, "node.log")
	startNode := func(k int) *proc {
		return startProc(t, bin, fmt.Sprintf("kasync run #%d", k), nodeLog, "run", "--config", cfgPath)
	}
	began := time.Now()
	node := startNode(0)
	crashes := make([]crash, 0, kills)
	for k, at := range killPoints(rng, kills, events) {
		restarted, base := time.Now(), led.successes.Load()
		var resumed time.Duration
		waitFor(t, node, 3*time.Minute, fmt.Sprintf("%d successes before kill %d", at, k+1), func() bool {
			s := led.successes.Load()
			if resumed == 0 && s >= base+minProgress {
				resumed = time.Since(restarted)
			}
			return s >= at && s >= base+minProgress
		})
		node.killed(t)
		crashes = append(crashes, crash{at: time.Since(began), succeeded: led.successes.Load(), resumed: resumed})
		led.epoch.Add(1) // what runs from now on, twice, is this crash's cost
		node = startNode(k + 1)
	}

	// Let the last node finish: every id ends in a success or a dead letter.
	dl := newDeadLetters(t, brokers, deadLetter)
	succeeded := func(id int) bool { return led.succeeded[id].Load() }
	waitFor(t, node, 3*time.Minute, "a success or a dead letter for every event", func() bool {
		dl.poll(t, 50*time.Millisecond)
		return dl.covered(events, led.successes.Load(), succeeded) == events
	})
	finished := time.Since(began)
	node.terminated(t, time.Minute)
	require.NoError(t, w.stop(), "the worker drains and stops")

	// The clean stop committed the source to its end.
	committed := map[int32]int64{}
	waitFor(t, nil, 30*time.Second, "source group committed to the log end", func() bool {
		committed = kafkatest.CommittedOffsets(t, brokers, sourceGroup, sourceTopic)
		for p, e := range end {
			if committed[p] != e {
				return false
			}
		}
		return true
	})

	// 0 lost: each event has a success or a dead letter, and the dead letters are
	// exactly the planned ones, with the planned reason, for events that never succeeded.
	require.Zero(t, led.bad.Load(), "tasks that were no event of this run")
	dupDead, dead := checkOutcomes(t, events, dl, succeeded, func(id, attempt int) bool { return led.runs[id][attempt-1].Load() > 0 })

	// Bounded duplicates: executions beyond the plan, charged to the crash they followed.
	expected := expectedExecutions(events)
	total := led.executions.Load() - expected
	var perCrash []int64
	var charged int64
	for e := range led.dups {
		d := led.dups[e].Load()
		charged += d
		if e > 0 {
			perCrash = append(perCrash, d)
		}
	}
	require.Equal(t, total, charged, "every execution beyond the plan is charged to an epoch")
	require.Zero(t, led.dups[0].Load(), "no duplicate execution before the first crash")
	var b strings.Builder
	for k, c := range crashes {
		fmt.Fprintf(&b, "\n  crash %2d at %7s, %6d/%d succeeded, the killed node resumed %6s after its start, %5d duplicates after it",
			k+1, c.at.Round(time.Millisecond), c.succeeded, events, c.resumed.Round(time.Millisecond), perCrash[k])
	}
	cascades := led.dupRetried.Load()
	t.Logf("%d kills; every event done %s after the first start (%d executions, %d planned, %d duplicates, bound %d per crash = %d, + %d duplicate failed attempts that retried; %d duplicate dead letters of %d)%s",
		len(crashes), finished.Round(time.Millisecond), led.executions.Load(), expected, total, dupBound,
		int64(len(crashes))*dupBound, cascades, dupDead, dead, b.String())
	require.LessOrEqual(t, total, int64(len(crashes))*dupBound+cascades,
		"duplicate executions within kills × Σ tailers (max_in_flight + max_pending), plus one per duplicate failed attempt that retried")
	require.Equal(t, kills, len(crashes))
}
