package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/kasync/kasync/internal/testutil"
)

// The kasync binary, built at most once, on first use, and removed by TestMain.
var (
	buildOnce sync.Once
	binDir    string
	binPath   string
	binErr    error
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.Cleanup(func(code int) {
		if binDir != "" {
			_ = os.RemoveAll(binDir)
		}
		os.Exit(code)
	}))
}

func kasyncBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		if binDir, binErr = os.MkdirTemp("", "kasync-bench-bin-"); binErr != nil {
			return
		}
		binPath = filepath.Join(binDir, "kasync")
		binErr = testutil.BuildKasync(binPath)
	})
	require.NoError(t, binErr)
	return binPath
}

// TestHarnessSmallRun runs `kasync bench` as a process, every mode at a tiny size, and
// checks the report it writes: the harness cannot rot unnoticed.
func TestHarnessSmallRun(t *testing.T) {
	exe := kasyncBinary(t)
	out := t.TempDir()
	const records = 3000
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	args := []string{"bench", "--records", fmt.Sprint(records), "--partitions", "4",
		"--asynq-records", "2000", "--latency-duration", "400ms", "--latency-max-rate", "2000", "--concurrency", "16",
		"--stall", "60s", "--out", out, "--child-gomaxprocs", "1"}
	// The Asynq peer runs when `make bench-peers` has built it and installed redis-server
	// (CI does): then its row must not be skipped.
	wantAsynq := false
	if root, err := testutil.ModuleRoot(); err == nil {
		peer := filepath.Join(root, "bin", "kasync-bench-asynq")
		if _, err := os.Stat(peer); err == nil {
			args = append(args, "--asynq-peer", peer)
			_, err := exec.LookPath("redis-server")
			wantAsynq = err == nil
		}
	}
	cmd := exec.CommandContext(ctx, exe, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	require.NoError(t, cmd.Run(), "stdout:\n%s\nstderr:\n%s", stdout.String(), stderr.String())
	t.Logf("kasync bench:\n%s", stdout.String())
	require.Contains(t, stdout.String(), "measured processes run with GOMAXPROCS=1")

	raw, err := os.ReadFile(filepath.Join(out, "report.json"))
	require.NoError(t, err)
	var r Report
	require.NoError(t, json.Unmarshal(raw, &r))
	require.Equal(t, 1, r.Settings.ChildGOMAXPROCS)
	require.Len(t, r.Rows, len(AllModes))
	for i, row := range r.Rows {
		require.Equal(t, AllModes[i], row.Mode)
		require.Empty(t, row.Error, "%s failed", row.Mode)
		if row.Skipped != "" {
			require.False(t, wantAsynq && row.Mode == ModeAsynq, "Asynq skipped though redis-server and the peer are here: %s", row.Skipped)
			require.Equal(t, ModeAsynq, row.Mode, "only the peer may be skipped (it needs redis-server)")
			require.Contains(t, row.Skipped, "make bench-peers")
			continue
		}
		require.Positive(t, row.Rate, row.Mode)
		require.Positive(t, row.CPUPerMillion, row.Mode)
		require.Positive(t, row.PeakRSS, row.Mode)
		require.NotNil(t, row.Latency, row.Mode)
		require.LessOrEqual(t, row.Latency.Offered, 2000.0, "%s: --latency-max-rate not applied", row.Mode)
		require.Equal(t, int64(max(row.Latency.Offered*0.4+0.5, 10)), row.Latency.Count, "%s: every latency record is counted once", row.Mode)
		require.Positive(t, int64(row.Latency.P99), row.Mode)
		require.LessOrEqual(t, row.Latency.P50, row.Latency.P99)
		if row.Mode == ModeAsynq {
			require.Zero(t, row.Latency.AckP99, "Asynq has no Kafka producer to time")
		} else {
			require.Positive(t, int64(row.Latency.AckP99), "%s: produce → ack not measured", row.Mode)
		}
	}
	require.Contains(t, r.Ratios, ModeInProcess+"/"+ModeRaw)
	require.NotNil(t, r.Lateness)
	require.Empty(t, r.Lateness.Error)
	require.Positive(t, r.Lateness.Retries)
	require.Zero(t, r.Lateness.Early, "a retry started before its due time")

	f, err := os.Open(filepath.Join(out, "chart.png"))
	require.NoError(t, err)
	defer func() { _ = f.Close() }()
	_, err = png.Decode(f)
	require.NoError(t, err)
	require.Contains(t, stdout.String(), "kasync-in-process/raw-franz-go")
}

func TestOptionsValidateNamesTheFlag(t *testing.T) {
	good := Options{Exe: "/bin/true"}.WithDefaults()
	require.NoError(t, good.Validate())
	for _, c := range []struct {
		edit func(*Options)
		want string
	}{
		{func(o *Options) { o.Records = -1 }, "--records -1"},
		{func(o *Options) { o.Size = 8 }, "--size 8: use 16"},
		{func(o *Options) { o.Partitions = 0 }, "--partitions 0"},
		{func(o *Options) { o.LatencyFraction = 1.5 }, "--latency-fraction 1.5"},
		{func(o *Options) { o.LatencyDuration = time.Millisecond }, "--latency-duration 1ms"},
		{func(o *Options) { o.Modes = []string{"kafka-streams"} }, `--modes: unknown mode "kafka-streams"`},
		{func(o *Options) { o.Modes = []string{ModeRaw, ModeRaw} }, "named twice"},
		{func(o *Options) { o.Concurrency = 0 }, "--concurrency 0"},
		{func(o *Options) { o.ChildGOMAXPROCS = -1 }, "--child-gomaxprocs -1"},
	} {
		o := good
		c.edit(&o)
		err := o.Validate()
		require.Error(t, err)
		require.Contains(t, err.Error(), c.want)
	}
}

func TestChildEnvSetsGOMAXPROCS(t *testing.T) {
	require.Nil(t, (&harness{o: Options{}}).childEnv(), "the Go default unless asked")
	require.Equal(t, []string{"GOMAXPROCS=1"}, (&harness{o: Options{ChildGOMAXPROCS: 1}}).childEnv())
}

func TestTrackerCountsEachRecordOnce(t *testing.T) {
	tr := newTracker(100, 2)
	now := time.Now()
	select {
	case <-tr.ready:
		t.Fatal("ready before any warm-up")
	default:
	}
	tr.start(newPayload(16, 0, time.Time{}, true), 0, now)
	tr.start(newPayload(16, 0, time.Time{}, true), 0, now) // same partition again
	select {
	case <-tr.ready:
		t.Fatal("ready after warm-ups from one of two partitions")
	default:
	}
	tr.start(newPayload(16, 0, time.Time{}, true), 1, now)
	<-tr.ready

	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for seq := range 100 {
				first := tr.start(newPayload(32, uint64(seq), now.Add(-time.Duration(seq)*time.Millisecond), false), int32(w), now.Add(time.Duration(seq)))
				_ = first
			}
		}()
	}
	wg.Wait()
	<-tr.done
	require.False(t, tr.start(newPayload(16, 100, now, false), 0, now), "a sequence number beyond the run counts")
	require.False(t, tr.start([]byte("short"), 0, now))
	res := tr.result()
	require.Equal(t, int64(100), res.Count)
	require.Equal(t, int64(300), res.Duplicates)
	require.Equal(t, int64(100), res.Latency.Count())
	require.InDelta(t, float64(99*time.Millisecond), float64(res.Latency.Max()), float64(2*time.Millisecond))
	require.Less(t, res.FirstStart, res.LastStart)
}

func TestPartitionOfID(t *testing.T) {
	require.Equal(t, int32(7), partitionOfID("orders/7/123"))
	require.Equal(t, int32(0), partitionOfID("a/b/c/0/9"))
	require.Equal(t, int32(-1), partitionOfID("submitted-task-1"))
	require.Equal(t, int32(-1), partitionOfID("t/x/1"))
}

func TestRatiosNeedBothRows(t *testing.T) {
	got := ratios([]Row{{Mode: ModeRaw, Rate: 1000}, {Mode: ModeInProcess, Rate: 600}, {Mode: ModeSplit, Rate: 300},
		{Mode: ModeAsynq, Skipped: "no redis"}, {Mode: ModeInline, Error: "boom", Rate: 5}})
	require.Equal(t, map[string]float64{ModeInProcess + "/" + ModeRaw: 0.6, ModeSplit + "/" + ModeRaw: 0.3}, got)
}

func TestWriteTable(t *testing.T) {
	var b bytes.Buffer
	require.NoError(t, WriteTable(&b, sampleReport()))
	out := b.String()
	for _, want := range []string{"raw-franz-go", "kasync-split", "asynq skipped:", "(target ≥ 0.5×)", "delay lateness", "early 0"} {
		require.Contains(t, out, want)
	}
}

func TestTailBufferKeepsTheLastLines(t *testing.T) {
	tb := newTailBuffer(3)
	for i := range 10 {
		_, _ = fmt.Fprintf(tb, "line %d\n", i)
	}
	_, _ = tb.Write([]byte("partial"))
	require.Equal(t, "line 7\nline 8\nline 9\npartial", tb.String())
}

func TestProcCPUReadsThisProcess(t *testing.T) {
	busy := time.Now()
	for time.Since(busy) < 30*time.Millisecond {
	}
	d, ok := procCPU(os.Getpid())
	if !ok {
		t.Skip("no /proc here")
	}
	require.Positive(t, d)
}

func TestProcFailureShowsItsOutput(t *testing.T) {
	p, err := startProc("sh", "/bin/sh", []string{"-c", "echo 'it broke' >&2; exit 3"}, true, nil)
	require.NoError(t, err)
	_, err = p.awaitResult(context.Background(), 10*time.Second, nil, nil)
	require.Error(t, err)
	require.Contains(t, err.Error(), "exited without a result")
	require.Contains(t, err.Error(), "it broke")
}

func TestProcStallIsKilled(t *testing.T) {
	p, err := startProc("sleeper", "/bin/sh", []string{"-c", `echo '{"event":"ready"}'; exec sleep 60`}, true, nil)
	require.NoError(t, err)
	began := time.Now()
	_, err = p.awaitResult(context.Background(), 300*time.Millisecond, nil, nil)
	require.ErrorContains(t, err, "no progress for 300ms")
	require.Less(t, time.Since(began), 10*time.Second)
	<-p.exited
	require.True(t, strings.Contains(p.err.Error(), "killed"), p.err.Error())
}

func TestAggregateTakesMediansOverGoodRuns(t *testing.T) {
	lat := func(p99 time.Duration) *LatencyFigures { return &LatencyFigures{P99: Duration(p99), Count: 10} }
	runs := [][]Row{
		{{Mode: ModeRaw, Rate: 100, Latency: lat(3 * time.Millisecond)}, {Mode: ModeInProcess, Rate: 50, Latency: lat(9 * time.Millisecond)}, {Mode: ModeAsynq, Skipped: "no redis"}},
		{{Mode: ModeRaw, Rate: 300, Latency: lat(1 * time.Millisecond)}, {Mode: ModeInProcess, Error: "boom"}, {Mode: ModeAsynq, Skipped: "no redis"}},
		{{Mode: ModeRaw, Rate: 200, Latency: lat(2 * time.Millisecond)}, {Mode: ModeInProcess, Rate: 70, Latency: lat(5 * time.Millisecond)}, {Mode: ModeAsynq, Skipped: "no redis"}},
	}
	rows := aggregate(runs)
	require.Equal(t, 200.0, rows[0].Rate)
	require.Equal(t, []float64{100, 300, 200}, rows[0].Rates)
	require.Equal(t, Duration(2*time.Millisecond), rows[0].Latency.P99)
	require.Equal(t, 60.0, rows[1].Rate, "median of the two good runs")
	require.Contains(t, rows[1].Error, "1 of 3 runs failed; the first: boom")
	require.Equal(t, "no redis", rows[2].Skipped)

	med, rng := medianRatios(runs)
	// per run: 50/100 = 0.5, run 2 has no in-process, 70/200 = 0.35
	require.InDelta(t, 0.425, med[ModeInProcess+"/"+ModeRaw], 1e-9)
	require.Equal(t, [2]float64{0.35, 0.5}, rng[ModeInProcess+"/"+ModeRaw])
}

// A measured child nobody reads any more (its awaitResult returned, or it was never
// awaited) must still stop: its event reader may not block on a full channel.
func TestProcUnreadChildStillStops(t *testing.T) {
	p, err := startProc("chatty", "/bin/sh", []string{"-c", `while :; do echo '{"event":"progress","done":1}'; done`}, true, nil)
	require.NoError(t, err)
	time.Sleep(200 * time.Millisecond) // far more events than the channel holds
	stopped := make(chan struct{})
	go func() {
		p.stop(time.Second)
		close(stopped)
	}()
	select {
	case <-stopped:
	case <-time.After(20 * time.Second):
		t.Fatal("stop did not return: the event reader is stuck")
	}
}
