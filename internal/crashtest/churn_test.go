package crashtest

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kasync/kasync/delaystreams"
	"github.com/kasync/kasync/internal/kafkatest"
	"github.com/kasync/kasync/internal/testutil"
	kruntime "github.com/kasync/kasync/runtime"
)

// The churn run: three nodes sharing a 12-partition topic and the rungs. The bounds
// (max_in_flight, max_pending, the rungs) are the crash test's, so dupBound is the
// cost of one SIGKILL here too.
const (
	churnTopic      = "churn.source"
	churnParts      = 12
	churnGroup      = "kasync.churn"
	churnDeadLetter = "churn.dead-letter"
	churnPrefix     = "churn.delay"
	churnNodes      = 3
)

// churnSize is how much a churn run does.
type churnSize struct {
	events int
	cycles int           // stops and restarts, alternately SIGTERM and SIGKILL
	every  time.Duration // between a restart and the next stop
}

var (
	churnShort = churnSize{events: 15_000, cycles: 6, every: 4 * time.Second}
	churnLong  = churnSize{events: 100_000, cycles: 20, every: 4 * time.Second} // KASYNC_LONG_CHURN=1
)

// churnNodeConfig is one node's config: all roles, so each node runs a source tailer,
// the rung readers and a scheduler, and every group (the source's and each rung's) has
// a member in each node. Nodes differ only by their data directory and addresses.
const churnNodeConfig = `kafka:
  brokers: ["%[1]s"]
  session_timeout: %[12]s
node:
  data_dir: %[2]s
  grpc_listen: %[3]s
  http_listen: %[4]s
delay:
  topic_prefix: %[5]s
  rungs: [20ms, 50ms, 200ms]
  tolerance: 5ms
  partitions: 6
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
  - name: churn
    topic: %[10]s
    function: fn
    start: earliest
    max_in_flight: %[11]d
    revoke_timeout: 10s
`

// churnNode is one of the three nodes: its config stays, its process and worker are
// replaced at each restart.
type churnNode struct {
	idx            int
	cfg            string
	grpc, httpAddr string
	log            *os.File
	proc           *proc
	worker         *worker
	inc            int // its current incarnation
}

// churnEvent is one stop and restart.
type churnEvent struct {
	node    int
	how     stopKind
	at      time.Duration // the signal, since the run began
	stopped time.Duration // from the signal to the exit
	down    time.Duration // from the exit to the restart (see takesOver)
}

// sessionTimeout is kafka.session_timeout of the churn nodes, the broker's least.
const sessionTimeout = 6 * time.Second

// takesOver reports whether stop c (SIGTERM when c is even, else SIGKILL) waits, before
// the restart, until the other nodes own all the partitions: they take them over from
// the group commit, and the restarted node then takes some back from them (graceful
// revocations). After a SIGTERM that is a second or less: the node left its groups. A
// SIGKILLed node's partitions stay with its dead member until its session times out:
// the first, third, ... SIGKILL waits for that; the others restart the node at once,
// and it resumes from its own Pebble checkpoints.
func takesOver(c int) bool { return c%2 == 0 || (c/2)%2 == 0 }

// expectedDown is about how long takesOver keeps the node of stop c down.
func expectedDown(c int) time.Duration {
	switch {
	case c%2 == 0:
		return time.Second
	case takesOver(c):
		return sessionTimeout + time.Second
	}
	return 0
}

// TestChurn is issue 7's churn test: three `kasync run` processes share a topic's
// partitions and the rungs through their consumer groups while events are produced,
// and every few seconds one of them, at random, is stopped — SIGTERM and SIGKILL in
// turn — and restarted with its data directory. The function runs here, in one SDK
// worker per node process, so every execution is recorded with the process that ran it.
// It asserts no loss, duplicates charged to each SIGKILL within its bound and none to a
// SIGTERM or to a hand-over between live nodes, and committed offsets that never move
// backwards nor pass a record that had not run.
func TestChurn(t *testing.T) {
	if testing.Short() {
		t.Skip("churn test: builds kasync and runs four processes for a while; skipped with -short")
	}
	size := churnShort
	if os.Getenv("KASYNC_LONG_CHURN") == "1" {
		size = churnLong
	}
	seed := uint64(time.Now().UnixNano())
	rng := rand.New(rand.NewPCG(seed, seed>>1))
	t.Logf("seed %d, %d events, %d stops, each %s after the last restart", seed, size.events, size.cycles, size.every)

	bin := kasyncBinary(t)
	logs := t.TempDir()
	_, brokers := startBroker(t, bin, logs, t.TempDir(), churnTopic, churnParts)
	began := time.Now()
	since := func() time.Duration { return time.Since(began) }
	led := newChurnLedger(size.events, began)
	var incs []incarnation
	var workerLog testutil.Buffer
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("workers' log (warnings):\n%s", workerLog.String())
		}
	})

	nodes := make([]*churnNode, churnNodes)
	for i := range nodes {
		n := &churnNode{idx: i, grpc: testutil.FreeAddr(t), httpAddr: testutil.FreeAddr(t),
			log: newLogFile(t, logs, fmt.Sprintf("node%d.log", i))}
		n.cfg = writeConfig(t, bin, fmt.Sprintf(churnNodeConfig, brokers[0], t.TempDir(), n.grpc, n.httpAddr, churnPrefix,
			rungInFlight, churnDeadLetter, maxPending, maxAttempts, churnTopic, srcInFlight, sessionTimeout))
		nodes[i] = n
	}
	start := func(n *churnNode) {
		n.inc = len(incs)
		incs = append(incs, incarnation{node: n.idx, started: since(), churn: -1})
		reg := kruntime.NewRegistry()
		reg.MustRegister("fn", led.fn(n.inc))
		n.worker = startWorker(t, []string{n.grpc}, reg, workerCapacity, &workerLog)
		n.proc = startProc(t, bin, fmt.Sprintf("kasync run: node %d, incarnation %d", n.idx, n.inc), n.log, "run", "--config", n.cfg)
	}
	for _, n := range nodes {
		start(n)
	}
	for _, n := range nodes {
		waitFor(t, n.proc, time.Minute, fmt.Sprintf("node %d ready", n.idx), func() bool { return ready(n.httpAddr) })
	}

	groups := map[string]string{churnGroup: churnTopic}
	for _, r := range []time.Duration{20 * time.Millisecond, 50 * time.Millisecond, 200 * time.Millisecond} {
		rung := delaystreams.RungTopic(churnPrefix, r)
		groups[rung] = rung // a rung's readers' group is named after its topic
	}
	adm := kafkatest.Admin(t, brokers)
	sampler := startOffsetSampler(t, brokers, groups, churnGroup, began)
	// The events flow over the whole churn and one period after the last stop, so that
	// every stop, the last one too, lands while work is in flight.
	var schedule time.Duration
	for c := range size.cycles {
		schedule += size.every + expectedDown(c) + time.Second // a SIGTERM's drain takes up to 2s
	}
	producer := startPacedProducer(t, brokers, churnTopic, size.events, schedule+size.every)

	// The churn: a period after each restart a random node is stopped, SIGTERM and
	// SIGKILL in turn, its worker drained, and both restarted (see takesOver).
	churns := make([]churnEvent, 0, size.cycles)
	var lastRestart time.Time
	var last *churnNode
	for c := range size.cycles {
		time.Sleep(size.every) // the schedule, not an assertion
		n := nodes[rng.IntN(len(nodes))]
		ev := churnEvent{node: n.idx, how: terminated, at: since()}
		if c%2 == 1 {
			ev.how = killed
		}
		inc := &incs[n.inc]
		inc.how, inc.stopped, inc.churn = ev.how, ev.at, c
		if ev.how == killed {
			n.proc.killed(t)
		} else {
			n.proc.terminated(t, time.Minute)
		}
		ev.stopped = since() - ev.at
		require.NoError(t, n.worker.stop(), "node %d's worker drains and stops", n.idx)
		if takesOver(c) {
			waitFor(t, nil, time.Minute, fmt.Sprintf("the other nodes owning the partitions after stop %d", c+1), func() bool {
				return groupStable(t, adm, churnGroup, churnNodes-1)
			})
		}
		ev.down = since() - ev.at - ev.stopped
		churns = append(churns, ev)
		start(n)
		lastRestart, last = time.Now(), n
	}
	// Recovery: the last restarted node rejoins, every event ends in a success or a
	// dead letter, and every group commits its topic's end.
	waitFor(t, last.proc, time.Minute, "the last restarted node ready", func() bool { return ready(last.httpAddr) })
	rejoined := time.Since(lastRestart)
	producer.wait(t, 2*time.Minute)
	produced := time.Since(lastRestart)
	dl := newDeadLetters(t, brokers, churnDeadLetter)
	succeeded := func(id int) bool { return led.succeeded[id].Load() }
	waitFor(t, last.proc, 3*time.Minute, "a success or a dead letter for every event", func() bool {
		dl.poll(t, 50*time.Millisecond)
		return dl.covered(size.events, led.successes.Load(), succeeded) == int64(size.events)
	})
	allDone := time.Since(lastRestart)
	waitFor(t, last.proc, time.Minute, "every group committed to its topic's end", func() bool { return atEnd(t, adm, groups) })
	recovered := time.Since(lastRestart)
	for _, n := range nodes {
		n.proc.terminated(t, time.Minute)
		require.NoError(t, n.worker.stop(), "node %d's worker drains and stops", n.idx)
	}
	backwards, changes := sampler.result()
	end := kafkatest.EndOffsets(t, brokers, churnTopic)

	// 0 lost, and the dead letters are exactly the planned ones.
	require.Zero(t, led.bad.Load(), "tasks that were no event of this run")
	execs := led.snapshot()
	ran := make(map[[2]int]bool, len(execs))
	for _, e := range execs {
		ran[[2]int{int(e.id), int(e.attempt)}] = true
	}
	dupDead, dead := checkOutcomes(t, size.events, dl, succeeded, func(id, attempt int) bool { return ran[[2]int{id, attempt}] })

	// Checkpoints: never backwards in any group (a commit from a node that lost the
	// partition would take it back to where that node was), and a source commit never
	// passed a record whose first attempt had not started when the sampler saw it.
	require.Empty(t, backwards, "committed offsets that moved backwards")
	started := startedBelow(execs, end)
	for _, c := range changes {
		if runs := started[c.part]; c.offset > 0 && c.offset <= int64(len(runs)) {
			at := runs[c.offset-1]
			require.True(t, at >= 0 && at <= c.at, "the source group committed %d on partition %d at %s, before every record below it had run (by %s)",
				c.offset, c.part, c.at.Round(time.Millisecond), at.Round(time.Millisecond))
		}
	}

	// Duplicates, charged to the stop that caused them.
	dups := attribute(execs, incs, len(churns))
	expected := expectedExecutions(size.events)
	require.Equal(t, int64(len(execs))-expected, dups.total, "every execution beyond the plan is charged")
	var b strings.Builder
	var kills, terms int
	var killDups, termDups int64
	for c, ev := range churns {
		fmt.Fprintf(&b, "\n  %2d. %s node %d at %7s, exited in %6s, down %6s: %5d duplicates", c+1, ev.how, ev.node,
			ev.at.Round(time.Millisecond), ev.stopped.Round(time.Millisecond), ev.down.Round(time.Millisecond), dups.perChurn[c])
		if ev.how == killed {
			kills++
			killDups += dups.perChurn[c]
		} else {
			terms++
			termDups += dups.perChurn[c]
		}
	}
	var nodeLogs []string
	for _, n := range nodes {
		nodeLogs = append(nodeLogs, n.log.Name())
	}
	logged := countInLogs(t, nodeLogs, map[string][]string{
		"ILLEGAL_GENERATION":  {"ILLEGAL_GENERATION"},
		"UNKNOWN_MEMBER_ID":   {"UNKNOWN_MEMBER_ID"},
		"assigned":            {`msg="partitions assigned"`, "tailer=churn "},
		"released":            {`msg="partitions released"`, "tailer=churn ", "graceful=true"},
		"lost":                {`msg="partitions released"`, "tailer=churn ", "graceful=false"},
		"revoke timeouts":     {`msg="revoke timeout`},
		"commit failures":     {`msg="checkpoint commit failed`},
		"final commit failed": {`msg="final checkpoint of released partitions failed`},
	})
	t.Logf("%d events, %d stops (%d SIGKILL, %d SIGTERM), 0 lost; %d executions, %d planned; duplicates: %d after SIGKILLs "+
		"(bound %d each), %d after SIGTERMs, %d in hand-overs between live nodes, %d duplicate dead letters of %d",
		size.events, len(churns), kills, terms, len(execs), expected, killDups, dupBound, termDups, dups.handover, dupDead, dead)
	t.Logf("after the last restart: the node ready (a member of its groups) in %s, the last event acknowledged in %s; "+
		"then every event done in %s more, every group committed its end in %s more", rejoined.Round(time.Millisecond),
		produced.Round(time.Millisecond), (allDone - produced).Round(time.Millisecond), (recovered - produced).Round(time.Millisecond))
	t.Logf("%d offset samples (%d group reads failed), %d source commits seen, 0 backwards; source tailer logs: %d assignments, "+
		"%d graceful releases, %d lost, %d revoke timeouts; commit failures %d (final %d), refused as fencing: ILLEGAL_GENERATION %d, UNKNOWN_MEMBER_ID %d%s",
		sampler.samples.Load(), sampler.failed.Load(), len(changes), logged["assigned"], logged["released"], logged["lost"],
		logged["revoke timeouts"], logged["commit failures"], logged["final commit failed"],
		logged["ILLEGAL_GENERATION"], logged["UNKNOWN_MEMBER_ID"], b.String())
	require.Greater(t, logged["assigned"], len(incs), "partitions moved between the running nodes")
	for c, ev := range churns {
		if ev.how == killed {
			require.LessOrEqual(t, dups.perChurn[c], int64(dupBound), "duplicates after stop %d (SIGKILL) within in flight + max_pending", c+1)
		} else {
			require.Zero(t, dups.perChurn[c], "duplicates after stop %d (SIGTERM, a clean hand-over)", c+1)
		}
	}
	require.Zero(t, dups.handover, "duplicates when partitions moved between live nodes (graceful revocations):\n%s",
		strings.Join(dups.handovers, "\n"))
}

// readyClient asks /readyz; it keeps no connections, which would outlive the nodes.
var readyClient = &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}

// ready reports whether a node's /readyz answers 200.
func ready(httpAddr string) bool {
	resp, err := readyClient.Get("http://" + httpAddr + "/readyz")
	if err != nil {
		return false
	}
	_ = resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}
