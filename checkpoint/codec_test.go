package checkpoint

import (
	"bytes"
	"math"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"
)

func stateOf(wm int64, ranges ...Range) State {
	st := State{Watermark: wm}
	for _, r := range ranges {
		st.Done.AddRange(r.Start, r.End)
	}
	return st
}

func requireSameState(t testing.TB, want, got State) {
	t.Helper()
	require.Equal(t, want.Watermark, got.Watermark)
	require.Equal(t, rangesOf(&want.Done), rangesOf(&got.Done))
}

func TestStateRoundTrip(t *testing.T) {
	t.Parallel()
	for _, st := range []State{
		{},
		stateOf(0, Range{0, 1}),
		stateOf(42),
		stateOf(100, Range{100, 101}, Range{103, 200}, Range{1 << 40, 1<<40 + 5}),
		stateOf(math.MaxInt64),
		stateOf(0, Range{math.MaxInt64 - 1, math.MaxInt64}),
	} {
		b := EncodeState(st)
		got, err := DecodeState(b)
		require.NoError(t, err, "state %d %v", st.Watermark, st.Done.String())
		requireSameState(t, st, got)
	}
}

func TestStateEncodingIsCompact(t *testing.T) {
	t.Parallel()
	// A watermark in the millions with a few ranges just above it: deltas keep it tiny.
	st := stateOf(12_345_678, Range{12_345_680, 12_345_690}, Range{12_345_700, 12_345_701})
	require.LessOrEqual(t, len(EncodeState(st)), 12)
}

func TestDecodeStateRejectsGarbage(t *testing.T) {
	t.Parallel()
	valid := EncodeState(stateOf(10, Range{12, 14}, Range{20, 21}))
	tests := []struct {
		name string
		in   []byte
		msg  string
	}{
		{"empty", nil, "empty value"},
		{"unknown version", []byte{2, 0, 0}, "unknown version 2"},
		{"truncated watermark", []byte{1, 0x80}, "watermark: truncated"},
		{"watermark overflows varint", append([]byte{1}, bytes.Repeat([]byte{0xff}, 11)...), "overflows 64 bits"},
		{"negative watermark", EncodeState(State{Watermark: -5}), "watermark"},
		{"missing count", []byte{1, 5}, "range count: truncated"},
		{"count beyond input", []byte{1, 5, 100, 1, 1}, "range count 100 exceeds"},
		{"huge count", append([]byte{1, 5}, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f), "exceeds"},
		{"truncated range", valid[:len(valid)-1], "exceeds"},
		{"truncated gap", []byte{1, 5, 1, 0x80, 0x80}, "range gap: truncated"},
		{"trailing bytes", append(slices.Clone(valid), 0), "trailing"},
		{"empty range", []byte{1, 5, 1, 0, 0}, "range 0 is empty"},
		{"adjacent ranges", []byte{1, 5, 2, 0, 2, 0, 2}, "range 1 starts at 7, touching"},
		{"start overflows", []byte{1, 0x7f, 1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f, 1}, "start overflows"},
		{"end overflows", []byte{1, 1, 1, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f}, "end overflows"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := DecodeState(tc.in)
			require.ErrorIs(t, err, ErrCorrupt)
			require.ErrorContains(t, err, tc.msg)
		})
	}
}

func TestKeyRoundTripAndOrder(t *testing.T) {
	t.Parallel()
	keys := []Key{
		{Group: "", Topic: "", Partition: math.MinInt32},
		{Group: "", Topic: "", Partition: -1},
		{Group: "", Topic: "", Partition: 0},
		{Group: "", Topic: "a", Partition: 0},
		{Group: "a", Topic: "", Partition: 0},
		{Group: "a", Topic: "orders", Partition: 0},
		{Group: "a", Topic: "orders", Partition: 1},
		{Group: "a", Topic: "orders", Partition: 256},
		{Group: "a", Topic: "orders", Partition: math.MaxInt32},
		{Group: "a", Topic: "orders\x00", Partition: 0},
		{Group: "a", Topic: "orders\x00\x00", Partition: 0},
		{Group: "a", Topic: "orders\x01", Partition: 0},
		{Group: "a", Topic: "ordersa", Partition: 0},
		{Group: "a\x00", Topic: "", Partition: 0},
		{Group: "a\x00b", Topic: "z", Partition: 0},
		{Group: "ab", Topic: "", Partition: 0},
		{Group: "b", Topic: "a", Partition: 0},
		{Group: "kasync.orders", Topic: "orders", Partition: 3},
		{Group: "\xff\xff", Topic: "\xff", Partition: 0},
	}
	seen := make([][]byte, len(keys))
	for i, k := range keys {
		b := EncodeKey(k)
		got, err := DecodeKey(b)
		require.NoError(t, err)
		require.Equal(t, k, got)
		seen[i] = b
	}
	// The list above is in (group, topic, partition) order, and so must be the bytes.
	for i := 1; i < len(seen); i++ {
		require.Negative(t, bytes.Compare(seen[i-1], seen[i]), "key %+v must sort before %+v", keys[i-1], keys[i])
	}
	// All keys of one group share its prefix, and no other group's key has it.
	prefix := EncodeKey(Key{Group: "a"})[:len(keyPrefix)+3]
	for i, k := range keys {
		require.Equal(t, k.Group == "a", bytes.HasPrefix(seen[i], prefix), "key %+v", k)
	}
}

func TestDecodeKeyRejectsGarbage(t *testing.T) {
	t.Parallel()
	valid := EncodeKey(Key{Group: "g", Topic: "t", Partition: 7})
	tests := []struct {
		name string
		in   []byte
		msg  string
	}{
		{"empty", nil, "prefix"},
		{"wrong prefix", []byte("xx\x00g\x00\x01t\x00\x01\x80\x00\x00\x07"), "prefix"},
		{"no group terminator", []byte("cp\x00g"), "group: missing terminator"},
		{"truncated escape", []byte("cp\x00g\x00"), "group: truncated escape"},
		{"bad escape", []byte("cp\x00g\x00\x02"), "group: invalid escape"},
		{"no topic terminator", []byte("cp\x00g\x00\x01t"), "topic: missing terminator"},
		{"short partition", valid[:len(valid)-1], "partition takes 4 bytes, found 3"},
		{"long partition", append(slices.Clone(valid), 0), "found 5"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := DecodeKey(tc.in)
			require.ErrorIs(t, err, ErrCorrupt)
			require.ErrorContains(t, err, tc.msg)
		})
	}
}

func FuzzDecodeState(f *testing.F) {
	f.Add(EncodeState(State{}))
	f.Add(EncodeState(stateOf(10, Range{12, 14}, Range{20, 21})))
	f.Add(EncodeState(stateOf(1<<40, Range{1<<40 + 3, 1 << 41})))
	f.Add([]byte{1, 0, 0xff, 0xff, 0xff, 0x0f})
	f.Add([]byte{2})
	f.Fuzz(func(t *testing.T, b []byte) {
		st, err := DecodeState(b)
		if err != nil {
			return
		}
		// Whatever decodes is a valid state and round-trips.
		if st.Watermark < 0 {
			t.Fatalf("decoded a negative watermark %d", st.Watermark)
		}
		checkInvariants(t, &st.Done)
		if rs := st.Done.Ranges(); len(rs) > 0 && rs[0].Start < st.Watermark {
			t.Fatalf("decoded range %v below watermark %d", rs[0], st.Watermark)
		}
		again, err := DecodeState(EncodeState(st))
		if err != nil {
			t.Fatalf("re-decode: %v", err)
		}
		if again.Watermark != st.Watermark || !slices.Equal(again.Done.Ranges(), st.Done.Ranges()) {
			t.Fatalf("round trip changed %d %v into %d %v", st.Watermark, st.Done.String(), again.Watermark, again.Done.String())
		}
	})
}

func FuzzStateRoundTrip(f *testing.F) {
	f.Add(int64(0), []byte{})
	f.Add(int64(1000), []byte{1, 2, 3, 200, 7})
	f.Fuzz(func(t *testing.T, wm int64, gaps []byte) {
		if wm < 0 {
			wm = -(wm + 1)
		}
		st := State{Watermark: wm}
		at := wm
		for i := 0; i+1 < len(gaps); i += 2 {
			start, end := at+int64(gaps[i]), at+int64(gaps[i])+int64(gaps[i+1])
			if start < at || end < start { // overflow near MaxInt64
				break
			}
			st.Done.AddRange(start, end)
			at = end
		}
		got, err := DecodeState(EncodeState(st))
		if err != nil {
			t.Fatalf("decode(encode(%d %v)): %v", st.Watermark, st.Done.String(), err)
		}
		if got.Watermark != st.Watermark || !slices.Equal(got.Done.Ranges(), st.Done.Ranges()) {
			t.Fatalf("round trip changed %d %v into %d %v", st.Watermark, st.Done.String(), got.Watermark, got.Done.String())
		}
	})
}

func FuzzDecodeKey(f *testing.F) {
	f.Add(EncodeKey(Key{Group: "g", Topic: "t", Partition: 7}), "g", "t", int32(7))
	f.Add([]byte("cp\x00\x00\xff\x00\x01\x00\x01\x00\x00\x00\x00"), "a\x00", "", int32(-1))
	f.Fuzz(func(t *testing.T, b []byte, group, topic string, partition int32) {
		// Arbitrary bytes never panic, and what decodes re-encodes to the same bytes.
		if k, err := DecodeKey(b); err == nil {
			if again := EncodeKey(k); !bytes.Equal(again, b) {
				t.Fatalf("decode then encode changed %x into %x", b, again)
			}
		}
		k := Key{Group: group, Topic: topic, Partition: partition}
		got, err := DecodeKey(EncodeKey(k))
		if err != nil {
			t.Fatalf("decode(encode(%+v)): %v", k, err)
		}
		if got != k {
			t.Fatalf("round trip changed %+v into %+v", k, got)
		}
	})
}
