package config

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func mapLookup(env map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		v, ok := env[k]
		return v, ok
	}
}

func TestExpandEnv(t *testing.T) {
	t.Parallel()
	env := mapLookup(map[string]string{"HOST": "kafka-1", "EMPTY": "", "PASS": "p@ss$word", "NL": "a\nb"})
	cases := []struct {
		name, in, want string
	}{
		{"set", "brokers: [${HOST}:9092]", "brokers: [kafka-1:9092]"},
		{"default unused", "x: ${HOST:-other}", "x: kafka-1"},
		{"default when unset", "x: ${MISSING:-fallback}", "x: fallback"},
		{"default when empty", "x: ${EMPTY:-fallback}", "x: fallback"},
		{"empty default", "x: '${MISSING:-}'", "x: ''"},
		{"set but empty", "x: '${EMPTY}'", "x: ''"},
		{"escape", "x: a$$b$${HOST}", "x: a$b${HOST}"},
		{"lone dollar kept", "x: pa$s $HOST", "x: pa$s $HOST"},
		{"value with dollar not re-expanded", "x: ${PASS}", "x: p@ss$word"},
		{"comment untouched", "x: 1 # ${MISSING} $$", "x: 1 # ${MISSING} $$"},
		{"whole-line comment", "  # password: ${MISSING}", "  # password: ${MISSING}"},
		{"hash inside quotes is not a comment", `x: "a #${HOST}"`, `x: "a #kafka-1"`},
		{"hash inside single quotes", `x: 'it''s #${HOST}'`, `x: 'it''s #kafka-1'`},
		{"apostrophe in plain scalar", "x: don't ${HOST} # ${MISSING}", "x: don't kafka-1 # ${MISSING}"},
		{"hash without space is text", "x: a#${HOST}", "x: a#kafka-1"},
		{"several lines", "a: ${HOST}\nb: ${HOST:-x}\n", "a: kafka-1\nb: kafka-1\n"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			out, problems := expandEnv([]byte(tc.in), env)
			require.Empty(t, problems)
			require.Equal(t, tc.want, string(out))
		})
	}
}

func TestExpandEnvProblems(t *testing.T) {
	t.Parallel()
	env := mapLookup(map[string]string{"NL": "a\nb"})
	cases := []struct {
		name, in string
		line     int
		msg      string
	}{
		{"unset", "a: 1\nb: ${KAFKA_PASSWORD}", 2, "environment variable KAFKA_PASSWORD is not set"},
		{"unterminated", "a: ${OOPS", 1, "unterminated ${"},
		{"bad name", "a: ${1X}", 1, `"1X" is not a variable name`},
		{"empty name", "a: ${}", 1, "an empty name is not a variable name"},
		{"newline in value", "\n\na: ${NL}", 3, "contains a line break"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, problems := expandEnv([]byte(tc.in), env)
			require.Len(t, problems, 1)
			require.Equal(t, tc.line, problems[0].Line)
			require.Contains(t, problems[0].Message, tc.msg)
		})
	}
}

func TestExpandEnvReportsEveryUnsetVariable(t *testing.T) {
	t.Parallel()
	_, problems := expandEnv([]byte("a: ${A}\nb: ${B} ${C}\n"), mapLookup(nil))
	require.Len(t, problems, 3)
	require.Equal(t, []int{1, 2, 2}, []int{problems[0].Line, problems[1].Line, problems[2].Line})
}

// Parse reads the real environment; t.Setenv forbids t.Parallel here.
func TestParseExpandsEnvironment(t *testing.T) {
	t.Setenv("KASYNC_TEST_BROKERS_A", "k1:9092, k2:9092")
	t.Setenv("KASYNC_TEST_SASL_PASSWORD", "s3cr$t")
	c, err := Parse([]byte(`
kafka:
  brokers: [${KASYNC_TEST_BROKERS_A}]
  sasl: {mechanism: PLAIN, username: u, password: "${KASYNC_TEST_SASL_PASSWORD}"}
node:
  data_dir: ${KASYNC_TEST_UNSET_DIR:-/var/lib/kasync}
functions: [{name: f, url: "http://h:1/$$x"}]
`), "env.yaml")
	require.NoError(t, err)
	require.Equal(t, []string{"k1:9092", "k2:9092"}, c.Kafka.Brokers)
	require.Equal(t, "s3cr$t", c.Kafka.SASL.Password)
	require.Equal(t, "/var/lib/kasync", c.Node.DataDir)
	require.Equal(t, "http://h:1/$x", c.Functions[0].URL)

	_, err = Parse([]byte("kafka:\n  sasl:\n    password: ${KASYNC_TEST_UNSET_PASSWORD}\n"), "env.yaml")
	require.EqualError(t, err, "env.yaml:3: environment variable KASYNC_TEST_UNSET_PASSWORD is not set (set it, or give a default with ${KASYNC_TEST_UNSET_PASSWORD:-value})")
}
