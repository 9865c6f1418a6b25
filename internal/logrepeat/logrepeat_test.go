package logrepeat

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// jsonLines is a JSON logger at debug writing to a buffer, and its parsed lines.
type jsonLines struct {
	mu  sync.Mutex
	buf bytes.Buffer
	log *slog.Logger
}

func newJSONLines(level slog.Level) *jsonLines {
	j := &jsonLines{}
	j.log = slog.New(slog.NewJSONHandler(j, &slog.HandlerOptions{Level: level}))
	return j
}

func (j *jsonLines) Write(p []byte) (int, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.buf.Write(p)
}

func (j *jsonLines) lines(t *testing.T) []map[string]any {
	t.Helper()
	j.mu.Lock()
	defer j.mu.Unlock()
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(j.buf.String()), "\n") {
		if l == "" {
			continue
		}
		var m map[string]any
		require.NoError(t, json.Unmarshal([]byte(l), &m), l)
		out = append(out, m)
	}
	return out
}

func TestOneLinePerKeyPerInterval(t *testing.T) {
	t.Parallel()
	j := newJSONLines(slog.LevelInfo)
	l := Limiter{Interval: time.Minute}
	t0 := time.Unix(1_000_000, 0)

	require.True(t, l.logAt(t0, j.log, slog.LevelWarn, "a", "boom", "n", 1), "the first event of a key is logged at once")
	for i := range 99 {
		require.False(t, l.logAt(t0.Add(time.Duration(i)*time.Second/2), j.log, slog.LevelWarn, "a", "boom", "n", i+2))
	}
	require.True(t, l.logAt(t0, j.log, slog.LevelWarn, "b", "bang"), "another key has an interval of its own")
	require.False(t, l.logAt(t0.Add(time.Minute-time.Nanosecond), j.log, slog.LevelWarn, "a", "boom", "n", 101))
	require.True(t, l.logAt(t0.Add(time.Minute), j.log, slog.LevelWarn, "a", "boom", "n", 102), "an interval after the last line")

	lines := j.lines(t)
	require.Len(t, lines, 3)
	require.Equal(t, "boom", lines[0]["msg"])
	require.Equal(t, "WARN", lines[0]["level"])
	require.EqualValues(t, 0, lines[0][SuppressedKey])
	require.EqualValues(t, 1, lines[0]["n"])
	require.Equal(t, "bang", lines[1]["msg"])
	require.EqualValues(t, 100, lines[2][SuppressedKey], "the 100 events between the lines are counted")
	require.EqualValues(t, 102, lines[2]["n"], "the line is the event that was let through")
}

func TestEveryEventIsCounted(t *testing.T) {
	t.Parallel()
	j := newJSONLines(slog.LevelInfo)
	l := Limiter{Interval: time.Hour}
	const events, keys = 1000, 3
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range events / 4 {
				k := strconv.Itoa((g + i) % keys)
				l.Log(j.log, slog.LevelError, k, "failed", "key", k)
			}
		})
	}
	wg.Wait()
	require.Len(t, j.lines(t), keys, "one line per key within the interval")
	l.Flush()
	l.Flush() // nothing left to flush: writes nothing
	lines := j.lines(t)
	require.Len(t, lines, 2*keys, "Flush writes a line per key with events pending")
	total := 0
	perKey := map[string]int{}
	for _, m := range lines {
		n := 1 + int(m[SuppressedKey].(float64))
		total += n
		perKey[m["key"].(string)] += n
	}
	require.Equal(t, events, total, "lines plus their suppressed counts are the events")
	require.Len(t, perKey, keys)
}

func TestKeysAreBounded(t *testing.T) {
	t.Parallel()
	j := newJSONLines(slog.LevelInfo)
	l := Limiter{Interval: time.Hour}
	now := time.Unix(1_000_000, 0)
	for i := range MaxKeys {
		k := strconv.Itoa(i)
		l.logAt(now, j.log, slog.LevelInfo, k, "e", "key", k)
		l.logAt(now, j.log, slog.LevelInfo, k, "e", "key", k) // pending
	}
	require.Len(t, l.keys, MaxKeys)
	require.Len(t, j.lines(t), MaxKeys)
	require.True(t, l.logAt(now, j.log, slog.LevelInfo, "new", "e", "key", "new"))
	require.Len(t, l.keys, 1, "past MaxKeys the table starts again")
	lines := j.lines(t)
	require.Len(t, lines, 2*MaxKeys+1, "the pending counts were flushed before the keys were forgotten")
	for _, m := range lines[MaxKeys : 2*MaxKeys] {
		require.EqualValues(t, 0, m[SuppressedKey], "a flushed line is the one pending event: %v", m)
	}
}

func TestDisabledLevelIsNotCounted(t *testing.T) {
	t.Parallel()
	j := newJSONLines(slog.LevelInfo)
	var l Limiter
	for range 10 {
		require.False(t, l.Log(j.log, slog.LevelDebug, "k", "quiet"))
	}
	l.Flush()
	require.Empty(t, j.lines(t))
	require.Empty(t, l.keys, "nothing is tracked for a disabled level")
}

func TestArgsAreNotModified(t *testing.T) {
	t.Parallel()
	j := newJSONLines(slog.LevelInfo)
	var l Limiter
	args := make([]any, 2, 8)
	args[0], args[1] = "a", 1
	l.Log(j.log, slog.LevelInfo, "k", "m", args...)
	require.Equal(t, []any{"a", 1}, args)
	require.Equal(t, []any{"a", 1, nil, nil}, args[:4], "the caller's spare capacity is not written")
}
