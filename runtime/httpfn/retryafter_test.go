package httpfn

import (
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

var fixedNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func TestParseRetryAfter(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in      string
		want    time.Duration
		wantErr bool
	}{
		{in: "", want: 0},
		{in: "  ", want: 0},
		{in: "0", want: 0},
		{in: "120", want: 2 * time.Minute},
		{in: " 7\t", want: 7 * time.Second},
		{in: "007", want: 7 * time.Second},
		{in: "86399", want: 86399 * time.Second},
		{in: "86400", want: MaxRetryAfter},
		{in: "99999999999999999999999999", want: MaxRetryAfter},
		{in: fixedNow.Add(90 * time.Second).Format(http.TimeFormat), want: 90 * time.Second},
		{in: fixedNow.Add(-time.Hour).Format(http.TimeFormat), want: 0},
		{in: fixedNow.Add(72 * time.Hour).Format(http.TimeFormat), want: MaxRetryAfter},
		{in: fixedNow.Add(time.Minute).Format(time.RFC850), want: time.Minute},
		{in: fixedNow.Add(time.Minute).Format(time.ANSIC), want: time.Minute},
		{in: "-5", wantErr: true},
		{in: "+5", wantErr: true},
		{in: "1.5", wantErr: true},
		{in: "soon", wantErr: true},
		{in: "Mon, 99 Foo 2026 00:00:00 GMT", wantErr: true},
	} {
		got, err := parseRetryAfter(tc.in, fixedNow)
		if tc.wantErr {
			require.Error(t, err, "parse %q", tc.in)
		} else {
			require.NoError(t, err, "parse %q", tc.in)
		}
		require.Equal(t, tc.want, got, "parse %q", tc.in)
	}
}

func FuzzParseRetryAfter(f *testing.F) {
	for _, s := range []string{"", "0", "120", "99999999999999999999", "-1", "soon",
		fixedNow.Format(http.TimeFormat), fixedNow.Add(time.Hour).Format(time.RFC850)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		d, err := parseRetryAfter(in, fixedNow)
		if d < 0 || d > MaxRetryAfter {
			t.Fatalf("parseRetryAfter(%q) = %v, out of [0, %v]", in, d, MaxRetryAfter)
		}
		if err != nil && d != 0 {
			t.Fatalf("parseRetryAfter(%q) = %v with error %v; want 0", in, d, err)
		}
		s := strings.Trim(in, " \t")
		if s != "" && allDigits(s) {
			if err != nil {
				t.Fatalf("parseRetryAfter(%q): delay-seconds refused: %v", in, err)
			}
			n, perr := strconv.ParseUint(s, 10, 64)
			if perr == nil && n < 86400 && d != time.Duration(n)*time.Second {
				t.Fatalf("parseRetryAfter(%q) = %v; want %ds", in, d, n)
			}
			if (perr != nil || n >= 86400) && d != MaxRetryAfter {
				t.Fatalf("parseRetryAfter(%q) = %v; want the cap", in, d)
			}
		}
	})
}
