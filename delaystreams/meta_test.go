package delaystreams

import (
	"errors"
	"math"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kasync/kasync/scheduler"
)

var metaNow = time.UnixMilli(1_790_000_000_000)

const metaAhead = 7 * 24 * time.Hour

// goodHeaders are the kasync headers of a well-formed rung record, after a user header.
func goodHeaders() []kgo.RecordHeader {
	return []kgo.RecordHeader{
		{Key: "trace", Value: []byte("t1")},
		{Key: HeaderFunction, Value: []byte("charge")},
		{Key: HeaderAttempt, Value: []byte("3")},
		{Key: HeaderDue, Value: []byte(strconv.FormatInt(metaNow.Add(time.Minute).UnixMilli(), 10))},
		{Key: HeaderOrigin, Value: []byte("orders/2/77")},
		{Key: HeaderFirstFailure, Value: []byte(strconv.FormatInt(metaNow.Add(-time.Hour).UnixMilli(), 10))},
		{Key: HeaderError, Value: []byte("boom")},
	}
}

// with returns goodHeaders with key set to value (appended when absent), or removed
// when value is nil.
func with(key string, value []byte) []kgo.RecordHeader {
	var out []kgo.RecordHeader
	found := false
	for _, h := range goodHeaders() {
		if h.Key == key {
			found = true
			if value == nil {
				continue
			}
			h.Value = value
		}
		out = append(out, h)
	}
	if !found && value != nil {
		out = append(out, kgo.RecordHeader{Key: key, Value: value})
	}
	return out
}

func TestParseMetaGood(t *testing.T) {
	t.Parallel()
	m, fixed, err := ParseMeta(goodHeaders(), metaNow, metaAhead)
	require.NoError(t, err)
	require.Empty(t, fixed)
	require.Equal(t, "charge", m.Function)
	require.Equal(t, 3, m.Attempt)
	require.True(t, m.Due.Equal(metaNow.Add(time.Minute)))
	require.Equal(t, Origin{Topic: "orders", Partition: 2, Offset: 77}, m.Origin)
	require.True(t, m.FirstFailure.Equal(metaNow.Add(-time.Hour)))
	require.Equal(t, "boom", m.LastError)
}

func TestParseMetaClamps(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		hs    []kgo.RecordHeader
		check func(t *testing.T, m Meta)
		fixed string
	}{
		{"attempt -1", with(HeaderAttempt, []byte("-1")), func(t *testing.T, m Meta) { require.Equal(t, 1, m.Attempt) }, "kasync-attempt -1 is out of range; clamped to 1"},
		{"attempt 0", with(HeaderAttempt, []byte("0")), func(t *testing.T, m Meta) { require.Equal(t, 1, m.Attempt) }, "clamped to 1"},
		{"attempt huge", with(HeaderAttempt, []byte("99999999999999999")), func(t *testing.T, m Meta) { require.Equal(t, MaxAttempt, m.Attempt) }, "clamped to 1000000"},
		{"attempt beyond int64", with(HeaderAttempt, []byte("99999999999999999999999")), func(t *testing.T, m Meta) { require.Equal(t, 1, m.Attempt) }, "is not a number; taken as 1"},
		{"attempt garbage", with(HeaderAttempt, []byte("three")), func(t *testing.T, m Meta) { require.Equal(t, 1, m.Attempt) }, `kasync-attempt "three" is not a number; taken as 1`},
		{"attempt missing", with(HeaderAttempt, nil), func(t *testing.T, m Meta) { require.Equal(t, 1, m.Attempt) }, "kasync-attempt is missing"},
		{"due a year ahead", with(HeaderDue, []byte(strconv.FormatInt(metaNow.AddDate(1, 0, 0).UnixMilli(), 10))),
			func(t *testing.T, m Meta) { require.True(t, m.Due.Equal(metaNow.Add(metaAhead))) }, "kasync-due"},
		{"due max int64", with(HeaderDue, []byte(strconv.FormatInt(math.MaxInt64, 10))),
			func(t *testing.T, m Meta) { require.True(t, m.Due.Equal(metaNow.Add(metaAhead))) }, "out of range"},
		{"due garbage", with(HeaderDue, []byte("soon")), func(t *testing.T, m Meta) { require.True(t, m.Due.Equal(metaNow)) }, "not unix milliseconds; due now"},
		{"due negative", with(HeaderDue, []byte("-5")), func(t *testing.T, m Meta) { require.True(t, m.Due.Equal(metaNow)) }, "out of range"},
		{"due missing", with(HeaderDue, nil), func(t *testing.T, m Meta) { require.True(t, m.Due.Equal(metaNow)) }, "kasync-due is missing; due now"},
		{"first failure ahead", with(HeaderFirstFailure, []byte(strconv.FormatInt(metaNow.Add(time.Hour).UnixMilli(), 10))),
			func(t *testing.T, m Meta) { require.True(t, m.FirstFailure.Equal(metaNow)) }, "kasync-first-failure"},
		{"first failure zero", with(HeaderFirstFailure, []byte("0")), func(t *testing.T, m Meta) { require.True(t, m.FirstFailure.Equal(metaNow)) }, "taken as now"},
		{"first failure garbage", with(HeaderFirstFailure, []byte("x")), func(t *testing.T, m Meta) { require.True(t, m.FirstFailure.Equal(metaNow)) }, "taken as now"},
		{"first failure missing", with(HeaderFirstFailure, nil), func(t *testing.T, m Meta) { require.True(t, m.FirstFailure.Equal(metaNow)) }, "missing"},
		{"error too long", with(HeaderError, []byte(strings.Repeat("é", 3000))), func(t *testing.T, m Meta) {
			require.LessOrEqual(t, len(m.LastError), MaxErrorBytes)
			require.True(t, utf8.ValidString(m.LastError))
		}, "kasync-error"},
		{"error not UTF-8", with(HeaderError, []byte{'a', 0xff, 'b'}), func(t *testing.T, m Meta) { require.Equal(t, "a\uFFFDb", m.LastError) }, "kasync-error"},
		{"duplicated attempt: the last wins", append(goodHeaders(), kgo.RecordHeader{Key: HeaderAttempt, Value: []byte("4")}),
			func(t *testing.T, m Meta) { require.Equal(t, 4, m.Attempt) }, "kasync-attempt appears 2 times; the last one wins"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			m, fixed, err := ParseMeta(tc.hs, metaNow, metaAhead)
			require.NoError(t, err)
			tc.check(t, m)
			require.Len(t, fixed, 1, "one fix per problem: %q", fixed)
			require.Contains(t, fixed[0], tc.fixed)
			require.Equal(t, "charge", m.Function, "the rest is read as is")
		})
	}
}

func TestParseMetaInvalid(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		hs   []kgo.RecordHeader
		want string
	}{
		{"no function", with(HeaderFunction, nil), "kasync-function is missing"},
		{"empty function", with(HeaderFunction, []byte{}), "kasync-function is empty"},
		{"function too long", with(HeaderFunction, []byte(strings.Repeat("f", 250))), "kasync-function is 250 bytes long; a function name has at most 249"},
		{"function not UTF-8", with(HeaderFunction, []byte{0xff}), "kasync-function is not valid UTF-8"},
		{"no origin", with(HeaderOrigin, nil), "kasync-origin is missing"},
		{"bad origin", with(HeaderOrigin, []byte("orders/x/1")), `kasync-origin: origin "orders/x/1"`},
		{"no headers at all", nil, "kasync-function is missing; kasync-origin is missing"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			m, _, err := ParseMeta(tc.hs, metaNow, metaAhead)
			require.ErrorIs(t, err, ErrInvalidHeaders)
			require.ErrorContains(t, err, tc.want)
			require.ErrorContains(t, err, "reason invalid-headers")
			require.GreaterOrEqual(t, m.Attempt, 1, "the rest is still read for the dead letter")
		})
	}

	// An unroutable rung record goes to the dead letter, with the origin it has or its
	// own position.
	rec := &kgo.Record{Topic: "kasync.delay.30s", Partition: 4, Offset: 9, Value: []byte("v"), Headers: with(HeaderOrigin, []byte("garbage"))}
	m, _, err := ParseMeta(rec.Headers, metaNow, metaAhead)
	require.Error(t, err)
	f := InvalidHeadersFailure(rec, m, err)
	require.Equal(t, Origin{Topic: "kasync.delay.30s", Partition: 4, Offset: 9}, f.Origin)
	require.Equal(t, scheduler.OutcomeFatal, f.Outcome.Kind)
	require.Equal(t, ReasonInvalidHeaders, f.Outcome.Reason)
	require.Equal(t, "charge", f.Function)
	require.Equal(t, 3, f.Attempt)
	r := testRouter(t, map[string]RetryPolicy{"charge": {MaxAttempts: 5, Backoff: []time.Duration{time.Second}}}, 0)
	d := r.Decide(&f)
	require.Equal(t, Decision{DeadLetter: true, Reason: "invalid-headers", Topic: "dlq", Rung: -1}, d)
	out := headerMap(r.Record(&f, d))
	require.Equal(t, []string{"invalid-headers"}, out[HeaderReason])
	require.Equal(t, []string{"kasync.delay.30s/4/9"}, out[HeaderOrigin])
	require.Contains(t, out[HeaderError][0], "kasync-origin")

	rec.Headers = with(HeaderFunction, nil)
	m, _, err = ParseMeta(rec.Headers, metaNow, metaAhead)
	require.Error(t, err)
	f = InvalidHeadersFailure(rec, m, err)
	require.Equal(t, Origin{Topic: "orders", Partition: 2, Offset: 77}, f.Origin, "the parsed origin is kept")
	require.Equal(t, "invalid-headers", r.Decide(&f).Reason, "fatal wins over an unknown (empty) function")
}

// TestParseMetaRoundTrip: what Router.Record writes, ParseMeta reads back unchanged.
func TestParseMetaRoundTrip(t *testing.T) {
	t.Parallel()
	r := testRouter(t, map[string]RetryPolicy{"charge": {MaxAttempts: 5, Backoff: []time.Duration{90 * time.Second}}}, 0)
	first := testNow.Add(-time.Minute)
	f := &Failure{
		Record:   &kgo.Record{Topic: "orders", Partition: 1, Offset: 5, Value: []byte("v")},
		Function: "charge", Attempt: 2, FirstFailure: first,
		Outcome: scheduler.Retriable(scheduler.ReasonError, "downstream said no"),
	}
	d := r.Decide(f)
	require.False(t, d.DeadLetter)
	m, fixed, err := ParseMeta(r.Record(f, d).Headers, testNow, r.MaxDelay())
	require.NoError(t, err)
	require.Empty(t, fixed)
	require.Equal(t, Meta{Function: "charge", Attempt: 2, Due: d.Due, Origin: Origin{Topic: "orders", Partition: 1, Offset: 5},
		FirstFailure: first, LastError: "downstream said no"}, m)
	require.True(t, m.Due.Equal(testNow.Add(90*time.Second)))

	// A dead letter reads back too (it has no due time: due now).
	f.Outcome = scheduler.Fatal(scheduler.ReasonFatal, "card declined")
	d = r.Decide(f)
	m, fixed, err = ParseMeta(r.Record(f, d).Headers, testNow, r.MaxDelay())
	require.NoError(t, err)
	require.Equal(t, []string{"kasync-due is missing; due now"}, fixed)
	require.Equal(t, "card declined", m.LastError)
	require.Equal(t, 2, m.Attempt)
}

func FuzzParseMeta(f *testing.F) {
	enc := func(hs []kgo.RecordHeader) []byte {
		var b []byte
		for _, h := range hs {
			b = append(b, h.Key...)
			b = append(b, 0)
			b = append(b, h.Value...)
			b = append(b, 0)
		}
		return b
	}
	f.Add(enc(goodHeaders()), int64(0), int64(metaAhead))
	f.Add(enc(with(HeaderAttempt, []byte("-1"))), int64(5), int64(time.Hour))
	f.Add(enc(with(HeaderDue, []byte("99999999999999999"))), int64(-5), int64(-1))
	f.Add(enc(append(goodHeaders(), goodHeaders()...)), int64(1e12), int64(math.MaxInt64))
	f.Add([]byte("kasync-function\x00\xff\x00kasync-origin\x00a/1/2\x00"), int64(0), int64(0))
	f.Fuzz(func(t *testing.T, raw []byte, nowOff, ahead int64) {
		// Headers are NUL-separated key, value pairs.
		var hs []kgo.RecordHeader
		parts := strings.Split(string(raw), "\x00")
		for i := 0; i+1 < len(parts); i += 2 {
			hs = append(hs, kgo.RecordHeader{Key: parts[i], Value: []byte(parts[i+1])})
		}
		// A sane clock (after the epoch, before year 2500); any maxAhead.
		now := time.UnixMilli(1 + (nowOff%16e12+16e12)%16e12)
		maxAhead := time.Duration(ahead)
		m, fixed, err := ParseMeta(hs, now, maxAhead)
		if m.Attempt < 1 || m.Attempt > MaxAttempt {
			t.Fatalf("attempt %d out of [1, %d]", m.Attempt, MaxAttempt)
		}
		if m.Due.UnixMilli() <= 0 || m.Due.After(now.Add(max(maxAhead, 0))) {
			t.Fatalf("due %v out of (epoch, now+%v]", m.Due, maxAhead)
		}
		if m.FirstFailure.UnixMilli() <= 0 || m.FirstFailure.After(now) {
			t.Fatalf("first failure %v out of (epoch, now]", m.FirstFailure)
		}
		if len(m.LastError) > MaxErrorBytes || !utf8.ValidString(m.LastError) {
			t.Fatalf("error of %d bytes, valid UTF-8 %v", len(m.LastError), utf8.ValidString(m.LastError))
		}
		for _, fx := range fixed {
			if len(fx) > 400 {
				t.Fatalf("a fix message of %d bytes: hostile values must be cut short", len(fx))
			}
		}
		if err != nil {
			if !errors.Is(err, ErrInvalidHeaders) {
				t.Fatalf("error %v does not wrap ErrInvalidHeaders", err)
			}
			return
		}
		if m.Function == "" || len(m.Function) > maxFunctionBytes || !utf8.ValidString(m.Function) {
			t.Fatalf("function %q accepted", m.Function)
		}
		if back, perr := ParseOrigin(m.Origin.String()); perr != nil || back != m.Origin {
			t.Fatalf("origin %+v does not round-trip", m.Origin)
		}
	})
}
