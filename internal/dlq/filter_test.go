package dlq

import (
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestFilterMatch(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 1, 2, 15, 0, 0, 0, time.UTC)
	e := &Entry{Function: "charge", Reason: "exhausted", Error: "HTTP 503: Service Unavailable", Time: t0}
	for _, c := range []struct {
		name string
		f    Filter
		want bool
	}{
		{"empty selects all", Filter{}, true},
		{"function", Filter{Functions: []string{"refund", "charge"}}, true},
		{"other function", Filter{Functions: []string{"refund"}}, false},
		{"function is exact", Filter{Functions: []string{"charg"}}, false},
		{"reason", Filter{Reasons: []string{"exhausted"}}, true},
		{"other reason", Filter{Reasons: []string{"fatal"}}, false},
		{"since is inclusive", Filter{Since: t0}, true},
		{"since after", Filter{Since: t0.Add(time.Millisecond)}, false},
		{"until is exclusive", Filter{Until: t0}, false},
		{"until after", Filter{Until: t0.Add(time.Millisecond)}, true},
		{"range", Filter{Since: t0.Add(-time.Hour), Until: t0.Add(time.Hour)}, true},
		{"error substring, any case", Filter{ErrorContains: "service unavailable"}, true},
		{"error not contained", Filter{ErrorContains: "timeout"}, false},
		{"all must match", Filter{Functions: []string{"charge"}, ErrorContains: "timeout"}, false},
	} {
		require.Equal(t, c.want, c.f.Match(e), c.name)
	}
}

func TestFilterValidate(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 1, 2, 15, 0, 0, 0, time.UTC)
	require.NoError(t, Filter{Since: t0, Until: t0.Add(time.Second)}.Validate())
	require.NoError(t, Filter{Since: t0}.Validate())
	err := Filter{Since: t0, Until: t0}.Validate()
	require.True(t, errors.Is(err, ErrBadInput))
	require.Contains(t, err.Error(), "--since")
}

func TestParseTime(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 2, 15, 0, 0, 0, time.UTC)
	got, err := ParseTime("2h", now)
	require.NoError(t, err)
	require.Equal(t, now.Add(-2*time.Hour), got)
	got, err = ParseTime("2026-01-01T10:00:00.5+01:00", now)
	require.NoError(t, err)
	require.True(t, got.Equal(time.Date(2026, 1, 1, 9, 0, 0, 500_000_000, time.UTC)))
	got, err = ParseTime("", now)
	require.NoError(t, err)
	require.True(t, got.IsZero())
	for _, bad := range []string{"yesterday", "2026-01-01", "-2h", "12"} {
		_, err := ParseTime(bad, now)
		require.Error(t, err, bad)
		require.Contains(t, err.Error(), "RFC 3339", bad)
	}
}

func TestSplitList(t *testing.T) {
	t.Parallel()
	require.Equal(t, []string{"a", "b"}, SplitList(" a, ,b ,"))
	require.Empty(t, SplitList(" , "))
}
