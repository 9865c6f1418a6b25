package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/kasync/kasync/internal/config"
	"github.com/kasync/kasync/scheduler/rpc"
)

// grpcSecurity is the TLS and authentication of the scheduler's gRPC server, from
// node.grpc_tls and node.grpc_auth: the server options to add, the Auth its handlers
// consult (nil when callers are not authenticated), and what reloads the files.
func grpcSecurity(cfg *config.Config, log *slog.Logger) ([]grpc.ServerOption, *rpc.Auth, *securityReload, error) {
	var opts []grpc.ServerOption
	reload := &securityReload{}
	n := cfg.Node
	if t := n.GRPCTLS; t != nil {
		serverTLS, err := rpc.NewServerTLS(t.CertFile, t.KeyFile, t.ClientCAFile)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("node: node.grpc_tls: %w", err)
		}
		opts = append(opts, grpc.Creds(credentials.NewTLS(serverTLS.Config())))
		reload.add(rpc.NewReloader("node.grpc_tls", serverTLS.Files(), serverTLS.Reload, log))
	}
	if !n.AuthEnabled() {
		return opts, nil, reload, nil
	}
	ac := rpc.AuthConfig{ClientCerts: n.GRPCTLS != nil && n.GRPCTLS.ClientCAFile != "", Logger: log}
	if a := n.GRPCAuth; a != nil {
		if a.TokensFile != "" {
			tokens, err := loadTokens(a.TokensFile)
			if err != nil {
				return nil, nil, nil, fmt.Errorf("node: node.grpc_auth.tokens_file: %w", err)
			}
			ac.Tokens = tokens
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
		return nil, nil, nil, fmt.Errorf("node: node.grpc_auth: %w", err)
	}
	if n.GRPCAuth != nil && n.GRPCAuth.TokensFile != "" {
		f := n.GRPCAuth.TokensFile
		reload.add(rpc.NewReloader("node.grpc_auth.tokens_file", []string{f}, func() error {
			tokens, err := loadTokens(f)
			if err != nil {
				return err
			}
			return auth.SetTokens(tokens)
		}, log))
	}
	return append(opts, auth.ServerOptions()...), auth, reload, nil
}

// loadTokens reads a tokens file as the scheduler's tokens. Its errors quote no token.
func loadTokens(path string) ([]rpc.Token, error) {
	tokens, err := config.LoadTokens(path)
	if err != nil {
		return nil, err
	}
	out := make([]rpc.Token, 0, len(tokens))
	for _, t := range tokens {
		out = append(out, rpc.Token{Identity: t.Identity, Secret: t.Secret})
	}
	return out, nil
}

// securityReload re-reads node.grpc_tls's files and node.grpc_auth.tokens_file when
// their content changes: polled every Options.SecurityReloadInterval by a goroutine of
// the node's run (stopped with it), and at once on ReloadSecurity (SIGHUP in kasync
// run). A file that does not load keeps the configuration before it, logged once.
type securityReload struct {
	reloaders []*rpc.Reloader
}

func (r *securityReload) add(rl *rpc.Reloader) { r.reloaders = append(r.reloaders, rl) }

// check reloads what changed; the error joins what failed to load.
func (r *securityReload) check() error {
	if r == nil {
		return nil
	}
	var errs []error
	for _, rl := range r.reloaders {
		if _, err := rl.Check(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// run checks every interval until ctx is done.
func (r *securityReload) run(ctx context.Context, every time.Duration) {
	if r == nil || len(r.reloaders) == 0 {
		return
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			_ = r.check()
		}
	}
}

// ReloadSecurity re-reads the gRPC listener's certificate, key and client CA
// (node.grpc_tls) and the tokens file (node.grpc_auth.tokens_file) now, instead of at
// the next poll: new connections and calls use what loads; what does not load is
// logged and returned, and the configuration before it stays. kasync run calls it on
// SIGHUP. A node without the scheduler role has nothing to reload.
func (n *Node) ReloadSecurity() error { return n.secReload.check() }

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
		// Re-read for each stream, as the client certificate is at each handshake.
		token, err := rpc.BearerTokenFile(f)
		if err != nil {
			return nil, fmt.Errorf("node: node.scheduler_token_file: %w", err)
		}
		opts = append(opts, grpc.WithPerRPCCredentials(token))
	}
	return opts, nil
}
