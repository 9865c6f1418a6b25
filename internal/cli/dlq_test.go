package cli

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kasync/kasync/delaystreams"
	"github.com/kasync/kasync/internal/config"
	"github.com/kasync/kasync/internal/dlq"
	"github.com/kasync/kasync/internal/dlq/dlqtest"
	"github.com/kasync/kasync/internal/kafkatest"
)

// dlqBundle is a broker with a dead-letter topic and a source topic.
type dlqBundle struct {
	brokers    []string
	deadLetter string
	source     string
}

func newDLQBundle(t *testing.T, partitions int32) *dlqBundle {
	t.Helper()
	b := &dlqBundle{brokers: kafkatest.Brokers(t)}
	b.deadLetter = kafkatest.NewTopic(t, b.brokers, partitions)
	b.source = kafkatest.NewTopic(t, b.brokers, 2)
	return b
}

// dlq runs `kasync dlq SUB --brokers ... --topic DEADLETTER args...`.
func (b *dlqBundle) dlq(sub string, args ...string) (int, string, string) {
	full := append([]string{"dlq", sub, "--brokers", strings.Join(b.brokers, ","), "--topic", b.deadLetter}, args...)
	return kasync(context.Background(), "", full...)
}

func (b *dlqBundle) letter(i int, function, reason, errText string, age time.Duration) dlqtest.Letter {
	return dlqtest.Letter{
		Function: function, Reason: reason, Error: errText, Time: time.Now().Add(-age),
		Origin: delaystreams.Origin{Topic: b.source, Partition: 1, Offset: int64(i)},
		Key:    fmt.Appendf(nil, "key-%d", i), Value: fmt.Appendf(nil, "value-%d", i),
		Headers: []kgo.RecordHeader{{Key: "trace", Value: fmt.Appendf(nil, "trace-%d", i)}},
	}
}

// rows returns the data rows of a `dlq list` table.
func rows(out string) []string {
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	if len(lines) == 0 || !strings.HasPrefix(lines[0], "POS") {
		return nil
	}
	return lines[1:]
}

func (b *dlqBundle) ledgerExists(t *testing.T) bool {
	t.Helper()
	details, err := kafkatest.Admin(t, b.brokers).ListTopics(t.Context(), dlq.LedgerTopic(b.deadLetter))
	require.NoError(t, err)
	d, ok := details[dlq.LedgerTopic(b.deadLetter)]
	return ok && d.Err == nil
}

// TestDLQRedriveDryRunChangesNothing: a dry run prints what it would redrive and
// produces nothing: the source and dead-letter topics keep their end offsets and no
// ledger topic is created.
func TestDLQRedriveDryRunChangesNothing(t *testing.T) {
	t.Parallel()
	b := newDLQBundle(t, 3)
	dlqtest.Write(t, b.brokers, b.deadLetter,
		b.letter(0, "charge", "exhausted", "boom", time.Minute),
		b.letter(1, "charge", "fatal", "declined", time.Minute),
		b.letter(2, "refund", "exhausted", "boom", time.Minute))
	sourceEnds := kafkatest.EndOffsets(t, b.brokers, b.source)
	deadEnds := kafkatest.EndOffsets(t, b.brokers, b.deadLetter)

	code, out, errOut := b.dlq("redrive", "--function", "charge", "--dry-run")
	require.Equal(t, ExitOK, code, errOut)
	require.Equal(t, 2, strings.Count(out, "would redrive "+b.deadLetter+"/"), out)
	require.Contains(t, out, "to "+b.source)
	require.Contains(t, out, "dry run: would redrive 2 records")
	require.Contains(t, out, "nothing was produced")

	require.Equal(t, sourceEnds, kafkatest.EndOffsets(t, b.brokers, b.source), "the source topic is unchanged")
	require.Equal(t, deadEnds, kafkatest.EndOffsets(t, b.brokers, b.deadLetter), "the dead-letter topic is unchanged")
	require.False(t, b.ledgerExists(t), "a dry run creates no ledger")
}

// TestDLQRedriveOnceThenNothing: a redrive produces every selected record once more to
// its source topic, with its key, value and own headers, kasync's retry headers left
// out and kasync-redriven-from added; the same redrive again replays nothing.
func TestDLQRedriveOnceThenNothing(t *testing.T) {
	t.Parallel()
	b := newDLQBundle(t, 3)
	var letters []dlqtest.Letter
	for i := range 6 {
		fn := "charge"
		if i%3 == 2 {
			fn = "refund"
		}
		letters = append(letters, b.letter(i, fn, "exhausted", "boom", time.Minute))
	}
	dlqtest.Write(t, b.brokers, b.deadLetter, letters...)

	code, out, errOut := b.dlq("redrive", "--function", "charge")
	require.Equal(t, ExitOK, code, errOut)
	require.Contains(t, out, "redrove 4 of 4 records to "+b.source)
	require.Contains(t, errOut, "redriven 4 of 4 records (100%)", "plain progress lines off a terminal")
	require.True(t, b.ledgerExists(t))

	got := map[string]*kgo.Record{}
	for _, r := range dlqtest.ReadAll(t, b.brokers, b.source) {
		require.NotContains(t, got, string(r.Key), "produced twice")
		got[string(r.Key)] = r
	}
	require.Len(t, got, 4)
	for _, i := range []int{0, 1, 3, 4} {
		r := got[fmt.Sprintf("key-%d", i)]
		require.NotNil(t, r, "key-%d", i)
		require.Equal(t, fmt.Sprintf("value-%d", i), string(r.Value))
		require.Len(t, r.Headers, 2, "no kasync retry headers: %v", r.Headers)
		require.Equal(t, kgo.RecordHeader{Key: "trace", Value: fmt.Appendf(nil, "trace-%d", i)}, r.Headers[0])
		require.Equal(t, dlq.HeaderRedrivenFrom, r.Headers[1].Key)
		require.True(t, strings.HasPrefix(string(r.Headers[1].Value), b.deadLetter+"/"), "%s", r.Headers[1].Value)
	}
	ends := kafkatest.EndOffsets(t, b.brokers, b.source)

	code, out, errOut = b.dlq("redrive", "--function", "charge")
	require.Equal(t, ExitOK, code, errOut)
	require.Contains(t, out, "nothing to redrive")
	require.Contains(t, out, "4 already redriven")
	require.Equal(t, ends, kafkatest.EndOffsets(t, b.brokers, b.source), "the second run replays nothing")

	code, out, errOut = b.dlq("list", "--function", "charge")
	require.Equal(t, ExitOK, code, errOut)
	for _, row := range rows(out) {
		require.Contains(t, row, " yes ", "list shows what was redriven: %s", row)
	}

	// The rest, to the function's ingest topic, then nothing is left.
	ingest := kafkatest.NewTopic(t, b.brokers, 1)
	code, out, errOut = b.dlq("redrive", "--all", "--to", ingest)
	require.Equal(t, ExitOK, code, errOut)
	require.Contains(t, out, "redrove 2 of 2 records to "+ingest)
	require.Len(t, dlqtest.ReadAll(t, b.brokers, ingest), 2)
	code, out, _ = b.dlq("redrive", "--all", "--dry-run")
	require.Equal(t, ExitOK, code)
	require.Contains(t, out, "would redrive 0 records")
}

// TestDLQListFilters: list selects by function, reason, time range and error text.
func TestDLQListFilters(t *testing.T) {
	t.Parallel()
	b := newDLQBundle(t, 2)
	dlqtest.Write(t, b.brokers, b.deadLetter,
		b.letter(0, "charge", "exhausted", "HTTP 503: Service Unavailable", 3*time.Hour),
		b.letter(1, "charge", "fatal", "card declined", 90*time.Minute),
		b.letter(2, "refund", "exhausted", "context deadline exceeded", 30*time.Minute),
		b.letter(3, "refund", "unknown-function", "no such function", 5*time.Minute))
	t0 := time.Now()
	for _, c := range []struct {
		args    []string
		want    []string // a substring of each row, in order (oldest first)
		matched int      // the matches reported; default len(want)
	}{
		{nil, []string{"HTTP 503", "card declined", "deadline", "no such function"}, 0},
		{[]string{"--function", "refund"}, []string{"deadline", "no such function"}, 0},
		{[]string{"--function", "charge,refund", "--reason", "exhausted"}, []string{"HTTP 503", "deadline"}, 0},
		{[]string{"--reason", "fatal,unknown-function"}, []string{"card declined", "no such function"}, 0},
		{[]string{"--since", "2h"}, []string{"card declined", "deadline", "no such function"}, 0},
		{[]string{"--until", t0.Add(-time.Hour).UTC().Format(time.RFC3339)}, []string{"HTTP 503", "card declined"}, 0},
		{[]string{"--since", "2h", "--until", "1h"}, []string{"card declined"}, 0},
		{[]string{"--error", "SERVICE unavailable"}, []string{"HTTP 503"}, 0},
		{[]string{"--function", "nobody"}, nil, 0},
		{[]string{"--limit", "2"}, []string{"deadline", "no such function"}, 4},
	} {
		code, out, errOut := b.dlq("list", c.args...)
		require.Equal(t, ExitOK, code, "%v: %s", c.args, errOut)
		got := rows(out)
		require.Len(t, got, len(c.want), "%v:\n%s", c.args, out)
		for i, w := range c.want {
			require.Contains(t, got[i], w, "%v", c.args)
		}
		matched := c.matched
		if matched == 0 {
			matched = len(c.want)
		}
		require.Contains(t, errOut, fmt.Sprintf("%d of 4 dead letters", matched), "%v", c.args)
	}
	code, out, errOut := b.dlq("list", "--function", "charge", "--reason", "fatal")
	require.Equal(t, ExitOK, code, errOut)
	row := rows(out)[0]
	for _, col := range []string{"charge", "fatal", " 5 ", fmt.Sprintf("%s/1/1", b.source), "card declined"} {
		require.Contains(t, row, col, "the table shows function, reason, attempt, origin and error")
	}
}

// TestDLQRedriveToMissingTopic: a target topic that does not exist is a usage error,
// exit 2, with the flag and the fix, and nothing is produced.
func TestDLQRedriveToMissingTopic(t *testing.T) {
	t.Parallel()
	b := newDLQBundle(t, 2)
	gone := b.letter(9, "charge", "exhausted", "boom", time.Minute)
	gone.Origin.Topic = "deleted-source"
	dlqtest.Write(t, b.brokers, b.deadLetter, b.letter(0, "charge", "exhausted", "boom", time.Minute), gone)
	deadEnds := kafkatest.EndOffsets(t, b.brokers, b.deadLetter)
	sourceEnds := kafkatest.EndOffsets(t, b.brokers, b.source)

	code, _, errOut := b.dlq("redrive", "--all", "--to", "kasync.fn.nope")
	require.Equal(t, ExitUsage, code, errOut)
	require.Contains(t, errOut, "--to kasync.fn.nope: the topic does not exist")
	require.Contains(t, errOut, "create it first")

	code, _, errOut = b.dlq("redrive", "--function", "charge")
	require.Equal(t, ExitUsage, code, errOut)
	require.Contains(t, errOut, "source topic deleted-source")
	require.Contains(t, errOut, "--to TOPIC")

	require.False(t, b.ledgerExists(t), "nothing was produced, not even the ledger")
	require.Equal(t, sourceEnds, kafkatest.EndOffsets(t, b.brokers, b.source))
	require.Equal(t, deadEnds, kafkatest.EndOffsets(t, b.brokers, b.deadLetter))
}

// TestDLQShowPrintsAllHeaders: show prints every header of one dead letter, its key
// and its value (binary values safely), reached by --config too.
func TestDLQShowPrintsAllHeaders(t *testing.T) {
	t.Parallel()
	b := newDLQBundle(t, 1)
	text := b.letter(0, "charge", "fatal", "card declined", time.Minute)
	binary := b.letter(1, "charge", "fatal", "bad", time.Minute)
	binary.Value = []byte{0xff, 0xfe, 0x00}
	binary.Priority = 3
	dlqtest.Write(t, b.brokers, b.deadLetter, text, binary)

	code, out, errOut := b.dlq("show", "0/0")
	require.Equal(t, ExitOK, code, errOut)
	for _, want := range []string{
		"record:    " + b.deadLetter + "/0/0", "key:       key-0", "value:     7 bytes\nvalue-0",
		"trace: trace-0", "kasync-function: charge", "kasync-attempt: 5", "kasync-reason: fatal",
		"kasync-origin: " + b.source + "/1/0", "kasync-first-failure: 1700000000000",
		"kasync-error: card declined", "redriven:  no",
	} {
		require.Contains(t, out, want)
	}
	require.Contains(t, out, "headers:   7\n", "every header is shown")

	yaml := strings.NewReplacer(
		`brokers: ["127.0.0.1:9092"]`, `brokers: ["`+strings.Join(b.brokers, `","`)+`"]`,
		"topic: kasync.dead-letter", "topic: "+b.deadLetter,
	).Replace(config.DemoYAML)
	cfg := writeFile(t, "node.yaml", yaml)
	code, out, errOut = kasync(context.Background(), "", "dlq", "show", "--config", cfg, "0/1")
	require.Equal(t, ExitOK, code, errOut)
	require.Contains(t, out, "(3 bytes, not UTF-8; base64) //4A")
	require.Contains(t, out, "kasync-priority: 3")

	code, _, errOut = b.dlq("show", "0/5")
	require.Equal(t, ExitUsage, code)
	require.Contains(t, errOut, "offset 5 is not in partition 0")
	code, _, errOut = b.dlq("show", "4/0")
	require.Equal(t, ExitUsage, code)
	require.Contains(t, errOut, "partition 4 does not exist")
}

func TestDLQUsageErrors(t *testing.T) {
	t.Parallel()
	b := newDLQBundle(t, 1)
	dlqtest.Write(t, b.brokers, b.deadLetter,
		b.letter(0, "charge", "exhausted", "boom", time.Minute),
		b.letter(1, "refund", "exhausted", "boom", time.Minute))
	cfg := writeFile(t, "node.yaml", config.DemoYAML)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"dlq"}, "list|show|redrive"},
		{[]string{"dlq", "purge"}, `unknown subcommand "purge"`},
		{[]string{"dlq", "list", "--config", cfg, "--brokers", "h:1"}, "--config conflicts with --brokers and --topic"},
		{[]string{"dlq", "list", "--config", cfg, "--topic", "t"}, "--config conflicts"},
		{[]string{"dlq", "list", "--since", "yesterday"}, `--since "yesterday" is neither an RFC 3339 time`},
		{[]string{"dlq", "list", "--until", "2026-13-01"}, "--until"},
		{[]string{"dlq", "list", "--since", "1h", "--until", "2h"}, "--since"},
		{[]string{"dlq", "list", "--limit", "-1"}, "--limit -1"},
		{[]string{"dlq", "redrive"}, "or pass --all"},
		{[]string{"dlq", "redrive", "--all", "--function", "charge"}, "--all conflicts with"},
		{[]string{"dlq", "redrive", "--all", "--rate", "-5"}, "--rate -5"},
		{[]string{"dlq", "redrive", "--all", "--to", ""}, "--to"},
		{[]string{"dlq", "show"}, "PARTITION/OFFSET"},
		{[]string{"dlq", "show", "zero"}, `"zero": want PARTITION/OFFSET`},
		{[]string{"dlq", "show", "0/0", "extra"}, `unexpected argument "extra"`},
		{[]string{"dlq", "list", "--brokers", ","}, "--brokers is empty"},
	} {
		code, _, errOut := kasync(context.Background(), "", c.args...)
		require.Equal(t, ExitUsage, code, "%v: %s", c.args, errOut)
		require.Contains(t, errOut, c.want, "%v", c.args)
	}
	// Needing the broker: one --to topic for two functions; the dead-letter topic itself.
	code, _, errOut := b.dlq("redrive", "--all", "--to", b.source)
	require.Equal(t, ExitUsage, code, errOut)
	require.Contains(t, errOut, "2 functions (charge, refund)")
	code, _, errOut = b.dlq("redrive", "--all", "--to", b.deadLetter)
	require.Equal(t, ExitUsage, code, errOut)
	require.Contains(t, errOut, "is the dead-letter topic")
	code, _, errOut = kasync(context.Background(), "", "dlq", "list", "--brokers", strings.Join(b.brokers, ","), "--topic", "no-such-dlq")
	require.Equal(t, ExitUsage, code, errOut)
	require.Contains(t, errOut, "dead-letter topic no-such-dlq does not exist")
	require.False(t, b.ledgerExists(t))

	code, _, _ = kasync(context.Background(), "", "dlq", "help")
	require.Equal(t, ExitOK, code)
	_, out, _ := kasync(context.Background(), "", "help")
	require.Contains(t, out, "dlq ")
}
