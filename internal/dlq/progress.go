package dlq

import (
	"fmt"
	"io"
	"strings"
	"time"
)

// Progress shows how far a redrive is: on a terminal a bar redrawn in place (at most
// every 100ms), elsewhere a plain line at every tenth of the total. It owns no
// goroutine and is for one goroutine: it draws when told of progress.
type Progress struct {
	w        io.Writer
	tty      bool
	total    int
	start    time.Time
	drawn    time.Time
	lastTick int // tenths of the total reported so far (plain lines)
	now      func() time.Time
}

// NewProgress starts showing the progress of total records on w.
func NewProgress(w io.Writer, tty bool, total int) *Progress {
	p := &Progress{w: w, tty: tty, total: total, now: time.Now}
	p.start = p.now()
	return p
}

const progressWidth = 30

// Update shows done records of the total.
func (p *Progress) Update(done int) {
	frac := 1.0
	if p.total > 0 {
		frac = min(float64(done)/float64(p.total), 1)
	}
	if !p.tty {
		if tick := int(frac * 10); tick > p.lastTick {
			p.lastTick = tick
			fmt.Fprintf(p.w, "redriven %d of %d records (%.0f%%)\n", done, p.total, frac*100)
		}
		return
	}
	now := p.now()
	if done < p.total && now.Sub(p.drawn) < 100*time.Millisecond {
		return
	}
	p.drawn = now
	full := int(frac * progressWidth)
	rate := ""
	if s := now.Sub(p.start).Seconds(); s > 0.2 && done > 0 {
		rate = fmt.Sprintf(" %.0f/s", float64(done)/s)
	}
	fmt.Fprintf(p.w, "\r\033[Kredrive [%s%s] %3.0f%% %d/%d%s", strings.Repeat("=", full),
		strings.Repeat(" ", progressWidth-full), frac*100, done, p.total, rate)
}

// Finish ends the bar's line on a terminal.
func (p *Progress) Finish() {
	if p.tty {
		fmt.Fprintln(p.w)
	}
}
