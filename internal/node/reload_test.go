package node_test

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	"github.com/kasync/kasync/internal/certtest"
	"github.com/kasync/kasync/internal/config"
	"github.com/kasync/kasync/internal/node"
	"github.com/kasync/kasync/internal/testutil"
	kasyncv1 "github.com/kasync/kasync/proto/kasync/v1"
	"github.com/kasync/kasync/scheduler/rpc"
)

// workHello opens a Work stream to addr over TLS verified against caFile, with token,
// and says hello for fn: nil when welcomed, else the stream's error.
func workHello(t *testing.T, addr, caFile, token string) error {
	t.Helper()
	tlsCfg, err := rpc.ClientTLSConfig(caFile, "", "", "")
	require.NoError(t, err)
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(tlsCfg)),
		grpc.WithPerRPCCredentials(rpc.BearerToken(token)))
	require.NoError(t, err)
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	stream, err := kasyncv1.NewSchedulerClient(conn).Work(ctx)
	if err != nil {
		return err
	}
	_ = stream.Send(&kasyncv1.WorkRequest{Msg: &kasyncv1.WorkRequest_Hello{Hello: &kasyncv1.WorkerHello{
		WorkerId: t.Name(), Functions: []string{"fn"}, Capacity: 1}}})
	msg, err := stream.Recv()
	if err != nil {
		return err
	}
	require.NotNil(t, msg.GetWelcome())
	return nil
}

// writeByRename replaces path with data as an operator should, so that the node's
// polling never sees half a file (it would log that content's failure once more).
func writeByRename(t *testing.T, path string, data []byte) {
	t.Helper()
	tmp := path + ".new"
	require.NoError(t, os.WriteFile(tmp, data, 0o600))
	require.NoError(t, os.Rename(tmp, path))
}

// TestRotatesGRPCSecurityWithoutRestart: a scheduler node picks up a rotated tokens
// file by itself (polling) and a rotated certificate on ReloadSecurity (SIGHUP); a
// corrupt file keeps what was loaded; no token reaches the logs.
func TestRotatesGRPCSecurityWithoutRestart(t *testing.T) {
	t.Parallel()
	ca := certtest.NewCA(t, "first CA")
	server := ca.Server()
	dir := t.TempDir()
	tokens := filepath.Join(dir, "tokens")
	const oldToken, newToken = "the-old-token-of-the-worker-0123456789", "the-new-token-of-the-worker-0123456789"
	writeTokens := func(content string) { writeByRename(t, tokens, []byte(content)) }
	writeTokens("worker " + oldToken + "\n")
	cfg := testConfig(t, []string{"127.0.0.1:1"}, "unused", func(c *config.Config) {
		c.Node.GRPCTLS = &config.GRPCTLS{CertFile: server.CertFile, KeyFile: server.KeyFile}
		c.Node.GRPCAuth = &config.GRPCAuth{TokensFile: tokens}
	})
	logs := &testutil.Buffer{}
	nd := start(t, node.Options{Config: cfg, Roles: node.Roles{Scheduler: true}, SecurityReloadInterval: 10 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	addr := nd.GRPCAddr()
	require.NoError(t, workHello(t, addr, ca.CertFile, oldToken))

	// Rotate the worker's token: the node sees the file change by itself.
	writeTokens("# rotated\nworker " + newToken + "\n")
	deadline := time.Now().Add(20 * time.Second)
	for {
		err := workHello(t, addr, ca.CertFile, oldToken)
		if status.Code(err) == codes.Unauthenticated {
			break
		}
		require.NoError(t, err)
		require.True(t, time.Now().Before(deadline), "the removed token is still accepted")
		time.Sleep(10 * time.Millisecond)
	}
	require.NoError(t, workHello(t, addr, ca.CertFile, newToken), "the added token is accepted")

	// A corrupt tokens file (a short token) is refused; the tokens before it stay.
	writeTokens("worker short\n")
	require.ErrorContains(t, nd.ReloadSecurity(), "shorter than")
	require.NoError(t, workHello(t, addr, ca.CertFile, newToken))

	// Rotate the certificate to another CA's and reload at once, as SIGHUP does.
	next := certtest.NewCA(t, "next CA")
	pair := next.Server()
	for src, dst := range map[string]string{pair.CertFile: server.CertFile, pair.KeyFile: server.KeyFile} {
		data, err := os.ReadFile(src)
		require.NoError(t, err)
		writeByRename(t, dst, data)
	}
	writeTokens("worker " + newToken + "\n")
	require.NoError(t, nd.ReloadSecurity())
	require.NoError(t, workHello(t, addr, next.CertFile, newToken), "a new connection is served the new certificate")
	require.Equal(t, codes.Unavailable, status.Code(workHello(t, addr, ca.CertFile, newToken)),
		"a client trusting only the old CA fails its handshake")

	// A corrupt certificate keeps the one before.
	writeByRename(t, server.CertFile, []byte("not a certificate"))
	require.Error(t, nd.ReloadSecurity())
	require.NoError(t, workHello(t, addr, next.CertFile, newToken))

	nd.stop(t)
	out := logs.String()
	require.Equal(t, 1, strings.Count(out, `msg="reload failed; keeping the configuration loaded before" what=node.grpc_auth.tokens_file`),
		"the bad tokens file is logged once although polled many times:\n%s", out)
	for _, secret := range []string{oldToken, newToken} {
		require.NotContains(t, out, secret, "a token reached the logs")
	}
}
