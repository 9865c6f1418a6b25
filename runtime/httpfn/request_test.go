package httpfn

import (
	"context"
	"crypto/tls"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kasync/kasync/scheduler"
)

// received is what a test server saw of one request.
type received struct {
	method string
	header http.Header
	body   []byte
	proto  int
}

// recordingHandler answers 204 and sends each request it gets to the channel.
func recordingHandler(got chan<- received) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		got <- received{method: r.Method, header: r.Header.Clone(), body: body, proto: r.ProtoMajor}
		w.WriteHeader(http.StatusNoContent)
	})
}

// recordHeaders decodes the kasync-h-* headers of h into lower-cased names
// (HTTP keeps no case) and their values in order.
func recordHeaders(t *testing.T, h http.Header) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	for name, values := range h {
		rest, ok := strings.CutPrefix(asciiLower(name), HeaderPrefix)
		if !ok {
			continue
		}
		dn, err := DecodeHeaderName(rest)
		require.NoError(t, err, "header name %q", name)
		for _, v := range values {
			dv, err := DecodeHeaderValue(v)
			require.NoError(t, err, "header %q value %q", name, v)
			out[dn] = append(out[dn], string(dv))
		}
	}
	return out
}

func TestRequestCarriesTheCloudEvent(t *testing.T) {
	t.Parallel()
	for _, proto := range []string{"HTTP/1.1", "HTTP/2"} {
		t.Run(proto, func(t *testing.T) {
			t.Parallel()
			got := make(chan received, 1)
			cfg := Config{Function: "charge"}
			var url string
			if proto == "HTTP/2" {
				srv := startTLSServer(t, recordingHandler(got), true, nil)
				cfg.TLS = &tls.Config{RootCAs: rootsOf(srv), MinVersion: tls.VersionTLS12}
				url = srv.URL
			} else {
				url = startServer(t, recordingHandler(got)).URL
			}
			cfg.URL = url + "/charge?v=1"
			e := newExecutor(t, cfg)

			w := &scheduler.Workload{
				ID:       "orders/3/42",
				Function: "charge",
				Key:      []byte("cust 7,\x00\"é\xff"),
				Payload:  []byte(`{"amount":5}`),
				Headers: []scheduler.Header{
					{Key: "CONTENT-TYPE", Value: []byte("application/json; charset=utf-8")},
					{Key: "trace id", Value: []byte("\x00\r\n\xff ok \"quoted\" 100%")},
					{Key: "dup", Value: []byte("a")},
					{Key: "dup", Value: []byte("b,c")},
					{Key: "\xffbin:ary%", Value: []byte("é")},
					{Key: "empty", Value: nil},
				},
				Attempt: 3,
				Created: time.Date(2026, 1, 2, 3, 4, 5, 6e6, time.FixedZone("CET", 3600)),
				Source:  "kafka://orders",
			}
			out := e.Execute(t.Context(), w, 5*time.Second)
			require.Equal(t, scheduler.Success(), out)

			r := recv(t, got)
			if proto == "HTTP/2" {
				require.Equal(t, 2, r.proto, "an https server offering HTTP/2 gets HTTP/2")
			}
			require.Equal(t, http.MethodPost, r.method)
			require.Equal(t, `{"amount":5}`, string(r.body))
			require.Equal(t, "1.0", r.header.Get("ce-specversion"))
			require.Equal(t, "orders/3/42", r.header.Get("ce-id"))
			require.Equal(t, "kafka://orders", r.header.Get("ce-source"))
			require.Equal(t, "kasync.charge", r.header.Get("ce-type"))
			require.Equal(t, "2026-01-02T02:04:05.006Z", r.header.Get("ce-time"))
			require.Equal(t, "3", r.header.Get("ce-attempt"))
			require.Equal(t, "application/json; charset=utf-8", r.header.Get("Content-Type"))

			pk := r.header.Get("ce-partitionkey")
			key, err := DecodeHeaderValue(pk)
			require.NoError(t, err)
			require.Equal(t, w.Key, key)
			require.NotContains(t, pk, ",", "a comma would split the value")

			require.Equal(t, map[string][]string{
				"content-type": {"application/json; charset=utf-8"},
				"trace id":     {"\x00\r\n\xff ok \"quoted\" 100%"},
				"dup":          {"a", "b,c"},
				"\xffbin:ary%": {"é"},
				"empty":        {""},
			}, recordHeaders(t, r.header))
		})
	}
}

func TestRequestWithoutOptionalAttributes(t *testing.T) {
	t.Parallel()
	got := make(chan received, 1)
	srv := startServer(t, recordingHandler(got))
	e := newExecutor(t, Config{Function: "plain", URL: srv.URL})

	out := e.Execute(t.Context(), &scheduler.Workload{ID: "t/0/0", Attempt: 1}, 5*time.Second)
	require.Equal(t, scheduler.Success(), out)

	r := recv(t, got)
	require.Empty(t, r.body)
	require.Equal(t, DefaultSource, r.header.Get("ce-source"), "an empty Source falls back")
	require.Equal(t, "kasync.plain", r.header.Get("ce-type"))
	require.Equal(t, "1", r.header.Get("ce-attempt"))
	for _, absent := range []string{"ce-partitionkey", "ce-time", "Content-Type"} {
		_, ok := r.header[http.CanonicalHeaderKey(absent)]
		require.False(t, ok, "%s is absent", absent)
	}
	require.Empty(t, recordHeaders(t, r.header))
}

func TestRequestContentTypeHTTPCannotCarry(t *testing.T) {
	t.Parallel()
	got := make(chan received, 1)
	srv := startServer(t, recordingHandler(got))
	e := newExecutor(t, Config{URL: srv.URL})

	w := &scheduler.Workload{ID: "t/0/1", Attempt: 1, Headers: []scheduler.Header{
		{Key: "content-type", Value: []byte("text/plain\r\nX-Injected: 1")},
	}}
	require.Equal(t, scheduler.Success(), e.Execute(t.Context(), w, 5*time.Second))

	r := recv(t, got)
	require.Empty(t, r.header.Get("Content-Type"), "a value with CR LF is not sent as Content-Type")
	require.Empty(t, r.header.Get("X-Injected"))
	require.Equal(t, map[string][]string{"content-type": {"text/plain\r\nX-Injected: 1"}}, recordHeaders(t, r.header))
}

func TestBasicAuthFromURL(t *testing.T) {
	t.Parallel()
	auth := make(chan string, 1)
	srv := startServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		user, pass, _ := r.BasicAuth()
		auth <- user + ":" + pass
		http.Error(w, "denied", http.StatusInternalServerError)
	}))
	url := strings.Replace(srv.URL, "http://", "http://fn-user:s3cret@", 1)
	e := newExecutor(t, Config{URL: url})

	out := e.Execute(context.Background(), &scheduler.Workload{ID: "t/0/2", Attempt: 1}, 5*time.Second)
	require.Equal(t, "fn-user:s3cret", recv(t, auth))
	require.Equal(t, "POST "+srv.URL+": 500 Internal Server Error: denied", out.Err)
	require.NotContains(t, out.Err, "s3cret")
	require.NotContains(t, out.Err, "fn-user")
}
