package status

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func sampleReport() *Report {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	logs := testLogs()
	r := &Report{Time: now, Source: SourceBrokers, Brokers: []string{"b1:9092", "b2:9092"},
		Tailers: []Tailer{
			NewTailer(TailerSpec{Name: "orders", Group: "kasync.orders", Topic: "src"},
				Group{Exists: true, State: "Stable", Members: 2, Committed: Offsets{"src": {0: 4}}}, logs),
			NewTailer(TailerSpec{Name: "late", Group: "kasync.late", Topic: "missing"}, Group{}, logs),
			NewTailer(IngestSpec("kasync.fn.charge"), Group{}, logs),
		},
		Rungs:      []Rung{NewRung(RungSpec{Topic: "r.30s", Delay: 30 * time.Second}, Group{Exists: true, State: "Stable", Members: 1}, logs)},
		DeadLetter: NewDeadLetter("dlq", logs),
	}
	r.ApplyPeeks(map[PeekTarget]Peeked{
		{"src", 0, 4}:   {Timestamp: now.Add(-time.Hour - 2*time.Second)},
		{"r.30s", 0, 0}: {Due: now.Add(-1500 * time.Millisecond)},
		{"r.30s", 1, 0}: {Due: now.Add(time.Minute)},
	})
	return r
}

func TestWriteTable(t *testing.T) {
	t.Parallel()
	var b bytes.Buffer
	require.NoError(t, WriteTable(&b, sampleReport(), "kasync dlq list --config node.yaml"))
	out := b.String()
	lines := strings.Split(out, "\n")
	find := lineFinder(t, out)
	require.Equal(t, "kasync status: from brokers b1:9092,b2:9092 at 2026-01-02T03:04:05.000Z", lines[0])
	require.Equal(t, "TAILER KIND GROUP STATE MEMBERS TOPIC PARTITION COMMITTED END LAG AGE", find("TAILER "))
	require.Equal(t, "orders source kasync.orders Stable 2 src 0 4 10 6 1h0m2s", find("orders source kasync.orders Stable 2 src 0"))
	require.Equal(t, "orders source kasync.orders Stable 2 src 1 - 2 0 0s", find("orders source kasync.orders Stable 2 src 1"))
	require.Equal(t, "late source kasync.late no group 0 - - - - - -", find("late "))
	require.Equal(t, "kasync.fn.charge ingest kasync.fn.charge no group 0 - - - - - -", find("kasync.fn.charge "))
	require.Equal(t, "! group kasync.late: topic missing does not exist", find("! group"))
	require.Equal(t, "30s r.30s Stable 1 2 8 2026-01-02T03:04:03.500Z 1.5s", find("30s "))
	require.Equal(t, "dlq 2 5", find("dlq "))
	require.Contains(t, out, "counts by function and reason, and the errors: kasync dlq list --config node.yaml")

	b.Reset()
	require.NoError(t, WriteTable(&b, &Report{DeadLetter: DeadLetter{Topic: "d", Error: "topic d does not exist"}}, ""))
	require.Contains(t, b.String(), "(none: no --config tailers")
	require.Contains(t, b.String(), "(none: no rung topics found)")
	require.Contains(t, b.String(), "! dead letter d: topic d does not exist")
}

// TestWriteJSON: the JSON is the Report, field for field, and reads back the same.
func TestWriteJSON(t *testing.T) {
	t.Parallel()
	r := sampleReport()
	var b bytes.Buffer
	require.NoError(t, WriteJSON(&b, r))
	var back Report
	require.NoError(t, json.Unmarshal(b.Bytes(), &back))
	require.Equal(t, *r, back)
	var raw map[string]any
	require.NoError(t, json.Unmarshal(b.Bytes(), &raw))
	tailer := raw["tailers"].([]any)[1].(map[string]any)
	require.Equal(t, "no group", tailer["state"])
	require.Equal(t, false, tailer["ingest"])
	require.Equal(t, true, raw["tailers"].([]any)[2].(map[string]any)["ingest"])
	require.Nil(t, tailer["partitions"], "no partitions is null")
	rung := raw["rungs"].([]any)[0].(map[string]any)
	require.Equal(t, 1.5, rung["lateness_seconds"])
	require.Equal(t, "2026-01-02T03:04:03.5Z", rung["oldest_due"])
}

func TestSeconds(t *testing.T) {
	t.Parallel()
	for in, want := range map[float64]string{0: "0s", 0.0004: "0s", 1.2345: "1.235s", 9.9994: "9.999s", 10.4: "10s", 3725.6: "1h2m6s"} {
		require.Equal(t, want, seconds(&in), "%v", in)
	}
	require.Equal(t, "-", seconds(nil))
}

// lineFinder returns a function that finds the first line of out starting with prefix,
// its runs of spaces (table padding) squeezed to one, and fails the test without one.
func lineFinder(t *testing.T, out string) func(prefix string) string {
	return func(prefix string) string {
		t.Helper()
		for _, l := range strings.Split(out, "\n") {
			if l = strings.Join(strings.Fields(l), " "); strings.HasPrefix(l, prefix) {
				return l
			}
		}
		t.Fatalf("no line starting %q in\n%s", prefix, out)
		return ""
	}
}
