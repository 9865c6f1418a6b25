package httpfn

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// newExecutor builds an Executor for cfg ("charge" unless cfg names a function) and
// closes its idle connections when the test ends.
func newExecutor(t testing.TB, cfg Config) *Executor {
	t.Helper()
	if cfg.Function == "" {
		cfg.Function = "charge"
	}
	e, err := New(cfg)
	require.NoError(t, err)
	t.Cleanup(e.Close)
	return e
}

// startServer starts a plain HTTP test server, closed when the test ends.
func startServer(t testing.TB, h http.Handler) *httptest.Server {
	t.Helper()
	srv := httptest.NewUnstartedServer(h)
	quiet(srv)
	srv.Start()
	t.Cleanup(srv.Close)
	return srv
}

// startTLSServer starts an HTTPS test server (HTTP/2 when h2) with tc as its TLS
// config (nil for the default), closed when the test ends.
func startTLSServer(t testing.TB, h http.Handler, h2 bool, tc *tls.Config) *httptest.Server {
	t.Helper()
	srv := httptest.NewUnstartedServer(h)
	quiet(srv)
	srv.EnableHTTP2 = h2
	srv.TLS = tc
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv
}

// quiet drops the server's own error log (TLS handshake failures the tests cause).
func quiet(srv *httptest.Server) {
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
}

// startCountingServer starts a plain HTTP test server that counts the connections
// it accepts, closed when the test ends.
func startCountingServer(t testing.TB, h http.Handler) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var n atomic.Int64
	srv := httptest.NewUnstartedServer(h)
	quiet(srv)
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			n.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	return srv, &n
}

// rootsOf returns a pool holding the certificate of a TLS test server.
func rootsOf(srv *httptest.Server) *x509.CertPool {
	pool := x509.NewCertPool()
	pool.AddCert(srv.Certificate())
	return pool
}

// recv waits for a value from ch, failing the test after a bound.
func recv[T any](t testing.TB, ch <-chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(10 * time.Second):
		require.FailNow(t, "nothing received within 10s")
		panic("unreachable")
	}
}

// asciiLower lowercases ASCII letters only, leaving every other byte as it is.
func asciiLower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}
