package config

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"fmt"
	"os"
	"slices"
	"strings"
)

// AllFunctions in an identity's functions allows it to serve every function.
const AllFunctions = "*"

// MinTokenLength is the fewest characters a token in node.grpc_auth.tokens_file may have.
const MinTokenLength = 16

// GRPCTLS puts TLS on the scheduler's gRPC listener (node.grpc_tls). With ClientCAFile
// it is mutual TLS: a client must present a certificate that CA signed, or the
// handshake fails, and the certificate names the client's identity (its subject common
// name; without one, its first URI SAN; without one, its first DNS SAN).
type GRPCTLS struct {
	CertFile     string `yaml:"cert_file"`
	KeyFile      string `yaml:"key_file"`
	ClientCAFile string `yaml:"client_ca_file,omitempty"`
}

// GRPCAuth authenticates and authorizes callers of the gRPC API (node.grpc_auth).
// Client certificates (node.grpc_tls.client_ca_file) and tokens authenticate; with
// both, a caller needs both and they must name the same identity.
type GRPCAuth struct {
	// TokensFile holds one "identity token" pair per line (# comments, blank lines
	// allowed). Clients send "authorization: Bearer <token>". It needs node.grpc_tls.
	// Tokens are read only from this file and never printed.
	TokensFile string `yaml:"tokens_file,omitempty"`
	// Identities say what each identity may do; an identity not listed may do nothing.
	// Without identities, every authenticated caller may do everything.
	Identities []Identity `yaml:"identities,omitempty"`
}

// Identity is what one authenticated caller may do.
type Identity struct {
	Name string `yaml:"name"`
	// Functions it may serve as an SDK worker; "*" means every function.
	Functions []string `yaml:"functions,omitempty"`
	// Push allows it to push workloads: a tailer node (`kasync run --scheduler`).
	Push bool `yaml:"push,omitempty"`
}

// SchedulerTLS is how a node without the scheduler role connects to its scheduler
// (node.scheduler_tls): the CA that signed the scheduler's certificate (default: the
// system's roots), a client certificate for mutual TLS, and the name to expect in the
// scheduler's certificate (default: the host of --scheduler ADDR).
type SchedulerTLS struct {
	CAFile     string `yaml:"ca_file,omitempty"`
	CertFile   string `yaml:"cert_file,omitempty"`
	KeyFile    string `yaml:"key_file,omitempty"`
	ServerName string `yaml:"server_name,omitempty"`
}

// Token is one line of a tokens file. Secret is a secret: never print or log it.
type Token struct {
	Identity string
	Secret   string
	Line     int
}

// String never shows the secret.
func (t Token) String() string { return fmt.Sprintf("token of %q (line %d)", t.Identity, t.Line) }

// LoadTokens reads a tokens file (node.grpc_auth.tokens_file). Errors name lines and
// identities, never a token.
func LoadTokens(path string) ([]Token, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: read tokens file: %w", err)
	}
	tokens, problems := parseTokens(data)
	if len(problems) > 0 {
		return nil, fmt.Errorf("config: tokens file %s: %s", path, strings.Join(problems, "; "))
	}
	return tokens, nil
}

// parseTokens parses "identity token" lines; its problems never quote a token.
func parseTokens(data []byte) ([]Token, []string) {
	var tokens []Token
	var problems []string
	lineOf := map[[sha256.Size]byte]int{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fields := strings.Fields(line)
		if len(fields) != 2 {
			problems = append(problems, fmt.Sprintf("line %d has %d fields; write one \"identity token\" pair per line", n, len(fields)))
			continue
		}
		t := Token{Identity: fields[0], Secret: fields[1], Line: n}
		if len(t.Secret) < MinTokenLength {
			problems = append(problems, fmt.Sprintf("line %d: the token of %q is shorter than %d characters; use a long random one, like the output of `openssl rand -hex 32`", n, t.Identity, MinTokenLength))
			continue
		}
		d := sha256.Sum256([]byte(t.Secret))
		if first, dup := lineOf[d]; dup {
			problems = append(problems, fmt.Sprintf("line %d: the token of %q is the same as on line %d; give every identity its own token", n, t.Identity, first))
			continue
		}
		lineOf[d] = n
		tokens = append(tokens, t)
	}
	if err := sc.Err(); err != nil {
		problems = append(problems, fmt.Sprintf("cannot be read: %v", err))
	}
	if len(tokens) == 0 && len(problems) == 0 {
		problems = append(problems, "holds no token; write one \"identity token\" pair per line")
	}
	return tokens, problems
}

// AuthEnabled reports whether callers of the gRPC API are authenticated: by client
// certificates, tokens, or both.
func (n Node) AuthEnabled() bool {
	return n.GRPCTLS != nil && n.GRPCTLS.ClientCAFile != "" || n.GRPCAuth != nil && n.GRPCAuth.TokensFile != ""
}

func (c *Config) validateSecurity(l *problemList) {
	n := c.Node
	if t := n.GRPCTLS; t != nil {
		if t.CertFile == "" {
			l.add("node.grpc_tls.cert_file", "missing; TLS needs the server's certificate (PEM)")
		}
		if t.KeyFile == "" {
			l.add("node.grpc_tls.key_file", "missing; TLS needs the key of cert_file (PEM)")
		}
		checkFile(l, "node.grpc_tls.cert_file", t.CertFile)
		checkFile(l, "node.grpc_tls.key_file", t.KeyFile)
		checkFile(l, "node.grpc_tls.client_ca_file", t.ClientCAFile)
	}
	if a := n.GRPCAuth; a != nil {
		c.validateGRPCAuth(l, a)
	}
	if t := n.SchedulerTLS; t != nil {
		checkFile(l, "node.scheduler_tls.ca_file", t.CAFile)
		checkFile(l, "node.scheduler_tls.cert_file", t.CertFile)
		checkFile(l, "node.scheduler_tls.key_file", t.KeyFile)
		if (t.CertFile == "") != (t.KeyFile == "") {
			l.add("node.scheduler_tls", "cert_file and key_file go together; set both for a client certificate, or neither")
		}
	}
	if f := n.SchedulerTokenFile; f != "" {
		checkFile(l, "node.scheduler_token_file", f)
		if n.SchedulerTLS == nil {
			l.add("node.scheduler_token_file", "needs node.scheduler_tls: a token is never sent without TLS (give at least scheduler_tls: {ca_file: ...}, or {} for the system's roots)")
		}
	}
}

func (c *Config) validateGRPCAuth(l *problemList, a *GRPCAuth) {
	clientCerts := c.Node.GRPCTLS != nil && c.Node.GRPCTLS.ClientCAFile != ""
	if a.TokensFile == "" && !clientCerts {
		l.add("node.grpc_auth", "authenticates nobody; set tokens_file, or node.grpc_tls.client_ca_file for client certificates")
	}
	if a.TokensFile != "" {
		if c.Node.GRPCTLS == nil {
			l.add("node.grpc_auth.tokens_file", "needs node.grpc_tls: tokens must never cross the network in clear text")
		}
		if !l.hasField("node.grpc_auth.tokens_file") {
			checkFile(l, "node.grpc_auth.tokens_file", a.TokensFile)
		}
		if !l.hasField("node.grpc_auth.tokens_file") {
			if data, err := os.ReadFile(a.TokensFile); err != nil {
				l.add("node.grpc_auth.tokens_file", "%q cannot be read: %v", a.TokensFile, err)
			} else if _, problems := parseTokens(data); len(problems) > 0 {
				for _, p := range problems {
					l.add("node.grpc_auth.tokens_file", "%s: %s", a.TokensFile, p)
				}
			}
		}
	}
	names := map[string]int{}
	for i, id := range a.Identities {
		p := indexPath("node.grpc_auth.identities", i)
		if strings.TrimSpace(id.Name) == "" {
			l.add(p+".name", "missing; name the identity: a token's identity or a client certificate's common name")
		} else if j, dup := names[id.Name]; dup {
			l.add(p+".name", "%q is already the name of identities[%d]; list each identity once", id.Name, j)
		} else {
			names[id.Name] = i
		}
		if len(id.Functions) == 0 && !id.Push {
			l.add(p, "grants nothing; give it functions (or [\"*\"]) or push: true, or remove it")
		}
		for j, f := range id.Functions {
			if _, ok := c.Function(f); !ok && f != AllFunctions {
				l.add(indexPath(p+".functions", j), "%q is not a configured function (have: %s); or write \"*\" for every function", f, haveList(c.Functions))
			}
		}
		if slices.Contains(id.Functions, AllFunctions) && len(id.Functions) > 1 {
			l.add(p+".functions", "\"*\" already allows every function; list it alone")
		}
	}
}
