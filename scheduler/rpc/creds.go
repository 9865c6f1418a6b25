package rpc

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync/atomic"

	"google.golang.org/grpc/credentials"
)

// ServerTLSConfig is the TLS of a scheduler's gRPC listener: the certificate and key
// it presents and, when clientCAFile is set, mutual TLS: every client must present a
// certificate that a CA in clientCAFile signed, or the handshake fails. TLS 1.2 at least.
func ServerTLSConfig(certFile, keyFile, clientCAFile string) (*tls.Config, error) {
	if certFile == "" || keyFile == "" {
		return nil, errors.New("rpc: server tls: cert_file and key_file are both required")
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("rpc: server tls: load cert_file %q and key_file %q: %w", certFile, keyFile, err)
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}}
	if clientCAFile != "" {
		pool, err := loadPool("client_ca_file", clientCAFile)
		if err != nil {
			return nil, fmt.Errorf("rpc: server tls: %w", err)
		}
		cfg.ClientCAs = pool
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return cfg, nil
}

// ClientTLSConfig is the TLS of a connection to a scheduler: the server's certificate
// is verified against caFile (the system's roots when empty); certFile and keyFile, set
// together, are the client certificate for mutual TLS; serverName, when set, is the
// name the server's certificate must have (default: the host of the address dialled).
// The client certificate is read now and again at each handshake, so a new connection
// presents a rotated one; a pair that does not load then (caught half-written) leaves
// the last one that did. caFile is read now only.
func ClientTLSConfig(caFile, certFile, keyFile, serverName string) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: serverName}
	if caFile != "" {
		pool, err := loadPool("ca_file", caFile)
		if err != nil {
			return nil, fmt.Errorf("rpc: client tls: %w", err)
		}
		cfg.RootCAs = pool
	}
	switch {
	case certFile == "" && keyFile == "":
	case certFile == "" || keyFile == "":
		return nil, errors.New("rpc: client tls: a client certificate needs both cert_file and key_file")
	default:
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, fmt.Errorf("rpc: client tls: load cert_file %q and key_file %q: %w", certFile, keyFile, err)
		}
		cc := &clientCert{certFile: certFile, keyFile: keyFile}
		cc.last.Store(&cert)
		cfg.GetClientCertificate = cc.get
	}
	return cfg, nil
}

// clientCert is a client certificate re-read at each handshake.
type clientCert struct {
	certFile, keyFile string
	last              atomic.Pointer[tls.Certificate] // the last pair that loaded
}

func (c *clientCert) get(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
	cert, err := tls.LoadX509KeyPair(c.certFile, c.keyFile)
	if err != nil {
		return c.last.Load(), nil
	}
	c.last.Store(&cert)
	return &cert, nil
}

func loadPool(field, path string) (*x509.CertPool, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", field, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(data) {
		return nil, fmt.Errorf("%s %q holds no PEM certificate", field, path)
	}
	return pool, nil
}

// BearerToken is per-RPC credentials that send "authorization: Bearer <token>" with
// every call. They require transport security: gRPC refuses to send them over a
// connection without TLS, so a token never crosses the network in clear text.
func BearerToken(token string) credentials.PerRPCCredentials { return bearer(token) }

type bearer string

func (b bearer) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{AuthorizationHeader: "Bearer " + string(b)}, nil
}

func (bearer) RequireTransportSecurity() bool { return true }

// String never shows the token.
func (bearer) String() string { return "Bearer [redacted]" }

// BearerTokenFile is BearerToken with the token read from path (ReadTokenFile): now,
// where an error is returned, and again for every call, so a new stream sends a
// rotated token. A file that does not read then (caught half-written) leaves the last
// token that did.
func BearerTokenFile(path string) (credentials.PerRPCCredentials, error) {
	token, err := ReadTokenFile(path)
	if err != nil {
		return nil, err
	}
	b := &bearerFile{path: path}
	b.last.Store(&token)
	return b, nil
}

type bearerFile struct {
	path string
	last atomic.Pointer[string]
}

func (b *bearerFile) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	token := b.last.Load()
	if t, err := ReadTokenFile(b.path); err == nil {
		token = &t
		b.last.Store(token)
	}
	return map[string]string{AuthorizationHeader: "Bearer " + *token}, nil
}

func (*bearerFile) RequireTransportSecurity() bool { return true }

// String never shows the token.
func (*bearerFile) String() string { return "Bearer [redacted]" }

// ReadTokenFile reads a client's token from path: the first line that is neither
// blank nor a # comment, trimmed. Errors name the file, never its content.
func ReadTokenFile(path string) (string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("rpc: read token file: %w", err)
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if strings.ContainsAny(line, " \t") {
			return "", fmt.Errorf("rpc: token file %q: the token line has spaces; write the token alone on its line", path)
		}
		return line, nil
	}
	if err := sc.Err(); err != nil {
		return "", fmt.Errorf("rpc: token file %q: %w", path, err)
	}
	return "", fmt.Errorf("rpc: token file %q holds no token; write the token alone on one line", path)
}
