package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kasync/kasync/internal/certtest"
	"github.com/kasync/kasync/internal/config"
	"github.com/kasync/kasync/internal/kafkatest"
	"github.com/kasync/kasync/internal/nodestatus"
	"github.com/kasync/kasync/internal/status"
	"github.com/kasync/kasync/internal/status/statustest"
	"github.com/kasync/kasync/internal/testutil"
)

// statusBundle is a cluster as a node of its config would leave it: a source topic
// with an hour-old backlog behind its tailer's commit, a 30s rung with records due ten
// minutes ago, and dead letters.
type statusBundle struct {
	brokers                          []string
	source, group, prefix, rung, dlq string
	config                           string // the node's config file
}

func newStatusBundle(t *testing.T) *statusBundle {
	t.Helper()
	b := &statusBundle{brokers: kafkatest.Brokers(t)}
	b.source = kafkatest.NewTopic(t, b.brokers, 2)
	b.group = "kasync.orders-" + b.source
	b.prefix = b.source + ".delay"
	b.rung = b.prefix + ".30s"
	b.dlq = b.source + ".dead"
	statustest.CreateTopic(t, b.brokers, b.rung, 2)
	statustest.CreateTopic(t, b.brokers, b.dlq, 1)

	hourAgo := time.Now().Add(-time.Hour)
	statustest.Produce(t, b.brokers, b.source, 0, 10, hourAgo)
	statustest.Produce(t, b.brokers, b.source, 1, 4, hourAgo)
	statustest.Commit(t, b.brokers, b.group, b.source, map[int32]int64{0: 3, 1: 4})
	statustest.Produce(t, b.brokers, b.rung, 1, 5, time.Now(), statustest.Due(time.Now().Add(-10*time.Minute)))
	statustest.Commit(t, b.brokers, b.rung, b.rung, map[int32]int64{1: 2})
	statustest.Produce(t, b.brokers, b.dlq, 0, 3, time.Now())

	b.config = writeFile(t, "node.yaml", fmt.Sprintf(`
kafka: {brokers: [%q]}
delay: {topic_prefix: %s, rungs: [30s, 1m]}
dead_letter: {topic: %s}
functions: [{name: charge, submit: true}]
tailers:
  - {name: orders, topic: %s, function: charge, group: %s}
  - {name: idle, topic: %s, function: charge, group: %s}
`, strings.Join(b.brokers, ","), b.prefix, b.dlq, b.source, b.group, b.source, "kasync.idle-"+b.source))
	return b
}

// fields returns the whitespace-separated fields of the lines of out that start with
// the given fields.
func fields(out string, prefix ...string) [][]string {
	var found [][]string
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) >= len(prefix) && strings.Join(f[:len(prefix)], " ") == strings.Join(prefix, " ") {
			found = append(found, f)
		}
	}
	return found
}

// TestStatusTables: `kasync status --config` prints a row per partition of each
// configured tailer with its exact lag and age, then the ingest tailer of each function
// with submit: true, a row per configured rung with what waits and how late, and the
// dead letter's size.
func TestStatusTables(t *testing.T) {
	t.Parallel()
	b := newStatusBundle(t)
	code, out, errOut := kasync(context.Background(), "", "status", "--config", b.config)
	require.Equal(t, ExitOK, code, errOut)

	rows := fields(out, "orders", "source", b.group, "Empty", "0", b.source)
	require.Len(t, rows, 2, out)
	// PARTITION COMMITTED END LAG AGE
	require.Equal(t, []string{"0", "3", "10", "7"}, rows[0][6:10])
	require.Equal(t, []string{"1", "4", "4", "0", "0s"}, rows[1][6:11])
	age, err := time.ParseDuration(rows[0][10])
	require.NoError(t, err)
	require.InDelta(t, time.Hour.Seconds(), age.Seconds(), 30, "the record at the committed offset is an hour old")

	rows = fields(out, "idle", "source", "kasync.idle-"+b.source, "no", "group", "0", b.source)
	require.Len(t, rows, 2, "a tailer that never ran: every partition lags from the log start\n%s", out)
	require.Equal(t, []string{"0", "-", "10", "10"}, rows[0][7:11])
	ingest := config.IngestTopic("charge")
	require.Len(t, fields(out, ingest, "ingest", ingest), 1, "the ingest tailer of charge (submit: true)\n%s", out)

	rows = fields(out, "30s", b.rung, "Empty", "0", "2", "3")
	require.Len(t, rows, 1, out)
	late, err := time.ParseDuration(rows[0][7])
	require.NoError(t, err)
	require.InDelta(t, (10 * time.Minute).Seconds(), late.Seconds(), 30)
	rows = fields(out, "1m", b.prefix+".1m", "no", "group", "0", "0", "0", "-", "-")
	require.Len(t, rows, 1, out)
	require.Contains(t, out, "! rung "+b.prefix+".1m: topic "+b.prefix+".1m does not exist")

	require.Len(t, fields(out, b.dlq, "1", "3"), 1, out)
	require.Contains(t, out, "kasync dlq list --config "+b.config)
}

// TestStatusJSON: --json prints the same facts, and parses as a status.Report.
func TestStatusJSON(t *testing.T) {
	t.Parallel()
	b := newStatusBundle(t)
	code, out, errOut := kasync(context.Background(), "", "status", "--json", "--group", b.group,
		"--brokers", strings.Join(b.brokers, ","), "--timeout", "20s")
	require.Equal(t, ExitOK, code, errOut)
	var r status.Report
	require.NoError(t, json.Unmarshal([]byte(out), &r), out)
	require.Equal(t, status.SourceBrokers, r.Source)
	require.Len(t, r.Tailers, 1)
	tl := r.Tailers[0]
	require.Equal(t, b.group, tl.Group)
	require.Equal(t, int64(7), tl.Lag)
	require.Equal(t, []int64{7, 0}, []int64{tl.Partitions[0].Lag, tl.Partitions[1].Lag})
	require.InDelta(t, time.Hour.Seconds(), *tl.MaxLagSeconds, 30)
	// Without --config the rungs are the topics named like kasync.delay.<delay>: none
	// of this test's, so the default dead-letter topic is looked at instead.
	for _, rung := range r.Rungs {
		require.NotEqual(t, b.rung, rung.Topic)
	}
	require.Equal(t, "kasync.dead-letter", r.DeadLetter.Topic)
}

// TestStatusUnknownGroup: a --group that does not exist is a usage error naming it.
func TestStatusUnknownGroup(t *testing.T) {
	t.Parallel()
	b := newStatusBundle(t)
	code, out, errOut := kasync(context.Background(), "", "status", "--brokers", strings.Join(b.brokers, ","),
		"--group", b.group+",kasync.nosuch")
	require.Equal(t, ExitUsage, code, out)
	require.Contains(t, errOut, "--group: no consumer group kasync.nosuch")
	require.Contains(t, errOut, b.group, "the message suggests the groups that exist")
	require.Empty(t, out)
}

func TestStatusUsageErrors(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--config", "x.yaml", "--brokers", "b:9092"}, "--config conflicts with --brokers"},
		{[]string{"--brokers", " , "}, "--brokers is empty"},
		{[]string{"--timeout", "0s"}, "--timeout 0s: give a positive duration"},
		{[]string{"--group", "a,,b"}, "empty group name"},
		{[]string{"--group", ""}, "empty group name"},
		{[]string{"extra"}, `unexpected argument "extra"`},
		{[]string{"--config", "/no/such/file.yaml"}, "/no/such/file.yaml"},
	} {
		code, _, errOut := kasync(context.Background(), "", append([]string{"status"}, c.args...)...)
		require.Equal(t, ExitUsage, code, "%v: %s", c.args, errOut)
		require.Contains(t, errOut, c.want, "%v", c.args)
	}
}

// TestStatusUnreachable: brokers that do not answer within --timeout are a runtime
// failure whose message names the flag to check.
func TestStatusUnreachable(t *testing.T) {
	t.Parallel()
	code, _, errOut := kasync(context.Background(), "", "status", "--brokers", testutil.FreeAddr(t), "--timeout", "1s")
	require.Equal(t, ExitFailure, code, errOut)
	require.Contains(t, errOut, "cannot reach the cluster")
	require.Contains(t, errOut, "check --brokers")
}

// TestStatusNodeSecured: `kasync status --node` against a `kasync run` node with TLS
// and tokens: with the CA and a listed identity's token it prints the node's tables
// (its function, its source tailer and the ingest tailer of the function with submit:
// true, its rungs) or, with --json, the snapshot; an identity not listed is refused
// (exit 2, naming the flags to fix); without TLS the node cannot be reached (exit 1).
func TestStatusNodeSecured(t *testing.T) {
	t.Parallel()
	brokers := kafkatest.Brokers(t)
	topic := kafkatest.NewTopic(t, brokers, 2)
	ca := certtest.NewCA(t, "kasync test CA")
	server := ca.Server()
	tokens := writeFile(t, "tokens", "ops token-of-ops-0123456789\nstranger token-of-a-stranger-0123456789\n")
	opsToken := writeFile(t, "ops-token", "token-of-ops-0123456789\n")
	strangerToken := writeFile(t, "stranger-token", "token-of-a-stranger-0123456789\n")
	grpcAddr := testutil.FreeAddr(t)
	cfg := writeFile(t, "node.yaml", fmt.Sprintf(`
kafka: {brokers: [%q]}
node:
  data_dir: %s
  grpc_listen: %s
  http_listen: 127.0.0.1:0
  grpc_tls: {cert_file: %s, key_file: %s}
  grpc_auth: {tokens_file: %s, identities: [{name: ops, push: true}]}
delay: {topic_prefix: %s.delay, rungs: [20ms, 50ms], tolerance: 5ms, partitions: 2}
dead_letter: {topic: %s.dead}
functions: [{name: echo, submit: true}]
tailers: [{name: orders, topic: %s, function: echo}]
`, strings.Join(brokers, ","), t.TempDir(), grpcAddr, server.CertFile, server.KeyFile, tokens, topic, topic, topic))
	node := start("run", "--config", cfg)
	t.Cleanup(func() {
		node.stop(t)
		require.Equal(t, ExitOK, node.code, node.out.String())
	})
	node.waitFor(t, "node started")

	secured := []string{"status", "--node", grpcAddr, "--tls-ca", ca.CertFile, "--token-file", opsToken}
	ingest := config.IngestTopic("echo")
	var out, errOut string
	var code int
	require.Eventually(t, func() bool { // until both tailers own their partitions
		code, out, errOut = kasync(context.Background(), "", secured...)
		require.Equal(t, ExitOK, code, errOut)
		return !strings.Contains(out, "! not ready") && len(fields(out, "orders", "source", topic, "echo", "kasync.orders", "yes")) == 2 &&
			len(fields(out, ingest, "ingest", ingest, "echo", ingest, "yes")) == 2
	}, time.Minute, 20*time.Millisecond, "a ready node, its tailers a row per owned partition")
	require.Contains(t, out, "kasync status: from node "+grpcAddr+" (roles: scheduler, tailer, delay)")
	rows := fields(out, "echo", "default")
	require.Len(t, rows, 1, out)
	require.False(t, strings.HasPrefix(rows[0][2], "-/"), "this node schedules echo: its limit and counters are shown\n%s", out)
	require.Len(t, fields(out, "20ms", topic+".delay.20ms"), 1, out)
	require.Contains(t, out, "DEAD LETTERS "+topic+".dead")

	code, out, errOut = kasync(context.Background(), "", append(secured, "--json")...)
	require.Equal(t, ExitOK, code, errOut)
	var st nodestatus.Status
	require.NoError(t, json.Unmarshal([]byte(out), &st), out)
	require.Equal(t, []string{"scheduler", "tailer", "delay"}, st.Roles)
	require.Len(t, st.Tailers, 2)
	require.False(t, st.Tailers[0].Ingest)
	require.True(t, st.Tailers[1].Ingest)
	require.Equal(t, ingest, st.Tailers[1].Topic)

	code, out, errOut = kasync(context.Background(), "", "status", "--node", grpcAddr, "--tls-ca", ca.CertFile, "--token-file", strangerToken)
	require.Equal(t, ExitUsage, code, out)
	require.Contains(t, errOut, "refused the call")
	require.Contains(t, errOut, `identity "stranger" is not in node.grpc_auth.identities`)
	require.Contains(t, errOut, "--token-file")
	require.NotContains(t, errOut, "token-of-a-stranger", "no secret in the message")

	code, _, errOut = kasync(context.Background(), "", "status", "--node", grpcAddr, "--timeout", "5s")
	require.Equal(t, ExitFailure, code, errOut)
	require.Contains(t, errOut, "cannot reach the node at "+grpcAddr)
	require.Contains(t, errOut, "TLS flags")
}

// TestStatusNodeUsage: --node's bad combinations are usage errors naming the flags;
// a node that does not answer within --timeout is a runtime failure naming --node.
func TestStatusNodeUsage(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--node", "127.0.0.1:7070", "--brokers", "b:9092"}, "--node conflicts with --brokers"},
		{[]string{"--node", "127.0.0.1:7070", "--config", "x.yaml"}, "--node conflicts with --config"},
		{[]string{"--node", "127.0.0.1:7070", "--group", "g"}, "--node conflicts with --group"},
		{[]string{"--node", ""}, "--node is empty"},
		{[]string{"--tls-ca", "ca.pem"}, "--tls-ca applies to --node only"},
		{[]string{"--brokers", "b:9092", "--token-file", "t"}, "--token-file applies to --node only"},
		{[]string{"--node", "127.0.0.1:7070", "--token-file", "t"}, "--token-file needs TLS"},
	} {
		code, _, errOut := kasync(context.Background(), "", append([]string{"status"}, c.args...)...)
		require.Equal(t, ExitUsage, code, "%v: %s", c.args, errOut)
		require.Contains(t, errOut, c.want, "%v", c.args)
	}
	addr := testutil.FreeAddr(t)
	code, out, errOut := kasync(context.Background(), "", "status", "--node", addr, "--timeout", "1s")
	require.Equal(t, ExitFailure, code, errOut)
	require.Empty(t, out)
	require.Contains(t, errOut, "cannot reach the node at "+addr)
	require.Contains(t, errOut, "check --node")
}
