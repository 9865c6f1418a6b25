package delaystreams

import (
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/goleak"

	"github.com/kasync/kasync/internal/config"
	"github.com/kasync/kasync/tailer"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func headerMap(r *kgo.Record) map[string][]string {
	m := map[string][]string{}
	for _, h := range r.Headers {
		m[h.Key] = append(m[h.Key], string(h.Value))
	}
	return m
}

func TestDeadLetterRecord(t *testing.T) {
	t.Parallel()
	first := time.UnixMilli(1_700_000_000_123)
	d := &DeadLetterWriter{topic: "dlq", now: time.Now}
	src := &kgo.Record{
		Topic: "orders", Partition: 3, Offset: 42, Key: []byte("k"), Value: []byte("v"),
		Headers: []kgo.RecordHeader{
			{Key: "trace", Value: []byte("t1")},
			{Key: HeaderAttempt, Value: []byte("-1")},  // forged
			{Key: HeaderReason, Value: []byte("none")}, // forged
		},
	}
	rec := d.Record(&tailer.Letter{Record: src, Function: "charge", Attempt: 5, Reason: "exhausted",
		Err: strings.Repeat("é", 2000), FirstFailure: first})
	require.Equal(t, "dlq", rec.Topic)
	require.Equal(t, "k", string(rec.Key), "the key is kept, so the partitioning is too")
	require.Equal(t, "v", string(rec.Value))
	h := headerMap(rec)
	require.Equal(t, []string{"t1"}, h["trace"], "the record's own headers are kept")
	require.Equal(t, []string{"charge"}, h[HeaderFunction])
	require.Equal(t, []string{"5"}, h[HeaderAttempt], "forged kasync headers are replaced, not duplicated")
	require.Equal(t, []string{"exhausted"}, h[HeaderReason])
	require.Equal(t, []string{"orders/3/42"}, h[HeaderOrigin])
	require.Equal(t, []string{"1700000000123"}, h[HeaderFirstFailure])
	require.Len(t, h[HeaderError], 1)
	require.LessOrEqual(t, len(h[HeaderError][0]), MaxErrorBytes)
	require.True(t, utf8.ValidString(h[HeaderError][0]), "truncation never splits a character")
}

func TestParseOrigin(t *testing.T) {
	t.Parallel()
	o, err := ParseOrigin("my.topic-1/7/123")
	require.NoError(t, err)
	require.Equal(t, Origin{Topic: "my.topic-1", Partition: 7, Offset: 123}, o)
	require.Equal(t, "my.topic-1/7/123", o.String())
	for _, bad := range []string{"", "a", "a/1", "/1/2", "a/x/2", "a/1/y", "a/-1/2", "a/1/-2", "a/99999999999/1"} {
		_, err := ParseOrigin(bad)
		require.Error(t, err, "%q", bad)
	}
}

func FuzzParseOrigin(f *testing.F) {
	for _, s := range []string{"t/0/0", "a.b/12/345", "", "//", "a/1/2/3"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		o, err := ParseOrigin(s)
		if err != nil {
			return
		}
		back, err := ParseOrigin(o.String())
		if err != nil || back != o {
			t.Fatalf("ParseOrigin(%q) = %+v, which does not round-trip: %+v, %v", s, o, back, err)
		}
	})
}

// TestConfigAgreesWithLadder: `kasync config check` must refuse exactly the ladders that
// NewLadder refuses, and name rung topics exactly as RungTopic does.
func TestConfigAgreesWithLadder(t *testing.T) {
	t.Parallel()
	require.Equal(t, MaxRungs, config.MaxRungs)
	for _, d := range []time.Duration{30 * time.Second, time.Minute, 90 * time.Minute, time.Hour + 30*time.Second, 250 * time.Microsecond} {
		require.Equal(t, config.Delay{TopicPrefix: "p"}.RungTopic(config.Duration(d)), RungTopic("p", d))
	}
}
