package nodestatus_test

import (
	"encoding/json"
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/kasync/kasync/internal/nodestatus"
	kasyncv1 "github.com/kasync/kasync/proto/kasync/v1"
)

// full is a snapshot with every fact set, in the form a node builds it.
func full() nodestatus.Status {
	at := time.Date(2026, 11, 22, 17, 40, 22, 123456789, time.UTC)
	held, since := at.Add(3*time.Second), at.Add(-time.Minute)
	depth, zero := int64(42), int64(0)
	due, late, notLate := at.Add(-1500*time.Millisecond), 1.5, 0.0
	later := at.Add(time.Hour)
	return nodestatus.Status{
		Taken:    at,
		Roles:    []string{"scheduler", "tailer", "delay"},
		NotReady: []string{"tailer t: not a member of consumer group kasync.t yet"},
		Functions: []nodestatus.Function{
			{Name: "charge", Tenant: "shop", Scheduled: true, Concurrency: 64, Limit: 12, HeldUntil: &held, Running: 3, Queued: 9,
				Succeeded: 1 << 40, Retriable: 7, Fatal: 1,
				Durations:  &nodestatus.Durations{BoundsSeconds: []float64{0.001, 0.5, 30}, Counts: []uint64{1, 2, 3, 4}},
				StormGuard: &nodestatus.StormGuard{Active: true, Since: &since, Outcomes: 100, Failures: 90, Trips: 2}},
			{Name: "idle", Tenant: "default", Concurrency: 1, StormGuard: &nodestatus.StormGuard{}},
		},
		Tailers: []nodestatus.Tailer{
			{Name: "orders", Topic: "orders", Function: "charge", Group: "kasync.orders", Member: true, InFlight: 5,
				Partitions: []nodestatus.Partition{{Partition: 0, LagRecords: 10, LagSeconds: 1.5}, {Partition: 7}}},
			{Name: "kasync.fn.charge", Topic: "kasync.fn.charge", Function: "charge", Group: "kasync.fn.charge", Ingest: true,
				Partitions: []nodestatus.Partition{}},
		},
		Rungs: []nodestatus.Rung{
			{Name: "30s", Topic: "kasync.delay.30s", DelaySeconds: 30, Depth: &depth, Reading: true, Held: 40, InFlight: 2,
				OldestDue: &due, LatenessSeconds: &late},
			{Name: "1m", Topic: "kasync.delay.1m", DelaySeconds: 60, Depth: &zero},
			{Name: "5m", Topic: "kasync.delay.5m", DelaySeconds: 300},
			{Name: "30m", Topic: "kasync.delay.30m", DelaySeconds: 1800, Depth: &depth, OldestDue: &later, LatenessSeconds: &notLate},
		},
		DeadLetters: nodestatus.DeadLetters{
			Topic:  "kasync.dead-letter",
			Counts: []nodestatus.DeadLetterCount{{Function: "", Reason: "unknown-function", Count: 1}, {Function: "charge", Reason: "fatal", Count: 9}},
			Latest: []nodestatus.DeadLetter{{Partition: 1, Offset: 99, Time: at.Add(-time.Second), Function: "charge", Reason: "fatal",
				Error: "declined <b>x</b>", Attempt: 3, Origin: "orders/0/12", Key: "k\uFFFD"}},
		},
		Problems: []string{"delay rungs 5m: depth unknown"},
	}
}

// schedulerOnly is what a node with the scheduler role alone builds: no tailers, no
// rungs, no dead letters read, nothing from Kafka.
func schedulerOnly() nodestatus.Status {
	return nodestatus.Status{Taken: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), Roles: []string{"scheduler"},
		Functions: []nodestatus.Function{{Name: "fn", Tenant: "default", Scheduled: true, Concurrency: 1, Limit: 1,
			Durations: &nodestatus.Durations{BoundsSeconds: []float64{1}, Counts: []uint64{0, 0}}}},
		Tailers: []nodestatus.Tailer{}, Rungs: []nodestatus.Rung{}}
}

// TestProtoRoundTrip: a snapshot survives the status API unchanged, as Go values and
// as the JSON `kasync status --node --json` prints: nil and empty lists, absent and
// zero depths, unread and empty latest dead letters stay apart.
func TestProtoRoundTrip(t *testing.T) {
	t.Parallel()
	noneRead := full()
	noneRead.DeadLetters.Latest = []nodestatus.DeadLetter{} // read, and there were none
	for name, s := range map[string]nodestatus.Status{"full": full(), "scheduler only": schedulerOnly(), "no dead letters": noneRead} {
		wire, err := proto.Marshal(nodestatus.ToProto(s))
		require.NoError(t, err, name)
		var p kasyncv1.NodeStatus
		require.NoError(t, proto.Unmarshal(wire, &p), name)
		got, err := nodestatus.FromProto(&p)
		require.NoError(t, err, name)
		require.Equal(t, s, got, name)
		want, err := json.Marshal(s)
		require.NoError(t, err)
		gotJSON, err := json.Marshal(got)
		require.NoError(t, err)
		require.JSONEq(t, string(want), string(gotJSON), name)
	}
}

// TestToProtoAlwaysMarshals: strings that are not UTF-8 (proto3 refuses them) are
// repaired rather than failing the whole answer.
func TestToProtoAlwaysMarshals(t *testing.T) {
	t.Parallel()
	s := full()
	s.Problems = []string{"broker said \xff\xfe"}
	s.DeadLetters.Latest[0].Error = "bad \xc3"
	p := nodestatus.ToProto(s)
	_, err := proto.Marshal(p)
	require.NoError(t, err)
	require.Equal(t, "broker said \uFFFD", p.GetProblems()[0])
	require.Equal(t, "bad \uFFFD", p.GetDeadLetters().GetLatest()[0].GetError())
}

// TestFromProtoRefusesMalformed: what no node sends is an error naming the field.
func TestFromProtoRefusesMalformed(t *testing.T) {
	t.Parallel()
	bad := nodestatus.ToProto(full())
	bad.Taken = &timestamppb.Timestamp{Seconds: math.MaxInt64}
	bad.Functions[0].Durations.Counts = bad.Functions[0].Durations.Counts[:1]
	bad.Rungs[0].OldestDue = &timestamppb.Timestamp{Nanos: -1}
	bad.Rungs[3].OldestDue = nil // its lateness stays
	_, err := nodestatus.FromProto(bad)
	require.ErrorContains(t, err, "taken:")
	require.ErrorContains(t, err, "functions[0].durations: 1 counts for 3 bounds")
	require.ErrorContains(t, err, "rungs[0].oldest_due:")
	require.ErrorContains(t, err, "rungs[3]: oldest_due and lateness_seconds come together")
}

// FuzzFromProto: whatever bytes arrive as a NodeStatus, decoding never panics, and
// what it accepts is in the node's form: encoding and decoding it again changes
// nothing.
func FuzzFromProto(f *testing.F) {
	for _, s := range []nodestatus.Status{full(), schedulerOnly(), {}} {
		b, err := proto.Marshal(nodestatus.ToProto(s))
		require.NoError(f, err)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var p kasyncv1.NodeStatus
		if proto.Unmarshal(b, &p) != nil {
			return
		}
		s, err := nodestatus.FromProto(&p)
		if err != nil {
			return
		}
		again, err := nodestatus.FromProto(nodestatus.ToProto(s))
		require.NoError(t, err)
		det := proto.MarshalOptions{Deterministic: true}
		want, err := det.Marshal(nodestatus.ToProto(s))
		require.NoError(t, err)
		got, err := det.Marshal(nodestatus.ToProto(again))
		require.NoError(t, err)
		require.Equal(t, want, got) // bytes, so that NaN survives the comparison
	})
}
