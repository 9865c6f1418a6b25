package tailer_test

// Broker fault tests (issue 7, "Broker faults"): the broker fails produce requests to
// the rungs and the dead letter, fetches, offset commits, or drops connections, for a
// while, with the real protocol (kfake's Fault and ControlKey). Each test proves, by the
// oracle in faults_test.go, that no sampled checkpoint — group commit or Pebble — ever
// passed a record whose outcome was not durable, and that once the faults stop every
// record reaches its outcome by itself: success, or the dead letter, and every group
// commits its end. Short by default; KASYNC_LONG_FAULTS=1 (make test/faults-long) runs
// the long size.

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kasync/kasync/checkpoint"
	"github.com/kasync/kasync/delaystreams"
	"github.com/kasync/kasync/internal/kafkatest"
	"github.com/kasync/kasync/scheduler"
)

// faultGate decides, per request (or per entity of one), whether a fault answers it:
// while on, with probability p.
type faultGate struct {
	on atomic.Bool
	p  float64
}

func newFaultGate(p float64) *faultGate {
	g := &faultGate{p: p}
	g.on.Store(true)
	return g
}

// when is a kfake.Fault's When: it runs on the cluster's goroutine and must not block.
func (g *faultGate) when(kmsg.Request) bool { return g.on.Load() && rand.Float64() < g.p }

func (s *faultScenario) logFigures(name string, fig faultFigures, faults string) {
	s.t.Logf("%s: %d records, %d partitions; faults injected: %s; %d runs, %d duplicates, %d dead letters; "+
		"%d checkpoint samples checked, none passed an outcome not yet durable; all done %s after the faults stopped",
		name, fig.records, s.size.partitions, faults, fig.runs, fig.duplicates, fig.deadLetters, fig.samples,
		fig.recovery.Round(time.Millisecond))
}

// TestBrokerFaultsProduceToRungsAndDeadLetter: while produce requests to the rung and
// dead-letter topics fail — retriable errors franz-go retries itself
// (NOT_ENOUGH_REPLICAS; REQUEST_TIMED_OUT, answered after the append, as a broker whose
// replicas are slow does) and a non-retriable one that reaches the tailer's outbox
// (POLICY_VIOLATION) — no checkpoint passes a failed record before its rung or dead
// letter is acknowledged; once they stop, every record ends in success or the dead
// letter by itself.
func TestBrokerFaultsProduceToRungsAndDeadLetter(t *testing.T) {
	t.Parallel()
	s := newFaultScenario(t)
	rung0 := delaystreams.RungTopic(s.f.prefix, s.f.rungs[0])
	rung1 := delaystreams.RungTopic(s.f.prefix, s.f.rungs[1])
	produce := []kmsg.Key{kmsg.Produce}
	retriable, refusing := newFaultGate(0.5), newFaultGate(1)
	// The first requests are refused outright, so that the outbox's own retry runs too;
	// then a share of them fail with errors the client retries.
	refused := s.cluster.Fault(
		kfake.Fault{Keys: produce, Topic: rung0, Err: kerr.PolicyViolation, Count: 2, When: refusing.when},
		kfake.Fault{Keys: produce, Topic: s.f.dlqTopic, Err: kerr.PolicyViolation, Count: 2, When: refusing.when},
	)
	retried := s.cluster.Fault(
		kfake.Fault{Keys: produce, Topic: rung0, Err: kerr.NotEnoughReplicas, Count: -1, When: retriable.when},
		kfake.Fault{Keys: produce, Topic: rung1, Err: kerr.RequestTimedOut, Count: -1, When: retriable.when},
		kfake.Fault{Keys: produce, Topic: s.f.dlqTopic, Err: kerr.NotEnoughReplicas, Count: -1, When: retriable.when},
	)
	s.start()
	stopped := s.holdFaults(func() int {
		if refused.Hits() == 0 {
			return 0 // not yet: both kinds must have happened
		}
		return retried.Hits()
	}, max(1, s.size.minHits/10), func() {
		retriable.on.Store(false)
		refusing.on.Store(false)
		retried.Remove()
		refused.Remove()
	})
	fig := s.finish(stopped)
	require.Positive(t, retried.Hits())
	require.Positive(t, refused.Hits())
	s.logFigures("produce faults", fig, fmt.Sprintf("%d retriable produce errors, %d refused produces", retried.Hits(), refused.Hits()))
}

// TestBrokerFaultsFetch: while fetches of the source and rung partitions fail
// (NOT_LEADER_FOR_PARTITION, which sends the client back to metadata, and
// UNKNOWN_SERVER_ERROR, which it reports and retries), nothing is lost and nothing
// stalls: once they stop, every record reaches its outcome.
func TestBrokerFaultsFetch(t *testing.T) {
	t.Parallel()
	s := newFaultScenario(t)
	fetch := []kmsg.Key{kmsg.Fetch}
	gate := newFaultGate(0.8)
	faults := s.cluster.Fault(
		kfake.Fault{Keys: fetch, Topic: s.f.topic, Partitions: []int32{0}, Err: kerr.NotLeaderForPartition, Count: -1, When: gate.when},
		kfake.Fault{Keys: fetch, Topic: s.f.topic, Err: kerr.UnknownServerError, Count: -1, When: gate.when},
		kfake.Fault{Keys: fetch, Topic: delaystreams.RungTopic(s.f.prefix, s.f.rungs[0]), Err: kerr.NotLeaderForPartition, Count: -1, When: gate.when},
		kfake.Fault{Keys: fetch, Topic: delaystreams.RungTopic(s.f.prefix, s.f.rungs[1]), Err: kerr.UnknownServerError, Count: -1, When: gate.when},
	)
	s.start()
	stopped := s.holdFaults(faults.Hits, s.size.minHits, func() {
		gate.on.Store(false)
		faults.Remove()
	})
	fig := s.finish(stopped)
	require.Positive(t, faults.Hits())
	s.logFigures("fetch faults", fig, fmt.Sprintf("%d failed partition fetches", faults.Hits()))
}

// TestBrokerFaultsOffsetCommit: while the group coordinator fails offset commits
// (COORDINATOR_NOT_AVAILABLE and NOT_COORDINATOR, which franz-go answers by finding the
// coordinator again, and REQUEST_TIMED_OUT after applying the commit, which reaches
// the tailer), records keep running and Pebble keeps checkpointing (a write waits for
// the group at most RevokeTimeout); no commit passes a record not done, and once the
// faults stop the commits reach the end. The figures show how far Pebble got ahead of
// the group meanwhile.
func TestBrokerFaultsOffsetCommit(t *testing.T) {
	t.Parallel()
	s := newFaultScenario(t)
	commit := []kmsg.Key{kmsg.OffsetCommit}
	gate := newFaultGate(0.8)
	srcGroup := s.f.group()
	faults := s.cluster.Fault(
		kfake.Fault{Keys: commit, Group: srcGroup, Partitions: []int32{0}, Err: kerr.RequestTimedOut, Count: -1, When: gate.when},
		kfake.Fault{Keys: commit, Group: srcGroup, Err: kerr.CoordinatorNotAvailable, Count: -1, When: gate.when},
		kfake.Fault{Keys: commit, Group: delaystreams.RungTopic(s.f.prefix, s.f.rungs[0]), Err: kerr.NotCoordinator, Count: -1, When: gate.when},
		kfake.Fault{Keys: commit, Group: delaystreams.RungTopic(s.f.prefix, s.f.rungs[1]), Err: kerr.RequestTimedOut, Count: -1, When: gate.when},
	)
	s.start()
	// Refused commits come slowly: franz-go backs off before it asks again.
	stopped := s.holdFaults(faults.Hits, max(5, s.size.minHits/5), func() {
		gate.on.Store(false)
		faults.Remove()
	})
	fig := s.finish(stopped)
	require.Positive(t, faults.Hits())
	lead := s.maxPebbleLead(stopped)
	s.logFigures("offset commit faults", fig, fmt.Sprintf("%d failed commits (Pebble up to %d records ahead of the group meanwhile)", faults.Hits(), lead))
}

// errDropConnection makes kfake close the connection a controlled request came on.
var errDropConnection = errors.New("kafkafaults: connection dropped on purpose")

// TestBrokerFaultsDroppedConnections: while the broker closes the connection of a share
// of produce, fetch, offset commit and heartbeat requests (a kfake control that
// handles the request with an error), the clients reconnect by themselves; no
// checkpoint passes a record not done, and every record reaches its outcome.
func TestBrokerFaultsDroppedConnections(t *testing.T) {
	t.Parallel()
	s := newFaultScenario(t)
	gate := newFaultGate(0.1)
	var dropped atomic.Int64
	for _, key := range []kmsg.Key{kmsg.Produce, kmsg.Fetch, kmsg.OffsetCommit, kmsg.Heartbeat} {
		s.cluster.ControlKey(int16(key), func(req kmsg.Request) (kmsg.Response, error, bool) {
			if !gate.when(req) {
				return nil, nil, false // the broker answers it as usual
			}
			s.cluster.KeepControl()
			dropped.Add(1)
			return nil, errDropConnection, true
		})
	}
	s.start()
	stopped := s.holdFaults(func() int { return int(dropped.Load()) }, s.size.minHits, func() { gate.on.Store(false) })
	fig := s.finish(stopped)
	require.Positive(t, dropped.Load())
	s.logFigures("dropped connections", fig, fmt.Sprintf("%d dropped connections", dropped.Load()))
}

// TestBrokerFaultsStopWhileCommitsFail: a tailer whose group commits all fail (the
// coordinator answers COORDINATOR_NOT_AVAILABLE, which franz-go keeps retrying) still
// stops promptly: its drain is bounded, and nothing it ran is lost — Pebble has it.
func TestBrokerFaultsStopWhileCommitsFail(t *testing.T) {
	t.Parallel()
	const n = 50
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.Ports(0))
	require.NoError(t, err)
	t.Cleanup(cluster.Close)
	f := newFixtureOn(t, cluster.ListenAddrs(), 1)
	kafkatest.ProduceN(t, f.brokers, f.topic, n, valueRecord(f.topic))
	faults := cluster.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.OffsetCommit}, Group: f.group(), Err: kerr.CoordinatorNotAvailable, Count: -1})
	defer faults.Remove()
	var runs executions
	exec := func(_ context.Context, w *scheduler.Workload, _ time.Duration) scheduler.Outcome {
		runs.add(string(w.Payload))
		return scheduler.Success()
	}
	store := newStore(t, vfs.NewMem())
	cfg := f.config("stuck-commits", localScheduler(t, exec, 0), store)
	r := start(t, cfg)
	key := checkpoint.Key{Group: cfg.Group, Topic: f.topic, Partition: 0}
	require.Eventually(t, func() bool {
		st, ok, err := store.Load(context.Background(), key)
		return err == nil && ok && st.Watermark == n && faults.Hits() > 0
	}, 30*time.Second, 5*time.Millisecond, "every record is checkpointed in Pebble while the group refuses commits")
	began := time.Now()
	r.stop(t)
	took := time.Since(began)
	t.Logf("stop with every group commit failing: %d commits refused, stopped in %s", faults.Hits(), took.Round(time.Millisecond))
	require.Less(t, took, 3*cfg.RevokeTimeout+time.Second, "the drain is bounded by RevokeTimeout, not by franz-go's retries")
	require.Empty(t, kafkatest.CommittedOffsets(t, f.brokers, cfg.Group, f.topic), "the group never took a commit")
}
