package node

import (
	"fmt"
	"log/slog"
	"net"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/kasync/kasync/internal/config"
	"github.com/kasync/kasync/scheduler/rpc"
)

// grpcSecurity is the TLS and authentication of the scheduler's gRPC server, from
// node.grpc_tls and node.grpc_auth: the server options to add and the Auth its handlers
// consult (nil when callers are not authenticated).
func grpcSecurity(cfg *config.Config, log *slog.Logger) ([]grpc.ServerOption, *rpc.Auth, error) {
	var opts []grpc.ServerOption
	n := cfg.Node
	if t := n.GRPCTLS; t != nil {
		tlsCfg, err := rpc.ServerTLSConfig(t.CertFile, t.KeyFile, t.ClientCAFile)
		if err != nil {
			return nil, nil, fmt.Errorf("node: node.grpc_tls: %w", err)
		}
		opts = append(opts, grpc.Creds(credentials.NewTLS(tlsCfg)))
	}
	if !n.AuthEnabled() {
		return opts, nil, nil
	}
	ac := rpc.AuthConfig{ClientCerts: n.GRPCTLS != nil && n.GRPCTLS.ClientCAFile != "", Logger: log}
	if a := n.GRPCAuth; a != nil {
		if a.TokensFile != "" {
			tokens, err := config.LoadTokens(a.TokensFile)
			if err != nil {
				return nil, nil, fmt.Errorf("node: node.grpc_auth.tokens_file: %w", err)
			}
			for _, t := range tokens {
				ac.Tokens = append(ac.Tokens, rpc.Token{Identity: t.Identity, Secret: t.Secret})
			}
		}
		if len(a.Identities) > 0 {
			ac.Grants = make(map[string]rpc.Grant, len(a.Identities))
			for _, id := range a.Identities {
				ac.Grants[id.Name] = rpc.Grant{Functions: id.Functions, Push: id.Push}
			}
		}
	}
	auth, err := rpc.NewAuth(ac)
	if err != nil {
		return nil, nil, fmt.Errorf("node: node.grpc_auth: %w", err)
	}
	return append(opts, auth.ServerOptions()...), auth, nil
}

// logGRPCSecurity says how the gRPC API at lis is secured, and warns when anyone who
// can reach a non-loopback address may use it.
func logGRPCSecurity(cfg *config.Config, lis net.Listener, log *slog.Logger) {
	n := cfg.Node
	tlsMode := "off"
	if n.GRPCTLS != nil {
		tlsMode = "on"
		if n.GRPCTLS.ClientCAFile != "" {
			tlsMode = "mutual"
		}
	}
	if !n.AuthEnabled() {
		if !isLoopback(lis.Addr()) {
			log.Warn("the gRPC API listens on a non-loopback address without authentication: anyone who reaches it may push workloads and serve any function; set node.grpc_auth (README: Securing the gRPC API)",
				"grpc", lis.Addr().String(), "tls", tlsMode)
		}
		return
	}
	tokens := n.GRPCAuth != nil && n.GRPCAuth.TokensFile != ""
	authorization := "every authenticated identity may do everything"
	if n.GRPCAuth != nil && len(n.GRPCAuth.Identities) > 0 {
		authorization = fmt.Sprintf("%d identities in node.grpc_auth.identities", len(n.GRPCAuth.Identities))
	}
	log.Info("gRPC API secured", "grpc", lis.Addr().String(), "tls", tlsMode, "client_certificates", tlsMode == "mutual",
		"tokens", tokens, "authorization", authorization)
}

func isLoopback(a net.Addr) bool {
	tcp, ok := a.(*net.TCPAddr)
	return ok && tcp.IP.IsLoopback()
}

// schedulerDialOptions are the credentials of the connection to a remote scheduler
// (--scheduler ADDR), from node.scheduler_tls and node.scheduler_token_file.
func schedulerDialOptions(cfg *config.Config) ([]grpc.DialOption, error) {
	t := cfg.Node.SchedulerTLS
	if t == nil {
		return []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}, nil
	}
	tlsCfg, err := rpc.ClientTLSConfig(t.CAFile, t.CertFile, t.KeyFile, t.ServerName)
	if err != nil {
		return nil, fmt.Errorf("node: node.scheduler_tls: %w", err)
	}
	opts := []grpc.DialOption{grpc.WithTransportCredentials(credentials.NewTLS(tlsCfg))}
	if f := cfg.Node.SchedulerTokenFile; f != "" {
		token, err := rpc.ReadTokenFile(f)
		if err != nil {
			return nil, fmt.Errorf("node: node.scheduler_token_file: %w", err)
		}
		opts = append(opts, grpc.WithPerRPCCredentials(rpc.BearerToken(token)))
	}
	return opts, nil
}
