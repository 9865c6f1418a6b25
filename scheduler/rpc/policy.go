package rpc

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// AllFunctions in a Grant's Functions allows every function.
const AllFunctions = "*"

// Identity is who a caller of the Scheduler service is, as its client certificate or
// its bearer token says.
type Identity struct {
	// Name is the identity's name: a token's identity, or the certificate's name
	// (IdentityFromCert).
	Name string
	// Via says how it was authenticated: "client-certificate" or "token".
	Via string
}

// How an Identity was authenticated.
const (
	ViaClientCert = "client-certificate"
	ViaToken      = "token"
)

type identityKey struct{}

// WithIdentity returns ctx carrying id.
func WithIdentity(ctx context.Context, id Identity) context.Context {
	return context.WithValue(ctx, identityKey{}, id)
}

// IdentityFrom returns the identity the auth interceptors put in ctx.
func IdentityFrom(ctx context.Context) (Identity, bool) {
	id, ok := ctx.Value(identityKey{}).(Identity)
	return id, ok
}

// IdentityFromCert is the identity a verified client certificate names: its subject
// common name; without one, its first URI SAN; without one, its first DNS SAN; else "".
func IdentityFromCert(c *x509.Certificate) string {
	switch {
	case c == nil:
		return ""
	case c.Subject.CommonName != "":
		return c.Subject.CommonName
	case len(c.URIs) > 0:
		return c.URIs[0].String()
	case len(c.DNSNames) > 0:
		return c.DNSNames[0]
	}
	return ""
}

// Grant is what one identity may do.
type Grant struct {
	// Functions it may serve as an SDK worker; AllFunctions ("*") allows every one.
	Functions []string
	// Push allows Push streams: a tailer node pushing workloads.
	Push bool
}

// Policy decides what an authenticated identity may do. It is pure: no I/O, no clock.
// The zero Policy (no grants) allows every authenticated identity everything; one with
// grants allows an identity only what its grant says, and nothing to one without.
type Policy struct {
	grants map[string]Grant
}

// NewPolicy returns the policy of grants (identity name → grant); nil or empty grants
// allow every authenticated identity everything.
func NewPolicy(grants map[string]Grant) Policy {
	if len(grants) == 0 {
		return Policy{}
	}
	g := make(map[string]Grant, len(grants))
	for name, grant := range grants {
		grant.Functions = slices.Clone(grant.Functions)
		g[name] = grant
	}
	return Policy{grants: g}
}

// Open reports whether the policy lets every authenticated identity do everything.
func (p Policy) Open() bool { return len(p.grants) == 0 }

// errDenied is wrapped by every refusal of a Policy.
var errDenied = errors.New("permission denied")

// CheckWork returns nil when identity may serve every one of functions, else an error
// naming the first function refused, the identity and what it may serve.
func (p Policy) CheckWork(identity string, functions []string) error {
	if p.Open() {
		return nil
	}
	g, ok := p.grants[identity]
	if !ok {
		return fmt.Errorf("%w: identity %q is not in node.grpc_auth.identities, so it may not serve function %q", errDenied, identity, first(functions))
	}
	if slices.Contains(g.Functions, AllFunctions) {
		return nil
	}
	for _, f := range functions {
		if !slices.Contains(g.Functions, f) {
			return fmt.Errorf("%w: identity %q may not serve function %q (it may serve: %s)", errDenied, identity, f, listOrNone(g.Functions))
		}
	}
	return nil
}

// CheckPush returns nil when identity may open Push streams.
func (p Policy) CheckPush(identity string) error {
	if p.Open() {
		return nil
	}
	g, ok := p.grants[identity]
	switch {
	case !ok:
		return fmt.Errorf("%w: identity %q is not in node.grpc_auth.identities, so it may not push workloads", errDenied, identity)
	case !g.Push:
		return fmt.Errorf("%w: identity %q may not push workloads (its grant has push: false)", errDenied, identity)
	}
	return nil
}

func first(s []string) string {
	if len(s) == 0 {
		return ""
	}
	return s[0]
}

func listOrNone(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ", ")
}

// Token is one bearer token and the identity it names. Secret is a secret: never log
// or print it.
type Token struct {
	Identity string
	Secret   string
}

// tokenSet finds the identity of a presented token in constant time: every known
// token's SHA-256 is compared with the presented one's, all of them every time, so
// neither the position of a match nor a common prefix shows in the time taken, and only
// digests are kept.
type tokenSet struct {
	digests    [][sha256.Size]byte
	identities []string
}

func newTokenSet(tokens []Token) (*tokenSet, error) {
	ts := &tokenSet{}
	seen := make(map[[sha256.Size]byte]string, len(tokens))
	for i, t := range tokens {
		if t.Identity == "" {
			return nil, fmt.Errorf("token %d has no identity", i+1)
		}
		if t.Secret == "" {
			return nil, fmt.Errorf("the token of identity %q is empty", t.Identity)
		}
		d := sha256.Sum256([]byte(t.Secret))
		if other, dup := seen[d]; dup {
			return nil, fmt.Errorf("identities %q and %q have the same token; give each its own", other, t.Identity)
		}
		seen[d] = t.Identity
		ts.digests = append(ts.digests, d)
		ts.identities = append(ts.identities, t.Identity)
	}
	return ts, nil
}

// identify returns the identity of presented, or false.
func (ts *tokenSet) identify(presented string) (string, bool) {
	d := sha256.Sum256([]byte(presented))
	found := -1
	for i := range ts.digests {
		if subtle.ConstantTimeCompare(d[:], ts.digests[i][:]) == 1 {
			found = i
		}
	}
	if found < 0 {
		return "", false
	}
	return ts.identities[found], true
}
