package runtime

import (
	"fmt"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/kasync/kasync/scheduler/rpc"
)

// WithTLS is a WorkerConfig.DialOptions entry for TLS to the scheduler (its
// node.grpc_tls): caFile is the CA that signed the scheduler's certificate (the
// system's roots when empty); certFile and keyFile, both or neither, are the worker's
// client certificate, for a scheduler with mutual TLS (node.grpc_tls.client_ca_file).
// The certificate's subject common name (else its first URI SAN, else its first DNS
// SAN) is the worker's identity. The files are read now.
func WithTLS(caFile, certFile, keyFile string) (grpc.DialOption, error) {
	cfg, err := rpc.ClientTLSConfig(caFile, certFile, keyFile, "")
	if err != nil {
		return nil, fmt.Errorf("runtime: %w", err)
	}
	return grpc.WithTransportCredentials(credentials.NewTLS(cfg)), nil
}

// WithToken is a WorkerConfig.DialOptions entry that sends token as
// "authorization: Bearer <token>" on every stream: the worker's identity at a
// scheduler with node.grpc_auth.tokens_file. It needs TLS (WithTLS): gRPC refuses to
// send a token over a connection without it, and NewWorker reports that.
func WithToken(token string) grpc.DialOption {
	return grpc.WithPerRPCCredentials(rpc.BearerToken(token))
}

// WithTokenFile is WithToken with the token read now from path: the first line that is
// neither blank nor a # comment. Keep the file readable by the worker only.
func WithTokenFile(path string) (grpc.DialOption, error) {
	token, err := rpc.ReadTokenFile(path)
	if err != nil {
		return nil, fmt.Errorf("runtime: %w", err)
	}
	return WithToken(token), nil
}
