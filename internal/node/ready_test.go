package node_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kasync/kasync/internal/broker"
	"github.com/kasync/kasync/internal/kafkatest"
	"github.com/kasync/kasync/internal/node"
	kruntime "github.com/kasync/kasync/runtime"
)

// readyz fetches /readyz and returns its status code and body.
func readyz(t *testing.T, addr string) (int, string) {
	t.Helper()
	return httpGet(t, "http://"+addr+"/readyz")
}

// requireReadyz waits until /readyz answers code with a body containing want.
func requireReadyz(t *testing.T, addr string, code int, want string) {
	t.Helper()
	var gotCode int
	var gotBody string
	require.Eventually(t, func() bool {
		gotCode, gotBody = readyz(t, addr)
		return gotCode == code && strings.Contains(gotBody, want)
	}, time.Minute, 20*time.Millisecond, "want %d %q from /readyz; last %d %q", code, want, gotCode, gotBody)
}

// TestReadyzFollowsTheBroker: /readyz is 503 while a node's broker is down, naming
// it, and 200 again once it is back and the tailer is a member of its group.
func TestReadyzFollowsTheBroker(t *testing.T) {
	if _, ok := os.LookupEnv(kafkatest.EnvBrokers); ok {
		t.Skip("stops and restarts the embedded broker; not against " + kafkatest.EnvBrokers)
	}
	t.Parallel()
	dataDir := t.TempDir()
	b, err := broker.Start(broker.Options{Listen: "127.0.0.1:0", DataDir: dataDir, Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	addr := b.Addrs()[0]
	brokers := []string{addr}
	topic := kafkatest.NewTopic(t, brokers, 2)
	cfg := testConfig(t, brokers, topic)
	reg := kruntime.NewRegistry()
	reg.MustRegister("fn", func(context.Context, *kruntime.Task) error { return nil })
	nd := start(t, node.Options{Config: cfg, Registry: reg})

	requireReadyz(t, nd.HTTPAddr(), http.StatusOK, "ready")

	require.NoError(t, b.Close())
	requireReadyz(t, nd.HTTPAddr(), http.StatusServiceUnavailable, "kafka: no broker of "+addr)

	b, err = broker.Start(broker.Options{Listen: addr, DataDir: dataDir, Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	defer func() { require.NoError(t, b.Close()) }()
	requireReadyz(t, nd.HTTPAddr(), http.StatusOK, "ready")
	nd.stop(t)
}

// TestReadyzOfASchedulerOnlyNode: a node that only schedules needs no Kafka client
// and is ready as it serves.
func TestReadyzOfASchedulerOnlyNode(t *testing.T) {
	t.Parallel()
	brokers := kafkatest.Brokers(t)
	topic := kafkatest.NewTopic(t, brokers, 1)
	cfg := testConfig(t, brokers, topic)
	sched := start(t, node.Options{Config: cfg, Roles: node.Roles{Scheduler: true}})
	code, body := readyz(t, sched.HTTPAddr())
	require.Equal(t, http.StatusOK, code, body)
	require.Equal(t, "ready\n", body, "a scheduler-only node needs no Kafka to be ready")
}

func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	require.NoError(t, err)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(body)
}

// TestMetricsAfterARunWithFailures scrapes /metrics after a run in which every tenth
// event fails fatally: the outcome counters, the duration histogram and the tailer's
// lag per partition are there, with the counts of the run.
func TestMetricsAfterARunWithFailures(t *testing.T) {
	t.Parallel()
	const n = 200
	brokers := kafkatest.Brokers(t)
	topic := kafkatest.NewTopic(t, brokers, 2)
	end := produce(t, brokers, topic, n)
	cfg := testConfig(t, brokers, topic)
	reg := kruntime.NewRegistry()
	reg.MustRegister("fn", func(_ context.Context, task *kruntime.Task) error {
		if strings.HasSuffix(string(task.Payload), "0") {
			return kruntime.Fatal(errors.New("ends in 0"))
		}
		return nil
	})
	nd := start(t, node.Options{Config: cfg, Registry: reg})
	waitCommitted(t, brokers, cfg.Tailers[0].Group, topic, end)

	for series, want := range map[string]string{
		`kasync_workloads_total{function="fn",outcome="success"}`:   "180",
		`kasync_workloads_total{function="fn",outcome="fatal"}`:     "20",
		`kasync_workloads_total{function="fn",outcome="retriable"}`: "0",
		`kasync_workload_duration_seconds_count{function="fn"}`:     "200",
		`kasync_dead_letter_total{function="fn",reason="fatal"}`:    "20", // acknowledged before the source's checkpoint
		`kasync_tailer_lag_records{partition="0",tailer="t"}`:       "0",
		`kasync_tailer_lag_records{partition="1",tailer="t"}`:       "0",
		`kasync_tailer_lag_seconds{partition="0",tailer="t"}`:       "0",
		`kasync_tailer_lag_seconds{partition="1",tailer="t"}`:       "0",
		`kasync_tailer_records_lost_total{tailer="t"}`:              "0",
		`kasync_tailer_commits_refused_total{tailer="t"}`:           "0",
	} {
		require.Equal(t, want, scrape(t, nd.HTTPAddr(), series), series)
	}
	nd.stop(t)
}
