package dlq

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestProgress(t *testing.T) {
	t.Parallel()
	var plain strings.Builder
	p := NewProgress(&plain, false, 20)
	for done := 1; done <= 20; done++ {
		p.Update(done)
	}
	p.Finish()
	lines := strings.Split(strings.TrimSpace(plain.String()), "\n")
	require.Len(t, lines, 10, "one line per tenth off a terminal:\n%s", plain.String())
	require.Equal(t, "redriven 20 of 20 records (100%)", lines[9])

	var tty strings.Builder
	clock := time.Unix(0, 0)
	p = NewProgress(&tty, true, 4)
	p.now = func() time.Time { return clock }
	p.Update(1)
	p.Update(2) // within 100ms of the last draw: not drawn
	clock = clock.Add(time.Second)
	p.Update(4) // the end is always drawn
	p.Finish()
	out := tty.String()
	require.Equal(t, 2, strings.Count(out, "\r\033[K"), "%q", out)
	require.Contains(t, out, "100% 4/4")
	require.True(t, strings.HasSuffix(out, "\n"), "the terminal line is ended")
}
