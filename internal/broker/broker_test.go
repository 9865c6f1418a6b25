package broker

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func startTest(t *testing.T, opts Options) *Broker {
	t.Helper()
	if opts.Listen == "" {
		opts.Listen = "127.0.0.1:0"
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	b, err := Start(opts)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, b.Close()) })
	return b
}

func newClient(t *testing.T, b *Broker, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(b.Addrs()...)}, opts...)...)
	require.NoError(t, err)
	t.Cleanup(cl.Close)
	return cl
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestStartPortZeroPicksFreePort(t *testing.T) {
	t.Parallel()
	b := startTest(t, Options{Listen: "127.0.0.1:0"})

	addrs := b.Addrs()
	require.Len(t, addrs, 1)
	host, port, err := net.SplitHostPort(addrs[0])
	require.NoError(t, err)
	require.Equal(t, "127.0.0.1", host)
	p, err := strconv.Atoi(port)
	require.NoError(t, err)
	require.NotZero(t, p)

	adm := kadm.NewClient(newClient(t, b))
	md, err := adm.BrokerMetadata(testCtx(t))
	require.NoError(t, err)
	require.Len(t, md.Brokers, 1)
	require.Equal(t, "kasync-dev", md.Cluster)
}

func TestEmptyHostMeansLoopback(t *testing.T) {
	t.Parallel()
	b := startTest(t, Options{Listen: ":0"})
	host, _, err := net.SplitHostPort(b.Addrs()[0])
	require.NoError(t, err)
	require.Equal(t, "127.0.0.1", host)
}

func TestTopicsSeededAndCreateTopicIdempotent(t *testing.T) {
	t.Parallel()
	b := startTest(t, Options{Partitions: 2, Topics: map[string]int32{"orders": 5, "defaulted": 0}})
	adm := kadm.NewClient(newClient(t, b))

	require.NoError(t, b.CreateTopic("orders", 9, nil), "existing topic is not an error")
	require.NoError(t, b.CreateTopic("fresh", 0, map[string]string{"retention.ms": "60000"}))

	details, err := adm.ListTopics(testCtx(t))
	require.NoError(t, err)
	require.NoError(t, details.Error())
	require.Len(t, details["orders"].Partitions, 5, "a second create must not change the topic")
	require.Len(t, details["defaulted"].Partitions, 2)
	require.Len(t, details["fresh"].Partitions, 2)

	err = b.CreateTopic("bad/name", 1, nil)
	require.ErrorContains(t, err, "letters, digits")
}

func TestDefaultPartitions(t *testing.T) {
	t.Parallel()
	b := startTest(t, Options{})
	require.NoError(t, b.CreateTopic("t", 0, nil))
	details, err := kadm.NewClient(newClient(t, b)).ListTopics(testCtx(t), "t")
	require.NoError(t, err)
	require.Len(t, details["t"].Partitions, int(DefaultPartitions))
}

func TestCloseIsIdempotentAndStopsCalls(t *testing.T) {
	t.Parallel()
	b, err := Start(Options{Listen: "127.0.0.1:0", Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	require.NoError(t, b.Close())
	require.NoError(t, b.Close())
	require.ErrorIs(t, b.CreateTopic("t", 1, nil), ErrClosed)

	// The port is released: a client can no longer reach it.
	conn, err := net.DialTimeout("tcp", b.Addrs()[0], time.Second)
	if err == nil {
		_ = conn.Close()
	}
	require.Error(t, err)
}

func TestPortInUse(t *testing.T) {
	t.Parallel()
	b := startTest(t, Options{})
	_, err := Start(Options{Listen: b.Addrs()[0], Logger: slog.New(slog.DiscardHandler)})
	require.ErrorContains(t, err, "already listening")
}

func TestBadOptions(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		opts Options
		want string
	}{
		{"all interfaces", Options{Listen: "0.0.0.0:9092"}, "binds 127.0.0.1 only"},
		{"other host", Options{Listen: "example.com:9092"}, "binds 127.0.0.1 only"},
		{"ipv6 loopback", Options{Listen: "[::1]:9092"}, "binds 127.0.0.1 only"},
		{"no port", Options{Listen: "127.0.0.1"}, "want HOST:PORT"},
		{"port not a number", Options{Listen: "127.0.0.1:kafka"}, "0 to 65535"},
		{"port too large", Options{Listen: "127.0.0.1:70000"}, "0 to 65535"},
		{"negative partitions", Options{Partitions: -1}, "partitions -1 is negative"},
		{"bad topic name", Options{Topics: map[string]int32{"a b": 1}}, `contains ' '`},
		{"negative topic partitions", Options{Topics: map[string]int32{"t": -2}}, "has -2 partitions"},
		{"sync without dir", Options{SyncWrites: true}, "sync writes needs a data dir"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.opts.Logger = slog.New(slog.DiscardHandler)
			b, err := Start(tc.opts)
			require.Nil(t, b)
			require.ErrorContains(t, err, tc.want)
		})
	}
}

func TestValidateReportsEveryProblem(t *testing.T) {
	t.Parallel()
	err := Options{Listen: "10.0.0.1:9092", Partitions: -3}.WithDefaults().Validate()
	require.ErrorContains(t, err, "10.0.0.1")
	require.ErrorContains(t, err, "partitions -3")
}

func TestDataDirIsAFile(t *testing.T) {
	t.Parallel()
	f := t.TempDir() + "/file"
	require.NoError(t, writeFile(f))
	_, err := Start(Options{Listen: "127.0.0.1:0", DataDir: f})
	require.ErrorContains(t, err, "is a file")
}

func TestDataDirLockedByRunningBroker(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	startTest(t, Options{DataDir: dir})
	_, err := Start(Options{Listen: "127.0.0.1:0", DataDir: dir, Logger: slog.New(slog.DiscardHandler)})
	require.ErrorContains(t, err, "in use by another broker")
}

func TestDataSurvivesRestart(t *testing.T) {
	t.Parallel()
	const (
		topic = "durable"
		group = "g"
		n     = 300
	)
	dir := t.TempDir()
	opts := Options{Listen: "127.0.0.1:0", DataDir: dir, Logger: slog.New(slog.DiscardHandler)}

	b1, err := Start(opts)
	require.NoError(t, err)
	require.NoError(t, b1.CreateTopic(topic, 3, nil))
	want := produce(t, b1, topic, n)

	// Commit an offset so that group state is covered too.
	cl := newClient(t, b1)
	adm := kadm.NewClient(cl)
	var commit kadm.Offsets
	commit.Add(kadm.Offset{Topic: topic, Partition: 1, At: 7, LeaderEpoch: -1})
	resp, err := adm.CommitOffsets(testCtx(t), group, commit)
	require.NoError(t, err)
	require.NoError(t, resp.Error())
	cl.Close()
	require.NoError(t, b1.Close())

	b2 := startTest(t, opts)
	require.NotEmpty(t, b2.Addrs())
	got := consumeAll(t, b2, topic, n)
	require.Equal(t, want, got)

	fetched, err := kadm.NewClient(newClient(t, b2)).FetchOffsets(testCtx(t), group)
	require.NoError(t, err)
	require.NoError(t, fetched.Error())
	o, ok := fetched.Lookup(topic, 1)
	require.True(t, ok)
	require.Equal(t, int64(7), o.At)
}

func TestInMemoryForgetsOnClose(t *testing.T) {
	t.Parallel()
	b1, err := Start(Options{Listen: "127.0.0.1:0", Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	require.NoError(t, b1.CreateTopic("gone", 1, nil))
	require.NoError(t, b1.Close())

	b2 := startTest(t, Options{})
	details, err := kadm.NewClient(newClient(t, b2)).ListTopics(testCtx(t))
	require.NoError(t, err)
	require.NotContains(t, details.Names(), "gone")
}

func TestBanner(t *testing.T) {
	t.Parallel()
	mem := startTest(t, Options{}).Banner()
	require.Contains(t, mem, "development broker")
	require.Contains(t, mem, "127.0.0.1:")
	require.Contains(t, mem, "no replication")
	require.Contains(t, mem, "in memory only")
	require.Contains(t, mem, "Not for production")

	dir := t.TempDir()
	disk := startTest(t, Options{DataDir: dir, SyncWrites: true}).Banner()
	require.Contains(t, disk, "Data is kept in "+dir)
	require.Contains(t, disk, "survive a restart")
	require.Contains(t, disk, "Sync writes are on")
	require.NotContains(t, disk, "in memory only")
}

func TestSlogAdapterLevels(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	a := slogAdapter{slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo}))}
	a.Logf(kfake.LogLevelError, "boom %d", 1)
	a.Logf(kfake.LogLevelWarn, "careful %d", 2)
	a.Logf(kfake.LogLevelInfo, "chatty %d", 3)
	a.Logf(kfake.LogLevelDebug, "noisy %d", 4)
	out := buf.String()
	require.Contains(t, out, `level=ERROR msg="boom 1"`)
	require.Contains(t, out, `level=WARN msg="careful 2"`)
	require.NotContains(t, out, "chatty", "kfake info is debug detail")
	require.NotContains(t, out, "noisy")
}

// produce writes n records round-robin over the topic's partitions and
// returns their values by partition, in offset order.
func produce(t *testing.T, b *Broker, topic string, n int) map[int32][]string {
	t.Helper()
	cl := newClient(t, b, kgo.RecordPartitioner(kgo.RoundRobinPartitioner()))
	recs := make([]*kgo.Record, n)
	for i := range recs {
		recs[i] = &kgo.Record{Topic: topic, Value: fmt.Appendf(nil, "v%d", i)}
	}
	res := cl.ProduceSync(testCtx(t), recs...)
	require.NoError(t, res.FirstErr())
	out := map[int32][]string{}
	for _, r := range res {
		out[r.Record.Partition] = append(out[r.Record.Partition], string(r.Record.Value))
	}
	return out
}

func consumeAll(t *testing.T, b *Broker, topic string, n int) map[int32][]string {
	t.Helper()
	cl := newClient(t, b, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	ctx := testCtx(t)
	out := map[int32][]string{}
	for got := 0; got < n; {
		fs := cl.PollFetches(ctx)
		require.NoError(t, ctx.Err(), "read %d of %d records", got, n)
		fs.EachError(func(tp string, p int32, err error) { require.NoError(t, err, "%s/%d", tp, p) })
		fs.EachRecord(func(r *kgo.Record) {
			out[r.Partition] = append(out[r.Partition], string(r.Value))
			got++
		})
	}
	return out
}

func writeFile(path string) error {
	return os.WriteFile(path, []byte("not a directory"), 0o600)
}

func TestCorruptDataDirNamesTheDir(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "meta.json"), []byte("{not json"), 0o600))
	_, err := Start(Options{Listen: "127.0.0.1:0", DataDir: dir, Logger: slog.New(slog.DiscardHandler)})
	require.ErrorContains(t, err, "data dir "+strconv.Quote(dir))
	require.NotContains(t, err.Error(), "already listening")

	// The failed start released the lock: fixing the directory is enough.
	require.NoError(t, os.Remove(filepath.Join(dir, "meta.json")))
	startTest(t, Options{DataDir: dir})
}
