package kafka

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
)

// LoadTLS builds a client TLS config from PEM files. caFile, when set,
// replaces the system roots for verifying brokers; certFile and keyFile,
// set together, present a client certificate (mutual TLS). All three empty
// gives TLS with the system roots.
func LoadTLS(caFile, certFile, keyFile string) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("kafka: tls: read ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("kafka: tls: ca_file %q holds no PEM certificate; give the CA certificate that signed the brokers' certificates", caFile)
		}
		cfg.RootCAs = pool
	}
	switch {
	case certFile == "" && keyFile == "":
	case certFile == "":
		return nil, errors.New("kafka: tls: key_file is set but cert_file is empty; set both for a client certificate, or neither")
	case keyFile == "":
		return nil, errors.New("kafka: tls: cert_file is set but key_file is empty; set both for a client certificate, or neither")
	default:
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, fmt.Errorf("kafka: tls: load cert_file %q and key_file %q: %w", certFile, keyFile, err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}
