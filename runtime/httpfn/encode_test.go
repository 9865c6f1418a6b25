package httpfn

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// isPrintableValue reports whether s is a header value no client, server or proxy
// refuses or changes: printable ASCII without spaces (so no CTL, CR or LF and
// nothing to trim).
func isPrintableValue(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] <= 0x20 || s[i] >= 0x7f {
			return false
		}
	}
	return true
}

// isToken reports whether s is made of HTTP token characters (RFC 9110).
func isToken(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return false
		}
	}
	return true
}

func TestEncodeHeaderValue(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ in, want string }{
		{"", ""},
		{"kafka://orders", "kafka://orders"},
		{"orders/3/42", "orders/3/42"},
		{"a b", "a%20b"},
		{`say "hi"`, "say%20%22hi%22"},
		{"100%", "100%25"},
		{"a,b", "a%2Cb"},
		{"\x00\r\n\t\x7f\xff", "%00%0D%0A%09%7F%FF"},
		{"é", "%C3%A9"},
	} {
		got := EncodeHeaderValue([]byte(tc.in))
		require.Equal(t, tc.want, got, "encode %q", tc.in)
		back, err := DecodeHeaderValue(got)
		require.NoError(t, err)
		require.Equal(t, tc.in, string(back))
	}
}

func TestEncodeHeaderName(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ in, want string }{
		{"", ""},
		{"content-type", "content-type"},
		{"Trace_ID.v2", "Trace_ID.v2"},
		{"trace id", "trace%20id"},
		{"a:b", "a%3Ab"},
		{"50%", "50%25"},
		{"x\r\ny", "x%0D%0Ay"},
		{"ü", "%C3%BC"},
		{"(a)/b", "%28a%29%2Fb"},
	} {
		got := EncodeHeaderName(tc.in)
		require.Equal(t, tc.want, got, "encode %q", tc.in)
		back, err := DecodeHeaderName(got)
		require.NoError(t, err)
		require.Equal(t, tc.in, back)
	}
}

func TestDecodeHeaderValue(t *testing.T) {
	t.Parallel()
	got, err := DecodeHeaderValue("%c3%a9 raw%41")
	require.NoError(t, err, "lower-case hex and unencoded bytes are accepted")
	require.Equal(t, "é rawA", string(got))
	for _, bad := range []string{"%", "%4", "abc%", "%G0", "%0g", "a%%20"} {
		_, err := DecodeHeaderValue(bad)
		require.Error(t, err, "decode %q", bad)
		_, err = DecodeHeaderName(bad)
		require.Error(t, err, "decode name %q", bad)
	}
}

func TestValidFieldValue(t *testing.T) {
	t.Parallel()
	require.True(t, validFieldValue([]byte("application/json; charset=utf-8")))
	require.True(t, validFieldValue([]byte("a\tb\xff")))
	require.False(t, validFieldValue([]byte("a\r\nX-Evil: 1")))
	require.False(t, validFieldValue([]byte("a\x00")))
	require.False(t, validFieldValue([]byte("a\x7f")))
}

func FuzzEncodeHeaderValue(f *testing.F) {
	for _, s := range []string{"", "a b", "\x00\xff%\"", "%41", "kafka://orders", "é,"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		enc := EncodeHeaderValue(in)
		if !isPrintableValue(enc) {
			t.Fatalf("EncodeHeaderValue(%q) = %q: not printable ASCII", in, enc)
		}
		if strings.ContainsAny(enc, `",`) {
			t.Fatalf("EncodeHeaderValue(%q) = %q keeps a '\"' or ','", in, enc)
		}
		back, err := DecodeHeaderValue(enc)
		if err != nil || string(back) != string(in) {
			t.Fatalf("DecodeHeaderValue(%q) = %q, %v; want %q", enc, back, err, in)
		}
		// Header names are case-insensitive and HTTP/2 lowercases them; values
		// pass unchanged, but the decoder takes either hex case all the same.
		back, err = DecodeHeaderValue(strings.ToLower(enc))
		if err != nil || string(back) != asciiLower(string(in)) {
			t.Fatalf("DecodeHeaderValue(lower %q) = %q, %v", enc, back, err)
		}
		// Decoding any input never panics; what decodes re-encodes to itself.
		if d, err := DecodeHeaderValue(string(in)); err == nil {
			again, err := DecodeHeaderValue(EncodeHeaderValue(d))
			if err != nil || string(again) != string(d) {
				t.Fatalf("round trip of decoded %q: %q, %v", d, again, err)
			}
		}
	})
}

func FuzzEncodeHeaderName(f *testing.F) {
	for _, s := range []string{"", "content-type", "trace id", "50%", "x\r\ny", "ü"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		enc := EncodeHeaderName(in)
		if !isToken(HeaderPrefix + enc) {
			t.Fatalf("EncodeHeaderName(%q) = %q: not a token", in, enc)
		}
		back, err := DecodeHeaderName(enc)
		if err != nil || back != in {
			t.Fatalf("DecodeHeaderName(%q) = %q, %v; want %q", enc, back, err, in)
		}
		// HTTP/2 lowercases header names: the decoded name differs at most in the
		// case of ASCII letters.
		back, err = DecodeHeaderName(strings.ToLower(enc))
		if err != nil || back != asciiLower(in) {
			t.Fatalf("DecodeHeaderName(lower %q) = %q, %v; want %q up to case", enc, back, err, in)
		}
	})
}
