package cli

import (
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/kasync/kasync/scheduler/rpc"
)

// securityFlags are how a command connects to a scheduler whose gRPC API is secured
// (node.grpc_tls, node.grpc_auth).
type securityFlags struct {
	tls        *bool
	ca         *string
	cert       *string
	key        *string
	serverName *string
	tokenFile  *string
}

func addSecurityFlags(f *flags) *securityFlags {
	return &securityFlags{
		tls:        f.Bool("tls", false, "connect with TLS, verifying the scheduler against the system's roots (implied by the other --tls flags)"),
		ca:         f.String("tls-ca", "", "PEM file of the CA that signed the scheduler's certificate (enables TLS)"),
		cert:       f.String("tls-cert", "", "PEM client certificate for a scheduler with mutual TLS; with --tls-key"),
		key:        f.String("tls-key", "", "PEM key of --tls-cert"),
		serverName: f.String("tls-server-name", "", "name to expect in the scheduler's certificate (default: the host of --scheduler)"),
		tokenFile:  f.String("token-file", "", "file holding this client's token (alone on a line), sent as authorization: Bearer; needs TLS"),
	}
}

// dialOptions are the credentials the flags ask for; none without flags.
func (s *securityFlags) dialOptions() ([]grpc.DialOption, error) {
	useTLS := *s.tls || *s.ca != "" || *s.cert != "" || *s.key != "" || *s.serverName != ""
	var opts []grpc.DialOption
	if useTLS {
		cfg, err := rpc.ClientTLSConfig(*s.ca, *s.cert, *s.key, *s.serverName)
		if err != nil {
			return nil, usagef("--tls-ca, --tls-cert, --tls-key: %v", err)
		}
		opts = append(opts, grpc.WithTransportCredentials(credentials.NewTLS(cfg)))
	}
	if *s.tokenFile != "" {
		if !useTLS {
			return nil, usagef("--token-file needs TLS, so the token never crosses the network in clear text: add --tls-ca FILE (or --tls for the system's roots)")
		}
		// Read now, and again for each stream: a worker picks up a rotated token when
		// it reconnects.
		token, err := rpc.BearerTokenFile(*s.tokenFile)
		if err != nil {
			return nil, usagef("--token-file: %v", err)
		}
		opts = append(opts, grpc.WithPerRPCCredentials(token))
	}
	return opts, nil
}
