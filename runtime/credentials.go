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
// SAN) is the worker's identity. The files are read now, to report errors; the
// client certificate and key are read again at each new connection (a reconnect
// presents a rotated certificate; a pair that does not load then keeps the last that
// did). caFile is read now only.
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

// WithTokenFile is WithToken with the token read from path: the first line that is
// neither blank nor a # comment. It is read now, to report errors, and again for each
// new stream, so a worker that reconnects sends a rotated token (a file that does not
// read then keeps the last token that did). Keep the file readable by the worker only.
func WithTokenFile(path string) (grpc.DialOption, error) {
	creds, err := rpc.BearerTokenFile(path)
	if err != nil {
		return nil, fmt.Errorf("runtime: %w", err)
	}
	return grpc.WithPerRPCCredentials(creds), nil
}
