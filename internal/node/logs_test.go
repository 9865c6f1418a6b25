package node_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kasync/kasync/internal/config"
	"github.com/kasync/kasync/internal/kafkatest"
	"github.com/kasync/kasync/internal/node"
	"github.com/kasync/kasync/internal/testutil"
	kruntime "github.com/kasync/kasync/runtime"
)

// logLine is one parsed log line: its level, message and every attribute as text.
type logLine struct {
	level slog.Level
	msg   string
	attrs map[string]string
}

// logRun is what one run of the logging scenario logged at info and above.
type logRun struct {
	lines []logLine
	dead  int // dead letters the run produced
}

// byMsg counts the run's lines by message, for failure output.
func (r logRun) byMsg() map[string]int {
	out := map[string]int{}
	for _, l := range r.lines {
		out[l.msg]++
	}
	return out
}

// has reports whether a line has msg and every attribute of want.
func (r logRun) has(msg string, want map[string]string) bool {
	for _, l := range r.lines {
		if l.msg != msg {
			continue
		}
		ok := true
		for k, v := range want {
			if l.attrs[k] != v {
				ok = false
			}
		}
		if ok {
			return true
		}
	}
	return false
}

// runLogScenario runs one node at info level, logging in format ("json" or "text"),
// over n records of which every 10th fails retriably once (it runs again through the
// millisecond ladder), every 25th (from 1) fails fatally and every 50th (from 7)
// always fails retriably (exhausted after 3 attempts): both kinds end in the dead
// letter. It stops the node once the group committed the log end and every dead letter
// is written, and returns the parsed lines; a line that does not parse fails t.
func runLogScenario(t *testing.T, format string, n int) logRun {
	t.Helper()
	brokers := kafkatest.Brokers(t)
	topic := kafkatest.NewTopic(t, brokers, 4)
	kafkatest.ProduceN(t, brokers, topic, n, func(i int) *kgo.Record {
		return &kgo.Record{Key: []byte("k" + strconv.Itoa(i%101)), Value: []byte(strconv.Itoa(i))}
	})
	end := kafkatest.EndOffsets(t, brokers, topic)
	dead := 0
	for i := range n {
		if i%25 == 1 || i%50 == 7 {
			dead++
		}
	}
	cfg := testConfig(t, brokers, topic, func(c *config.Config) { c.Delay.Partitions = 1 })
	reg := kruntime.NewRegistry()
	reg.MustRegister("fn", func(_ context.Context, task *kruntime.Task) error {
		i, err := strconv.Atoi(string(task.Payload))
		if err != nil {
			return kruntime.Fatal(err)
		}
		switch {
		case i%25 == 1:
			return kruntime.Fatal(fmt.Errorf("record %d is refused", i))
		case i%50 == 7:
			return errors.New("downstream keeps failing")
		case i%10 == 0 && task.Attempt == 1:
			return errors.New("downstream hiccup")
		}
		return nil
	})

	var buf testutil.Buffer
	opts := &slog.HandlerOptions{Level: slog.LevelInfo}
	var h slog.Handler = slog.NewJSONHandler(&buf, opts)
	if format == "text" {
		h = slog.NewTextHandler(&buf, opts)
	}
	nd := start(t, node.Options{Config: cfg, Registry: reg, Logger: slog.New(h)})
	waitCommitted(t, brokers, cfg.Tailers[0].Group, topic, end)
	require.Eventually(t, func() bool { // exhausted records take three attempts through the ladder
		var total int64
		for _, e := range kafkatest.EndOffsets(t, brokers, cfg.DeadLetter.Topic) {
			total += e
		}
		return total >= int64(dead)
	}, 2*time.Minute, 10*time.Millisecond, "%d dead letters", dead)
	deadLetters(t, brokers, cfg, dead)
	nd.stop(t)

	run := logRun{dead: dead}
	sc := bufio.NewScanner(strings.NewReader(buf.String()))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		text := sc.Text()
		if text == "" {
			continue
		}
		var l logLine
		var err error
		if format == "text" {
			l, err = parseTextLine(text)
		} else {
			l, err = parseJSONLine(text)
		}
		require.NoError(t, err, "every %s log line parses: %q", format, text)
		require.GreaterOrEqual(t, l.level, slog.LevelInfo, "the handler is at info: %q", text)
		run.lines = append(run.lines, l)
	}
	require.NoError(t, sc.Err())
	return run
}

// parseJSONLine parses a JSON handler's line, which must carry time, level and msg.
func parseJSONLine(text string) (logLine, error) {
	var m map[string]any
	if err := json.Unmarshal([]byte(text), &m); err != nil {
		return logLine{}, err
	}
	l := logLine{attrs: map[string]string{}}
	for k, v := range m {
		l.attrs[k] = fmt.Sprint(v)
	}
	return l.withBuiltins()
}

// parseTextLine parses a text handler's line: key=value pairs separated by spaces,
// a value bare or quoted as strconv.Quote does; time, level and msg must be there.
func parseTextLine(text string) (logLine, error) {
	l := logLine{attrs: map[string]string{}}
	rest := text
	for rest != "" {
		key, after, ok := strings.Cut(rest, "=")
		if !ok || key == "" || strings.ContainsAny(key, " \"") {
			return logLine{}, fmt.Errorf("no key=value at %q", rest)
		}
		var val string
		if strings.HasPrefix(after, `"`) {
			q, err := strconv.QuotedPrefix(after)
			if err != nil {
				return logLine{}, fmt.Errorf("value of %s: %w", key, err)
			}
			val, _ = strconv.Unquote(q)
			after = after[len(q):]
		} else {
			val, after, _ = strings.Cut(after, " ")
			after = " " + after
		}
		if after != "" && after != " " && !strings.HasPrefix(after, " ") {
			return logLine{}, fmt.Errorf("no space after the value of %s at %q", key, after)
		}
		l.attrs[key] = val
		rest = strings.TrimPrefix(after, " ")
	}
	return l.withBuiltins()
}

// withBuiltins takes level and msg out of the attributes, checking time is there.
func (l logLine) withBuiltins() (logLine, error) {
	for _, k := range []string{"time", "level", "msg"} {
		if _, ok := l.attrs[k]; !ok {
			return logLine{}, fmt.Errorf("no %q", k)
		}
	}
	if err := l.level.UnmarshalText([]byte(l.attrs["level"])); err != nil {
		return logLine{}, err
	}
	l.msg = l.attrs["msg"]
	return l, nil
}

// TestLogsDoNotGrowWithRecords: issue 6's policy, "one line per state change of a
// partition, rung, guard or worker, never one per record at info level". The same
// scenario (retriable failures through the millisecond ladder, fatal and exhausted
// ones to the dead letter) at 200 and at 2,000 records logs, at info in JSON, lines
// that all parse with time, level and msg, and as many of them give or take a few: not
// ten times as many. The state changes are there: the node and its tailers start,
// partitions are assigned and, at the stop, released; dead letters are summed up, not
// listed. A text-format run parses line by line too.
func TestLogsDoNotGrowWithRecords(t *testing.T) {
	t.Parallel()
	small := runLogScenario(t, "json", 200)
	large := runLogScenario(t, "json", 2000)
	t.Logf("info+ lines: %d for 200 records, %d for 2,000: %v / %v", len(small.lines), len(large.lines), small.byMsg(), large.byMsg())

	// A few lines may differ between runs (a rebalance the broker answers differently,
	// an aggregated line's interval); one line per record or per attempt cannot hide.
	const slack = 6
	require.InDelta(t, len(small.lines), len(large.lines), slack,
		"info+ lines must not grow with records: 200 records → %v, 2,000 records → %v", small.byMsg(), large.byMsg())

	for _, r := range []logRun{small, large} {
		for _, want := range []struct {
			msg   string
			attrs map[string]string
		}{
			{"node started", nil},
			{"tailer started", map[string]string{"tailer": "t", "function": "fn"}},
			{"partitions assigned", map[string]string{"tailer": "t"}},
			{"partitions released", map[string]string{"tailer": "t", "graceful": "true"}},
			{"tailer stopped", map[string]string{"tailer": "t"}},
			{"records dead-lettered", map[string]string{"tailer": "t", "function": "fn"}},
			{"node stopped", nil},
		} {
			require.True(t, r.has(want.msg, want.attrs), "a line %q with %v among %v", want.msg, want.attrs, slices.Sorted(maps.Keys(r.byMsg())))
		}
	}

	text := runLogScenario(t, "text", 200)
	require.True(t, text.has("partitions assigned", map[string]string{"tailer": "t"}), "the text run logs the same state changes: %v", text.byMsg())
}
