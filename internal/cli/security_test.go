package cli

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/kasync/kasync/internal/certtest"
	"github.com/kasync/kasync/internal/testutil"
)

// Sentinel secrets: if any of them shows up in any output, a secret leaked.
const (
	sentinelPassword   = "SENTINEL-sasl-password-5b1e0c9d"
	sentinelToken      = "SENTINEL-grpc-token-8c41f7a2e6"
	sentinelWrongToken = "SENTINEL-wrong-token-3d9a60b7c2"
)

// running is a command running in the background until its ctx is cancelled.
type running struct {
	cancel context.CancelFunc
	done   chan struct{}
	code   int
	out    testutil.Buffer // stdout and stderr
}

func start(args ...string) *running {
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(r.done)
		r.code = run(ctx, args, env{stdin: strings.NewReader(""), stdout: &r.out, stderr: &r.out})
	}()
	return r
}

func (r *running) stop(t *testing.T) {
	t.Helper()
	r.cancel()
	select {
	case <-r.done:
	case <-time.After(time.Minute):
		t.Fatal("command did not stop within a minute of cancel")
	}
}

func (r *running) waitFor(t *testing.T, what string) {
	t.Helper()
	require.Eventually(t, func() bool { return strings.Contains(r.out.String(), what) }, time.Minute, 5*time.Millisecond,
		"waiting for %q in:\n%s", what, &r.out)
}

// TestSecretsAppearNowhere runs a node whose Kafka SASL password comes from the
// environment and whose gRPC tokens come from a file, a worker that uses a token, one
// with a wrong token, and `kasync config check` on good and bad variants of the
// config, all at debug level, and finds none of the secrets in any output.
func TestSecretsAppearNowhere(t *testing.T) {
	// Not parallel: t.Setenv.
	t.Setenv("KASYNC_TEST_SENTINEL_PASSWORD", sentinelPassword)
	kc, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.EnableSASL(),
		kfake.Superuser("SCRAM-SHA-512", "kasync", sentinelPassword), kfake.SeedTopics(2, "orders"))
	require.NoError(t, err)
	defer kc.Close()

	ca := certtest.NewCA(t, "kasync test CA")
	server := ca.Server()
	dir := t.TempDir()
	tokens := filepath.Join(dir, "tokens")
	require.NoError(t, os.WriteFile(tokens, []byte("# identity token\nworker-demo "+sentinelToken+"\n"), 0o600))
	workerToken := filepath.Join(dir, "worker-token")
	require.NoError(t, os.WriteFile(workerToken, []byte(sentinelToken+"\n"), 0o600))
	wrongToken := filepath.Join(dir, "wrong-token")
	require.NoError(t, os.WriteFile(wrongToken, []byte(sentinelWrongToken+"\n"), 0o600))
	grpcAddr := testutil.FreeAddr(t)
	cfg := `
kafka:
  brokers: [` + kc.ListenAddrs()[0] + `]
  sasl: {mechanism: SCRAM-SHA-512, username: kasync, password: "${KASYNC_TEST_SENTINEL_PASSWORD}"}
node:
  data_dir: ` + filepath.Join(dir, "data") + `
  grpc_listen: ` + grpcAddr + `
  http_listen: 127.0.0.1:0
  grpc_tls: {cert_file: ` + server.CertFile + `, key_file: ` + server.KeyFile + `}
  grpc_auth:
    tokens_file: ` + tokens + `
    identities: [{name: worker-demo, functions: [echo]}]
delay: {rungs: [20ms, 50ms], tolerance: 5ms, partitions: 1}
functions: [{name: echo}]
tailers: [{name: orders, topic: orders, function: echo}]
`
	path := writeFile(t, "secure.yaml", cfg)
	var outputs []string

	node := start("run", "--config", path, "--log-level", "debug")
	node.waitFor(t, "node started")
	worker := start("worker", "--scheduler", grpcAddr, "--tls-ca", ca.CertFile, "--token-file", workerToken,
		"--functions", "echo", "--log-level", "debug")
	node.waitFor(t, "worker joined")
	// A worker with a wrong token is refused, and neither side shows the token.
	code, out, errOut := kasync(context.Background(), "", "worker", "--scheduler", grpcAddr, "--tls-ca", ca.CertFile,
		"--token-file", wrongToken, "--functions", "echo", "--log-level", "debug")
	require.Equal(t, ExitFailure, code, errOut)
	require.Contains(t, errOut, "Unauthenticated")
	outputs = append(outputs, out, errOut)
	node.waitFor(t, "grpc call refused: not authenticated")

	code, out, errOut = kasync(context.Background(), "", "config", "check", path)
	require.Equal(t, ExitOK, code, errOut)
	outputs = append(outputs, out, errOut)
	// A config with problems: its error output quotes values near the secret.
	bad := strings.Replace(cfg, "username: kasync,", "username: kasync, mechanizm: x,", 1)
	bad = strings.Replace(bad, "[{name: worker-demo, functions: [echo]}]", "[{name: worker-demo, functions: [ehco]}]", 1)
	code, out, errOut = kasync(context.Background(), "", "config", "check", writeFile(t, "bad.yaml", bad))
	require.Equal(t, ExitUsage, code)
	require.Contains(t, errOut, "mechanizm")
	outputs = append(outputs, out, errOut)
	badTokens := writeFile(t, "bad-tokens", "worker-demo "+sentinelToken+"\nother "+sentinelToken+"\nshort x"+sentinelToken[:4]+"\n")
	code, out, errOut = kasync(context.Background(), "", "config", "check",
		writeFile(t, "bad-tokens.yaml", strings.Replace(cfg, tokens, badTokens, 1)))
	require.Equal(t, ExitUsage, code)
	require.Contains(t, errOut, "is the same as on line 1")
	outputs = append(outputs, out, errOut)

	worker.stop(t)
	node.stop(t)
	require.Equal(t, ExitOK, node.code, node.out.String())
	outputs = append(outputs, worker.out.String(), node.out.String())
	require.Contains(t, node.out.String(), "level=DEBUG", "the node logged at debug level")
	require.Contains(t, node.out.String(), "gRPC API secured")

	for i, o := range outputs {
		for _, secret := range []string{sentinelPassword, sentinelToken, sentinelWrongToken} {
			require.NotContains(t, o, secret, "output %d shows a secret:\n%s", i, o)
		}
	}
}
