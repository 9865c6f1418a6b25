package config

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestDemoYAMLMatchesDemo(t *testing.T) {
	t.Parallel()
	// $TMPDIR is read through a lookup so the test does not depend on the environment.
	tmp := os.TempDir()
	parsed, err := parse([]byte(DemoYAML), "demo.yaml", func(k string) (string, bool) {
		if k == "TMPDIR" {
			return tmp, true
		}
		return "", false
	})
	require.NoError(t, err)
	demo := Demo()

	// data_dir is the one field that must differ in form: the YAML builds it with
	// ${TMPDIR:-/tmp}, Demo with filepath.Join(os.TempDir(), ...).
	require.Equal(t, demo.Node.DataDir, filepath.Clean(parsed.Node.DataDir))
	require.Equal(t, "kasync-dev-data", filepath.Base(demo.Node.DataDir))
	parsed.Node.DataDir = demo.Node.DataDir
	require.Equal(t, demo, parsed)

	require.Equal(t, []string{"127.0.0.1:9092"}, demo.Kafka.Brokers)
	require.Len(t, demo.Functions, 1)
	require.Equal(t, "echo", demo.Functions[0].Name)
	require.Empty(t, demo.Functions[0].URL, "echo is served in process")
	require.Equal(t, []Tailer{{
		Name: "demo", Topic: "kasync.demo", Function: "echo", Group: "kasync.demo", Start: StartEarliest, OffsetsLost: OffsetsLostEarliest,
		Ordering: OrderingUnordered, Batch: Batch{MaxRecords: DefaultMaxRecords, MaxWait: Duration(DefaultMaxWait)},
		MaxInFlight: DefaultMaxInFlight, RevokeTimeout: Duration(DefaultRevokeTimeout),
	}}, demo.Tailers)
}

func TestDemoYAMLParsesWithRealEnvironment(t *testing.T) {
	t.Parallel()
	c, err := Parse([]byte(DemoYAML), "demo.yaml")
	require.NoError(t, err)
	require.Equal(t, "kasync-dev-data", filepath.Base(c.Node.DataDir))
}

func TestDemoIsAFreshCopy(t *testing.T) {
	t.Parallel()
	a := Demo()
	a.Functions[0].Retry.Backoff[0] = 1
	a.Delay.Rungs[0] = 1
	require.Equal(t, DefaultRungs(), Demo().Delay.Rungs)
	require.Equal(t, DefaultBackoff(), Demo().Functions[0].Retry.Backoff)
}

func TestCloneIsDeep(t *testing.T) {
	t.Parallel()
	c := Demo()
	c.Kafka.TLS = &TLS{CAFile: "a"}
	c.Kafka.SASL = &SASL{Mechanism: SASLPlain, Username: "u", Password: "p"}
	cl := c.Clone()
	require.Equal(t, c, cl)
	cl.Kafka.Brokers[0] = "x:1"
	cl.Kafka.TLS.CAFile = "b"
	cl.Kafka.SASL.Password = "q"
	cl.Delay.Rungs[0] = 7
	cl.Functions[0].Retry.Backoff[0] = 7
	cl.Functions[0].Name = "other"
	cl.Tailers[0].Name = "other"
	require.Equal(t, Demo().Kafka.Brokers, c.Kafka.Brokers)
	require.Equal(t, "a", c.Kafka.TLS.CAFile)
	require.Equal(t, "p", c.Kafka.SASL.Password)
	require.Equal(t, DefaultRungs(), c.Delay.Rungs)
	require.Equal(t, DefaultBackoff(), c.Functions[0].Retry.Backoff)
	require.Equal(t, "echo", c.Functions[0].Name)
	require.Equal(t, "demo", c.Tailers[0].Name)
}

func TestFunctionLookup(t *testing.T) {
	t.Parallel()
	f, ok := Demo().Function("echo")
	require.True(t, ok)
	require.Equal(t, 64, f.Concurrency)
	_, ok = Demo().Function("nope")
	require.False(t, ok)
}
