package httpfn

import (
	"crypto/tls"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestNewValidates(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		cfg  Config
		want []string // each must appear in the error
	}{
		{name: "empty", cfg: Config{}, want: []string{"(Function) is empty", "URL is empty"}},
		{name: "scheme", cfg: Config{Function: "f", URL: "ftp://host/x"}, want: []string{`URL "ftp://host/x" has scheme "ftp"`, "http://"}},
		{name: "relative", cfg: Config{Function: "f", URL: "/charge"}, want: []string{`has scheme ""`}},
		{name: "no host", cfg: Config{Function: "f", URL: "http:///charge"}, want: []string{"has no host"}},
		{name: "opaque", cfg: Config{Function: "f", URL: "http:charge"}, want: []string{"has no host"}},
		{name: "unparsable", cfg: Config{Function: "f", URL: "http://u:pw@host:port/"}, want: []string{"URL does not parse", "invalid port"}},
		{name: "limits", cfg: Config{Function: "f", URL: "http://h/", MaxConns: -1, MaxErrorBytes: -2},
			want: []string{"MaxConns is -1", "MaxErrorBytes is -2"}},
		{name: "tls without https", cfg: Config{Function: "f", URL: "http://h/", TLS: &tls.Config{MinVersion: tls.VersionTLS12}},
			want: []string{"TLS is set but URL", "https://"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e, err := New(tc.cfg)
			require.Nil(t, e)
			require.Error(t, err)
			require.Contains(t, err.Error(), "httpfn: invalid config")
			for _, w := range tc.want {
				require.Contains(t, err.Error(), w)
			}
		})
	}
}

func TestNewNeverQuotesAPassword(t *testing.T) {
	t.Parallel()
	for _, raw := range []string{
		"http://user:s3cret@/x",
		"ftp://user:s3cret@host/x",
		"http://user:s3cret@host:port/",
		"http://user:s3cret@host\x7f/",
	} {
		_, err := New(Config{Function: "f", URL: raw})
		require.Error(t, err, raw)
		require.NotContains(t, err.Error(), "s3cret", raw)
	}
	_, err := New(Config{Function: "f", URL: "http://user:s3cret@host/", TLS: &tls.Config{MinVersion: tls.VersionTLS12}})
	require.Error(t, err)
	require.NotContains(t, err.Error(), "s3cret")
}

func TestNewDefaults(t *testing.T) {
	t.Parallel()
	e := newExecutor(t, Config{URL: "https://user:pw@example.com/fn"})
	require.Equal(t, DefaultMaxErrorBytes, e.maxErr)
	require.Equal(t, "https://example.com/fn", e.safeURL)
	require.Equal(t, "kasync.charge", e.ceType)
}
