package httpfn

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kasync/kasync/scheduler"
)

// newClientCert returns a client certificate and a pool holding the CA that signed
// it, as an operator's ca_file / cert_file / key_file would give.
func newClientCert(t *testing.T) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	now := time.Now()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "test client CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	require.NoError(t, err)
	ca, err := x509.ParseCertificate(caDER)
	require.NoError(t, err)

	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "kasync-node"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	require.NoError(t, err)
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, pool
}

func TestHTTPS(t *testing.T) {
	t.Parallel()
	srv := startTLSServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS == nil {
			w.WriteHeader(http.StatusBadRequest)
		}
	}), false, nil)

	e := newExecutor(t, Config{URL: srv.URL, TLS: &tls.Config{RootCAs: rootsOf(srv), MinVersion: tls.VersionTLS12}})
	require.Equal(t, scheduler.Success(), e.Execute(t.Context(), testWorkload, 5*time.Second))

	// Without the test CA, the system roots do not trust the server.
	untrusting := newExecutor(t, Config{URL: srv.URL})
	out := untrusting.Execute(t.Context(), testWorkload, 5*time.Second)
	require.Equal(t, scheduler.OutcomeRetriable, out.Kind)
	require.Equal(t, scheduler.ReasonError, out.Reason)
	require.Contains(t, out.Err, "certificate")
}

func TestMutualTLS(t *testing.T) {
	t.Parallel()
	cert, clientCAs := newClientCert(t)
	for _, tc := range []struct {
		proto string
		h2    bool
	}{{proto: "HTTP/1.1"}, {proto: "HTTP/2", h2: true}} {
		t.Run(tc.proto, func(t *testing.T) {
			t.Parallel()
			peer := make(chan string, 2)
			srv := startTLSServer(t, http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
				peer <- r.TLS.PeerCertificates[0].Subject.CommonName
			}), tc.h2, &tls.Config{
				ClientAuth: tls.RequireAndVerifyClientCert,
				ClientCAs:  clientCAs,
				MinVersion: tls.VersionTLS12,
			})
			roots := rootsOf(srv)

			withCert := newExecutor(t, Config{URL: srv.URL, TLS: &tls.Config{
				RootCAs: roots, Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12,
			}})
			require.Equal(t, scheduler.Success(), withCert.Execute(t.Context(), testWorkload, 5*time.Second))
			require.Equal(t, "kasync-node", recv(t, peer))

			withoutCert := newExecutor(t, Config{URL: srv.URL, TLS: &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}})
			out := withoutCert.Execute(t.Context(), testWorkload, 5*time.Second)
			require.Equal(t, scheduler.OutcomeRetriable, out.Kind)
			require.Equal(t, scheduler.ReasonError, out.Reason)
			require.True(t, strings.HasPrefix(out.Err, "POST "+srv.URL+": "), out.Err)
			// The TLS alert itself may be lost (a broken pipe, or HTTP/2's "client
			// conn could not be established"); the error still says what is missing.
			require.Contains(t, out.Err, "the server asked for a TLS client certificate and none is configured", out.Err)
		})
	}
}
