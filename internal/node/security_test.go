package node_test

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"

	"github.com/kasync/kasync/internal/certtest"
	"github.com/kasync/kasync/internal/config"
	"github.com/kasync/kasync/internal/kafkatest"
	"github.com/kasync/kasync/internal/node"
	"github.com/kasync/kasync/internal/testutil"
	kruntime "github.com/kasync/kasync/runtime"
)

// TestSecuredGRPCPath: a scheduler node with mutual TLS, tokens and identities; a
// tailer node that reaches it through node.scheduler_tls (its own certificate) and
// node.scheduler_token_file; an SDK worker with its certificate and token. Every event
// runs exactly once.
func TestSecuredGRPCPath(t *testing.T) {
	t.Parallel()
	const n = 500
	brokers := kafkatest.Brokers(t)
	topic := kafkatest.NewTopic(t, brokers, 2)
	end := produce(t, brokers, topic, n)

	ca := certtest.NewCA(t, "kasync test CA")
	server, tailerCert, workerCert := ca.Server(), ca.Client("tailer"), ca.Client("worker")
	dir := t.TempDir()
	write := func(name, content string) string {
		path := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(path, []byte(content), 0o600))
		return path
	}
	const tailerToken, workerToken = "token-of-the-tailer-0123456789", "token-of-the-worker-0123456789"
	tokens := write("tokens", "tailer "+tailerToken+"\nworker "+workerToken+"\n")
	cfg := testConfig(t, brokers, topic, func(c *config.Config) {
		c.Node.GRPCTLS = &config.GRPCTLS{CertFile: server.CertFile, KeyFile: server.KeyFile, ClientCAFile: ca.CertFile}
		c.Node.GRPCAuth = &config.GRPCAuth{TokensFile: tokens, Identities: []config.Identity{
			{Name: "tailer", Push: true}, {Name: "worker", Functions: []string{"fn"}},
		}}
		c.Node.SchedulerTLS = &config.SchedulerTLS{CAFile: ca.CertFile, CertFile: tailerCert.CertFile, KeyFile: tailerCert.KeyFile}
		c.Node.SchedulerTokenFile = write("tailer-token", tailerToken+"\n")
	})

	withTLS, err := kruntime.WithTLS(ca.CertFile, workerCert.CertFile, workerCert.KeyFile)
	require.NoError(t, err)
	runSplit(t, cfg, brokers, topic, end, n, kruntime.WorkerConfig{DialOptions: []grpc.DialOption{withTLS, kruntime.WithToken(workerToken)}})
}

// TestWarnsWhenOpenOnTheNetwork: a scheduler without authentication on a non-loopback
// address warns at startup; on loopback it does not.
func TestWarnsWhenOpenOnTheNetwork(t *testing.T) {
	t.Parallel()
	for _, listen := range []string{"0.0.0.0:0", "127.0.0.1:0"} {
		cfg := testConfig(t, []string{"127.0.0.1:1"}, "unused", func(c *config.Config) { c.Node.GRPCListen = listen })
		logs := &testutil.Buffer{}
		nd := start(t, node.Options{Config: cfg, Roles: node.Roles{Scheduler: true}, Logger: slog.New(slog.NewTextHandler(logs, nil))})
		nd.stop(t)
		warned := strings.Contains(logs.String(), "without authentication")
		require.Equal(t, listen == "0.0.0.0:0", warned, "%s:\n%s", listen, logs)
	}
}

// TestTailerNodeWithoutPushPermissionStops: a tailer node whose certificate names an
// identity without push permission is refused, and stops with the reason.
func TestTailerNodeWithoutPushPermissionStops(t *testing.T) {
	t.Parallel()
	brokers := kafkatest.Brokers(t)
	topic := kafkatest.NewTopic(t, brokers, 1)
	ca := certtest.NewCA(t, "kasync test CA")
	server, workerCert := ca.Server(), ca.Client("worker")
	cfg := testConfig(t, brokers, topic, func(c *config.Config) {
		c.Node.GRPCTLS = &config.GRPCTLS{CertFile: server.CertFile, KeyFile: server.KeyFile, ClientCAFile: ca.CertFile}
		c.Node.GRPCAuth = &config.GRPCAuth{Identities: []config.Identity{{Name: "worker", Functions: []string{"fn"}}}}
		c.Node.SchedulerTLS = &config.SchedulerTLS{CAFile: ca.CertFile, CertFile: workerCert.CertFile, KeyFile: workerCert.KeyFile}
	})
	sched := start(t, node.Options{Config: cfg, Roles: node.Roles{Scheduler: true}})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	tail, err := node.Start(ctx, node.Options{Config: cfg, Roles: node.Roles{Tailer: true}, SchedulerAddr: sched.GRPCAddr(), Logger: quiet()})
	require.NoError(t, err)
	err = tail.Wait()
	require.ErrorContains(t, err, "PermissionDenied")
	require.ErrorContains(t, err, `identity "worker" may not push workloads`)
}
