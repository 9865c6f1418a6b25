package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

const (
	goodTokenA = "a-token-of-worker-a-0123456789"
	goodTokenB = "a-token-of-tailer-b-0123456789"
)

func writeTemp(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	require.NoError(t, os.WriteFile(path, []byte(content), 0o600))
	return path
}

func TestSecurityValidation(t *testing.T) {
	t.Parallel()
	pem := writeTemp(t, "x.pem", "pem")
	missing := filepath.Join(t.TempDir(), "nope.pem")
	tokens := writeTemp(t, "tokens", "# identity token\nworker-a "+goodTokenA+"\n\ntailer-b "+goodTokenB+"\n")
	badTokens := writeTemp(t, "bad-tokens", "worker-a short-secret\nworker-b\n"+
		"tailer-b "+goodTokenB+"\nother "+goodTokenB+"\n")
	tlsOK := &GRPCTLS{CertFile: pem, KeyFile: pem}
	mtls := &GRPCTLS{CertFile: pem, KeyFile: pem, ClientCAFile: pem}

	cases := []struct {
		name   string
		node   func(n *Node)
		field  string
		msg    string
		absent string // a string no problem may contain
	}{
		{"key without cert", func(n *Node) { n.GRPCTLS = &GRPCTLS{KeyFile: pem} }, "node.grpc_tls.cert_file", "missing; TLS needs the server's certificate (PEM)", ""},
		{"cert without key", func(n *Node) { n.GRPCTLS = &GRPCTLS{CertFile: pem} }, "node.grpc_tls.key_file", "missing; TLS needs the key of cert_file (PEM)", ""},
		{"missing client ca", func(n *Node) { n.GRPCTLS = &GRPCTLS{CertFile: pem, KeyFile: pem, ClientCAFile: missing} },
			"node.grpc_tls.client_ca_file", `"` + missing + `" does not exist`, ""},
		{"auth without a method", func(n *Node) {
			n.GRPCTLS = tlsOK
			n.GRPCAuth = &GRPCAuth{Identities: []Identity{{Name: "a", Push: true}}}
		}, "node.grpc_auth", "authenticates nobody; set tokens_file, or node.grpc_tls.client_ca_file for client certificates", ""},
		{"tokens without tls", func(n *Node) { n.GRPCAuth = &GRPCAuth{TokensFile: tokens} },
			"node.grpc_auth.tokens_file", "needs node.grpc_tls: tokens must never cross the network in clear text", ""},
		{"tokens file missing", func(n *Node) { n.GRPCTLS = tlsOK; n.GRPCAuth = &GRPCAuth{TokensFile: missing} },
			"node.grpc_auth.tokens_file", `"` + missing + `" does not exist`, ""},
		{"short token", func(n *Node) { n.GRPCTLS = tlsOK; n.GRPCAuth = &GRPCAuth{TokensFile: badTokens} },
			"node.grpc_auth.tokens_file", `line 1: the token of "worker-a" is shorter than 16 characters`, "short-secret"},
		{"token line without token", func(n *Node) { n.GRPCTLS = tlsOK; n.GRPCAuth = &GRPCAuth{TokensFile: badTokens} },
			"node.grpc_auth.tokens_file", `line 2 has 1 fields; write one "identity token" pair per line`, goodTokenB},
		{"token shared", func(n *Node) { n.GRPCTLS = tlsOK; n.GRPCAuth = &GRPCAuth{TokensFile: badTokens} },
			"node.grpc_auth.tokens_file", `line 4: the token of "other" is the same as on line 3`, goodTokenB},
		{"identity without name", func(n *Node) { n.GRPCTLS = mtls; n.GRPCAuth = &GRPCAuth{Identities: []Identity{{Push: true}}} },
			"node.grpc_auth.identities[0].name", "missing; name the identity", ""},
		{"identity twice", func(n *Node) {
			n.GRPCTLS = mtls
			n.GRPCAuth = &GRPCAuth{Identities: []Identity{{Name: "a", Push: true}, {Name: "a", Functions: []string{"charge"}}}}
		}, "node.grpc_auth.identities[1].name", `"a" is already the name of identities[0]`, ""},
		{"identity grants nothing", func(n *Node) { n.GRPCTLS = mtls; n.GRPCAuth = &GRPCAuth{Identities: []Identity{{Name: "a"}}} },
			"node.grpc_auth.identities[0]", "grants nothing", ""},
		{"unknown function", func(n *Node) {
			n.GRPCTLS = mtls
			n.GRPCAuth = &GRPCAuth{Identities: []Identity{{Name: "a", Functions: []string{"charge", "chrage"}}}}
		}, "node.grpc_auth.identities[0].functions[1]", `"chrage" is not a configured function (have: charge, email)`, ""},
		{"wildcard with others", func(n *Node) {
			n.GRPCTLS = mtls
			n.GRPCAuth = &GRPCAuth{Identities: []Identity{{Name: "a", Functions: []string{"*", "charge"}}}}
		}, "node.grpc_auth.identities[0].functions", `"*" already allows every function`, ""},
		{"scheduler cert without key", func(n *Node) { n.SchedulerTLS = &SchedulerTLS{CertFile: pem} },
			"node.scheduler_tls", "cert_file and key_file go together", ""},
		{"scheduler ca missing", func(n *Node) { n.SchedulerTLS = &SchedulerTLS{CAFile: missing} },
			"node.scheduler_tls.ca_file", "does not exist", ""},
		{"scheduler token without tls", func(n *Node) { n.SchedulerTokenFile = tokens },
			"node.scheduler_token_file", "needs node.scheduler_tls: a token is never sent without TLS", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			cfg := validConfig()
			c.node(&cfg.Node)
			err := cfg.Validate()
			var p *Problems
			require.True(t, errors.As(err, &p), "want *Problems, got %v", err)
			found := false
			for _, pr := range p.List {
				if pr.Field == c.field && strings.Contains(pr.Message, c.msg) {
					found = true
				}
			}
			require.True(t, found, "no %s problem containing %q in:\n%v", c.field, c.msg, err)
			for _, secret := range []string{goodTokenA, goodTokenB, c.absent} {
				if secret != "" {
					require.NotContains(t, err.Error(), secret, "a problem never quotes a token")
				}
			}
		})
	}
}

func TestSecurityConfigParses(t *testing.T) {
	t.Parallel()
	pem := writeTemp(t, "x.pem", "pem")
	tokens := writeTemp(t, "tokens", "worker-a "+goodTokenA+"\ntailer-b "+goodTokenB+"\n")
	yaml := `
node:
  grpc_listen: 0.0.0.0:7070
  grpc_tls: {cert_file: ` + pem + `, key_file: ` + pem + `, client_ca_file: ` + pem + `}
  grpc_auth:
    tokens_file: ` + tokens + `
    identities:
      - {name: worker-a, functions: [charge]}
      - {name: tailer-b, push: true}
      - {name: ops, functions: ["*"], push: true}
  scheduler_tls: {ca_file: ` + pem + `, server_name: sched.internal}
  scheduler_token_file: ` + tokens + `
functions: [{name: charge}]
tailers: [{name: orders, topic: orders, function: charge}]
`
	c, err := parse([]byte(yaml), "sec.yaml", noEnv)
	require.NoError(t, err)
	require.True(t, c.Node.AuthEnabled())
	require.Equal(t, []Identity{{Name: "worker-a", Functions: []string{"charge"}}, {Name: "tailer-b", Push: true},
		{Name: "ops", Functions: []string{"*"}, Push: true}}, c.Node.GRPCAuth.Identities)
	require.Equal(t, "sched.internal", c.Node.SchedulerTLS.ServerName)

	out := c.YAML()
	require.Contains(t, out, "tokens_file: "+tokens, "paths are shown")
	require.NotContains(t, out, goodTokenA, "token values never are")

	cl := c.Clone()
	cl.Node.GRPCAuth.Identities[0].Functions[0] = "changed"
	cl.Node.GRPCTLS.CertFile = "changed"
	cl.Node.SchedulerTLS.CAFile = "changed"
	require.Equal(t, "charge", c.Node.GRPCAuth.Identities[0].Functions[0], "Clone copies identities deeply")
	require.Equal(t, pem, c.Node.GRPCTLS.CertFile)
	require.Equal(t, pem, c.Node.SchedulerTLS.CAFile)

	require.False(t, validConfig().Node.AuthEnabled())
}

func TestLoadTokens(t *testing.T) {
	t.Parallel()
	path := writeTemp(t, "tokens", "# comment\n  worker-a   "+goodTokenA+"  \nworker-a "+goodTokenB+"\n")
	got, err := LoadTokens(path)
	require.NoError(t, err)
	require.Equal(t, []Token{{Identity: "worker-a", Secret: goodTokenA, Line: 2}, {Identity: "worker-a", Secret: goodTokenB, Line: 3}}, got,
		"an identity may have several tokens, for rotation")
	require.NotContains(t, got[0].String(), goodTokenA)

	_, err = LoadTokens(writeTemp(t, "empty", "# nothing\n\n"))
	require.ErrorContains(t, err, "holds no token")
	_, err = LoadTokens(writeTemp(t, "bad", "x "+goodTokenA+" extra\n"))
	require.ErrorContains(t, err, "line 1 has 3 fields")
	require.NotContains(t, err.Error(), goodTokenA)
	_, err = LoadTokens(filepath.Join(t.TempDir(), "nope"))
	require.ErrorContains(t, err, "config: read tokens file")
}
