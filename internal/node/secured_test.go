package node_test

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	"github.com/kasync/kasync/delaystreams"
	"github.com/kasync/kasync/internal/certtest"
	"github.com/kasync/kasync/internal/config"
	"github.com/kasync/kasync/internal/kafkatest"
	"github.com/kasync/kasync/internal/node"
	kasyncv1 "github.com/kasync/kasync/proto/kasync/v1"
	kruntime "github.com/kasync/kasync/runtime"
	"github.com/kasync/kasync/scheduler/rpc"
)

// TestSecuredNodeStatusAndSubmit: a node with mutual TLS, tokens and identities —
// "submitter" may serve (so submit to) function guarded, "tailer" may only push,
// "stranger" has a certificate and a token but is not listed. Through the node:
//
//   - GetStatus answers any listed identity, whatever its grant; PERMISSION_DENIED for
//     the stranger; UNAUTHENTICATED without the token that goes with the certificate.
//   - Submit from the submitter is accepted and runs; from the tailer and the stranger,
//     now or for later, it is PERMISSION_DENIED and nothing is produced: the ingest
//     topic holds the one accepted task and the delay rungs nothing.
func TestSecuredNodeStatusAndSubmit(t *testing.T) {
	t.Parallel()
	brokers := kafkatest.Brokers(t)
	topic := kafkatest.NewTopic(t, brokers, 1)
	ca := certtest.NewCA(t, "kasync test CA")
	server := ca.Server()
	dir := t.TempDir()
	tokens := map[string]string{
		"submitter": "token-of-the-submitter-0123456789",
		"tailer":    "token-of-the-tailer-0123456789",
		"stranger":  "token-of-the-stranger-0123456789",
	}
	var lines string
	for id, tok := range tokens {
		lines += id + " " + tok + "\n"
	}
	tokensFile := filepath.Join(dir, "tokens")
	require.NoError(t, os.WriteFile(tokensFile, []byte(lines), 0o600))
	cfg := testConfig(t, brokers, topic, func(c *config.Config) {
		c.Functions[0].Name, c.Functions[0].Submit = "guarded", true
		c.Tailers[0].Function = "guarded"
		c.Node.GRPCTLS = &config.GRPCTLS{CertFile: server.CertFile, KeyFile: server.KeyFile, ClientCAFile: ca.CertFile}
		c.Node.GRPCAuth = &config.GRPCAuth{TokensFile: tokensFile, Identities: []config.Identity{
			{Name: "submitter", Functions: []string{"guarded"}}, {Name: "tailer", Push: true},
		}}
	})
	var (
		mu  sync.Mutex
		ran []string
	)
	reg := kruntime.NewRegistry()
	reg.MustRegister("guarded", func(_ context.Context, task *kruntime.Task) error {
		mu.Lock()
		defer mu.Unlock()
		ran = append(ran, string(task.Payload))
		return nil
	})
	nd := start(t, node.Options{Config: cfg, Registry: reg})

	// dial connects as identity: its certificate, and its token unless withToken is false.
	dial := func(identity string, withToken bool) *grpc.ClientConn {
		pair := ca.Client(identity)
		tlsCfg, err := rpc.ClientTLSConfig(ca.CertFile, pair.CertFile, pair.KeyFile, "")
		require.NoError(t, err)
		opts := []grpc.DialOption{grpc.WithTransportCredentials(credentials.NewTLS(tlsCfg))}
		if withToken {
			opts = append(opts, grpc.WithPerRPCCredentials(rpc.BearerToken(tokens[identity])))
		}
		conn, err := grpc.NewClient(nd.GRPCAddr(), opts...)
		require.NoError(t, err)
		t.Cleanup(func() { _ = conn.Close() })
		return conn
	}
	code := func(err error) codes.Code { return status.Code(err) }

	for _, id := range []string{"submitter", "tailer"} {
		st, err := getStatus(t, kasyncv1.NewNodeClient(dial(id, true)), 10*time.Second)
		require.NoError(t, err, "%s is listed: it may read the status", id)
		require.Equal(t, "guarded", st.Functions[0].Name)
	}
	_, err := getStatus(t, kasyncv1.NewNodeClient(dial("stranger", true)), 10*time.Second)
	require.Equal(t, codes.PermissionDenied, code(err), "%v", err)
	require.ErrorContains(t, err, `identity "stranger" is not in node.grpc_auth.identities`)
	_, err = getStatus(t, kasyncv1.NewNodeClient(dial("tailer", false)), 10*time.Second)
	require.Equal(t, codes.Unauthenticated, code(err), "%v", err)

	for _, id := range []string{"tailer", "stranger"} {
		tc := kasyncv1.NewTasksClient(dial(id, true))
		_, err := tc.Submit(ctxT(t), &kasyncv1.SubmitRequest{Function: "guarded", Payload: []byte("from " + id)})
		require.Equal(t, codes.PermissionDenied, code(err), "%s: %v", id, err)
		require.ErrorContains(t, err, `may not submit to function "guarded"`)
		_, err = tc.Submit(ctxT(t), &kasyncv1.SubmitRequest{Function: "guarded", Payload: []byte("later from " + id),
			When: &kasyncv1.SubmitRequest_DelayMs{DelayMs: 100}})
		require.Equal(t, codes.PermissionDenied, code(err), "%s, for later: %v", id, err)
	}
	resp, err := kasyncv1.NewTasksClient(dial("submitter", true)).Submit(ctxT(t),
		&kasyncv1.SubmitRequest{Function: "guarded", Payload: []byte("from submitter")})
	require.NoError(t, err)
	require.False(t, resp.GetScheduled())

	require.Eventually(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(ran) > 0
	}, time.Minute, 10*time.Millisecond, "the accepted task runs")
	var written int64
	for _, end := range kafkatest.EndOffsets(t, brokers, config.IngestTopic("guarded")) {
		written += end
	}
	require.Equal(t, int64(1), written, "the ingest topic holds the accepted task only")
	for _, r := range cfg.Delay.Rungs {
		for p, end := range kafkatest.EndOffsets(t, brokers, delaystreams.RungTopic(cfg.Delay.TopicPrefix, r.Std())) {
			require.Zero(t, end, "rung %s partition %d: no refused task for later was written", r, p)
		}
	}
	nd.stop(t)
	mu.Lock()
	defer mu.Unlock()
	require.Equal(t, []string{"from submitter"}, ran, "only the accepted task ran")
}
