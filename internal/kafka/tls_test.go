package kafka

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

type pemFiles struct{ ca, cert, key, otherKey string }

// writePEMs writes a self-signed CA, a client certificate and key signed by
// it, and an unrelated key, as PEM files in a temporary directory.
func writePEMs(t *testing.T) pemFiles {
	t.Helper()
	dir := t.TempDir()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "kasync test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	require.NoError(t, err)

	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "kasync client"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caTmpl, &key.PublicKey, caKey)
	require.NoError(t, err)
	other, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)

	f := pemFiles{
		ca:       filepath.Join(dir, "ca.pem"),
		cert:     filepath.Join(dir, "cert.pem"),
		key:      filepath.Join(dir, "key.pem"),
		otherKey: filepath.Join(dir, "other-key.pem"),
	}
	writePEM(t, f.ca, "CERTIFICATE", caDER)
	writePEM(t, f.cert, "CERTIFICATE", der)
	writePEM(t, f.key, "PRIVATE KEY", marshalKey(t, key))
	writePEM(t, f.otherKey, "PRIVATE KEY", marshalKey(t, other))
	return f
}

func marshalKey(t *testing.T, k *ecdsa.PrivateKey) []byte {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(k)
	require.NoError(t, err)
	return der
}

func writePEM(t *testing.T, path, typ string, der []byte) {
	t.Helper()
	require.NoError(t, os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600))
}

func mustLoadTLS(t *testing.T) *tls.Config {
	t.Helper()
	f := writePEMs(t)
	cfg, err := LoadTLS(f.ca, f.cert, f.key)
	require.NoError(t, err)
	return cfg
}

func TestLoadTLS(t *testing.T) {
	t.Parallel()
	f := writePEMs(t)

	cfg, err := LoadTLS(f.ca, f.cert, f.key)
	require.NoError(t, err)
	require.NotNil(t, cfg.RootCAs)
	require.Len(t, cfg.Certificates, 1)
	require.Equal(t, uint16(tls.VersionTLS12), cfg.MinVersion)

	cfg, err = LoadTLS("", "", "")
	require.NoError(t, err)
	require.Nil(t, cfg.RootCAs, "no CA file means the system roots")
	require.Empty(t, cfg.Certificates)

	cfg, err = LoadTLS(f.ca, "", "")
	require.NoError(t, err)
	require.NotNil(t, cfg.RootCAs)
}

func TestLoadTLSErrors(t *testing.T) {
	t.Parallel()
	f := writePEMs(t)
	missing := filepath.Join(t.TempDir(), "nope.pem")
	cases := []struct {
		name          string
		ca, cert, key string
		want          string
	}{
		{"missing CA", missing, "", "", "read ca_file: open " + missing},
		{"CA not PEM", f.key, "", "", "holds no PEM certificate"},
		{"cert without key", "", f.cert, "", "key_file is empty"},
		{"key without cert", "", "", f.key, "cert_file is empty"},
		{"missing cert", "", missing, f.key, `load cert_file "` + missing},
		{"key does not match", "", f.cert, f.otherKey, "private key does not match public key"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg, err := LoadTLS(tc.ca, tc.cert, tc.key)
			require.Nil(t, cfg)
			require.ErrorContains(t, err, tc.want)
		})
	}
}
