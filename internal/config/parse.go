package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"regexp"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Load reads the file at path and returns its configuration, as Parse does.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: read %s: %w", path, err)
	}
	return Parse(data, path)
}

// Parse expands ${VAR} references from the environment, decodes data strictly (an
// unknown key is an error), applies the defaults and validates the result. source names
// the data in messages (usually the file path). Anything wrong with the content comes back
// as *Problems, every problem at once where they can be found together.
func Parse(data []byte, source string) (*Config, error) {
	return parse(data, source, os.LookupEnv)
}

func parse(data []byte, source string, lookup func(string) (string, bool)) (*Config, error) {
	expanded, envProblems := expandEnv(data, lookup)
	if len(envProblems) > 0 {
		return nil, &Problems{Source: source, List: envProblems}
	}
	root, err := parseDocument(expanded, source)
	if err != nil {
		return nil, err
	}

	// Walk the tree against the Go types before decoding: it finds every unknown key and
	// badly typed value with its key path, and records the line of every key for Validate.
	w := &walker{lines: map[string]int{}}
	w.walk(root, reflect.TypeFor[Config](), "")
	if len(w.problems) > 0 {
		return nil, (&problemList{list: w.problems}).err(source)
	}

	var c Config
	dec := yaml.NewDecoder(bytes.NewReader(expanded))
	dec.KnownFields(true) // the walker has checked keys; this is the backstop (merge keys, aliases)
	if err := dec.Decode(&c); err != nil {
		return nil, decodeProblems(err, source, w.lines)
	}

	l := &problemList{lines: w.lines}
	c.explicitZeros(l)
	c.WithDefaults()
	c.validate(l)
	if err := l.err(source); err != nil {
		return nil, err
	}
	return &c, nil
}

var yamlLineRE = regexp.MustCompile(`^(?:yaml: )?line (\d+): (.*)$`)

// parseDocument parses exactly one YAML document whose top level is a mapping.
func parseDocument(data []byte, source string) (*yaml.Node, error) {
	fail := func(line int, format string, args ...any) error {
		return &Problems{Source: source, List: []Problem{{Line: line, Message: fmt.Sprintf(format, args...)}}}
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fail(0, "the configuration is empty; it needs at least functions and tailers (see the example in `kasync dev`)")
		}
		return nil, syntaxProblem(err, source)
	}
	var next yaml.Node
	switch err := dec.Decode(&next); {
	case errors.Is(err, io.EOF):
	case err != nil:
		return nil, syntaxProblem(err, source)
	default:
		return nil, fail(next.Line, "a second YAML document starts here; keep the whole configuration in one document (remove the ---)")
	}
	if len(doc.Content) == 0 {
		return nil, fail(0, "the configuration is empty")
	}
	root := doc.Content[0]
	if root.Kind == yaml.ScalarNode && root.Tag == "!!null" {
		return nil, fail(0, "the configuration is empty; it needs at least functions and tailers")
	}
	if root.Kind != yaml.MappingNode {
		return nil, fail(root.Line, "the top level must be a mapping of keys (kafka:, node:, functions:, tailers:, ...), not a %s", kindName(root))
	}
	return root, nil
}

func syntaxProblem(err error, source string) error {
	msg := err.Error()
	line := 0
	if m := yamlLineRE.FindStringSubmatch(msg); m != nil {
		line, _ = strconv.Atoi(m[1])
		msg = m[2]
	}
	msg = strings.TrimPrefix(msg, "yaml: ")
	if strings.Contains(msg, "cannot start any token") {
		msg += " (YAML indents with spaces, never tabs)"
	}
	return &Problems{Source: source, List: []Problem{{Line: line, Message: "invalid YAML: " + msg}}}
}

// decodeProblems turns the decoder's errors (only reachable through aliases and merge
// keys, which the walker does not follow) into Problems.
func decodeProblems(err error, source string, lines map[string]int) error {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		return syntaxProblem(err, source)
	}
	l := &problemList{}
	for _, e := range te.Errors {
		p := Problem{Message: e}
		if m := yamlLineRE.FindStringSubmatch(e); m != nil {
			p.Line, _ = strconv.Atoi(m[1])
			p.Message = friendlierDecodeMessage(m[2])
			p.Field = fieldAtLine(lines, p.Line)
		}
		l.list = append(l.list, p)
	}
	return l.err(source)
}

var cannotUnmarshalRE = regexp.MustCompile("^cannot unmarshal !!(\\w+) (?:`(.*)` )?into (\\S+)$")

// friendlierDecodeMessage rewrites "cannot unmarshal !!seq into config.Function".
func friendlierDecodeMessage(msg string) string {
	m := cannotUnmarshalRE.FindStringSubmatch(msg)
	if m == nil {
		return msg
	}
	got := map[string]string{"seq": "a list", "map": "a mapping"}[m[1]]
	if got == "" {
		got = strconv.Quote(m[2])
	}
	want := map[string]string{"string": "a string", "int": "a whole number", "int32": "a whole number",
		"int16": "a whole number", "float64": "a number", "bool": "true or false"}[m[3]]
	switch {
	case want != "":
	case strings.HasPrefix(m[3], "[]"):
		want = "a list"
	default:
		want = "a mapping"
	}
	return fmt.Sprintf("want %s, not %s", want, got)
}

// fieldAtLine is the shortest key path on line, or "".
func fieldAtLine(lines map[string]int, line int) string {
	best := ""
	for path, l := range lines {
		if l == line && (best == "" || len(path) < len(best) || len(path) == len(best) && path < best) {
			best = path
		}
	}
	return best
}

var durationType = reflect.TypeFor[Duration]()

// durationHint adds to the "not a duration" problem of a key where a Kafka user would
// write -1.
var durationHint = map[string]string{
	"dead_letter.min_retention": `; for infinite retention (retention.ms=-1) write "infinite"`,
}

func isInt(t reflect.Type) bool {
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return true
	}
	return false
}

// intRange is the smallest and largest value of a signed integer type.
func intRange(t reflect.Type) (lo, hi int64) {
	hi = int64(1)<<(t.Bits()-1) - 1
	return -hi - 1, hi
}

// walker checks a YAML tree against the Go type it will decode into.
type walker struct {
	lines    map[string]int
	problems []Problem
}

func (w *walker) add(n *yaml.Node, field, format string, args ...any) {
	w.problems = append(w.problems, Problem{Field: field, Line: n.Line, Message: fmt.Sprintf(format, args...)})
}

func (w *walker) walk(n *yaml.Node, t reflect.Type, path string) {
	if _, ok := w.lines[path]; !ok && path != "" {
		w.lines[path] = n.Line
	}
	if n.Kind == yaml.AliasNode || n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return // aliases are left to the decoder; null is the zero value
	}
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch {
	case t == durationType:
		if n.Kind != yaml.ScalarNode {
			w.add(n, path, "want a duration like 30s, not a %s", kindName(n))
		} else if _, err := ParseDuration(n.Value); err != nil {
			w.add(n, path, "%v%s", err, durationHint[path])
		}
	case t.Kind() == reflect.Struct:
		if n.Kind != yaml.MappingNode {
			w.add(n, path, "want a mapping of keys (%s), not a %s", strings.Join(yamlKeys(t), ", "), kindName(n))
			return
		}
		w.mapping(n, t, path)
	case t.Kind() == reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			w.add(n, path, "want a list like [a, b], not a %s", kindName(n))
			return
		}
		for i, item := range n.Content {
			w.walk(item, t.Elem(), indexPath(path, i))
		}
	default:
		if n.Kind != yaml.ScalarNode {
			w.add(n, path, "want %s, not a %s", scalarWant(t), kindName(n))
			return
		}
		if err := n.Decode(reflect.New(t).Interface()); err != nil {
			var wide int64
			if isInt(t) && n.Decode(&wide) == nil {
				lo, hi := intRange(t)
				w.add(n, path, "%s is out of range; use a whole number from %d to %d", n.Value, lo, hi)
				return
			}
			w.add(n, path, "%q is not %s", n.Value, scalarWant(t))
		}
	}
}

func (w *walker) mapping(n *yaml.Node, t reflect.Type, path string) {
	fields := map[string]reflect.Type{}
	for i := range t.NumField() {
		f := t.Field(i)
		if name := yamlName(f); name != "" {
			fields[name] = f.Type
		}
	}
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind == yaml.ScalarNode && k.Value == "<<" {
			continue // merge key: left to the decoder
		}
		child := joinPath(path, k.Value)
		if first, dup := seen[k.Value]; dup {
			w.add(k, child, "duplicate key; it was already set on line %d", first)
			continue
		}
		seen[k.Value] = k.Line
		ft, ok := fields[k.Value]
		if !ok {
			w.add(k, child, "%s", unknownKeyMessage(k.Value, yamlKeys(t)))
			continue
		}
		w.lines[child] = k.Line
		w.walk(v, ft, child)
	}
}

func unknownKeyMessage(key string, known []string) string {
	if s := closest(key, known); s != "" {
		return fmt.Sprintf("unknown key (did you mean %q?)", s)
	}
	return fmt.Sprintf("unknown key %q (known keys here: %s)", key, strings.Join(known, ", "))
}

// closest is the known word within a small edit distance of s, or "".
func closest(s string, known []string) string {
	best, bestD := "", max(2, len(s)/3)+1
	for _, k := range known {
		if d := editDistance(strings.ToLower(s), k); d < bestD {
			best, bestD = k, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance of a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

func yamlName(f reflect.StructField) string {
	name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
	if name == "-" || !f.IsExported() {
		return ""
	}
	return name
}

func yamlKeys(t reflect.Type) []string {
	var keys []string
	for i := range t.NumField() {
		if name := yamlName(t.Field(i)); name != "" {
			keys = append(keys, name)
		}
	}
	return keys
}

func scalarWant(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Int, reflect.Int64, reflect.Int32, reflect.Int16, reflect.Int8:
		return "a whole number"
	case reflect.Float64, reflect.Float32:
		return "a number"
	case reflect.Bool:
		return "true or false"
	default:
		return "a string"
	}
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "mapping"
	case yaml.SequenceNode:
		return "list"
	case yaml.AliasNode:
		return "alias"
	case yaml.ScalarNode:
		return "single value (" + strconv.Quote(n.Value) + ")"
	default:
		return "document"
	}
}

// Check is `kasync config check FILE`: on success a short summary, on failure the error
// (*Problems for the content, a wrapped I/O error otherwise); the caller exits 2 on error.
func Check(path string) (summary string, err error) {
	c, err := Load(path)
	if err != nil {
		return "", err
	}
	return c.Summary(path), nil
}

// Summary is one short paragraph about c, e.g. for `kasync config check`.
func (c *Config) Summary(source string) string {
	fns := make([]string, len(c.Functions))
	for i, f := range c.Functions {
		fns[i] = f.Name
	}
	tls := make([]string, len(c.Tailers))
	for i, t := range c.Tailers {
		tls[i] = t.Name + " (" + t.Topic + " -> " + t.Function + ")"
	}
	var b strings.Builder
	if source != "" {
		b.WriteString(source + ": ")
	}
	fmt.Fprintf(&b, "ok\n  %s: %s\n  %s: %s\n  brokers: %s\n",
		plural(len(c.Functions), "function"), listOrNone(fns),
		plural(len(c.Tailers), "tailer"), listOrNone(tls),
		strings.Join(c.Kafka.Brokers, ", "))
	return b.String()
}

func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return strconv.Itoa(n) + " " + word + "s"
}

func listOrNone(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ", ")
}
