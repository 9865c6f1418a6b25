package config

import (
	"bytes"
	"strings"
)

// expandEnv replaces ${VAR} and ${VAR:-default} in the raw text, line by line, and turns
// $$ into $. A lone $ (as in a password) is kept as it is. Comments are copied untouched,
// so a commented-out ${UNSET} is not an error. Every problem is reported, each with its line.
//
// Expansion happens before YAML parsing (so a variable may hold a flow list such as
// "a:9092, b:9092" inside [${BROKERS}]); a value with a newline is refused because it
// would move every line number after it.
func expandEnv(data []byte, lookup func(string) (string, bool)) ([]byte, []Problem) {
	var out bytes.Buffer
	out.Grow(len(data))
	var problems []Problem
	lines := bytes.SplitAfter(data, []byte("\n"))
	for i, line := range lines {
		problems = append(problems, expandLine(&out, string(line), i+1, lookup)...)
	}
	return out.Bytes(), problems
}

func expandLine(out *bytes.Buffer, line string, lineNo int, lookup func(string) (string, bool)) []Problem {
	var problems []Problem
	var quote byte // the quote character we are inside, or 0
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case quote == 0 && c == '#' && (i == 0 || line[i-1] == ' ' || line[i-1] == '\t'):
			out.WriteString(line[i:])
			return problems
		case quote == 0 && (c == '"' || c == '\'') && startsScalar(line[:i]):
			quote = c
		case quote == '"' && c == '\\' && i+1 < len(line):
			out.WriteByte(c)
			i++
			c = line[i]
		case quote == '\'' && c == '\'' && i+1 < len(line) && line[i+1] == '\'':
			out.WriteByte(c) // '' is an escaped quote inside single quotes
			i++
		case quote != 0 && c == quote:
			quote = 0
		case c == '$' && i+1 < len(line) && line[i+1] == '$':
			out.WriteByte('$')
			i++
			continue
		case c == '$' && i+1 < len(line) && line[i+1] == '{':
			end := strings.IndexByte(line[i+2:], '}')
			if end < 0 {
				problems = append(problems, Problem{Line: lineNo, Message: "unterminated ${ (write $$ for a literal $)"})
				out.WriteString(line[i:])
				return problems
			}
			expr := line[i+2 : i+2+end]
			val, p := expandVar(expr)
			if p != "" {
				problems = append(problems, Problem{Line: lineNo, Message: p})
			} else if v, ok := lookupVar(expr, lookup); !ok {
				problems = append(problems, Problem{Line: lineNo, Message: "environment variable " + val + " is not set (set it, or give a default with ${" + val + ":-value})"})
			} else if strings.ContainsAny(v, "\r\n") {
				problems = append(problems, Problem{Line: lineNo, Message: "environment variable " + val + " contains a line break; values must be one line"})
			} else {
				out.WriteString(v)
			}
			i += 2 + end
			continue
		}
		out.WriteByte(c)
	}
	return problems
}

// startsScalar reports whether a quote after prefix opens a quoted scalar, rather than
// being an apostrophe inside a plain one (name: don't).
func startsScalar(prefix string) bool {
	p := strings.TrimRight(prefix, " \t")
	if p == "" {
		return true
	}
	switch p[len(p)-1] {
	case ':', '-', '[', '{', ',', '?':
		return true
	}
	return false
}

// expandVar checks the expression inside ${...} and returns the variable name, or a
// problem message.
func expandVar(expr string) (name, problem string) {
	name, _, _ = strings.Cut(expr, ":-")
	if !validVarName(name) {
		return "", "${" + expr + "}: " + quoteName(name) + " is not a variable name (letters, digits and _, not starting with a digit)"
	}
	return name, ""
}

func lookupVar(expr string, lookup func(string) (string, bool)) (string, bool) {
	name, def, hasDefault := strings.Cut(expr, ":-")
	v, ok := lookup(name)
	if hasDefault && (!ok || v == "") {
		return def, true
	}
	return v, ok
}

func validVarName(s string) bool {
	if s == "" || (s[0] >= '0' && s[0] <= '9') {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

func quoteName(s string) string {
	if s == "" {
		return "an empty name"
	}
	return `"` + s + `"`
}
