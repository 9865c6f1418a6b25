package dashboard_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kasync/kasync/internal/dashboard"
	"github.com/kasync/kasync/internal/nodestatus"
)

const evil = `<script>alert("pwned")</script>`

// snapshot is a status with something in every section, and markup in the text a
// function or a producer controls (an error, a key, a reason).
func snapshot() nodestatus.Status {
	taken := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	since := taken.Add(-time.Minute)
	depth, zero := int64(42), int64(0)
	due, late := taken.Add(-10*time.Second), 10.0
	return nodestatus.Status{
		Taken:    taken,
		Roles:    []string{"scheduler", "tailer", "delay"},
		NotReady: []string{"tailer orders: not a member of consumer group kasync.orders yet"},
		Functions: []nodestatus.Function{{
			Name: "charge", Tenant: "default", Scheduled: true, Concurrency: 64, Limit: 12, Running: 3, Queued: 7,
			Succeeded: 1000, Retriable: 20, Fatal: 5,
			StormGuard: &nodestatus.StormGuard{Active: true, Since: &since, Outcomes: 100, Failures: 90, Trips: 2},
		}},
		Tailers: []nodestatus.Tailer{{
			Name: "orders", Topic: "orders", Function: "charge", Group: "kasync.orders", Member: true, InFlight: 9,
			Partitions: []nodestatus.Partition{{Partition: 0, LagRecords: 123, LagSeconds: 4.5}, {Partition: 1}},
		}, {
			Name: "kasync.fn.charge", Topic: "kasync.fn.charge", Function: "charge", Group: "kasync.fn.charge", Member: true,
			Partitions: []nodestatus.Partition{}, Ingest: true,
		}},
		Rungs: []nodestatus.Rung{
			{Name: "30s", Topic: "kasync.delay.30s", DelaySeconds: 30, Depth: &depth, Reading: true, Held: 40, InFlight: 41,
				OldestDue: &due, LatenessSeconds: &late},
			{Name: "1m", Topic: "kasync.delay.1m", DelaySeconds: 60},
			{Name: "5m", Topic: "kasync.delay.5m", DelaySeconds: 300, Depth: &zero},
			{Name: "30m", Topic: "kasync.delay.30m", DelaySeconds: 1800, Depth: &depth}, // its heads not read
		},
		DeadLetters: nodestatus.DeadLetters{
			Topic:  "kasync.dead-letter",
			Counts: []nodestatus.DeadLetterCount{{Function: "charge", Reason: "fatal", Count: 5}},
			Latest: []nodestatus.DeadLetter{{
				Partition: 1, Offset: 17, Time: taken.Add(-time.Second), Function: "charge", Reason: "fatal" + evil,
				Error: "card declined: " + evil, Attempt: 1, Origin: "orders/0/99", Key: "<b>k</b>",
			}},
		},
		Problems: []string{"delay rungs 1m: depth unknown"},
	}
}

func server(t *testing.T, st nodestatus.Status) *httptest.Server {
	t.Helper()
	h, err := dashboard.New(dashboard.Options{
		Source: dashboard.SourceFunc(func(context.Context) nodestatus.Status { return st }),
		Logger: slog.New(slog.DiscardHandler),
	})
	require.NoError(t, err)
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

// reply is a response read whole.
type reply struct {
	StatusCode int
	Header     http.Header
}

func get(t *testing.T, url string) (reply, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, url, nil)
	require.NoError(t, err)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return reply{StatusCode: resp.StatusCode, Header: resp.Header}, string(b)
}

// TestPageEscapesErrorText: markup in a dead letter's error, reason and key reaches
// the page as text, never as markup, and the page forbids inline script anyway.
func TestPageEscapesErrorText(t *testing.T) {
	t.Parallel()
	srv := server(t, snapshot())
	resp, body := get(t, srv.URL+"/")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, "text/html; charset=utf-8", resp.Header.Get("Content-Type"))
	require.NotContains(t, body, evil, "the error's markup is not on the page as markup")
	require.NotContains(t, body, "<b>k</b>")
	require.Contains(t, body, "card declined: &lt;script&gt;alert(&#34;pwned&#34;)&lt;/script&gt;")
	require.Contains(t, body, "&lt;b&gt;k&lt;/b&gt;")
	require.Equal(t, 1, strings.Count(body, "<script"), "only the dashboard's own script tag")
	csp := resp.Header.Get("Content-Security-Policy")
	require.Contains(t, csp, "script-src 'self'")
	require.NotContains(t, csp, "unsafe-inline")
	require.Equal(t, "nosniff", resp.Header.Get("X-Content-Type-Options"))
}

// TestPageWithoutJavaScript: the server-rendered page holds every section's facts.
func TestPageWithoutJavaScript(t *testing.T) {
	t.Parallel()
	_, body := get(t, server(t, snapshot()).URL+"/")
	for _, want := range []string{
		`data-refresh-ms="2000"`,
		"roles: scheduler, tailer, delay", "not ready: tailer orders: not a member", "delay rungs 1m: depth unknown",
		"<td>charge</td>", "12 / 64", "1000", "ON since 2026-03-04 05:05:07Z, 90/100 failed, 2 trips",
		"kasync.orders", `<td class="n">123</td>`, `<td class="n">4.50</td>`, "<td>kasync.fn.charge (ingest)</td>",
		"kasync.delay.30s", `<td class="n">42</td>`, `<td class="n">unknown</td>`,
		"kasync.dead-letter", "2026-03-04 05:06:06Z", "orders/0/99", "1/17",
	} {
		require.Contains(t, body, want)
	}
	// Each rung's row: waiting, oldest due, late (s), held here, in flight here. No
	// oldest due is "—" when nothing waits and "unknown" when it was not read.
	for _, want := range []string{
		`<td>30s</td><td>kasync.delay.30s</td><td class="n">42</td><td>2026-03-04 05:05:57Z</td><td class="n">10.0</td><td class="n">40</td><td class="n">41</td>`,
		`<td>1m</td><td>kasync.delay.1m</td><td class="n">unknown</td><td>unknown</td><td class="n">unknown</td><td class="n">—</td><td class="n">—</td>`,
		`<td>5m</td><td>kasync.delay.5m</td><td class="n">0</td><td>—</td><td class="n">—</td><td class="n">—</td><td class="n">—</td>`,
		`<td>30m</td><td>kasync.delay.30m</td><td class="n">42</td><td>unknown</td><td class="n">unknown</td><td class="n">—</td><td class="n">—</td>`,
	} {
		require.Contains(t, rungRows(body), want)
	}
}

// rungRows is the page's table of rungs with the whitespace between tags removed, a
// row a line.
func rungRows(body string) string {
	start := strings.Index(body, `<table id="rungs">`)
	end := strings.Index(body[start:], "</table>")
	return strings.ReplaceAll(betweenTags.ReplaceAllString(body[start:start+end], "><"), "<tr>", "\n<tr>")
}

var betweenTags = regexp.MustCompile(`>\s+<`)

// TestEmptyStatus: a snapshot of a node with nothing (a scheduler-only node with no
// functions) renders, with a note in each empty table.
func TestEmptyStatus(t *testing.T) {
	t.Parallel()
	resp, body := get(t, server(t, nodestatus.Status{}).URL+"/")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	for _, want := range []string{"no functions configured", "no source tailers on this node", "no delay rungs on this node",
		"this node reads no Kafka", `<section id="problems" hidden>`} {
		require.Contains(t, body, want)
	}
}

// TestStatusJSONRoundTrips: /status.json decodes to the very snapshot the source gave,
// with the documented field names.
func TestStatusJSONRoundTrips(t *testing.T) {
	t.Parallel()
	want := snapshot()
	resp, body := get(t, server(t, want).URL+"/status.json")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, "application/json", resp.Header.Get("Content-Type"))
	var got nodestatus.Status
	dec := json.NewDecoder(strings.NewReader(body))
	dec.DisallowUnknownFields()
	require.NoError(t, dec.Decode(&got))
	require.Equal(t, want, got)
	for _, field := range []string{`"dead_letters":`, `"lag_seconds":4.5`, `"storm_guard":{"active":true`, `"depth":null`, `"in_flight":9`,
		`"oldest_due":"2026-03-04T05:05:57Z","lateness_seconds":10`, `"oldest_due":null,"lateness_seconds":null`} {
		require.Contains(t, body, field)
	}
}

// TestRoutes: the assets are embedded and typed; other paths and methods are refused.
func TestRoutes(t *testing.T) {
	t.Parallel()
	srv := server(t, snapshot())
	for path, typ := range map[string]string{
		"/assets/dashboard.js":  "text/javascript; charset=utf-8",
		"/assets/dashboard.css": "text/css; charset=utf-8",
		"/assets/favicon.svg":   "image/svg+xml",
	} {
		resp, body := get(t, srv.URL+path)
		require.Equal(t, http.StatusOK, resp.StatusCode, path)
		require.Equal(t, typ, resp.Header.Get("Content-Type"), path)
		require.NotEmpty(t, body, path)
	}
	for _, path := range []string{"/nope", "/assets/nope.js", "/templates/page.html"} {
		resp, _ := get(t, srv.URL+path)
		require.Equal(t, http.StatusNotFound, resp.StatusCode, path)
	}
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, srv.URL+"/status.json", nil)
	require.NoError(t, err)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusMethodNotAllowed, resp.StatusCode)
}

func TestNewNeedsASource(t *testing.T) {
	t.Parallel()
	_, err := dashboard.New(dashboard.Options{})
	require.ErrorContains(t, err, "Source is nil")
}
