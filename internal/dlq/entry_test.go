package dlq

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kasync/kasync/delaystreams"
)

func hdr(k, v string) kgo.RecordHeader { return kgo.RecordHeader{Key: k, Value: []byte(v)} }

func TestParsePos(t *testing.T) {
	t.Parallel()
	p, err := ParsePos("3/42")
	require.NoError(t, err)
	require.Equal(t, Pos{Partition: 3, Offset: 42}, p)
	require.Equal(t, "3/42", p.String())
	for _, bad := range []string{"", "3", "3/", "/42", "a/1", "1/b", "-1/2", "1/-2", "99999999999/1", "1/2/3"} {
		_, err := ParsePos(bad)
		require.Error(t, err, "%q", bad)
	}
	require.True(t, Pos{0, 9}.Less(Pos{1, 0}))
	require.True(t, Pos{1, 0}.Less(Pos{1, 1}))
	require.False(t, Pos{1, 1}.Less(Pos{1, 1}))
}

func FuzzParsePos(f *testing.F) {
	for _, s := range []string{"0/0", "12/345", "", "/", "1/2/3"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParsePos(s)
		if err != nil {
			return
		}
		back, err := ParsePos(p.String())
		if err != nil || back != p {
			t.Fatalf("ParsePos(%q) = %v, which does not round-trip: %v, %v", s, p, back, err)
		}
	})
}

func TestNewEntry(t *testing.T) {
	t.Parallel()
	ts := time.UnixMilli(1_700_000_123_456)
	r := &kgo.Record{
		Partition: 2, Offset: 7, Timestamp: ts, Key: []byte("k"), Value: []byte("v"),
		Headers: []kgo.RecordHeader{
			hdr("trace", "t1"),
			hdr(delaystreams.HeaderFunction, "charge"),
			hdr(delaystreams.HeaderAttempt, "5"),
			hdr(delaystreams.HeaderOrigin, "orders/3/42"),
			hdr(delaystreams.HeaderFirstFailure, "1700000000000"),
			hdr(delaystreams.HeaderError, "card declined"),
			hdr(delaystreams.HeaderReason, "fatal"),
			hdr(delaystreams.HeaderReason, "exhausted"), // the last one wins
		},
	}
	e := NewEntry(r)
	require.Equal(t, Pos{2, 7}, e.Pos)
	require.Equal(t, ts, e.Time)
	require.Equal(t, "charge", e.Function)
	require.Equal(t, 5, e.Attempt)
	require.Equal(t, "orders/3/42", e.Origin)
	require.Equal(t, time.UnixMilli(1_700_000_000_000), e.FirstFailure)
	require.Equal(t, "card declined", e.Error)
	require.Equal(t, "exhausted", e.Reason)
	require.Empty(t, e.Dropped)
	require.Len(t, e.Headers, 8, "every header is kept for show")
	topic, ok := e.OriginTopic()
	require.True(t, ok)
	require.Equal(t, "orders", topic)

	garbled := NewEntry(&kgo.Record{Headers: []kgo.RecordHeader{
		hdr(delaystreams.HeaderAttempt, "many"),
		hdr(delaystreams.HeaderFirstFailure, "yesterday"),
		hdr(delaystreams.HeaderOrigin, "nowhere"),
		hdr(delaystreams.HeaderDropped, "value"),
	}})
	require.Zero(t, garbled.Attempt)
	require.True(t, garbled.FirstFailure.IsZero())
	require.Equal(t, "value", garbled.Dropped)
	_, ok = garbled.OriginTopic()
	require.False(t, ok)
}

func TestText(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		in        []byte
		multiline bool
		want      string
	}{
		{nil, false, "(null)"},
		{[]byte{}, false, `""`},
		{[]byte("héllo wörld"), false, "héllo wörld"},
		{[]byte("a\nb\tc"), true, "a\nb\tc"},
		{[]byte("a\nb"), false, `"a\nb"`},
		{[]byte("evil\x1b[2Jterm"), true, `"evil\x1b[2Jterm"`},
		{[]byte{0xff, 0x00, 0x41}, true, "(3 bytes, not UTF-8; base64) /wBB"},
	} {
		require.Equal(t, c.want, Text(c.in, c.multiline), "%q", c.in)
	}
}

func TestOneLine(t *testing.T) {
	t.Parallel()
	require.Equal(t, "a b c", OneLine("a\nb\tc", 10))
	require.Equal(t, "ééé…", OneLine("éééééé", 4))
	require.Equal(t, "abcd", OneLine("abcd", 4))
}

func timeAt(s int) time.Time { return time.Unix(1_700_000_000+int64(s), 0) }
