package rpc

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"

	"github.com/kasync/kasync/internal/certtest"
	"github.com/kasync/kasync/internal/testutil"
	kasyncv1 "github.com/kasync/kasync/proto/kasync/v1"
)

// copyFile overwrites dst with src's content, as an operator rotating a file does.
func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	data, err := os.ReadFile(src)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(dst, data, 0o600))
}

// certOf is the certificate in a PEM file.
func certOf(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	block, _ := pem.Decode(data)
	require.NotNil(t, block)
	c, err := x509.ParseCertificate(block.Bytes)
	require.NoError(t, err)
	return c
}

// servedCert is the certificate a new TLS connection to addr is shown, verified
// against the CA in caFile.
func servedCert(t *testing.T, addr, caFile string) (*x509.Certificate, error) {
	t.Helper()
	cfg, err := ClientTLSConfig(caFile, "", "", "")
	require.NoError(t, err)
	cfg.NextProtos = []string{"h2"}
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: waitTimeout}, "tcp", addr, cfg)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	st := conn.ConnectionState()
	require.Equal(t, "h2", st.NegotiatedProtocol, "a reloaded config still offers HTTP/2, which gRPC needs")
	return st.PeerCertificates[0], nil
}

func TestServerTLSReloadRotatesTheCertificate(t *testing.T) {
	t.Parallel()
	e := newSecureEnv(t, false, AuthConfig{Tokens: []Token{{Identity: "worker-a", Secret: tokenA}}})
	logs := &testutil.Buffer{}
	r := NewReloader("node.grpc_tls", e.tls.Files(), e.tls.Reload, slog.New(slog.NewTextHandler(logs, nil)))

	first, err := servedCert(t, e.addr, e.ca.CertFile)
	require.NoError(t, err)
	require.Equal(t, certOf(t, e.server.CertFile).SerialNumber, first.SerialNumber)
	reloaded, err := r.Check()
	require.NoError(t, err)
	require.False(t, reloaded, "nothing changed")

	// Rotate to a certificate of another CA, in the same files.
	next := certtest.NewCA(t, "next CA")
	pair := next.Server()
	copyFile(t, pair.CertFile, e.server.CertFile)
	copyFile(t, pair.KeyFile, e.server.KeyFile)
	reloaded, err = r.Check()
	require.NoError(t, err)
	require.True(t, reloaded)
	got, err := servedCert(t, e.addr, next.CertFile)
	require.NoError(t, err)
	require.Equal(t, certOf(t, pair.CertFile).SerialNumber, got.SerialNumber, "a new connection sees the new certificate")
	_, err = servedCert(t, e.addr, e.ca.CertFile)
	require.Error(t, err, "a client that trusts only the old CA no longer verifies it")
	require.NoError(t, work(t, e.dialCA(t, next.CertFile, grpc.WithPerRPCCredentials(BearerToken(tokenA))), "a"), "gRPC over the new certificate")

	// A corrupt certificate is refused, logged once, and the one before stays.
	require.NoError(t, os.WriteFile(e.server.CertFile, []byte("-----BEGIN CERTIFICATE-----\ngarbage\n"), 0o600))
	for range 2 {
		reloaded, err = r.Check()
		require.Error(t, err)
		require.False(t, reloaded)
	}
	require.Equal(t, 1, strings.Count(logs.String(), "reload failed"), "a bad file is logged once, not at every look:\n%s", logs)
	got, err = servedCert(t, e.addr, next.CertFile)
	require.NoError(t, err, "TLS goes on with the last certificate that loaded")
	require.Equal(t, certOf(t, pair.CertFile).SerialNumber, got.SerialNumber)
	require.NoError(t, os.Remove(e.server.KeyFile))
	_, err = r.Check()
	require.ErrorContains(t, err, e.server.KeyFile, "the error names the file")
	_, err = servedCert(t, e.addr, next.CertFile)
	require.NoError(t, err, "a removed key does not end TLS either")
}

func TestAuthSetTokens(t *testing.T) {
	t.Parallel()
	e := newSecureEnv(t, false, AuthConfig{Grants: testGrants,
		Tokens: []Token{{Identity: "worker-a", Secret: tokenA}, {Identity: "tailer", Secret: tokenTailer}}})
	withToken := func(tok string) grpc.DialOption { return grpc.WithPerRPCCredentials(BearerToken(tok)) }
	const newToken = "the-new-token-of-worker-a-0123456789"
	require.NoError(t, work(t, e.dial(t, nil, withToken(tokenA)), "a"))
	requireCode(t, work(t, e.dial(t, nil, withToken(newToken)), "a"), codes.Unauthenticated)

	// worker-a's token is rotated: the old one is refused, the new one accepted.
	require.NoError(t, e.auth.SetTokens([]Token{{Identity: "worker-a", Secret: newToken}, {Identity: "tailer", Secret: tokenTailer}}))
	requireCode(t, work(t, e.dial(t, nil, withToken(tokenA)), "a"), codes.Unauthenticated, "not one this scheduler knows")
	require.NoError(t, work(t, e.dial(t, nil, withToken(newToken)), "a"))

	// Lists that would lock everyone out or are invalid change nothing.
	require.ErrorContains(t, e.auth.SetTokens(nil), "keeping the previous ones")
	require.ErrorContains(t, e.auth.SetTokens([]Token{{Identity: "x", Secret: newToken}, {Identity: "y", Secret: newToken}}), "same token")
	require.NoError(t, work(t, e.dial(t, nil, withToken(newToken)), "a"))

	certsOnly, err := NewAuth(AuthConfig{ClientCerts: true})
	require.NoError(t, err)
	require.ErrorContains(t, certsOnly.SetTokens([]Token{{Identity: "x", Secret: newToken}}), "started without tokens")
	require.NotContains(t, e.logs.String(), newToken, "no token is ever logged")
}

func TestClientCredentialsAreReadAgainForEachConnection(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "token")
	require.NoError(t, os.WriteFile(tokenFile, []byte(tokenA+"\n"), 0o600))
	creds, err := BearerTokenFile(tokenFile)
	require.NoError(t, err)
	md, err := creds.GetRequestMetadata(t.Context())
	require.NoError(t, err)
	require.Equal(t, "Bearer "+tokenA, md[AuthorizationHeader])
	require.NoError(t, os.WriteFile(tokenFile, []byte("# rotated\n"+tokenTailer+"\n"), 0o600))
	md, err = creds.GetRequestMetadata(t.Context())
	require.NoError(t, err)
	require.Equal(t, "Bearer "+tokenTailer, md[AuthorizationHeader], "the rotated token is sent")
	require.NoError(t, os.WriteFile(tokenFile, nil, 0o600))
	md, err = creds.GetRequestMetadata(t.Context())
	require.NoError(t, err)
	require.Equal(t, "Bearer "+tokenTailer, md[AuthorizationHeader], "an empty file keeps the last token")
	require.NotContains(t, creds.(interface{ String() string }).String(), tokenTailer)

	ca := certtest.NewCA(t, "ca")
	first, second := ca.Client("worker-a"), ca.Client("worker-b")
	cfg, err := ClientTLSConfig(ca.CertFile, first.CertFile, first.KeyFile, "")
	require.NoError(t, err)
	presented := func() string {
		c, err := cfg.GetClientCertificate(&tls.CertificateRequestInfo{})
		require.NoError(t, err)
		leaf, err := x509.ParseCertificate(c.Certificate[0])
		require.NoError(t, err)
		return leaf.Subject.CommonName
	}
	require.Equal(t, "worker-a", presented())
	copyFile(t, second.CertFile, first.CertFile)
	copyFile(t, second.KeyFile, first.KeyFile)
	require.Equal(t, "worker-b", presented(), "a new handshake presents the rotated certificate")
	require.NoError(t, os.WriteFile(first.KeyFile, []byte("half"), 0o600))
	require.Equal(t, "worker-b", presented(), "a pair that does not load keeps the last one")
}

func TestReloaderLooksAtContentNotTime(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "f")
	require.NoError(t, os.WriteFile(path, []byte("one"), 0o600))
	loads := 0
	r := NewReloader("test", []string{path}, func() error { loads++; return nil }, slog.New(slog.DiscardHandler))
	stat, err := os.Stat(path)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(path, []byte("two"), 0o600)) // same size
	require.NoError(t, os.Chtimes(path, stat.ModTime(), stat.ModTime()))
	reloaded, err := r.Check()
	require.NoError(t, err)
	require.True(t, reloaded, "same size and mtime, other bytes: reloaded")
	require.NoError(t, os.Chtimes(path, time.Now(), time.Now().Add(time.Hour)))
	reloaded, err = r.Check()
	require.NoError(t, err)
	require.False(t, reloaded, "a touched file with the same bytes is not reloaded")
	require.Equal(t, 1, loads)
}

// dialCA connects to e trusting only the CA in caFile.
func (e *secureEnv) dialCA(t *testing.T, caFile string, opts ...grpc.DialOption) kasyncv1.SchedulerClient {
	t.Helper()
	tlsCfg, err := ClientTLSConfig(caFile, "", "", "")
	require.NoError(t, err)
	conn, err := grpc.NewClient(e.addr, append([]grpc.DialOption{grpc.WithTransportCredentials(credentials.NewTLS(tlsCfg))}, opts...)...)
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	return kasyncv1.NewSchedulerClient(conn)
}
