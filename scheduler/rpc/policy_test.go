package rpc

import (
	"context"
	"crypto/x509"
	"crypto/x509/pkix"
	"net/url"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/metadata"
)

func TestPolicyWithoutGrantsAllowsEveryIdentity(t *testing.T) {
	t.Parallel()
	p := NewPolicy(nil)
	require.True(t, p.Open())
	require.NoError(t, p.CheckWork("anyone", []string{"a", "b"}))
	require.NoError(t, p.CheckPush("anyone"))
}

func TestPolicyGrants(t *testing.T) {
	t.Parallel()
	p := NewPolicy(map[string]Grant{
		"payments": {Functions: []string{"charge", "refund"}},
		"tailer":   {Push: true},
		"ops":      {Functions: []string{AllFunctions}, Push: true},
	})
	require.False(t, p.Open())
	cases := []struct {
		name      string
		identity  string
		functions []string
		want      string // "" allowed, else a part of the refusal
	}{
		{"all allowed", "payments", []string{"charge", "refund"}, ""},
		{"one allowed", "payments", []string{"refund"}, ""},
		{"one refused", "payments", []string{"charge", "email"}, `identity "payments" may not serve function "email" (it may serve: charge, refund)`},
		{"push-only identity serves nothing", "tailer", []string{"charge"}, `identity "tailer" may not serve function "charge" (it may serve: none)`},
		{"wildcard", "ops", []string{"charge", "anything"}, ""},
		{"unknown identity", "mallory", []string{"charge"}, `identity "mallory" is not in node.grpc_auth.identities, so it may not serve function "charge"`},
		{"empty identity", "", []string{"charge"}, `identity "" is not in`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := p.CheckWork(c.identity, c.functions)
			if c.want == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, errDenied)
			require.ErrorContains(t, err, c.want)
		})
	}
	require.NoError(t, p.CheckPush("tailer"))
	require.NoError(t, p.CheckPush("ops"))
	require.ErrorContains(t, p.CheckPush("payments"), `identity "payments" may not push workloads`)
	require.ErrorContains(t, p.CheckPush("mallory"), `identity "mallory" is not in node.grpc_auth.identities`)
}

func TestNewPolicyCopiesGrants(t *testing.T) {
	t.Parallel()
	fns := []string{"a"}
	grants := map[string]Grant{"w": {Functions: fns}}
	p := NewPolicy(grants)
	fns[0] = "b"
	grants["x"] = Grant{Push: true}
	require.NoError(t, p.CheckWork("w", []string{"a"}))
	require.Error(t, p.CheckPush("x"))
}

func TestIdentityFromCert(t *testing.T) {
	t.Parallel()
	spiffe, err := url.Parse("spiffe://example.org/worker")
	require.NoError(t, err)
	require.Empty(t, IdentityFromCert(nil))
	require.Empty(t, IdentityFromCert(&x509.Certificate{}))
	require.Equal(t, "cn", IdentityFromCert(&x509.Certificate{Subject: pkix.Name{CommonName: "cn"}, URIs: []*url.URL{spiffe}, DNSNames: []string{"d"}}))
	require.Equal(t, "spiffe://example.org/worker", IdentityFromCert(&x509.Certificate{URIs: []*url.URL{spiffe}, DNSNames: []string{"d"}}))
	require.Equal(t, "d", IdentityFromCert(&x509.Certificate{DNSNames: []string{"d", "e"}}))
}

func TestTokenSet(t *testing.T) {
	t.Parallel()
	ts, err := newTokenSet([]Token{{"a", "token-of-a"}, {"b", "token-of-b"}, {"a", "rotated-token-of-a"}})
	require.NoError(t, err)
	for token, want := range map[string]string{"token-of-a": "a", "token-of-b": "b", "rotated-token-of-a": "a"} {
		got, ok := ts.identify(token)
		require.True(t, ok, token)
		require.Equal(t, want, got)
	}
	for _, bad := range []string{"", "token-of-", "token-of-a ", "TOKEN-OF-A"} {
		_, ok := ts.identify(bad)
		require.False(t, ok, "%q", bad)
	}

	_, err = newTokenSet([]Token{{"a", "same"}, {"b", "same"}})
	require.ErrorContains(t, err, `identities "a" and "b" have the same token`)
	require.NotContains(t, err.Error(), "same\"", "the error does not show the token")
	_, err = newTokenSet([]Token{{"a", ""}})
	require.ErrorContains(t, err, `the token of identity "a" is empty`)
	_, err = newTokenSet([]Token{{"", "x"}})
	require.ErrorContains(t, err, "token 1 has no identity")
}

func TestBearerTokenParsing(t *testing.T) {
	t.Parallel()
	cases := []struct {
		md     metadata.MD
		token  string
		reason string
	}{
		{metadata.Pairs("authorization", "Bearer abc"), "abc", ""},
		{metadata.Pairs("authorization", "bearer  abc "), "abc", ""},
		{nil, "", "missing"},
		{metadata.Pairs("authorization", "Basic abc"), "", "is not"},
		{metadata.Pairs("authorization", "Bearer"), "", "is not"},
		{metadata.Pairs("authorization", "Bearer "), "", "is not"},
		{metadata.Pairs("authorization", "Bearer a", "authorization", "Bearer b"), "", "more than one"},
	}
	for _, c := range cases {
		ctx := metadata.NewIncomingContext(context.Background(), c.md)
		token, reason := bearerToken(ctx)
		require.Equal(t, c.token, token, "%v", c.md)
		if c.reason == "" {
			require.Empty(t, reason)
		} else {
			require.Contains(t, reason, c.reason, "%v", c.md)
			require.NotContains(t, reason, "abc", "a refusal never repeats the token")
		}
	}
}

func TestNewAuthNeedsAMethod(t *testing.T) {
	t.Parallel()
	_, err := NewAuth(AuthConfig{Grants: map[string]Grant{"a": {Push: true}}})
	require.ErrorContains(t, err, "neither client certificates nor tokens")
	_, err = NewAuth(AuthConfig{Tokens: []Token{{"a", "x"}, {"b", "x"}}})
	require.ErrorContains(t, err, "same token")
}
