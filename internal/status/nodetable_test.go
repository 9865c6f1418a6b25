package status

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kasync/kasync/internal/nodestatus"
)

func sampleNode() *nodestatus.Status {
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	since, held := at.Add(-time.Minute), at.Add(2*time.Second)
	depth := int64(42)
	due, late := at.Add(-1500*time.Millisecond), 1.5
	return &nodestatus.Status{
		Taken: at, Roles: []string{"scheduler", "tailer", "delay"},
		NotReady: []string{"tailer t: not a member of consumer group kasync.t yet"},
		Functions: []nodestatus.Function{
			{Name: "charge", Tenant: "default", Scheduled: true, Concurrency: 64, Limit: 12, Running: 3, Queued: 7, HeldUntil: &held,
				Succeeded: 1000, Retriable: 20, Fatal: 5, StormGuard: &nodestatus.StormGuard{Active: true, Since: &since, Outcomes: 100, Failures: 90, Trips: 2}},
			{Name: "remote", Tenant: "default", Concurrency: 8},
		},
		Tailers: []nodestatus.Tailer{
			{Name: "orders", Topic: "orders", Function: "charge", Group: "kasync.orders", Member: true, InFlight: 9,
				Partitions: []nodestatus.Partition{{Partition: 0, LagRecords: 123, LagSeconds: 4.5}, {Partition: 1}}},
			{Name: "kasync.fn.charge", Topic: "kasync.fn.charge", Function: "charge", Group: "kasync.fn.charge", Ingest: true,
				Partitions: []nodestatus.Partition{}},
		},
		Rungs: []nodestatus.Rung{
			{Name: "30s", Topic: "kasync.delay.30s", DelaySeconds: 30, Depth: &depth, Reading: true, Held: 40, InFlight: 41,
				OldestDue: &due, LatenessSeconds: &late},
			{Name: "1m", Topic: "kasync.delay.1m", DelaySeconds: 60},
		},
		DeadLetters: nodestatus.DeadLetters{Topic: "kasync.dead-letter",
			Counts: []nodestatus.DeadLetterCount{{Function: "charge", Reason: "fatal", Count: 5}, {Reason: "unknown-function", Count: 1}},
			Latest: []nodestatus.DeadLetter{{Partition: 1, Offset: 17, Time: at.Add(-time.Second), Function: "charge", Reason: "fatal",
				Error: "card\ndeclined\t\x1b[31mred\x1b[0m " + strings.Repeat("x", 200), Attempt: 3, Origin: "orders/0/99", Key: "k1"}},
		},
		Problems: []string{"delay rungs 1m: depth unknown: the broker did not answer\nin time"},
	}
}

// TestWriteNodeTable: a row per function, per owned partition of each tailer (the
// ingest tailer marked), per rung and per dead-letter count and latest record; unknown
// facts are "-", the node's text is one line without control characters, and what
// is not ready or could not be read closes the output.
func TestWriteNodeTable(t *testing.T) {
	t.Parallel()
	var b bytes.Buffer
	require.NoError(t, WriteNodeTable(&b, "127.0.0.1:7070", sampleNode()))
	out := b.String()
	lines := strings.Split(out, "\n")
	find := lineFinder(t, out)
	require.Equal(t, "kasync status: from node 127.0.0.1:7070 (roles: scheduler, tailer, delay) at 2026-01-02T03:04:05.000Z", lines[0])
	require.Equal(t, "charge default 12/64 3 7 1000 20 5 ON since 2026-01-02T03:03:05.000Z, 90/100 failed, 2 trips", find("charge default"))
	require.Equal(t, "remote default -/8 - - - - - -", find("remote "), "no scheduler here: no counters")
	require.Equal(t, "! function charge: new starts held until 2026-01-02T03:04:07.000Z (its downstream asked to retry later)", find("! function"))
	require.Equal(t, "TAILER KIND TOPIC FUNCTION GROUP MEMBER IN FLIGHT PARTITION LAG AGE", find("TAILER "))
	require.Equal(t, "orders source orders charge kasync.orders yes 9 0 123 4.5s", find("orders source orders charge kasync.orders yes 9 0"))
	require.Equal(t, "orders source orders charge kasync.orders yes 9 1 0 0s", find("orders source orders charge kasync.orders yes 9 1"))
	require.Equal(t, "kasync.fn.charge ingest kasync.fn.charge charge kasync.fn.charge no 0 - - -", find("kasync.fn.charge "))
	require.Equal(t, "RUNG TOPIC WAITING OLDEST DUE LATE READING HELD IN FLIGHT", find("RUNG "))
	require.Equal(t, "30s kasync.delay.30s 42 2026-01-02T03:04:03.500Z 1.5s yes 40 41", find("30s "))
	require.Equal(t, "1m kasync.delay.1m - - - no - -", find("1m "), "depth and oldest due unknown are not 0")
	require.Equal(t, "DEAD LETTERS kasync.dead-letter (written by this node since it started)", find("DEAD LETTERS"))
	require.Equal(t, "charge fatal 5", find("charge fatal"))
	require.Equal(t, "- unknown-function 1", find("- unknown-function"))
	latest := find("2026-01-02T03:04:04.000Z charge fatal 3 orders/0/99 k1 card declined")
	require.NotContains(t, out, "\x1b", "no escape reaches the terminal")
	require.True(t, strings.HasSuffix(latest, "…"), "a long error is cut: %s", latest)
	require.Equal(t, "! not ready: tailer t: not a member of consumer group kasync.t yet", find("! not ready"))
	require.Equal(t, "! delay rungs 1m: depth unknown: the broker did not answer in time", find("! delay rungs"))

	// A node with nothing: a note in each empty table; unread dead letters are unknown.
	b.Reset()
	require.NoError(t, WriteNodeTable(&b, "n:1", &nodestatus.Status{Roles: []string{"scheduler"}}))
	for _, want := range []string{"(none configured)", "(none on this node: it runs no tailer role)", "(none: this node reads no Kafka)",
		"(unknown: they could not be read; see the problems below)"} {
		require.Contains(t, b.String(), want)
	}
	b.Reset()
	s := sampleNode()
	s.DeadLetters.Latest = []nodestatus.DeadLetter{}
	require.NoError(t, WriteNodeTable(&b, "n:1", s))
	require.NotContains(t, b.String(), "(unknown: they could not be read")
}

// TestWriteNodeJSON: the JSON is the node's snapshot, as /status.json serves it.
func TestWriteNodeJSON(t *testing.T) {
	t.Parallel()
	var b bytes.Buffer
	require.NoError(t, WriteNodeJSON(&b, sampleNode()))
	var back nodestatus.Status
	require.NoError(t, json.Unmarshal(b.Bytes(), &back))
	require.Equal(t, *sampleNode(), back)
}
