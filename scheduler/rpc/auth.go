package rpc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
)

// AuthorizationHeader is the metadata key of a bearer token ("Bearer <token>").
const AuthorizationHeader = "authorization"

// AuthConfig says how callers of the Scheduler service are authenticated and what each
// may do. At least one of ClientCerts and Tokens is needed.
type AuthConfig struct {
	// ClientCerts takes identities from verified client certificates
	// (IdentityFromCert). The gRPC server's TLS must require and verify them:
	// ServerTLSConfig with a client CA.
	ClientCerts bool
	// Tokens takes identities from "authorization: Bearer <token>" metadata. With
	// ClientCerts as well, both are required and must name the same identity.
	Tokens []Token
	// Grants is the Policy: identity name → what it may do; empty allows every
	// authenticated identity everything.
	Grants map[string]Grant
	// Logger receives refusals, never a token (default slog.Default()).
	Logger *slog.Logger
}

// Auth authenticates every call of the Scheduler service (ServerOptions, before any
// handler runs) and holds the Policy the handlers consult (ServerOptions.Auth).
type Auth struct {
	certs  bool
	tokens atomic.Pointer[tokenSet] // nil: no tokens; swapped by SetTokens
	policy Policy
	log    *slog.Logger
}

// NewAuth checks cfg and returns an Auth.
func NewAuth(cfg AuthConfig) (*Auth, error) {
	if !cfg.ClientCerts && len(cfg.Tokens) == 0 {
		return nil, errors.New("rpc: auth: neither client certificates nor tokens; configure at least one")
	}
	a := &Auth{certs: cfg.ClientCerts, policy: NewPolicy(cfg.Grants), log: cfg.Logger}
	if a.log == nil {
		a.log = slog.Default()
	}
	if len(cfg.Tokens) > 0 {
		ts, err := newTokenSet(cfg.Tokens)
		if err != nil {
			return nil, fmt.Errorf("rpc: auth: %w", err)
		}
		a.tokens.Store(ts)
	}
	return a, nil
}

// Policy is what the handlers consult.
func (a *Auth) Policy() Policy { return a.policy }

// ServerOptions are the interceptors to give grpc.NewServer: every stream and unary
// call is authenticated before its handler runs, and its handler finds the Identity in
// its context (IdentityFrom).
func (a *Auth) ServerOptions() []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.ChainStreamInterceptor(a.StreamInterceptor()),
		grpc.ChainUnaryInterceptor(a.UnaryInterceptor()),
	}
}

// StreamInterceptor authenticates a stream: UNAUTHENTICATED, or the handler with the
// Identity in the stream's context.
func (a *Auth) StreamInterceptor() grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		id, err := a.authenticate(ss.Context(), info.FullMethod)
		if err != nil {
			return err
		}
		return handler(srv, &identityStream{ServerStream: ss, ctx: WithIdentity(ss.Context(), id)})
	}
}

// UnaryInterceptor authenticates a unary call, as StreamInterceptor does a stream.
func (a *Auth) UnaryInterceptor() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		id, err := a.authenticate(ctx, info.FullMethod)
		if err != nil {
			return nil, err
		}
		return handler(WithIdentity(ctx, id), req)
	}
}

type identityStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *identityStream) Context() context.Context { return s.ctx }

// authenticate returns the caller's identity or an UNAUTHENTICATED status. The
// reason is logged with the peer's address; a presented token never is.
func (a *Auth) authenticate(ctx context.Context, method string) (Identity, error) {
	id, reason := a.identify(ctx)
	if reason == "" {
		return id, nil
	}
	addr := ""
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
		addr = p.Addr.String()
	}
	a.log.Warn("grpc call refused: not authenticated", "method", method, "peer", addr, "reason", reason)
	return Identity{}, status.Error(codes.Unauthenticated, "kasync: "+reason)
}

// identify returns the identity, or why there is none.
func (a *Auth) identify(ctx context.Context) (Identity, string) {
	var certName string
	if a.certs {
		name, reason := certIdentity(ctx)
		if reason != "" {
			return Identity{}, reason
		}
		certName = name
	}
	tokens := a.tokens.Load()
	if tokens == nil {
		return Identity{Name: certName, Via: ViaClientCert}, ""
	}
	token, reason := bearerToken(ctx)
	if reason != "" {
		return Identity{}, reason
	}
	name, ok := tokens.identify(token)
	switch {
	case !ok:
		return Identity{}, "the bearer token is not one this scheduler knows (node.grpc_auth.tokens_file)"
	case a.certs && name != certName:
		return Identity{}, fmt.Sprintf("the client certificate names %q but the token belongs to %q; use the token of the certificate's identity", certName, name)
	}
	return Identity{Name: name, Via: ViaToken}, ""
}

// certIdentity is the identity of the peer's verified client certificate.
func certIdentity(ctx context.Context) (string, string) {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return "", "no peer information; a verified client certificate is required"
	}
	info, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok || len(info.State.VerifiedChains) == 0 || len(info.State.VerifiedChains[0]) == 0 {
		return "", "no verified client certificate; connect with TLS and a certificate signed by node.grpc_tls.client_ca_file"
	}
	name := IdentityFromCert(info.State.VerifiedChains[0][0])
	if name == "" {
		return "", "the client certificate names no identity (no subject common name, URI or DNS SAN)"
	}
	return name, ""
}

// bearerToken is the token of the call's "authorization: Bearer <token>" metadata.
func bearerToken(ctx context.Context) (string, string) {
	md, _ := metadata.FromIncomingContext(ctx)
	vals := md.Get(AuthorizationHeader)
	switch {
	case len(vals) == 0:
		return "", "missing \"authorization: Bearer <token>\" metadata; this scheduler requires a token"
	case len(vals) > 1:
		return "", "more than one authorization metadata value; send exactly one"
	}
	scheme, token, ok := strings.Cut(vals[0], " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(token) == "" {
		return "", "the authorization metadata is not \"Bearer <token>\""
	}
	return strings.TrimSpace(token), ""
}

// authorizeWork is the Work handler's check that the caller may serve functions.
func (s *Server) authorizeWork(ctx context.Context, functions []string) error {
	if s.opts.Auth == nil {
		return nil
	}
	id, ok := IdentityFrom(ctx)
	if !ok {
		return status.Error(codes.Unauthenticated, "work: no authenticated identity; the auth interceptors are not installed (Auth.ServerOptions)")
	}
	if err := s.opts.Auth.policy.CheckWork(id.Name, functions); err != nil {
		// Work logs the refusal, with the worker's id.
		return status.Error(codes.PermissionDenied, "work: "+err.Error())
	}
	return nil
}

// authorizePush is the Push handler's check that the caller may push.
func (s *Server) authorizePush(ctx context.Context) error {
	if s.opts.Auth == nil {
		return nil
	}
	id, ok := IdentityFrom(ctx)
	if !ok {
		return status.Error(codes.Unauthenticated, "push: no authenticated identity; the auth interceptors are not installed (Auth.ServerOptions)")
	}
	if err := s.opts.Auth.policy.CheckPush(id.Name); err != nil {
		s.log.Warn("push stream refused: not authorized", "identity", id.Name, "via", id.Via, "err", err)
		return status.Error(codes.PermissionDenied, "push: "+err.Error())
	}
	return nil
}
