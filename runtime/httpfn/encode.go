package httpfn

import (
	"errors"
	"fmt"
)

// HeaderPrefix starts the name of the HTTP header that carries one record header:
// the record header "trace-id" arrives as "kasync-h-trace-id".
const HeaderPrefix = "kasync-h-"

const upperHex = "0123456789ABCDEF"

// valueKeep reports the bytes EncodeHeaderValue keeps as they are: printable ASCII
// (0x21-0x7E) except '"', '%' and ','. The CloudEvents HTTP binding requires space,
// '"', '%' and everything outside printable ASCII to be percent-encoded; ',' is
// encoded too, so that a receiver (or a proxy) that joins repeated headers with
// commas cannot blur where one value ends.
func valueKeep(b byte) bool {
	return b > 0x20 && b < 0x7f && b != '"' && b != '%' && b != ','
}

// nameKeep reports the bytes EncodeHeaderName keeps as they are: the HTTP token
// characters of RFC 9110 except '%', which marks an encoded byte.
func nameKeep(b byte) bool {
	switch {
	case 'a' <= b && b <= 'z', 'A' <= b && b <= 'Z', '0' <= b && b <= '9':
		return true
	}
	switch b {
	case '!', '#', '$', '&', '\'', '*', '+', '-', '.', '^', '_', '`', '|', '~':
		return true
	}
	return false
}

// EncodeHeaderValue encodes arbitrary bytes as an HTTP header value by the
// CloudEvents HTTP binding: every byte for which the binding requires it (space,
// '"', '%', anything outside printable ASCII) and ',' becomes %XX (upper-case hex).
// The result holds only printable ASCII without spaces, so every HTTP client and
// server accepts it and none trims it; DecodeHeaderValue gives back v.
func EncodeHeaderValue(v []byte) string {
	return encode(v, valueKeep)
}

// DecodeHeaderValue reverses EncodeHeaderValue (and decodes any percent-encoded
// CloudEvents attribute). Hex digits may be of either case; bytes that need no
// encoding are accepted whether encoded or not. It fails on a '%' that is not
// followed by two hex digits.
func DecodeHeaderValue(s string) ([]byte, error) {
	return decode(s)
}

// EncodeHeaderName encodes an arbitrary record header name as the part of an HTTP
// header name after HeaderPrefix: every byte that is not an HTTP token character,
// and '%' itself, becomes %XX (upper-case hex); token characters stay as they are.
// The result is a valid token (or empty, for an empty name). DecodeHeaderName gives
// back name, except that HTTP does not preserve the case of header names (HTTP/2
// lowercases them): a receiver gets ASCII letters in either case and should compare
// names case-insensitively. Percent-encoded bytes survive any case change, since hex
// digits decode in either case.
func EncodeHeaderName(name string) string {
	return encode([]byte(name), nameKeep)
}

// DecodeHeaderName reverses EncodeHeaderName for the part of a header name after
// HeaderPrefix. It fails on a '%' that is not followed by two hex digits.
func DecodeHeaderName(s string) (string, error) {
	b, err := decode(s)
	return string(b), err
}

// encode percent-encodes the bytes of v for which keep is false.
func encode(v []byte, keep func(byte) bool) string {
	n := 0
	for _, b := range v {
		if !keep(b) {
			n++
		}
	}
	if n == 0 {
		return string(v)
	}
	out := make([]byte, 0, len(v)+2*n)
	for _, b := range v {
		if keep(b) {
			out = append(out, b)
			continue
		}
		out = append(out, '%', upperHex[b>>4], upperHex[b&0x0f])
	}
	return string(out)
}

var errBadEscape = errors.New("'%' must be followed by two hex digits")

// decode percent-decodes s.
func decode(s string) ([]byte, error) {
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		if s[i] != '%' {
			out = append(out, s[i])
			continue
		}
		if i+2 >= len(s) {
			return nil, fmt.Errorf("decode %q at byte %d: %w", s, i, errBadEscape)
		}
		hi, ok1 := unhex(s[i+1])
		lo, ok2 := unhex(s[i+2])
		if !ok1 || !ok2 {
			return nil, fmt.Errorf("decode %q at byte %d: %w", s, i, errBadEscape)
		}
		out = append(out, hi<<4|lo)
		i += 2
	}
	return out, nil
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// validFieldValue reports whether v may be sent as an HTTP header value as it is:
// no control bytes other than HTAB (RFC 9110 field-value; obs-text is allowed), as
// Go's HTTP client checks before it sends a request.
func validFieldValue(v []byte) bool {
	for _, b := range v {
		if (b < 0x20 && b != '\t') || b == 0x7f {
			return false
		}
	}
	return true
}
