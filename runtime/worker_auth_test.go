package runtime

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
	"google.golang.org/grpc/credentials"

	"github.com/kasync/kasync/internal/certtest"
	"github.com/kasync/kasync/internal/testutil"
	"github.com/kasync/kasync/scheduler"
	"github.com/kasync/kasync/scheduler/rpc"
)

// secureCluster is a cluster serving functions a and b behind TLS (mutual when auth
// takes client certificates) and auth, where worker-a may serve a and tailer may push.
// The push client connects with pushCreds.
func secureCluster(t *testing.T, ca *certtest.CA, auth rpc.AuthConfig, pushCreds ...grpc.DialOption) *cluster {
	t.Helper()
	auth.Logger = slog.New(slog.NewTextHandler(t.Output(), nil))
	auth.Grants = map[string]rpc.Grant{"worker-a": {Functions: []string{"a"}}, "tailer": {Push: true}}
	a, err := rpc.NewAuth(auth)
	require.NoError(t, err)
	server := ca.Server()
	clientCA := ""
	if auth.ClientCerts {
		clientCA = ca.CertFile
	}
	serverTLS, err := rpc.ServerTLSConfig(server.CertFile, server.KeyFile, clientCA)
	require.NoError(t, err)
	return newClusterWith(t, clusterOptions{
		timeout:    10 * time.Second,
		auth:       a,
		serverOpts: append(a.ServerOptions(), grpc.Creds(credentials.NewTLS(serverTLS))),
		dial:       pushCreds,
	}, "a", "b")
}

func okRegistry(t *testing.T, functions ...string) *Registry {
	t.Helper()
	reg := NewRegistry()
	for _, f := range functions {
		require.NoError(t, reg.Register(f, func(context.Context, *Task) error { return nil }))
	}
	return reg
}

func mustOption(t *testing.T) func(grpc.DialOption, error) grpc.DialOption {
	return func(o grpc.DialOption, err error) grpc.DialOption {
		t.Helper()
		require.NoError(t, err)
		return o
	}
}

// requireRejected waits for Run to end with ErrWorkerRejected containing want.
func requireRejected(t *testing.T, done <-chan struct{}, result func() error, want ...string) {
	t.Helper()
	select {
	case <-done:
	case <-time.After(waitTimeout):
		t.Fatal("Run kept retrying a refused worker")
	}
	err := result()
	require.ErrorIs(t, err, ErrWorkerRejected)
	for _, w := range want {
		require.ErrorContains(t, err, w)
	}
}

func TestWorkerMutualTLS(t *testing.T) {
	t.Parallel()
	must := mustOption(t)
	ca := certtest.NewCA(t, "kasync test CA")
	tailer, workerA := ca.Client("tailer"), ca.Client("worker-a")
	c := secureCluster(t, ca, rpc.AuthConfig{ClientCerts: true},
		must(WithTLS(ca.CertFile, tailer.CertFile, tailer.KeyFile)))

	w := newTestWorker(t, c.addr, okRegistry(t, "a"), func(cfg *WorkerConfig) {
		cfg.DialOptions = []grpc.DialOption{must(WithTLS(ca.CertFile, workerA.CertFile, workerA.KeyFile))}
	})
	stop, _, _ := runWorker(t, w)
	c.push(t, 1, "a", "x")
	require.Equal(t, scheduler.Success(), c.outcome(t, 1), "a worker with a good certificate serves")
	require.NoError(t, stop())

	greedy := newTestWorker(t, c.addr, okRegistry(t, "a", "b"), func(cfg *WorkerConfig) {
		cfg.DialOptions = []grpc.DialOption{must(WithTLS(ca.CertFile, workerA.CertFile, workerA.KeyFile))}
	})
	_, done, result := runWorker(t, greedy)
	requireRejected(t, done, result, "PermissionDenied", `identity "worker-a" may not serve function "b"`)

	// A certificate from another CA fails the handshake: no identity, nothing served,
	// and the worker keeps trying (a handshake failure may be a passing one).
	stranger := certtest.NewCA(t, "another CA").Client("worker-a")
	logs := &testutil.Buffer{}
	strange := newTestWorker(t, c.addr, okRegistry(t, "a"), func(cfg *WorkerConfig) {
		cfg.DialOptions = []grpc.DialOption{must(WithTLS(ca.CertFile, stranger.CertFile, stranger.KeyFile))}
		cfg.Logger = slog.New(slog.NewTextHandler(logs, nil))
	})
	stop, done, _ = runWorker(t, strange)
	require.Eventually(t, func() bool { return strings.Count(logs.String(), "scheduler stream ended; reconnecting") >= 2 },
		waitTimeout, 5*time.Millisecond, "the worker retries a failed handshake")
	select {
	case <-done:
		t.Fatal("a handshake failure is not a refusal")
	default:
	}
	// With TLS 1.3 the server checks the client's certificate after the client thinks
	// the handshake is done: the client sees the server's alert ("tls: ...") or, when
	// it writes first, only the closed connection. Either way it is Unavailable.
	require.Contains(t, logs.String(), "code = Unavailable")
	require.NoError(t, stop())
}

const (
	tokenWorkerA = "token-of-worker-a-0123456789abcdef"
	tokenTailer  = "token-of-the-tailer-0123456789abcdef"
)

func TestWorkerTokens(t *testing.T) {
	t.Parallel()
	must := mustOption(t)
	ca := certtest.NewCA(t, "kasync test CA")
	c := secureCluster(t, ca, rpc.AuthConfig{Tokens: []rpc.Token{{Identity: "worker-a", Secret: tokenWorkerA}, {Identity: "tailer", Secret: tokenTailer}}},
		must(WithTLS(ca.CertFile, "", "")), WithToken(tokenTailer))

	tokenFile := filepath.Join(t.TempDir(), "token")
	require.NoError(t, os.WriteFile(tokenFile, []byte("# the worker's token\n"+tokenWorkerA+"\n"), 0o600))
	w := newTestWorker(t, c.addr, okRegistry(t, "a"), func(cfg *WorkerConfig) {
		cfg.DialOptions = []grpc.DialOption{must(WithTLS(ca.CertFile, "", "")), must(WithTokenFile(tokenFile))}
	})
	stop, _, _ := runWorker(t, w)
	c.push(t, 1, "a", "x")
	require.Equal(t, scheduler.Success(), c.outcome(t, 1), "the right token serves")
	require.NoError(t, stop())

	for name, tc := range map[string]struct {
		functions []string
		opts      []grpc.DialOption
		want      string
	}{
		"wrong token": {[]string{"a"}, []grpc.DialOption{WithToken(tokenWorkerA + "x")}, "Unauthenticated"},
		"no token":    {[]string{"a"}, nil, "Unauthenticated"},
		"not allowed": {[]string{"a", "b"}, []grpc.DialOption{WithToken(tokenWorkerA)}, `identity "worker-a" may not serve function "b"`},
	} {
		t.Run(name, func(t *testing.T) {
			w := newTestWorker(t, c.addr, okRegistry(t, tc.functions...), func(cfg *WorkerConfig) {
				cfg.DialOptions = append([]grpc.DialOption{must(WithTLS(ca.CertFile, "", ""))}, tc.opts...)
			})
			_, done, result := runWorker(t, w)
			requireRejected(t, done, result, tc.want)
			require.NotContains(t, result().Error(), tokenWorkerA)
		})
	}

	_, err := NewWorker(WorkerConfig{Addrs: []string{c.addr}, Registry: okRegistry(t, "a"), DialOptions: []grpc.DialOption{WithToken(tokenWorkerA)}})
	require.ErrorContains(t, err, "transport level security", "a token without TLS is refused before anything is sent")
	_, err = WithTokenFile(filepath.Join(t.TempDir(), "missing"))
	require.ErrorContains(t, err, "read token file")
}

// TestWorkerReconnectsWithRotatedCredentials: the scheduler swaps the worker's token
// and the worker's files are rewritten with a new token and certificate; when the
// connection breaks, the worker reconnects with the new ones (with the old token it
// would be refused for good).
func TestWorkerReconnectsWithRotatedCredentials(t *testing.T) {
	t.Parallel()
	must := mustOption(t)
	ca := certtest.NewCA(t, "kasync test CA")
	auth, err := rpc.NewAuth(rpc.AuthConfig{ClientCerts: true, Logger: slog.New(slog.NewTextHandler(t.Output(), nil)),
		Tokens: []rpc.Token{{Identity: "worker-a", Secret: tokenWorkerA}, {Identity: "tailer", Secret: tokenTailer}}})
	require.NoError(t, err)
	server, tailer := ca.Server(), ca.Client("tailer")
	serverTLS, err := rpc.ServerTLSConfig(server.CertFile, server.KeyFile, ca.CertFile)
	require.NoError(t, err)
	c := newClusterWith(t, clusterOptions{timeout: 10 * time.Second, auth: auth,
		serverOpts: append(auth.ServerOptions(), grpc.Creds(credentials.NewTLS(serverTLS))),
		dial:       []grpc.DialOption{must(WithTLS(ca.CertFile, tailer.CertFile, tailer.KeyFile)), WithToken(tokenTailer)},
	}, "a")

	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "token")
	require.NoError(t, os.WriteFile(tokenFile, []byte(tokenWorkerA+"\n"), 0o600))
	first := ca.Client("worker-a")
	dialer := &killableDialer{}
	w := newTestWorker(t, c.addr, okRegistry(t, "a"), func(cfg *WorkerConfig) {
		cfg.DialOptions = []grpc.DialOption{must(WithTLS(ca.CertFile, first.CertFile, first.KeyFile)), must(WithTokenFile(tokenFile)), dialer.option()}
	})
	stop, done, result := runWorker(t, w)
	c.push(t, 1, "a", "x")
	require.Equal(t, scheduler.Success(), c.outcome(t, 1))

	// Rotate: a new certificate in the same files, a new token in the file and at the
	// scheduler, where the old one is revoked.
	const rotated = "the-rotated-token-of-worker-a-0123456789"
	next := ca.Client("worker-a")
	for src, dst := range map[string]string{next.CertFile: first.CertFile, next.KeyFile: first.KeyFile} {
		data, err := os.ReadFile(src)
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(dst, data, 0o600))
	}
	require.NoError(t, os.WriteFile(tokenFile, []byte(rotated+"\n"), 0o600))
	require.NoError(t, auth.SetTokens([]rpc.Token{{Identity: "worker-a", Secret: rotated}, {Identity: "tailer", Secret: tokenTailer}}))
	dialer.kill()
	c.push(t, 2, "a", "x")
	select {
	case <-done:
		t.Fatalf("the worker stopped: %v", result())
	default:
	}
	require.Equal(t, scheduler.Success(), c.outcome(t, 2), "served after reconnecting with the rotated token")
	require.NoError(t, stop())
}
