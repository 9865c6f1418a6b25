package httpfn

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// MaxRetryAfter caps the delay a Retry-After header may ask for.
const MaxRetryAfter = 24 * time.Hour

// parseRetryAfter reads a Retry-After header value (RFC 9110 10.2.3): either
// delay-seconds or an HTTP-date, taken relative to now. The result is in
// [0, MaxRetryAfter]: a date in the past is 0 and a longer delay is capped. An empty
// value is 0 without error; anything else unreadable is 0 with an error saying why.
func parseRetryAfter(v string, now time.Time) (time.Duration, error) {
	v = strings.Trim(v, " \t")
	if v == "" {
		return 0, nil
	}
	if allDigits(v) {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil || n >= uint64(MaxRetryAfter/time.Second) {
			// Only a range error is possible: a valid delay too long to hold.
			return MaxRetryAfter, nil
		}
		return time.Duration(n) * time.Second, nil
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return 0, fmt.Errorf("retry-after %q is neither delay-seconds nor an HTTP-date", v)
	}
	return min(max(t.Sub(now), 0), MaxRetryAfter), nil
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
