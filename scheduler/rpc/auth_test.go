package rpc

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/kasync/kasync/internal/certtest"
	"github.com/kasync/kasync/internal/testutil"
	kasyncv1 "github.com/kasync/kasync/proto/kasync/v1"
	"github.com/kasync/kasync/scheduler"
)

// secureEnv is a scheduler serving functions a and b through a pool, behind a gRPC
// server with TLS (mutual when clientCA) and auth, whose logs are kept in logs.
type secureEnv struct {
	addr string
	ca   *certtest.CA
	pool *WorkerPool
	logs *testutil.Buffer
	// tls and auth are the server's, reloadable (reload_test.go); server is its
	// certificate's files.
	tls    *ServerTLS
	auth   *Auth
	server certtest.Pair
}

var testGrants = map[string]Grant{
	"worker-a": {Functions: []string{"a"}},
	"tailer":   {Push: true},
}

func newSecureEnv(t *testing.T, clientCA bool, auth AuthConfig) *secureEnv {
	t.Helper()
	e := &secureEnv{ca: certtest.NewCA(t, "kasync test CA"), logs: &testutil.Buffer{}}
	logger := slog.New(slog.NewTextHandler(io.MultiWriter(t.Output(), e.logs), nil))
	var err error
	e.pool, err = NewPool(PoolOptions{Logger: logger})
	require.NoError(t, err)
	sched, err := scheduler.New(scheduler.Config{Logger: logger, Functions: []scheduler.Function{
		{Name: "a", Concurrency: 1, Timeout: time.Second, Executor: e.pool},
		{Name: "b", Concurrency: 1, Timeout: time.Second, Executor: e.pool},
	}})
	require.NoError(t, err)
	auth.Logger = logger
	a, err := NewAuth(auth)
	require.NoError(t, err)
	srv, err := NewServer(sched, e.pool, ServerOptions{Logger: logger, Auth: a})
	require.NoError(t, err)
	e.auth, e.server = a, e.ca.Server()
	caFile := ""
	if clientCA {
		caFile = e.ca.CertFile
	}
	// Reloadable, as a node serves it: every test here also proves that a handshake
	// through GetConfigForClient works for gRPC (ALPN).
	e.tls, err = NewServerTLS(e.server.CertFile, e.server.KeyFile, caFile)
	require.NoError(t, err)
	g := grpc.NewServer(append(a.ServerOptions(), grpc.Creds(credentials.NewTLS(e.tls.Config())), grpc.WaitForHandlers(true))...)
	srv.Register(g)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	e.addr = lis.Addr().String()
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = g.Serve(lis)
	}()
	t.Cleanup(func() {
		g.Stop()
		<-served
		require.NoError(t, e.pool.Close())
		require.NoError(t, sched.Close())
	})
	return e
}

// dial connects to e with TLS verified against ca (e's own when nil), the client
// certificate pair when set, and more options.
func (e *secureEnv) dial(t *testing.T, client *certtest.Pair, opts ...grpc.DialOption) kasyncv1.SchedulerClient {
	t.Helper()
	var certFile, keyFile string
	if client != nil {
		certFile, keyFile = client.CertFile, client.KeyFile
	}
	tlsCfg, err := ClientTLSConfig(e.ca.CertFile, certFile, keyFile, "")
	require.NoError(t, err)
	conn, err := grpc.NewClient(e.addr, append([]grpc.DialOption{grpc.WithTransportCredentials(credentials.NewTLS(tlsCfg))}, opts...)...)
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	return kasyncv1.NewSchedulerClient(conn)
}

// work says hello for functions and returns the error of the stream, nil when welcomed.
func work(t *testing.T, api kasyncv1.SchedulerClient, functions ...string) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	stream, err := api.Work(ctx)
	if err != nil {
		return err
	}
	// A refused stream may fail the send with io.EOF; its status comes from Recv.
	_ = stream.Send(&kasyncv1.WorkRequest{Msg: &kasyncv1.WorkRequest_Hello{Hello: &kasyncv1.WorkerHello{
		WorkerId: t.Name(), Functions: functions, Capacity: 1}}})
	msg, err := stream.Recv()
	if err != nil {
		return err
	}
	require.NotNil(t, msg.GetWelcome(), "first message %v", msg)
	return nil
}

// push opens a Push stream and returns its error, nil when granted credit.
func push(t *testing.T, api kasyncv1.SchedulerClient) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	stream, err := api.Push(ctx)
	if err != nil {
		return err
	}
	_ = stream.Send(&kasyncv1.PushRequest{Msg: &kasyncv1.PushRequest_Hello{Hello: &kasyncv1.PushHello{Tailer: "t"}}})
	msg, err := stream.Recv()
	if err != nil {
		return err
	}
	require.NotNil(t, msg.GetCredit(), "first message %v", msg)
	return nil
}

func TestMutualTLS(t *testing.T) {
	t.Parallel()
	e := newSecureEnv(t, true, AuthConfig{ClientCerts: true, Grants: testGrants})
	workerA := e.ca.Client("worker-a")
	tailer := e.ca.Client("", "spiffe://kasync.test/tailer", "ignored.example")
	stranger := certtest.NewCA(t, "another CA").Client("worker-a")

	t.Run("good certificate serves its functions", func(t *testing.T) {
		require.NoError(t, work(t, e.dial(t, &workerA), "a"))
	})
	t.Run("the certificate's identity governs the functions", func(t *testing.T) {
		err := work(t, e.dial(t, &workerA), "a", "b")
		requireCode(t, err, codes.PermissionDenied, `identity "worker-a" may not serve function "b"`)
	})
	t.Run("certificate from another CA is refused at the handshake", func(t *testing.T) {
		err := work(t, e.dial(t, &stranger), "a")
		requireCode(t, err, codes.Unavailable)
	})
	t.Run("no certificate is refused at the handshake", func(t *testing.T) {
		err := work(t, e.dial(t, nil), "a")
		requireCode(t, err, codes.Unavailable)
	})
	t.Run("push needs push permission", func(t *testing.T) {
		requireCode(t, push(t, e.dial(t, &workerA)), codes.PermissionDenied, `identity "worker-a" may not push workloads`)
	})
	t.Run("identity from the first URI SAN without a common name", func(t *testing.T) {
		// Not in the grants under that name: the URI, not the DNS SAN, is the identity.
		requireCode(t, push(t, e.dial(t, &tailer)), codes.PermissionDenied, `identity "spiffe://kasync.test/tailer"`)
	})
	require.Equal(t, 1, strings.Count(e.logs.String(), `msg="worker joined"`), "only the welcomed worker joined")
}

func TestMutualTLSPushAllowed(t *testing.T) {
	t.Parallel()
	e := newSecureEnv(t, true, AuthConfig{ClientCerts: true, Grants: testGrants})
	tailer := e.ca.Client("tailer")
	require.NoError(t, push(t, e.dial(t, &tailer)))
}

const (
	tokenA      = "token-of-worker-a-0123456789abcdef"
	tokenTailer = "token-of-the-tailer-0123456789abcdef"
	wrongToken  = "not-a-token-anyone-has-0123456789"
)

func TestTokens(t *testing.T) {
	t.Parallel()
	e := newSecureEnv(t, false, AuthConfig{Grants: testGrants,
		Tokens: []Token{{Identity: "worker-a", Secret: tokenA}, {Identity: "tailer", Secret: tokenTailer}}})
	withToken := func(tok string) grpc.DialOption { return grpc.WithPerRPCCredentials(BearerToken(tok)) }

	require.NoError(t, work(t, e.dial(t, nil, withToken(tokenA)), "a"), "the right token serves")
	requireCode(t, work(t, e.dial(t, nil, withToken(tokenA)), "b"), codes.PermissionDenied,
		`identity "worker-a" may not serve function "b" (it may serve: a)`)
	requireCode(t, work(t, e.dial(t, nil, withToken(wrongToken)), "a"), codes.Unauthenticated, "bearer token is not one this scheduler knows")
	requireCode(t, work(t, e.dial(t, nil), "a"), codes.Unauthenticated, "missing")
	requireCode(t, push(t, e.dial(t, nil, withToken(tokenA))), codes.PermissionDenied, "may not push")
	requireCode(t, push(t, e.dial(t, nil)), codes.Unauthenticated)
	require.NoError(t, push(t, e.dial(t, nil, withToken(tokenTailer))))
	require.Equal(t, 1, strings.Count(e.logs.String(), `msg="worker joined"`), "only the welcomed worker joined")

	logs := e.logs.String()
	require.Contains(t, logs, "not authenticated", "refusals are logged")
	for _, tok := range []string{tokenA, tokenTailer, wrongToken} {
		require.NotContains(t, logs, tok, "no token is ever logged")
	}
}

func TestTokensAndCertificatesMustAgree(t *testing.T) {
	t.Parallel()
	e := newSecureEnv(t, true, AuthConfig{ClientCerts: true, Grants: testGrants,
		Tokens: []Token{{Identity: "worker-a", Secret: tokenA}, {Identity: "tailer", Secret: tokenTailer}}})
	workerA := e.ca.Client("worker-a")
	require.NoError(t, work(t, e.dial(t, &workerA, grpc.WithPerRPCCredentials(BearerToken(tokenA))), "a"))
	requireCode(t, work(t, e.dial(t, &workerA, grpc.WithPerRPCCredentials(BearerToken(tokenTailer))), "a"),
		codes.Unauthenticated, `the client certificate names "worker-a" but the token belongs to "tailer"`)
	requireCode(t, work(t, e.dial(t, &workerA), "a"), codes.Unauthenticated, "missing")
}

func TestBearerTokenNeedsTLS(t *testing.T) {
	t.Parallel()
	_, err := grpc.NewClient("127.0.0.1:1", grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithPerRPCCredentials(BearerToken(tokenA)))
	require.ErrorContains(t, err, "transport level security", "gRPC refuses to send a token in clear text")
	require.NotContains(t, BearerToken(tokenA).(fmt.Stringer).String(), tokenA)
}

func TestAuthWithoutInterceptorsFailsClosed(t *testing.T) {
	t.Parallel()
	a, err := NewAuth(AuthConfig{ClientCerts: true})
	require.NoError(t, err)
	e := newEnv(t, []scheduler.Function{{Name: "a", Concurrency: 1, Timeout: time.Second}},
		envOptions{server: ServerOptions{Auth: a}})
	_, err = dialWorker(t, e, &kasyncv1.WorkerHello{WorkerId: "w", Functions: []string{"a"}, Capacity: 1})
	requireCode(t, err, codes.Unauthenticated, "interceptors are not installed")
}
