package dashboard

import (
	"fmt"
	"html/template"
	"strconv"
	"time"

	"github.com/kasync/kasync/internal/nodestatus"
)

// The page's formatting. dashboard.js formats the same facts the same way (its
// functions of the same names); keep the two in step.
var funcs = template.FuncMap{
	"seconds":   seconds,
	"when":      when,
	"limit":     limit,
	"guard":     guard,
	"guardBad":  func(g *nodestatus.StormGuard) bool { return g != nil && g.Active },
	"depth":     depth,
	"oldestDue": oldestDue,
	"lateness":  lateness,
	"function":  functionName,
	"rowspan":   func(n int) int { return max(n, 1) },
	"counted":   counted,
	"partition": func(d nodestatus.DeadLetter) string { return fmt.Sprintf("%d/%d", d.Partition, d.Offset) },
}

// seconds is a duration in seconds, with fewer decimals as it grows: "0.25", "12.3", "340".
func seconds(s float64) string {
	switch {
	case s < 10:
		return strconv.FormatFloat(s, 'f', 2, 64)
	case s < 100:
		return strconv.FormatFloat(s, 'f', 1, 64)
	default:
		return strconv.FormatFloat(s, 'f', 0, 64)
	}
}

// when is a time in UTC to the second, or "—" for the zero time.
func when(t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	return t.UTC().Format("2006-01-02 15:04:05Z")
}

// limit is "limit / concurrency", and when the function is held, until when.
func limit(f nodestatus.Function) string {
	if !f.Scheduled {
		return "— / " + strconv.Itoa(f.Concurrency)
	}
	s := strconv.Itoa(f.Limit) + " / " + strconv.Itoa(f.Concurrency)
	if f.HeldUntil != nil {
		s += " (held until " + when(*f.HeldUntil) + ")"
	}
	return s
}

// counted is a scheduler counter of f, or "—" when this node does not schedule f.
func counted(f nodestatus.Function, n uint64) string {
	if !f.Scheduled {
		return "—"
	}
	return strconv.FormatUint(n, 10)
}

// guard describes a storm guard: "none" without one, else on or off with its window.
func guard(g *nodestatus.StormGuard) string {
	if g == nil {
		return "none"
	}
	s := "off"
	if g.Active {
		s = "ON"
		if g.Since != nil {
			s += " since " + when(*g.Since)
		}
	}
	s += fmt.Sprintf(", %d/%d failed", g.Failures, g.Outcomes)
	if g.Trips > 0 {
		s += fmt.Sprintf(", %d trips", g.Trips)
	}
	return s
}

// depth is a rung's depth, or "unknown" when the broker did not answer.
func depth(d *int64) string {
	if d == nil {
		return "unknown"
	}
	return strconv.FormatInt(*d, 10)
}

// oldestDue is when a rung's oldest record is due: "—" when nothing waits, "unknown"
// when records wait and their heads could not be read (or the depth is unknown).
func oldestDue(r nodestatus.Rung) string {
	if r.OldestDue != nil {
		return when(*r.OldestDue)
	}
	return nothingWaits(r)
}

// lateness is how many seconds a rung's oldest record is past due (0 before it is
// due), "—" when nothing waits and "unknown" as oldestDue.
func lateness(r nodestatus.Rung) string {
	if r.LatenessSeconds != nil {
		return seconds(*r.LatenessSeconds)
	}
	return nothingWaits(r)
}

// nothingWaits is what a rung without an oldest due shows: "—" when its depth is 0,
// else "unknown" (a fact not read is never shown as none).
func nothingWaits(r nodestatus.Rung) string {
	if r.Depth != nil && *r.Depth == 0 {
		return "—"
	}
	return "unknown"
}

// functionName is a dead letter's function, or a note when it named no known one.
func functionName(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}
