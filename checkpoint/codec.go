package checkpoint

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// ErrCorrupt is wrapped by every error of DecodeState and DecodeKey: the bytes are not a
// value this package wrote. Test for it with errors.Is.
var ErrCorrupt = errors.New("checkpoint: corrupt encoding")

// stateVersion1 is the only state encoding so far:
//
//	version   byte (1)
//	watermark uvarint
//	count     uvarint                       number of ranges in Done
//	count ×   gap uvarint, length uvarint   gap = Start - previous End (the watermark for
//	                                        the first range; ≥ 1 after it), length = End - Start ≥ 1
//
// Deltas keep a state with a few ranges near its watermark to a few bytes.
const stateVersion1 = 1

// EncodeState returns the binary encoding of st. A valid State (Watermark ≥ 0, every
// offset of Done ≥ Watermark) round-trips through DecodeState; an invalid one encodes to
// bytes that DecodeState rejects.
func EncodeState(st State) []byte {
	ranges := st.Done.Ranges()
	buf := make([]byte, 0, 1+binary.MaxVarintLen64*(2+2*len(ranges)))
	buf = append(buf, stateVersion1)
	buf = binary.AppendUvarint(buf, uint64(st.Watermark))
	buf = binary.AppendUvarint(buf, uint64(len(ranges)))
	prev := st.Watermark
	for _, r := range ranges {
		buf = binary.AppendUvarint(buf, uint64(r.Start-prev))
		buf = binary.AppendUvarint(buf, uint64(r.End-r.Start))
		prev = r.End
	}
	return buf
}

// DecodeState parses bytes written by EncodeState. It rejects an unknown version,
// truncated or trailing bytes, values beyond int64, and ranges that are empty, unsorted,
// overlapping, adjacent or below the watermark. It never allocates more than the input
// could describe.
func DecodeState(b []byte) (State, error) {
	if len(b) == 0 {
		return State{}, corruptf("state: empty value")
	}
	if b[0] != stateVersion1 {
		return State{}, corruptf("state: unknown version %d (this build reads version %d; was it written by a newer kasync?)", b[0], stateVersion1)
	}
	d := decoder{b: b[1:]}
	wm, err := d.int64("watermark")
	if err != nil {
		return State{}, err
	}
	count, err := d.uvarint("range count")
	if err != nil {
		return State{}, err
	}
	// Each range takes at least two bytes, so a count beyond that is a lie; checking it
	// first bounds the allocation by the input size.
	if count > uint64(len(d.b)/2) {
		return State{}, corruptf("state: range count %d exceeds what the remaining %d bytes can hold", count, len(d.b))
	}
	st := State{Watermark: wm}
	if count > 0 {
		st.Done.r = make([]Range, 0, count)
	}
	prev := wm
	for i := uint64(0); i < count; i++ {
		gap, err := d.uvarint("range gap")
		if err != nil {
			return State{}, err
		}
		length, err := d.uvarint("range length")
		if err != nil {
			return State{}, err
		}
		if i > 0 && gap == 0 {
			return State{}, corruptf("state: range %d starts at %d, touching or overlapping the previous range (ranges must be sorted, disjoint and non-adjacent)", i, prev)
		}
		if length == 0 {
			return State{}, corruptf("state: range %d is empty", i)
		}
		if gap > uint64(math.MaxInt64-prev) {
			return State{}, corruptf("state: range %d start overflows int64", i)
		}
		start := prev + int64(gap)
		// End is exclusive and at most MaxInt64.
		if length > uint64(math.MaxInt64-start) {
			return State{}, corruptf("state: range %d end overflows int64", i)
		}
		end := start + int64(length)
		st.Done.r = append(st.Done.r, Range{start, end})
		prev = end
	}
	if len(d.b) != 0 {
		return State{}, corruptf("state: %d unexpected trailing bytes", len(d.b))
	}
	return st, nil
}

// keyPrefix namespaces checkpoint keys in the Pebble keyspace.
const keyPrefix = "cp\x00"

// EncodeKey returns the Pebble key of k:
//
//	"cp\x00" + esc(Group) + "\x00\x01" + esc(Topic) + "\x00\x01" + big-endian(Partition ^ 1<<31)
//
// where esc writes each 0x00 byte as 0x00 0xFF. The encoding preserves order: keys sort by
// group, then topic, then partition (bytewise, as Pebble compares them), and all keys of
// one group share a prefix.
func EncodeKey(k Key) []byte {
	buf := make([]byte, 0, len(keyPrefix)+len(k.Group)+len(k.Topic)+4+4)
	buf = append(buf, keyPrefix...)
	buf = appendEscaped(buf, k.Group)
	buf = appendEscaped(buf, k.Topic)
	return binary.BigEndian.AppendUint32(buf, uint32(k.Partition)^(1<<31))
}

// DecodeKey parses a key written by EncodeKey.
func DecodeKey(b []byte) (Key, error) {
	if len(b) < len(keyPrefix) || string(b[:len(keyPrefix)]) != keyPrefix {
		return Key{}, corruptf("key: missing %q prefix", keyPrefix)
	}
	b = b[len(keyPrefix):]
	group, b, err := readEscaped(b, "group")
	if err != nil {
		return Key{}, err
	}
	topic, b, err := readEscaped(b, "topic")
	if err != nil {
		return Key{}, err
	}
	if len(b) != 4 {
		return Key{}, corruptf("key: partition takes 4 bytes, found %d", len(b))
	}
	return Key{Group: group, Topic: topic, Partition: int32(binary.BigEndian.Uint32(b) ^ (1 << 31))}, nil
}

func appendEscaped(buf []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		buf = append(buf, s[i])
		if s[i] == 0x00 {
			buf = append(buf, 0xFF)
		}
	}
	return append(buf, 0x00, 0x01)
}

// readEscaped reads one escaped, terminated string and returns it with the rest of b.
func readEscaped(b []byte, field string) (string, []byte, error) {
	var out []byte
	for i := 0; i < len(b); i++ {
		if b[i] != 0x00 {
			continue
		}
		if i+1 >= len(b) {
			return "", nil, corruptf("key: %s: truncated escape", field)
		}
		switch b[i+1] {
		case 0x01:
			if out == nil {
				return string(b[:i]), b[i+2:], nil
			}
			out = append(out, b[:i]...)
			return string(out), b[i+2:], nil
		case 0xFF:
			out = append(out, b[:i+1]...)
			b = b[i+2:]
			i = -1
		default:
			return "", nil, corruptf("key: %s: invalid escape 0x00 0x%02x", field, b[i+1])
		}
	}
	return "", nil, corruptf("key: %s: missing terminator", field)
}

type decoder struct{ b []byte }

func (d *decoder) uvarint(field string) (uint64, error) {
	v, n := binary.Uvarint(d.b)
	switch {
	case n == 0:
		return 0, corruptf("state: %s: truncated", field)
	case n < 0:
		return 0, corruptf("state: %s: varint overflows 64 bits", field)
	}
	d.b = d.b[n:]
	return v, nil
}

func (d *decoder) int64(field string) (int64, error) {
	v, err := d.uvarint(field)
	if err != nil {
		return 0, err
	}
	if v > math.MaxInt64 {
		return 0, corruptf("state: %s %d is negative as int64", field, int64(v))
	}
	return int64(v), nil
}

func corruptf(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrCorrupt}, args...)...)
}
