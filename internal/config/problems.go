package config

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Problem is one thing wrong with a configuration.
type Problem struct {
	// Field is the key path, e.g. "tailers[1].function"; empty for the file as a whole.
	Field string
	// Line is the 1-based line in the source; 0 when unknown (a Config built in code).
	Line int
	// Message says what is wrong and what would be right.
	Message string
}

// String is "field: message", or the message alone for the file as a whole.
func (p Problem) String() string {
	if p.Field == "" {
		return p.Message
	}
	return p.Field + ": " + p.Message
}

// Problems is every problem found in one configuration. Parse, Load and Validate return
// it (as error) for anything wrong with the content; get it back with errors.As.
type Problems struct {
	// Source names the configuration, usually its file path; may be empty.
	Source string
	List   []Problem
}

// Error lists the problems one per line, each prefixed with "source:line: " where known.
func (p *Problems) Error() string {
	var b strings.Builder
	for i, pr := range p.List {
		if i > 0 {
			b.WriteByte('\n')
		}
		switch {
		case p.Source != "" && pr.Line > 0:
			b.WriteString(p.Source + ":" + strconv.Itoa(pr.Line) + ": ")
		case p.Source != "":
			b.WriteString(p.Source + ": ")
		case pr.Line > 0:
			b.WriteString("line " + strconv.Itoa(pr.Line) + ": ")
		}
		b.WriteString(pr.String())
	}
	return b.String()
}

// Fields returns the Field of every problem, in order (handy in tests and tooling).
func (p *Problems) Fields() []string {
	out := make([]string, len(p.List))
	for i, pr := range p.List {
		out[i] = pr.Field
	}
	return out
}

// problemList collects problems and finds the line of each field in the source.
type problemList struct {
	lines map[string]int // key path -> line; nil for a Config built in code
	list  []Problem
}

func (l *problemList) add(field, format string, args ...any) {
	l.list = append(l.list, Problem{Field: field, Line: l.lineOf(field), Message: fmt.Sprintf(format, args...)})
}

// hasField reports whether a problem was already added for field.
func (l *problemList) hasField(field string) bool {
	for _, p := range l.list {
		if p.Field == field {
			return true
		}
	}
	return false
}

// lineOf is the line of field or, for a field that came from a default, of the nearest
// enclosing key that the source does have.
func (l *problemList) lineOf(field string) int {
	for f := field; f != ""; f = parentPath(f) {
		if line, ok := l.lines[f]; ok {
			return line
		}
	}
	return 0
}

// err returns nil, or *Problems sorted by line (problems without a line first, in the
// order found, so a Config built in code keeps the order of its fields).
func (l *problemList) err(source string) error {
	if len(l.list) == 0 {
		return nil
	}
	list := slices.Clone(l.list)
	slices.SortStableFunc(list, func(a, b Problem) int { return cmp.Compare(a.Line, b.Line) })
	return &Problems{Source: source, List: list}
}

// parentPath strips the last segment: "tailers[1].batch" -> "tailers[1]" -> "tailers" -> "".
func parentPath(p string) string {
	i := strings.LastIndexAny(p, ".[")
	if i < 0 {
		return ""
	}
	return p[:i]
}

func joinPath(parent, key string) string {
	if parent == "" {
		return key
	}
	return parent + "." + key
}

func indexPath(parent string, i int) string { return parent + "[" + strconv.Itoa(i) + "]" }
