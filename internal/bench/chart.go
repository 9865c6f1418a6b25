package bench

import (
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"golang.org/x/image/font"
	"golang.org/x/image/font/basicfont"
	"golang.org/x/image/math/fixed"
)

// Chart geometry, in pixels. Both panels share the label column, the bar span and the
// note column, so their bars line up.
const (
	chartWidth  = 1200
	chartMargin = 24
	labelChars  = 34  // characters of a label that fit left of the bars
	barLeft     = 300 // where every bar starts: the axis's lowest decade
	barRight    = 860 // the axis's highest decade
	noteLeft    = 940 // ratios, CPU, max latency: a column right of the bars

	throughputPitch = 44 // one throughput row: name + description, one bar
	latencyPitch    = 64 // one latency group: three bars
	latencyBar      = 13 // height of one latency bar
	latencyBarPitch = 18

	glyphAdvance = 7 // basicfont.Face7x13
	glyphAscent  = 11
	glyphHeight  = 13
)

// latencyTarget is the p99 produce → start latency kasync aims for; the latency panel
// draws it as a reference line.
const latencyTarget = 10 * time.Millisecond

var (
	colorBackground = color.RGBA{0xff, 0xff, 0xff, 0xff}
	colorInk        = color.RGBA{0x22, 0x22, 0x22, 0xff}
	colorMuted      = color.RGBA{0x8a, 0x8a, 0x8a, 0xff}
	colorRule       = color.RGBA{0xd4, 0xd4, 0xd4, 0xff}
	colorGrid       = color.RGBA{0xe2, 0xe2, 0xe2, 0xff}
	colorGridMinor  = color.RGBA{0xf2, 0xf2, 0xf2, 0xff}
	colorAxis       = color.RGBA{0x60, 0x60, 0x60, 0xff}
	colorBad        = color.RGBA{0xc6, 0x28, 0x28, 0xff}
	colorGood       = color.RGBA{0x2e, 0x7d, 0x32, 0xff}
	colorWarn       = color.RGBA{0xb2, 0x6a, 0x00, 0xff}
)

// Mode colours: kasync's modes are blues, its peers warm oranges.
var (
	modeColors = map[string]color.RGBA{
		ModeInProcess: {0x1f, 0x5f, 0xa8, 0xff},
		ModeSplit:     {0x4f, 0x9b, 0xd9, 0xff},
		ModeRaw:       {0xc0, 0x50, 0x1a, 0xff},
		ModeInline:    {0xe0, 0x7b, 0x28, 0xff},
		ModeAsynq:     {0xe8, 0xa8, 0x38, 0xff},
	}
	colorOtherKasync = color.RGBA{0x8c, 0xb8, 0xe0, 0xff}
	colorOtherPeer   = color.RGBA{0xc9, 0x9a, 0x6e, 0xff}
)

// modeOrder is the order ratios are listed in: the run order of the modes.
var modeOrder = []string{ModeRaw, ModeInline, ModeInProcess, ModeSplit, ModeAsynq}

// modeColor is the colour of mode's bars.
func modeColor(mode string) color.RGBA {
	if c, ok := modeColors[mode]; ok {
		return c
	}
	if isKasyncMode(mode) {
		return colorOtherKasync
	}
	return colorOtherPeer
}

func isKasyncMode(mode string) bool { return strings.HasPrefix(mode, "kasync") }

// WriteChart draws r as a PNG: a title with the machine and the settings, a throughput
// panel (one bar per mode, log scale, with kasync's ratios to its peers), a latency
// panel (p50, p99 and p999 per mode on a log scale against the 10 ms target) and, when
// r.Lateness is set, the delay ladder's lateness.
func WriteChart(w io.Writer, r *Report) error {
	if r == nil {
		return errors.New("bench: WriteChart: nil report")
	}
	c := newCanvas(chartWidth, chartHeightBound(r))
	y := c.header(chartMargin, r)
	y = c.throughputPanel(y, r)
	y = c.latencyPanel(y, r)
	y = c.latenessPanel(y, r.Lateness)
	img := c.img.SubImage(image.Rect(0, 0, chartWidth, min(y+chartMargin, c.img.Bounds().Dy())))
	if err := png.Encode(w, img); err != nil {
		return fmt.Errorf("bench: WriteChart: %w", err)
	}
	return nil
}

// chartHeightBound is a height the chart of r surely fits in; WriteChart crops to what
// it drew.
func chartHeightBound(r *Report) int {
	return 600 + len(r.Rows)*(throughputPitch+latencyPitch)
}

// header draws the title, settings and machine lines from y and returns where the
// next section starts.
func (c *canvas) header(y int, r *Report) int {
	title := []string{"kasync bench"}
	if !r.Started.IsZero() {
		title = append(title, r.Started.Format("2006-01-02 15:04 MST"))
	}
	cpu := r.Machine.CPU
	if cpu == "" {
		cpu = "unknown CPU"
	}
	if r.Machine.Cores > 0 {
		cpu += fmt.Sprintf(", %d cores", r.Machine.Cores)
	}
	// The title is drawn twice the font's size; a CPU name too long for that goes on a
	// line of its own.
	fits := func(s string) bool { return chartMargin+textWidth(s)*glyphAdvance*2 <= chartWidth-chartMargin }
	text := strings.Join(append(title, cpu), " — ")
	if !fits(text) {
		text = strings.Join(title, " — ")
	}
	c.textScaled(chartMargin, y+2*glyphAscent, text, colorInk, 2)
	y += 2*glyphHeight + 10
	if !strings.HasSuffix(text, cpu) {
		c.bold(chartMargin, y+glyphAscent, truncate(cpu, maxChars(chartMargin)), colorInk)
		y += 18
	}
	c.text(chartMargin, y+glyphAscent, truncate(settingsLine(r.Settings), maxChars(chartMargin)), colorInk)
	y += 18
	c.text(chartMargin, y+glyphAscent, truncate(machineLine(r), maxChars(chartMargin)), colorMuted)
	return y + 18 + 8
}

// settingsLine describes the workload: "records 1M (asynq 200k) · size 256 B · ...".
func settingsLine(s Settings) string {
	records := "records " + formatCount(float64(s.Records))
	if s.AsynqRecords > 0 {
		records += " (asynq " + formatCount(float64(s.AsynqRecords)) + ")"
	}
	parts := []string{records, "size " + formatBytes(int64(s.Size)), fmt.Sprintf("partitions %d", s.Partitions)}
	if s.Keys > 0 {
		parts = append(parts, "keys "+formatCount(float64(s.Keys)))
	}
	parts = append(parts, fmt.Sprintf("concurrency %d", s.Concurrency))
	return strings.Join(parts, " · ")
}

// machineLine is the rest of where and how long: GOMAXPROCS, Go, OS, broker, duration.
func machineLine(r *Report) string {
	m := r.Machine
	var parts []string
	if m.GOMAXPROCS > 0 {
		parts = append(parts, fmt.Sprintf("GOMAXPROCS %d", m.GOMAXPROCS))
	}
	for _, s := range []string{m.GoVersion, m.OS, m.Kernel} {
		if s != "" {
			parts = append(parts, s)
		}
	}
	if m.Broker != "" {
		parts = append(parts, "broker: "+m.Broker)
	}
	if r.Took > 0 {
		parts = append(parts, "took "+time.Duration(r.Took).Round(time.Second).String())
	}
	return strings.Join(parts, " · ")
}

// sectionHeading draws a rule, a bold heading and a muted subtitle after it, and
// returns the y below them.
func (c *canvas) sectionHeading(y int, heading, subtitle string) int {
	c.fill(chartMargin, y, chartWidth-chartMargin, y+1, colorRule)
	base := y + 10 + glyphAscent
	x := c.bold(chartMargin, base, heading, colorInk)
	if subtitle != "" {
		c.text(x+14, base, truncate(subtitle, maxChars(x+14)), colorMuted)
	}
	return y + 10 + glyphHeight + 12
}

// throughputPanel draws one bar per row on a log scale, from y; it returns the y below.
func (c *canvas) throughputPanel(y int, r *Report) int {
	subtitle := "log scale; a backlog read as fast as each mode can, from group assignment to the last function start"
	y = c.sectionHeading(y, "throughput (tasks/s)", "")
	c.text(chartMargin, y, subtitle, colorMuted)
	c.legend(y)
	y += 10
	if len(r.Rows) == 0 {
		c.text(chartMargin, y+glyphAscent, "no modes ran", colorMuted)
		return y + 30
	}
	var rates []float64
	for _, row := range r.Rows {
		if rowRan(row) {
			rates = append(rates, row.Rate)
		}
	}
	axis := newLogAxis(rates, 1e4, 1e6, barLeft, barRight)
	bottom := y + len(r.Rows)*throughputPitch
	c.grid(axis, y, bottom, func(v float64) string { return formatCount(v) })

	for _, row := range r.Rows {
		top := y
		ran := rowRan(row)
		nameColor := colorInk
		if !ran {
			nameColor = colorMuted
		}
		c.bold(chartMargin, top+16, truncate(row.Mode, labelChars), nameColor)
		c.text(chartMargin, top+32, truncate(row.Description, labelChars), colorMuted)

		barTop, barHeight := top+10, 22
		base := barTop + barHeight/2 + 5
		switch {
		case row.Skipped != "":
			c.text(barLeft+8, base, truncate("skipped: "+row.Skipped, maxChars(barLeft+8)), colorMuted)
		case row.Error != "":
			c.text(barLeft+8, base, truncate("failed: "+row.Error, maxChars(barLeft+8)), colorMuted)
		case !ran:
			c.text(barLeft+8, base, "no result", colorMuted)
		default:
			end := axis.x(row.Rate)
			c.fill(barLeft, barTop, end, barTop+barHeight, modeColor(row.Mode))
			c.clear(end+6, base, formatRate(row.Rate))
			c.bold(end+6, base, formatRate(row.Rate), colorInk)
			if notes := ratioNotes(row.Mode, r.Ratios); notes != "" {
				c.text(noteLeft, top+16, truncate(notes, maxChars(noteLeft)), colorInk)
			}
			if cost := costNote(row); cost != "" {
				c.text(noteLeft, top+32, truncate(cost, maxChars(noteLeft)), colorMuted)
			}
		}
		y += throughputPitch
	}
	c.fill(barLeft, y-throughputPitch*len(r.Rows), barLeft+1, bottom, colorAxis)
	return bottom + 30
}

// legend draws the two colour families at the right end of the line with baseline y.
func (c *canvas) legend(y int) {
	x := chartWidth - chartMargin - textWidth("kasync")*glyphAdvance - textWidth("peers")*glyphAdvance - 2*18 - 16
	for _, l := range []struct {
		name  string
		color color.RGBA
	}{{"kasync", modeColors[ModeInProcess]}, {"peers", modeColors[ModeRaw]}} {
		c.fill(x, y-10, x+12, y, l.color)
		x = c.text(x+18, y, l.name, colorInk) + 16
	}
}

// rowRan says whether row has a throughput to draw.
func rowRan(row Row) bool {
	return row.Skipped == "" && row.Error == "" && row.Rate > 0 && !math.IsInf(row.Rate, 0)
}

// ratioNotes lists mode's ratios to its peers, in run order: "0.93× raw-franz-go, 12.4× asynq".
func ratioNotes(mode string, ratios map[string]float64) string {
	type ratio struct {
		peer  string
		value float64
	}
	var found []ratio
	for key, v := range ratios {
		if peer, ok := strings.CutPrefix(key, mode+"/"); ok && peer != "" {
			found = append(found, ratio{peer, v})
		}
	}
	rank := func(peer string) int {
		for i, m := range modeOrder {
			if m == peer {
				return i
			}
		}
		return len(modeOrder)
	}
	sort.Slice(found, func(i, j int) bool {
		ri, rj := rank(found[i].peer), rank(found[j].peer)
		if ri != rj {
			return ri < rj
		}
		return found[i].peer < found[j].peer
	})
	parts := make([]string, len(found))
	for i, f := range found {
		parts[i] = formatRatio(f.value) + " " + f.peer
	}
	return strings.Join(parts, ", ")
}

// costNote is a row's CPU and memory: "cpu 2.1 s/1M tasks · rss 85 MiB".
func costNote(row Row) string {
	var parts []string
	if row.CPUPerMillion > 0 {
		parts = append(parts, "cpu "+trimZeros(sig3(row.CPUPerMillion))+" s/1M tasks")
	}
	if row.PeakRSS > 0 {
		parts = append(parts, "rss "+formatBytes(row.PeakRSS))
	}
	return strings.Join(parts, " · ")
}

// latencyPanel draws p50, p99 and p999 for each row with latency figures, from y; it
// returns the y below.
func (c *canvas) latencyPanel(y int, r *Report) int {
	heading := "produce → start latency"
	if f := r.Settings.LatencyFraction; f > 0 {
		heading += " at " + trimZeros(strconv.FormatFloat(f, 'f', 2, 64)) + "× peak"
	}
	var sub []string
	if r.Settings.LatencyMaxRate > 0 {
		sub = append(sub, "at most "+formatRate(r.Settings.LatencyMaxRate))
	}
	if d := time.Duration(r.Settings.LatencyDuration); d > 0 {
		sub = append(sub, d.String()+" per mode")
	}
	y = c.sectionHeading(y, heading, strings.Join(sub, ", "))

	var rows []Row
	var values []float64
	for _, row := range r.Rows {
		if row.Skipped != "" || row.Error != "" || row.Latency == nil {
			continue
		}
		rows = append(rows, row)
		l := row.Latency
		for _, d := range []Duration{l.P50, l.P99, l.P999} {
			values = append(values, time.Duration(d).Seconds())
		}
	}
	if len(rows) == 0 {
		c.text(chartMargin, y, "no latency figures", colorMuted)
		return y + 30
	}
	c.text(chartMargin, y, "log scale", colorMuted)
	axis := newLogAxis(values, 1e-4, 1, barLeft, barRight)
	targetX := axis.x(latencyTarget.Seconds())
	c.text(targetX+5, y, "target p99 "+formatLatency(latencyTarget), colorBad)
	y += 10
	bottom := y + len(rows)*latencyPitch - 8
	c.grid(axis, y, bottom, func(v float64) string {
		return formatLatency(time.Duration(math.Round(v * float64(time.Second))))
	})
	c.fill(barLeft, y, barLeft+1, bottom, colorAxis)
	c.fill(targetX, y-10, targetX+1, bottom, colorBad)

	for _, row := range rows {
		l := row.Latency
		c.bold(chartMargin, y+14, truncate(row.Mode, labelChars-6), colorInk)
		c.text(chartMargin, y+30, "@ "+formatRate(l.Offered), colorMuted)
		base := modeColor(row.Mode)
		for i, q := range []struct {
			name  string
			value Duration
			color color.RGBA
		}{
			{"p50", l.P50, mix(base, colorBackground, 0.5)},
			{"p99", l.P99, base},
			{"p999", l.P999, mix(base, color.RGBA{0, 0, 0, 0xff}, 0.3)},
		} {
			top := y + 4 + i*latencyBarPitch
			textBase := top + latencyBar/2 + 5
			c.textRight(barLeft-8, textBase, q.name, colorMuted)
			d := time.Duration(q.value)
			end := barLeft
			if d > 0 {
				end = axis.x(d.Seconds())
				c.fill(barLeft, top, end, top+latencyBar, q.color)
				if targetX < end {
					c.fill(targetX, top, targetX+1, top+latencyBar, colorBad)
				}
			}
			valueColor := colorInk
			if q.name == "p99" && d > latencyTarget {
				valueColor = colorBad
			}
			c.clear(end+6, textBase, formatLatency(d))
			c.text(end+6, textBase, formatLatency(d), valueColor)
		}
		c.text(noteLeft, y+14, "max "+formatLatency(time.Duration(l.Max)), colorMuted)
		if l.Count > 0 {
			c.text(noteLeft, y+30, formatCount(float64(l.Count))+" samples", colorMuted)
		}
		if l.Offered > 0 && l.Achieved < 0.95*l.Offered {
			c.text(noteLeft, y+46, "achieved only "+formatRate(l.Achieved), colorWarn)
		}
		y += latencyPitch
	}
	return bottom + 30
}

// latenessPanel draws the delay ladder's lateness from y, if it was measured; it
// returns the y below.
func (c *canvas) latenessPanel(y int, l *Lateness) int {
	if l == nil {
		return y
	}
	y = c.sectionHeading(y, "delay lateness (retry due → start)", "")
	base := y + glyphAscent - 8
	switch {
	case l.Skipped != "":
		c.text(chartMargin, base, truncate("skipped: "+l.Skipped, maxChars(chartMargin)), colorMuted)
		return y + 20
	case l.Error != "":
		c.text(chartMargin, base, truncate("failed: "+l.Error, maxChars(chartMargin)), colorMuted)
		return y + 20
	}
	x := chartMargin
	for _, f := range []struct {
		name  string
		value Duration
	}{{"p50", l.P50}, {"p99", l.P99}, {"max", l.Max}} {
		x = c.text(x, base, f.name+" ", colorMuted)
		x = c.bold(x, base, formatLatency(time.Duration(f.value)), colorInk) + 24
	}
	x = c.text(x, base, "early ", colorMuted)
	early, earlyColor := strconv.FormatInt(l.Early, 10), colorGood
	if l.Early != 0 {
		earlyColor = colorBad
	}
	x = c.bold(x, base, early, earlyColor)
	c.text(x+8, base, "(must be 0)", colorMuted)

	ladder := make([]string, len(l.Ladder))
	for i, d := range l.Ladder {
		ladder[i] = formatLatency(time.Duration(d))
	}
	parts := []string{"ladder " + strings.Join(ladder, ", ")}
	if l.Backoff > 0 {
		parts = append(parts, "backoff "+formatLatency(time.Duration(l.Backoff)))
	}
	if l.Retries > 0 {
		retries := formatCount(float64(l.Retries)) + " retries"
		if l.Offered > 0 {
			retries += " @ " + formatRate(l.Offered)
		}
		parts = append(parts, retries)
	}
	if l.Settings != "" {
		parts = append(parts, l.Settings)
	}
	c.text(chartMargin, base+18, truncate(strings.Join(parts, " · "), maxChars(chartMargin)), colorMuted)
	return y + 30
}

// logAxis maps values between lo and hi, both powers of ten, onto the pixels x0..x1
// on a log10 scale.
type logAxis struct {
	lo, hi float64
	x0, x1 int
}

// newLogAxis is an axis from lo to hi, widened by whole decades so that every positive
// finite value fits and the smallest still draws a visible bar.
func newLogAxis(values []float64, lo, hi float64, x0, x1 int) logAxis {
	for _, v := range values {
		if !(v > 0) || math.IsInf(v, 0) {
			continue
		}
		if v < lo*1.5 {
			lo = math.Pow(10, math.Floor(math.Log10(v/1.5)))
		}
		if v > hi {
			hi = math.Pow(10, math.Ceil(math.Log10(v)))
		}
	}
	return logAxis{lo: lo, hi: hi, x0: x0, x1: x1}
}

// x is where v falls, clamped to the axis.
func (a logAxis) x(v float64) int {
	if !(v > a.lo) {
		return a.x0
	}
	f := (math.Log10(v) - math.Log10(a.lo)) / (math.Log10(a.hi) - math.Log10(a.lo))
	f = math.Min(f, 1)
	return a.x0 + int(math.Round(f*float64(a.x1-a.x0)))
}

// decades are the powers of ten from lo to hi.
func (a logAxis) decades() []float64 {
	var ds []float64
	for e := math.Round(math.Log10(a.lo)); e <= math.Round(math.Log10(a.hi)); e++ {
		ds = append(ds, math.Pow(10, e))
	}
	return ds
}

// grid draws the axis's gridlines from top to bottom and labels its decades below.
func (c *canvas) grid(a logAxis, top, bottom int, label func(float64) string) {
	decades := a.decades()
	for i, d := range decades {
		if i+1 < len(decades) {
			for k := 2.0; k <= 9; k++ {
				x := a.x(d * k)
				c.fill(x, top, x+1, bottom, colorGridMinor)
			}
		}
		x := a.x(d)
		c.fill(x, top, x+1, bottom+4, colorGrid)
		s := label(d)
		c.text(x-textWidth(s)*glyphAdvance/2, bottom+6+glyphAscent, s, colorMuted)
	}
}

// sig3 writes x with three significant digits, or as an integer from 100 up.
func sig3(x float64) string {
	decimals := 0
	if a := math.Abs(x); a > 0 && a < 100 {
		decimals = 2 - int(math.Floor(math.Log10(a)))
	}
	return strconv.FormatFloat(x, 'f', decimals, 64)
}

// trimZeros drops a decimal fraction's trailing zeros: "1.50" → "1.5", "10.0" → "10".
func trimZeros(s string) string {
	if !strings.Contains(s, ".") {
		return s
	}
	return strings.TrimRight(strings.TrimRight(s, "0"), ".")
}

// formatCount writes v with three significant digits and a k, M or G suffix:
// "950", "11.3k", "412k", "1.52M".
func formatCount(v float64) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return strconv.FormatFloat(v, 'f', -1, 64)
	}
	if v < 0 {
		return "-" + formatCount(-v)
	}
	units := []struct {
		size   float64
		suffix string
	}{{1, ""}, {1e3, "k"}, {1e6, "M"}, {1e9, "G"}}
	i := 0
	for i+1 < len(units) && v >= units[i+1].size {
		i++
	}
	s := sig3(v / units[i].size)
	if n, _ := strconv.ParseFloat(s, 64); n >= 1000 && i+1 < len(units) {
		i++ // 999.7k rounds to 1000k: write 1M
		s = sig3(v / units[i].size)
	}
	return trimZeros(s) + units[i].suffix
}

// formatRate writes a per-second rate: "1.52M/s", "412k/s", "11.3k/s".
func formatRate(v float64) string { return formatCount(v) + "/s" }

// formatRatio writes a throughput ratio: "0.93×", "12.4×", "250×".
func formatRatio(x float64) string { return trimZeros(sig3(x)) + "×" }

// formatLatency writes d for a latency axis: microseconds below 100µs ("45µs"),
// milliseconds with one decimal below 10ms ("0.8ms", "4.2ms"), three significant
// digits above ("12.5ms", "350ms", "1.5s").
func formatLatency(d time.Duration) string {
	switch {
	case d < 0:
		return "-" + formatLatency(-d)
	case d == 0:
		return "0"
	case d < time.Microsecond:
		return strconv.FormatInt(int64(d), 10) + "ns"
	case d < 100*time.Microsecond:
		return trimZeros(sig3(float64(d)/float64(time.Microsecond))) + "µs"
	}
	ms := float64(d) / float64(time.Millisecond)
	var s string
	if ms < 10 {
		s = strconv.FormatFloat(ms, 'f', 1, 64)
	} else {
		s = sig3(ms)
	}
	if n, _ := strconv.ParseFloat(s, 64); n < 1000 {
		return trimZeros(s) + "ms"
	}
	return trimZeros(sig3(d.Seconds())) + "s"
}

// formatBytes writes n in B, KiB, MiB or GiB: "256 B", "1.5 KiB", "85 MiB".
func formatBytes(n int64) string {
	if n < 1024 {
		return strconv.FormatInt(n, 10) + " B"
	}
	v, unit := float64(n)/1024, "KiB"
	for _, next := range []string{"MiB", "GiB"} {
		if v < 1024 {
			break
		}
		v, unit = v/1024, next
	}
	return trimZeros(sig3(v)) + " " + unit
}

// truncate shortens s to at most n characters, ending it with "…" when cut.
func truncate(s string, n int) string {
	if n <= 0 {
		return ""
	}
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}

// textWidth is s's width in characters.
func textWidth(s string) int { return utf8.RuneCountInString(s) }

// maxChars is how many characters fit between x and the right margin.
func maxChars(x int) int { return (chartWidth - chartMargin - x) / glyphAdvance }

// mix is a moved toward b by t (0: a, 1: b).
func mix(a, b color.RGBA, t float64) color.RGBA {
	m := func(x, y uint8) uint8 { return uint8(math.Round(float64(x)*(1-t) + float64(y)*t)) }
	return color.RGBA{m(a.R, b.R), m(a.G, b.G), m(a.B, b.B), 0xff}
}

// canvas is an RGBA image with the few drawing operations the chart needs.
type canvas struct {
	img *image.RGBA
}

func newCanvas(w, h int) *canvas {
	c := &canvas{img: image.NewRGBA(image.Rect(0, 0, w, h))}
	c.fill(0, 0, w, h, colorBackground)
	return c
}

// fill paints the rectangle x0,y0 – x1,y1 (exclusive).
func (c *canvas) fill(x0, y0, x1, y1 int, col color.RGBA) {
	r := image.Rect(x0, y0, x1, y1).Intersect(c.img.Bounds())
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			c.img.SetRGBA(x, y, col)
		}
	}
}

// text draws s with its baseline at y and returns the x after it.
func (c *canvas) text(x, y int, s string, col color.RGBA) int {
	return c.textScaled(x, y, s, col, 1)
}

// bold draws s twice, one pixel apart, and returns the x after it.
func (c *canvas) bold(x, y int, s string, col color.RGBA) int {
	c.text(x, y, s, col)
	return c.text(x+1, y, s, col) + 1
}

// clear paints the background behind where text(x, y, s) draws, so that gridlines do
// not cross it.
func (c *canvas) clear(x, y int, s string) {
	c.fill(x-2, y-glyphAscent, x+textWidth(s)*glyphAdvance+3, y+3, colorBackground)
}

// textRight draws s so that it ends at x.
func (c *canvas) textRight(x, y int, s string, col color.RGBA) {
	c.text(x-textWidth(s)*glyphAdvance, y, s, col)
}

// textScaled draws s scale times its size with its baseline at y, and returns the x
// after it.
func (c *canvas) textScaled(x, y int, s string, col color.RGBA, scale int) int {
	mask := textMask(s)
	top := y - glyphAscent*scale
	b := mask.Bounds()
	for my := b.Min.Y; my < b.Max.Y; my++ {
		for mx := b.Min.X; mx < b.Max.X; mx++ {
			if mask.AlphaAt(mx, my).A >= 0x80 {
				c.fill(x+mx*scale, top+my*scale, x+(mx+1)*scale, top+(my+1)*scale, col)
			}
		}
	}
	return x + b.Dx()*scale
}

// textMask renders s in basicfont.Face7x13, which holds only ASCII; the few other
// characters the chart writes are drawn from extraGlyphs, and the rest as '?'.
func textMask(s string) *image.Alpha {
	mask := image.NewAlpha(image.Rect(0, 0, textWidth(s)*glyphAdvance, glyphHeight))
	d := font.Drawer{Dst: mask, Src: image.Opaque, Face: basicfont.Face7x13}
	i := 0
	for _, r := range s {
		x := i * glyphAdvance
		i++
		if g, ok := extraGlyphs[r]; ok {
			for gy, line := range g {
				for gx, p := range line {
					if p == '#' {
						mask.SetAlpha(x+gx, gy, color.Alpha{A: 0xff})
					}
				}
			}
			continue
		}
		if r < 0x20 || r > 0x7e {
			r = '?'
		}
		d.Dot = fixed.P(x, glyphAscent)
		d.DrawString(string(r))
	}
	return mask
}

// extraGlyphs are the non-ASCII characters the chart writes, drawn to match Face7x13:
// 7×13 pixels, baseline below row 10, x-height rows 5–10.
var extraGlyphs = map[rune][glyphHeight]string{
	'—': {6: "#######"},
	'→': {4: "...#...", 5: "....#..", 6: "######.", 7: "....#..", 8: "...#..."},
	'×': {5: ".#...#.", 6: "..#.#..", 7: "...#...", 8: "..#.#..", 9: ".#...#."},
	'µ': {5: "#....#.", 6: "#....#.", 7: "#....#.", 8: "#....#.", 9: "#...##.", 10: "####.#.", 11: "#......", 12: "#......"},
	'·': {6: "..##...", 7: "..##..."},
	'…': {10: "#.#.#.."},
}
