package httpfn

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/kasync/kasync/scheduler"
)

const (
	// maxDrainBytes is how much of a response body is read to let its connection be
	// reused; a longer body closes the connection instead.
	maxDrainBytes = 64 << 10
	dialTimeout   = 10 * time.Second
	keepAlive     = 30 * time.Second
	tlsTimeout    = 10 * time.Second
	idleTimeout   = 90 * time.Second
	userAgent     = "kasync"
)

// errAttemptTimeout is the cause of an attempt's context ending at its timeout.
var errAttemptTimeout = errors.New("attempt timeout")

// Executor runs the attempts of one HTTP function: it POSTs each workload to the
// function's URL as a CloudEvent in binary content mode and classifies the response.
// It is safe for concurrent use.
type Executor struct {
	url     string // as configured: the client sends its user info as basic auth
	safeURL string // without user info, for errors and logs
	base    *url.URL
	ceType  string
	client  *http.Client
	maxErr  int
	log     *slog.Logger
	// askedForCert is set once a server asked for a client certificate that the
	// TLS config does not have; connection errors then say so.
	askedForCert atomic.Bool
}

var _ scheduler.Executor = (*Executor)(nil)

// New returns an Executor for cfg, or an error naming every problem of cfg.
func New(cfg Config) (*Executor, error) {
	cfg = cfg.withDefaults()
	u, err := cfg.validate()
	if err != nil {
		return nil, err
	}
	safe := redact(u)
	e := &Executor{
		url:     cfg.URL,
		safeURL: safe,
		base:    u,
		ceType:  EncodeHeaderValue([]byte("kasync." + cfg.Function)),
		maxErr:  cfg.MaxErrorBytes,
		log:     cfg.Logger.With("function", cfg.Function, "url", safe),
	}
	rt := cfg.Transport
	if rt == nil {
		rt = e.newTransport(cfg)
	}
	e.client = &http.Client{
		Transport: rt,
		// A 3xx is the function's answer, classified like any other status.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return e, nil
}

// newTransport returns the Executor's own connection pool.
func (e *Executor) newTransport(cfg Config) *http.Transport {
	dialer := &net.Dialer{Timeout: dialTimeout, KeepAlive: keepAlive}
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if cfg.TLS != nil {
		tc = cfg.TLS.Clone()
	}
	if len(tc.Certificates) == 0 && tc.GetClientCertificate == nil {
		// Go on without a certificate, as crypto/tls does, but remember that a
		// server wanted one, to explain the connection errors that may follow.
		tc.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			e.askedForCert.Store(true)
			return &tls.Certificate{}, nil
		}
	}
	return &http.Transport{
		Proxy:               http.ProxyFromEnvironment,
		DialContext:         dialer.DialContext,
		TLSClientConfig:     tc,
		TLSHandshakeTimeout: tlsTimeout,
		ForceAttemptHTTP2:   true,
		MaxConnsPerHost:     cfg.MaxConns,
		MaxIdleConnsPerHost: cfg.MaxConns,
		MaxIdleConns:        cfg.MaxConns,
		IdleConnTimeout:     idleTimeout,
	}
}

// Close closes the connections that are idle. Attempts still running keep theirs;
// an Executor may still be used after Close, at the cost of new connections.
func (e *Executor) Close() {
	e.client.CloseIdleConnections()
}

// Execute POSTs one attempt of w and returns its outcome (see the package
// documentation for the request and the classification). timeout bounds the whole
// attempt, from dialling to reading the response; 0 or less means none beyond ctx.
func (e *Executor) Execute(ctx context.Context, w *scheduler.Workload, timeout time.Duration) scheduler.Outcome {
	attemptCtx, cancel := ctx, context.CancelFunc(func() {})
	if timeout > 0 {
		attemptCtx, cancel = context.WithTimeoutCause(ctx, timeout, errAttemptTimeout)
	}
	defer cancel()

	req, err := e.newRequest(attemptCtx, w)
	if err != nil {
		// Cannot happen with a validated URL; retry rather than lose the event.
		return scheduler.Retriable(scheduler.ReasonError, fmt.Sprintf("POST %s: build request: %v", e.safeURL, cause(err)))
	}
	resp, err := e.client.Do(req)
	if err != nil {
		return e.transportFailure(ctx, attemptCtx, timeout, err)
	}
	defer func() {
		// Drain a bounded amount, so the connection can be reused.
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxDrainBytes))
		_ = resp.Body.Close()
	}()
	return e.classify(resp, w)
}

// newRequest builds the CloudEvents binary-mode request for w.
func (e *Executor) newRequest(ctx context.Context, w *scheduler.Workload) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, e.url, bytes.NewReader(w.Payload))
	if err != nil {
		return nil, fmt.Errorf("new request: %w", err)
	}
	h := make(http.Header, 9+len(w.Headers))
	h["User-Agent"] = []string{userAgent}
	h["Ce-Specversion"] = []string{"1.0"}
	h["Ce-Id"] = []string{EncodeHeaderValue([]byte(w.ID))}
	source := w.Source
	if source == "" {
		source = DefaultSource
	}
	h["Ce-Source"] = []string{EncodeHeaderValue([]byte(source))}
	h["Ce-Type"] = []string{e.ceType}
	if !w.Created.IsZero() {
		h["Ce-Time"] = []string{w.Created.UTC().Format(time.RFC3339Nano)}
	}
	h["Ce-Attempt"] = []string{strconv.Itoa(w.Attempt)}
	if len(w.Key) > 0 {
		h["Ce-Partitionkey"] = []string{EncodeHeaderValue(w.Key)}
	}
	var contentType []byte
	for _, rh := range w.Headers {
		h.Add(HeaderPrefix+EncodeHeaderName(rh.Key), EncodeHeaderValue(rh.Value))
		if strings.EqualFold(rh.Key, "content-type") {
			contentType = rh.Value // the last one wins
		}
	}
	if ct := bytes.Trim(contentType, " \t"); len(ct) > 0 {
		if validFieldValue(ct) {
			h["Content-Type"] = []string{string(ct)}
		} else {
			e.log.Debug("content-type header has control bytes; sending no Content-Type",
				"workload", w.ID, "content_type", EncodeHeaderValue(ct))
		}
	}
	req.Header = h
	return req, nil
}

// transportFailure classifies an attempt that got no response.
func (e *Executor) transportFailure(ctx, attemptCtx context.Context, timeout time.Duration, err error) scheduler.Outcome {
	err = cause(err)
	switch {
	case errors.Is(context.Cause(attemptCtx), errAttemptTimeout):
		return scheduler.Retriable(scheduler.ReasonTimeout,
			fmt.Sprintf("POST %s: no response within the %v timeout", e.safeURL, timeout))
	case ctx.Err() != nil:
		return scheduler.Retriable(scheduler.ReasonShutdown,
			fmt.Sprintf("POST %s: cancelled before a response: %v", e.safeURL, context.Cause(ctx)))
	default:
		msg := fmt.Sprintf("POST %s: %v", e.safeURL, err)
		if e.askedForCert.Load() {
			// With TLS 1.3 a server that rejects a missing client certificate says so
			// after the handshake, and the client often sees only a closed connection.
			msg += " (the server asked for a TLS client certificate and none is configured; " +
				"if it requires one, give it in the TLS config)"
		}
		return scheduler.Retriable(scheduler.ReasonError, msg)
	}
}

// cause strips a *url.Error, which quotes the URL with its user info, from err.
func cause(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// classify turns a response into the attempt's outcome. It reads at most
// MaxErrorBytes of the body; the caller drains and closes it.
func (e *Executor) classify(resp *http.Response, w *scheduler.Workload) scheduler.Outcome {
	code := resp.StatusCode
	if code >= 200 && code < 300 {
		return scheduler.Success()
	}
	var o scheduler.Outcome
	switch {
	case code == http.StatusTooManyRequests || code == http.StatusServiceUnavailable:
		o = scheduler.Retriable(scheduler.ReasonOverloaded, e.failureText(resp, ""))
		o.RetryAfter = e.retryAfter(resp, w)
	case code == http.StatusRequestTimeout || (code >= 500 && code < 600):
		o = scheduler.Retriable(scheduler.ReasonError, e.failureText(resp, ""))
		o.RetryAfter = e.retryAfter(resp, w)
	case code >= 400 && code < 500:
		o = scheduler.Fatal(scheduler.ReasonFatal, e.failureText(resp, ""))
	case code >= 300 && code < 400:
		o = scheduler.Fatal(scheduler.ReasonFatal, e.failureText(resp, e.redirectNote(resp)))
	case code >= 100 && code < 200:
		o = scheduler.Fatal(scheduler.ReasonFatal,
			e.failureText(resp, " (an informational status is not an answer; respond 2xx for success)"))
	default:
		// Not an HTTP status at all: a broken server or proxy, which may recover.
		o = scheduler.Retriable(scheduler.ReasonError, e.failureText(resp, " (not a valid HTTP status)"))
	}
	return o
}

// redirectNote explains, for a 3xx, that redirects are not followed.
func (e *Executor) redirectNote(resp *http.Response) string {
	const fix = "redirects are not followed; point url at the final location"
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil || resp.Header.Get("Location") == "" {
		return " (" + fix + ")"
	}
	return fmt.Sprintf(" (to %s; %s)", redact(e.base.ResolveReference(loc)), fix)
}

// failureText is "POST <url>: <code> <text><note>: <start of body>".
func (e *Executor) failureText(resp *http.Response, note string) string {
	var b strings.Builder
	b.WriteString("POST ")
	b.WriteString(e.safeURL)
	b.WriteString(": ")
	b.WriteString(strconv.Itoa(resp.StatusCode))
	if t := http.StatusText(resp.StatusCode); t != "" {
		b.WriteByte(' ')
		b.WriteString(t)
	}
	b.WriteString(note)
	if body := readExcerpt(resp.Body, e.maxErr); body != "" {
		b.WriteString(": ")
		b.WriteString(body)
	}
	return b.String()
}

// retryAfter reads the response's Retry-After header; garbage counts as absent.
func (e *Executor) retryAfter(resp *http.Response, w *scheduler.Workload) time.Duration {
	v := resp.Header.Get("Retry-After")
	d, err := parseRetryAfter(v, time.Now())
	if err != nil {
		e.log.Debug("ignoring Retry-After", "workload", w.ID, "status", resp.StatusCode, "err", err)
	}
	return d
}

// readExcerpt returns the first limit bytes of body as trimmed, valid UTF-8: a rune
// cut by the limit is dropped and other invalid bytes become U+FFFD.
func readExcerpt(body io.Reader, limit int) string {
	buf := make([]byte, limit+1)
	n, _ := io.ReadFull(body, buf) // a short or failed read keeps what arrived
	buf = buf[:n]
	if n > limit {
		buf = buf[:limit]
		// Drop a rune the limit cut in two.
		i := len(buf) - 1
		for i > 0 && len(buf)-i < utf8.UTFMax && !utf8.RuneStart(buf[i]) {
			i--
		}
		if i >= 0 && !utf8.FullRune(buf[i:]) {
			buf = buf[:i]
		}
	}
	return strings.TrimSpace(strings.ToValidUTF8(string(buf), "\uFFFD"))
}
