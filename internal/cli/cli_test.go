package cli

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/kasync/kasync/internal/config"
	"github.com/kasync/kasync/internal/kafkatest"
	"github.com/kasync/kasync/internal/testutil"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// kasync runs the command line with ctx and returns the exit status, stdout and stderr.
func kasync(ctx context.Context, stdin string, args ...string) (int, string, string) {
	var out, errOut testutil.Buffer
	code := run(ctx, args, env{stdin: strings.NewReader(stdin), stdout: &out, stderr: &errOut})
	return code, out.String(), errOut.String()
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	require.NoError(t, os.WriteFile(path, []byte(content), 0o600))
	return path
}

func TestUsage(t *testing.T) {
	t.Parallel()
	code, out, _ := kasync(context.Background(), "")
	require.Equal(t, ExitUsage, code)
	require.Contains(t, out, "Commands:")
	code, _, errOut := kasync(context.Background(), "", "nope")
	require.Equal(t, ExitUsage, code)
	require.Contains(t, errOut, `unknown command "nope"`)
	code, out, _ = kasync(context.Background(), "", "help")
	require.Equal(t, ExitOK, code)
	require.Contains(t, out, "produce")
}

func TestConfigCheck(t *testing.T) {
	t.Parallel()
	code, out, errOut := kasync(context.Background(), "", "config", "check", writeFile(t, "ok.yaml", config.DemoYAML))
	require.Equal(t, ExitOK, code, errOut)
	require.Contains(t, out, "ok")

	bad := strings.Replace(config.DemoYAML, "    concurrency: 64", "    concurency: 64", 1)
	bad = strings.Replace(bad, "    function: echo\n", "    function: ehco\n", 1)
	code, _, errOut = kasync(context.Background(), "", "config", "check", writeFile(t, "bad.yaml", bad))
	require.Equal(t, ExitUsage, code)
	require.Contains(t, errOut, "concurency")
	require.Contains(t, errOut, "concurrency", "the message suggests the right key")

	bad = strings.Replace(config.DemoYAML, "timeout: 30s", "timeout: -5s", 1)
	bad = strings.Replace(bad, "    function: echo\n", "    function: ehco\n", 1)
	code, _, errOut = kasync(context.Background(), "", "config", "check", writeFile(t, "bad2.yaml", bad))
	require.Equal(t, ExitUsage, code)
	require.Contains(t, errOut, "functions[0].timeout")
	require.Contains(t, errOut, "tailers[0].function", "every problem is reported at once")

	code, _, errOut = kasync(context.Background(), "", "config", "check")
	require.Equal(t, ExitUsage, code)
	require.Contains(t, errOut, "FILE")
}

func TestRunUsageErrors(t *testing.T) {
	t.Parallel()
	code, _, errOut := kasync(context.Background(), "", "run")
	require.Equal(t, ExitUsage, code)
	require.Contains(t, errOut, "--config FILE is required")

	cfg := writeFile(t, "ok.yaml", config.DemoYAML)
	code, _, errOut = kasync(context.Background(), "", "run", "--config", cfg, "--roles", "tailer,bogus")
	require.Equal(t, ExitUsage, code)
	require.Contains(t, errOut, `unknown role "bogus"`)

	code, _, errOut = kasync(context.Background(), "", "run", "--config", cfg, "--roles", "tailer")
	require.Equal(t, ExitUsage, code)
	require.Contains(t, errOut, "--scheduler ADDR")

	code, _, errOut = kasync(context.Background(), "", "run", "--config", cfg, "--log-level", "loud")
	require.Equal(t, ExitUsage, code)
	require.Contains(t, errOut, "--log-level")

	code, _, errOut = kasync(context.Background(), "", "worker", "--functions", "echo,charge")
	require.Equal(t, ExitUsage, code)
	require.Contains(t, errOut, `"charge" is not a demo function`)

	code, _, errOut = kasync(context.Background(), "", "broker", "--listen", "10.1.2.3:9092")
	require.Equal(t, ExitUsage, code)
	require.Contains(t, errOut, "127.0.0.1")
}

func TestProduceToMissingTopic(t *testing.T) {
	t.Parallel()
	brokers := kafkatest.Brokers(t)
	code, _, errOut := kasync(context.Background(), "a\n", "produce", "--brokers", strings.Join(brokers, ","), "--topic", "no-such-topic")
	require.Equal(t, ExitUsage, code)
	require.Contains(t, errOut, "does not exist")
}

// devOnFreePorts runs `kasync dev` with the demo config on free ports until cancel; done
// receives its exit status once.
func devOnFreePorts(t *testing.T) (out, errOut *testutil.Buffer, done <-chan int, cancel context.CancelFunc) {
	t.Helper()
	yaml := strings.NewReplacer(
		`brokers: ["127.0.0.1:9092"]`, `brokers: ["`+testutil.FreeAddr(t)+`"]`,
		"grpc_listen: 127.0.0.1:7070", "grpc_listen: 127.0.0.1:0",
		"http_listen: 127.0.0.1:8080", "http_listen: 127.0.0.1:0",
		"data_dir: ${TMPDIR:-/tmp}/kasync-dev-data", "data_dir: "+t.TempDir(),
	).Replace(config.DemoYAML)
	cfg := writeFile(t, "dev.yaml", yaml)
	ctx, cancel := context.WithCancel(context.Background())
	out, errOut = &testutil.Buffer{}, &testutil.Buffer{}
	exit := make(chan int, 1)
	go func() {
		exit <- run(ctx, []string{"dev", "--config", cfg}, env{stdin: strings.NewReader(""), stdout: out, stderr: errOut})
	}()
	return out, errOut, exit, cancel
}

// TestDevEndToEnd: `kasync dev` with a config on free ports prints its banner; records
// produced with `kasync produce` as the banner says run the demo function; cancelling
// (as Ctrl-C does) drains and exits 0.
func TestDevEndToEnd(t *testing.T) {
	t.Parallel()
	out, errOut, done, cancel := devOnFreePorts(t)
	defer cancel()

	produceLine := regexp.MustCompile(`produce --brokers (\S+) --topic (\S+)`)
	var m []string
	require.Eventually(t, func() bool {
		m = produceLine.FindStringSubmatch(out.String())
		return m != nil
	}, 30*time.Second, 10*time.Millisecond, "the banner says how to produce; stderr: %s", errOut)
	require.Contains(t, out.String(), "development broker")

	code, _, perr := kasync(context.Background(), "hello\nworld\n", "produce", "--brokers", m[1], "--topic", m[2])
	require.Equal(t, ExitOK, code, perr)
	require.Contains(t, perr, "produced 2 records")

	require.Eventually(t, func() bool {
		s := errOut.String()
		return strings.Contains(s, "value=hello") && strings.Contains(s, "value=world")
	}, 30*time.Second, 10*time.Millisecond, "echo ran both events")

	cancel()
	select {
	case code := <-done:
		require.Equal(t, ExitOK, code, errOut.String())
	case <-time.After(30 * time.Second):
		t.Fatal("kasync dev did not stop within 30s of Ctrl-C")
	}
}

func TestBenchUsageErrors(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"bench", "--size", "3"}, "--size 3: use 16"},
		{[]string{"bench", "--modes", "raw-franz-go,celery"}, `unknown mode "celery"`},
		{[]string{"bench", "--modes", " , "}, "--modes: name at least one"},
		{[]string{"bench", "--latency-fraction", "-1"}, "--latency-fraction -1"},
		{[]string{"bench", "--brokers", ","}, "--brokers"},
		{[]string{"bench-child", "raw", "--n", "0"}, "--n 0"},
		{[]string{"bench-child", "kafka-streams", "--n", "1"}, `unknown mode "kafka-streams"`},
	} {
		code, _, errOut := kasync(context.Background(), "", c.args...)
		require.Equal(t, ExitUsage, code, "%v: %s", c.args, errOut)
		require.Contains(t, errOut, c.want, "%v", c.args)
	}
	_, out, _ := kasync(context.Background(), "", "help")
	require.Contains(t, out, "bench ")
	require.NotContains(t, out, "bench-child", "a hidden command is listed")
}
