package config

import (
	"errors"
	"os"
	"testing"
)

// FuzzParse: Parse never panics, and it returns either a valid Config or *Problems.
func FuzzParse(f *testing.F) {
	design, err := os.ReadFile("testdata/design.yaml")
	if err != nil {
		f.Fatal(err)
	}
	for _, seed := range []string{
		string(design), DemoYAML, "", "---\n", "a: b: c", "kafka: [a]", "functions: [{name: f, timeout: 5x}]",
		"x: &a [*a]", "functions:\n  - &fn {name: a}\n  - <<: *fn\n    name: b\n", "node: {data_dir: ${X:-y}}",
		"k: ${", "k: $$ $ ${A} ${1}", "a: 'it''s' # ${B}", "delay: {rungs: [1m, 30s, -1s, 0]}",
		"tailers: [{name: T, topic: '..', function: nope, batch: {max_records: -1}}]",
		"delay: {rungs: [1ns], tolerance: 0, replication: 99999, partitions: -1}\ndead_letter: {min_retention: infinite}",
		"storm_guard: {threshold: .nan, window: 1us, retry_min: infinite, retry_max: -1ns, disabled: yes}",
	} {
		f.Add([]byte(seed))
	}
	lookup := func(k string) (string, bool) {
		if k == "A" {
			return "value", true
		}
		return "", false
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := parse(data, "fuzz.yaml", lookup)
		if err != nil {
			var p *Problems
			if !errors.As(err, &p) || len(p.List) == 0 {
				t.Fatalf("want *Problems with at least one problem, got %T %v", err, err)
			}
			_ = p.Error()
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("Parse returned a config that does not validate: %v", err)
		}
		_ = c.YAML()
	})
}
