package httpfn

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/require"

	"github.com/kasync/kasync/scheduler"
)

var testWorkload = &scheduler.Workload{ID: "orders/0/1", Function: "charge", Payload: []byte("x"), Attempt: 1}

// statusHandler answers with the status, Retry-After and Location given in the
// query, and the body "nope"; requests to /elsewhere are counted.
func statusHandler(followed *atomic.Int64) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/elsewhere" {
			followed.Add(1)
			return
		}
		q := r.URL.Query()
		if ra := q.Get("ra"); ra != "" {
			w.Header().Set("Retry-After", ra)
		}
		if loc := q.Get("loc"); loc != "" {
			w.Header().Set("Location", loc)
		}
		code, _ := strconv.Atoi(q.Get("code"))
		w.WriteHeader(code)
		_, _ = w.Write([]byte("nope\n"))
	})
}

func TestStatusClassification(t *testing.T) {
	t.Parallel()
	var followed atomic.Int64
	srv := startServer(t, statusHandler(&followed))
	inTwoHours := time.Now().Add(2 * time.Hour).UTC().Format(http.TimeFormat)

	for _, tc := range []struct {
		code          int
		retryAfter    string
		location      string
		kind          scheduler.OutcomeKind
		reason        scheduler.Reason
		minRA, maxRA  time.Duration
		wantErrSuffix string
	}{
		{code: 200, kind: scheduler.OutcomeSuccess},
		{code: 204, kind: scheduler.OutcomeSuccess},
		{code: 299, kind: scheduler.OutcomeSuccess},
		{code: 301, location: "/elsewhere", kind: scheduler.OutcomeFatal, reason: scheduler.ReasonFatal,
			wantErrSuffix: ": 301 Moved Permanently (to " + srv.URL + "/elsewhere; redirects are not followed; point url at the final location): nope"},
		{code: 307, kind: scheduler.OutcomeFatal, reason: scheduler.ReasonFatal,
			wantErrSuffix: ": 307 Temporary Redirect (redirects are not followed; point url at the final location): nope"},
		{code: 400, kind: scheduler.OutcomeFatal, reason: scheduler.ReasonFatal, wantErrSuffix: ": 400 Bad Request: nope"},
		{code: 404, retryAfter: "5", kind: scheduler.OutcomeFatal, reason: scheduler.ReasonFatal, wantErrSuffix: ": 404 Not Found: nope"},
		{code: 408, kind: scheduler.OutcomeRetriable, reason: scheduler.ReasonError, wantErrSuffix: ": 408 Request Timeout: nope"},
		{code: 409, kind: scheduler.OutcomeFatal, reason: scheduler.ReasonFatal, wantErrSuffix: ": 409 Conflict: nope"},
		{code: 429, kind: scheduler.OutcomeRetriable, reason: scheduler.ReasonOverloaded, wantErrSuffix: ": 429 Too Many Requests: nope"},
		{code: 429, retryAfter: "120", kind: scheduler.OutcomeRetriable, reason: scheduler.ReasonOverloaded,
			minRA: 2 * time.Minute, maxRA: 2 * time.Minute},
		{code: 429, retryAfter: inTwoHours, kind: scheduler.OutcomeRetriable, reason: scheduler.ReasonOverloaded,
			minRA: 2*time.Hour - 5*time.Second, maxRA: 2 * time.Hour},
		{code: 429, retryAfter: "later, please", kind: scheduler.OutcomeRetriable, reason: scheduler.ReasonOverloaded},
		{code: 500, kind: scheduler.OutcomeRetriable, reason: scheduler.ReasonError, wantErrSuffix: ": 500 Internal Server Error: nope"},
		{code: 502, retryAfter: "3", kind: scheduler.OutcomeRetriable, reason: scheduler.ReasonError,
			minRA: 3 * time.Second, maxRA: 3 * time.Second, wantErrSuffix: ": 502 Bad Gateway: nope"},
		{code: 503, retryAfter: "999999", kind: scheduler.OutcomeRetriable, reason: scheduler.ReasonOverloaded,
			minRA: MaxRetryAfter, maxRA: MaxRetryAfter, wantErrSuffix: ": 503 Service Unavailable: nope"},
		{code: 599, kind: scheduler.OutcomeRetriable, reason: scheduler.ReasonError, wantErrSuffix: ": 599: nope"},
		{code: 600, kind: scheduler.OutcomeRetriable, reason: scheduler.ReasonError, wantErrSuffix: ": 600 (not a valid HTTP status): nope"},
	} {
		t.Run(strconv.Itoa(tc.code)+"/"+tc.retryAfter, func(t *testing.T) {
			t.Parallel()
			q := url.Values{"code": {strconv.Itoa(tc.code)}, "ra": {tc.retryAfter}, "loc": {tc.location}}
			target := srv.URL + "/fn?" + q.Encode()
			e := newExecutor(t, Config{URL: target})

			out := e.Execute(t.Context(), testWorkload, 5*time.Second)
			require.Equal(t, tc.kind, out.Kind, out.Err)
			require.Equal(t, tc.reason, out.Reason)
			require.GreaterOrEqual(t, out.RetryAfter, tc.minRA)
			require.LessOrEqual(t, out.RetryAfter, tc.maxRA)
			if tc.kind == scheduler.OutcomeSuccess {
				require.Empty(t, out.Err)
				return
			}
			require.True(t, strings.HasPrefix(out.Err, "POST "+target+": "), out.Err)
			if tc.wantErrSuffix != "" {
				require.Equal(t, "POST "+target+tc.wantErrSuffix, out.Err)
			}
		})
	}
	t.Cleanup(func() { require.Zero(t, followed.Load(), "a redirect was followed") })
}

func TestErrorBodyExcerpt(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		body  string
		limit int
		want  string
	}{
		{name: "short", body: "  bad input\n", limit: 0, want: "bad input"},
		{name: "cut", body: "abcdefgh", limit: 3, want: "abc"},
		{name: "cut rune", body: "abé", limit: 3, want: "ab"},
		{name: "invalid", body: "a\xffb", limit: 10, want: "a\uFFFDb"},
		{name: "huge", body: strings.Repeat("x", 4<<20), limit: 16, want: strings.Repeat("x", 16)},
		{name: "empty", body: "", limit: 0, want: ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := startServer(t, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				w.WriteHeader(http.StatusInternalServerError)
				_, _ = w.Write([]byte(tc.body))
			}))
			e := newExecutor(t, Config{URL: srv.URL, MaxErrorBytes: tc.limit})
			out := e.Execute(t.Context(), testWorkload, 5*time.Second)
			want := "POST " + srv.URL + ": 500 Internal Server Error"
			if tc.want != "" {
				want += ": " + tc.want
			}
			require.Equal(t, want, out.Err)
			require.True(t, utf8.ValidString(out.Err))
		})
	}
}

func TestTimeout(t *testing.T) {
	t.Parallel()
	handlerCtxErr := make(chan error, 1)
	srv := startServer(t, http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body) // the server notices a closed connection only after the body
		<-r.Context().Done()               // hang until the client gives up
		handlerCtxErr <- r.Context().Err()
	}))
	e := newExecutor(t, Config{URL: srv.URL})

	start := time.Now()
	out := e.Execute(t.Context(), testWorkload, 100*time.Millisecond)
	require.Less(t, time.Since(start), 5*time.Second)
	require.Equal(t, scheduler.OutcomeRetriable, out.Kind)
	require.Equal(t, scheduler.ReasonTimeout, out.Reason)
	require.Equal(t, "POST "+srv.URL+": no response within the 100ms timeout", out.Err)
	require.ErrorIs(t, recv(t, handlerCtxErr), context.Canceled, "the server sees the request end")
}

func TestTimeoutWhileReadingTheBody(t *testing.T) {
	t.Parallel()
	srv := startServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write([]byte("partial"))
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	}))
	e := newExecutor(t, Config{URL: srv.URL})
	start := time.Now()
	out := e.Execute(t.Context(), testWorkload, 100*time.Millisecond)
	require.Less(t, time.Since(start), 5*time.Second, "draining a stalled body stops at the timeout")
	require.Equal(t, scheduler.Success(), out, "the status decides")
}

func TestCallerCancel(t *testing.T) {
	t.Parallel()
	started := make(chan struct{}, 1)
	srv := startServer(t, http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		started <- struct{}{}
		<-r.Context().Done()
	}))
	e := newExecutor(t, Config{URL: srv.URL})

	ctx, cancel := context.WithCancel(t.Context())
	go func() {
		<-started
		cancel()
	}()
	out := e.Execute(ctx, testWorkload, time.Minute)
	require.Equal(t, scheduler.OutcomeRetriable, out.Kind)
	require.Equal(t, scheduler.ReasonShutdown, out.Reason, out.Err)

	done, cancelNow := context.WithCancel(t.Context())
	cancelNow()
	out = e.Execute(done, testWorkload, time.Minute)
	require.Equal(t, scheduler.ReasonShutdown, out.Reason, "an attempt under a done ctx")
}

func TestConnectionRefused(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())

	e := newExecutor(t, Config{URL: "http://fn-user:s3cret@" + addr + "/fn"})
	out := e.Execute(t.Context(), testWorkload, 5*time.Second)
	require.Equal(t, scheduler.OutcomeRetriable, out.Kind)
	require.Equal(t, scheduler.ReasonError, out.Reason)
	require.True(t, strings.HasPrefix(out.Err, "POST http://"+addr+"/fn: "), out.Err)
	require.Contains(t, out.Err, "connection refused")
	require.NotContains(t, out.Err, "s3cret")
	require.NotContains(t, out.Err, "fn-user")
}

func TestUnknownHost(t *testing.T) {
	t.Parallel()
	e := newExecutor(t, Config{URL: "http://no-such-host.invalid/fn"})
	out := e.Execute(t.Context(), testWorkload, 5*time.Second)
	require.Equal(t, scheduler.OutcomeRetriable, out.Kind, out.Err)
	require.Contains(t, []scheduler.Reason{scheduler.ReasonError, scheduler.ReasonTimeout}, out.Reason, out.Err)
}

func TestConnectionsAreReused(t *testing.T) {
	t.Parallel()
	srv, n := startCountingServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Query().Get("i") {
		case "0":
			w.WriteHeader(http.StatusOK)
			_, _ = w.Write([]byte(strings.Repeat("ok", 8<<10))) // 16 KiB, drained
		case "1":
			http.Error(w, strings.Repeat("busy", 4<<10), http.StatusServiceUnavailable)
		default:
			http.Error(w, "bad", http.StatusBadRequest)
		}
	}))
	var es [3]*Executor
	for i := range es {
		es[i] = newExecutor(t, Config{URL: srv.URL + "/?i=" + strconv.Itoa(i), MaxConns: 1})
	}
	for i := range 50 {
		out := es[i%3].Execute(t.Context(), testWorkload, 5*time.Second)
		require.NotEmpty(t, out.Kind)
		// Each executor has its own pool: at most one connection each.
		require.LessOrEqual(t, n.Load(), int64(3))
	}
	require.Equal(t, int64(3), n.Load(), "50 sequential requests over 3 single-connection pools")
}

func TestPoolSize(t *testing.T) {
	t.Parallel()
	srv, n := startCountingServer(t, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusNoContent)
	}))
	e := newExecutor(t, Config{URL: srv.URL, MaxConns: 2})
	var wg sync.WaitGroup
	var failures atomic.Int64
	for range 8 {
		wg.Go(func() {
			for range 10 {
				if out := e.Execute(t.Context(), testWorkload, 5*time.Second); out.Kind != scheduler.OutcomeSuccess {
					failures.Add(1)
				}
			}
		})
	}
	wg.Wait()
	require.Zero(t, failures.Load())
	require.LessOrEqual(t, n.Load(), int64(2), "at most MaxConns connections")
}
