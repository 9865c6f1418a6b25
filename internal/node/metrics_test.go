package node_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kasync/kasync/internal/config"
	"github.com/kasync/kasync/internal/kafkatest"
	"github.com/kasync/kasync/internal/node"
	kruntime "github.com/kasync/kasync/runtime"
)

// scrapeAll returns every sample line of the node's /metrics whose series starts with
// prefix, as series → value.
func scrapeAll(t *testing.T, addr, prefix string) map[string]string {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	out := map[string]string{}
	for _, line := range strings.Split(string(body), "\n") {
		if strings.HasPrefix(line, prefix) {
			series, value, _ := strings.Cut(line, " ")
			out[series] = value
		}
	}
	return out
}

// TestOperatingMetrics: a run in which some events fail fatally (e-…0), some fail once
// and then succeed (e-…3) and some always fail retriably until their attempts are
// exhausted (e-…7, three attempts). While the retries are held, /metrics counts them
// waiting on their rung; afterwards it shows the dead letters by function and reason
// with their exact counts, one lateness observation per re-delivered attempt, every
// rung drained to 0 records, checkpoint commits, and the Kafka clients' own metrics by
// client.
func TestOperatingMetrics(t *testing.T) {
	t.Parallel()
	const n = 200
	brokers := kafkatest.Brokers(t)
	topic := kafkatest.NewTopic(t, brokers, 2)
	end := produce(t, brokers, topic, n)
	cfg := testConfig(t, brokers, topic, func(c *config.Config) {
		c.StormGuard.Disabled = true // a burst of failures must not turn retries in place
	})
	var retried, done atomic.Int64 // attempts after the first; events finished for good
	gate := make(chan struct{})
	reg := kruntime.NewRegistry()
	reg.MustRegister("fn", func(ctx context.Context, task *kruntime.Task) error {
		if task.Attempt > 1 {
			retried.Add(1)
			select { // retries wait until the test has seen them on their rung
			case <-gate:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		p := string(task.Payload)
		switch {
		case strings.HasSuffix(p, "0"):
			done.Add(1)
			return kruntime.Fatal(errors.New("ends in 0"))
		case strings.HasSuffix(p, "3") && task.Attempt == 1:
			return errors.New("ends in 3: fails once")
		case strings.HasSuffix(p, "7"):
			if task.Attempt == cfg.Functions[0].Retry.MaxAttempts {
				done.Add(1)
			}
			return errors.New("ends in 7: always fails")
		}
		done.Add(1)
		return nil
	})
	nd := start(t, node.Options{Config: cfg, Registry: reg})
	const fatal, once, exhausted = n / 10, n / 10, n / 10
	wantRetried := int64(once + 2*exhausted) // e-…7 runs attempts 2 and 3 off the rungs
	rungs := make([]string, len(cfg.Delay.Rungs))
	for i, r := range cfg.Delay.Rungs {
		rungs[i] = `kasync_delay_records{rung="` + r.String() + `"}`
	}

	// The source is checkpointed only once its failures are acknowledged on the rung:
	// then the first retries of e-…3 and e-…7 are all there, held by the gate, on the
	// smallest rung (a 10ms backoff is below it).
	waitCommitted(t, brokers, cfg.Tailers[0].Group, topic, end)
	require.Equal(t, map[string]string{rungs[0]: strconv.Itoa(once + exhausted), rungs[1]: "0", rungs[2]: "0"},
		scrapeAll(t, nd.HTTPAddr(), "kasync_delay_records"), "records waiting on each rung")
	close(gate)
	require.Eventually(t, func() bool { return done.Load() == n }, 2*time.Minute, 5*time.Millisecond, "every event finished")

	// A dead letter is counted once acknowledged; the rung readers' checkpoints wait
	// for that ack, so once their groups are committed to the rungs' ends (records 0)
	// every count is final.
	require.Eventually(t, func() bool {
		got := scrapeAll(t, nd.HTTPAddr(), "kasync_delay_records")
		for _, series := range rungs {
			if got[series] != "0" {
				return false
			}
		}
		return len(got) == len(rungs)
	}, 2*time.Minute, 10*time.Millisecond, "every rung is reported, and drained to 0 records")

	for series, want := range map[string]string{
		`kasync_dead_letter_total{function="fn",reason="fatal"}`:     strconv.Itoa(fatal),
		`kasync_dead_letter_total{function="fn",reason="exhausted"}`: strconv.Itoa(exhausted),
	} {
		require.Equal(t, want, scrape(t, nd.HTTPAddr(), series), series)
	}
	require.Len(t, scrapeAll(t, nd.HTTPAddr(), "kasync_dead_letter_total{"), 2, "no other reason")
	deadLetters(t, brokers, cfg, fatal+exhausted)

	require.Equal(t, wantRetried, retried.Load())
	var observed int64
	for series, v := range scrapeAll(t, nd.HTTPAddr(), "kasync_delay_lateness_seconds_count") {
		c, err := strconv.ParseInt(v, 10, 64)
		require.NoError(t, err, series)
		observed += c
	}
	require.Equal(t, wantRetried, observed, "one lateness observation per re-delivered attempt")
	require.Len(t, scrapeAll(t, nd.HTTPAddr(), "kasync_delay_lateness_seconds_count"), len(cfg.Delay.Rungs), "a series per rung")

	commits, err := strconv.Atoi(scrape(t, nd.HTTPAddr(), `kasync_checkpoint_commits_total{store="pebble"}`))
	require.NoError(t, err)
	require.Positive(t, commits)

	// kprom, by client: the producer wrote the dead letters, the source tailer fetched
	// the source topic.
	produced := 0
	for series, v := range scrapeAll(t, nd.HTTPAddr(), "kasync_kafka_produce_records_total{") {
		if strings.Contains(series, `client="producer"`) && strings.Contains(series, `topic="`+cfg.DeadLetter.Topic+`"`) {
			c, err := strconv.Atoi(v)
			require.NoError(t, err)
			produced += c
		}
	}
	require.GreaterOrEqual(t, produced, fatal+exhausted, "kprom counts the producer's dead letters")
	fetched := 0
	for series, v := range scrapeAll(t, nd.HTTPAddr(), "kasync_kafka_fetch_records_total{") {
		if strings.Contains(series, `client="tailer/t"`) && strings.Contains(series, `topic="`+topic+`"`) {
			c, err := strconv.Atoi(v)
			require.NoError(t, err)
			fetched += c
		}
	}
	require.GreaterOrEqual(t, fetched, n, "kprom counts the source tailer's fetches")
	require.NotEmpty(t, scrapeAll(t, nd.HTTPAddr(), `kasync_kafka_connects_total{client="delay/`+cfg.Delay.Rungs[0].String()+`"`),
		"every delay reader's client has its series")
	nd.stop(t)
}
