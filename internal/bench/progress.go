package bench

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"
)

// progressBar shows the phase running: on a terminal a bar redrawn in place, elsewhere
// one line per finished phase. A nil writer shows nothing. It is safe for concurrent
// use and owns no goroutine: it redraws when told of progress.
type progressBar struct {
	w   io.Writer
	tty bool

	mu     sync.Mutex
	name   string
	total  int64
	done   int64
	start  time.Time
	drawn  time.Time
	active bool
}

func newProgressBar(w io.Writer, tty bool) *progressBar { return &progressBar{w: w, tty: tty} }

// phase starts a phase of total steps.
func (b *progressBar) phase(name string, total int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.name, b.total, b.done, b.start, b.active = name, total, 0, time.Now(), true
	b.drawLocked(true)
}

// set moves the bar to done steps.
func (b *progressBar) set(done int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.active {
		return
	}
	b.done = done
	b.drawLocked(false)
}

const barWidth = 30

func (b *progressBar) drawLocked(force bool) {
	if b.w == nil || !b.tty || (!force && time.Since(b.drawn) < 100*time.Millisecond) {
		return
	}
	b.drawn = time.Now()
	frac := 0.0
	if b.total > 0 {
		frac = min(float64(b.done)/float64(b.total), 1)
	}
	full := int(frac * barWidth)
	elapsed := time.Since(b.start)
	rate := ""
	if s := elapsed.Seconds(); s > 0.2 && b.done > 0 {
		rate = formatRate(float64(b.done) / s)
	}
	fmt.Fprintf(b.w, "\r\033[K%-40s [%s%s] %3.0f%% %s/%s %s", b.name, strings.Repeat("=", full), strings.Repeat(" ", barWidth-full),
		frac*100, formatCount(float64(b.done)), formatCount(float64(b.total)), rate)
}

// finish ends the phase with a summary.
func (b *progressBar) finish(summary string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.active {
		return
	}
	b.active = false
	if b.w == nil {
		return
	}
	took := time.Since(b.start).Round(10 * time.Millisecond)
	if b.tty {
		fmt.Fprintf(b.w, "\r\033[K%-40s %s (%s)\n", b.name, summary, took)
		return
	}
	fmt.Fprintf(b.w, "%s: %s (%s)\n", b.name, summary, took)
}

// close ends a phase left running (an error) so the terminal line is not left dirty.
func (b *progressBar) close() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.active && b.w != nil && b.tty {
		fmt.Fprint(b.w, "\n")
	}
	b.active = false
}
