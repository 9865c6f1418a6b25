package httpfn

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
)

const (
	// DefaultMaxConns is the connection pool size when Config.MaxConns is 0.
	DefaultMaxConns = 64
	// DefaultMaxErrorBytes is how much of a failure response's body goes into
	// Outcome.Err when Config.MaxErrorBytes is 0.
	DefaultMaxErrorBytes = 1024
	// DefaultSource is the ce-source of a workload whose Source is empty.
	DefaultSource = "kasync"
)

// Config configures an Executor for one HTTP function.
type Config struct {
	// Function is the function's name: ce-type is "kasync.<Function>". Required.
	Function string
	// URL is where each workload is POSTed: an absolute http:// or https:// URL.
	// User info in it (https://user:password@host/) is sent as basic authentication
	// and never appears in errors or logs. Required.
	URL string
	// TLS configures https: the CA that signed the server's certificate and, for
	// mutual TLS, the client certificate. It is cloned, not modified. nil means the
	// system's roots and no client certificate. Setting it with an http:// URL is an
	// error, so that a missing "s" cannot silently send events in the clear.
	TLS *tls.Config
	// MaxConns is the most connections open to the URL's host at once, and the most
	// kept idle for reuse; an attempt that finds them all busy waits for one (its
	// timeout runs meanwhile). Give it the function's concurrency. 0 means
	// DefaultMaxConns.
	MaxConns int
	// MaxErrorBytes is how many bytes of a failure response's body go into
	// Outcome.Err. 0 means DefaultMaxErrorBytes.
	MaxErrorBytes int
	// Logger receives debug messages about odd responses and headers. nil means
	// slog.Default().
	Logger *slog.Logger
	// Transport, when set, replaces the Executor's own pooled *http.Transport (for
	// tests); TLS and MaxConns then do not apply.
	Transport http.RoundTripper
}

// withDefaults returns a copy of c with zero values replaced by their defaults.
func (c Config) withDefaults() Config {
	if c.MaxConns == 0 {
		c.MaxConns = DefaultMaxConns
	}
	if c.MaxErrorBytes == 0 {
		c.MaxErrorBytes = DefaultMaxErrorBytes
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// validate reports every problem of c at once, each naming the field and the fix,
// and returns the parsed URL. Messages never quote the URL's user info.
func (c Config) validate() (*url.URL, error) {
	var errs []error
	if c.Function == "" {
		errs = append(errs, errors.New("the function name (Function) is empty; set the name of the function this executor runs"))
	}
	u, err := parseURL(c.URL)
	if err != nil {
		errs = append(errs, err)
	} else if c.TLS != nil && u.Scheme != "https" {
		errs = append(errs, fmt.Errorf("TLS is set but URL %q is not https; use an https:// URL, or drop TLS", redact(u)))
	}
	if c.MaxConns < 0 {
		errs = append(errs, fmt.Errorf("MaxConns is %d; set the most connections to keep, like the function's concurrency, or 0 for the default %d",
			c.MaxConns, DefaultMaxConns))
	}
	if c.MaxErrorBytes < 0 {
		errs = append(errs, fmt.Errorf("MaxErrorBytes is %d; set a positive byte count, or 0 for the default %d",
			c.MaxErrorBytes, DefaultMaxErrorBytes))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("httpfn: invalid config for function %q: %w", c.Function, err)
	}
	return u, nil
}

// parseURL checks that raw is an absolute http or https URL with a host.
func parseURL(raw string) (*url.URL, error) {
	const want = "give an absolute http:// or https:// URL, like http://127.0.0.1:9000/charge"
	if raw == "" {
		return nil, fmt.Errorf("URL is empty; %s", want)
	}
	u, err := url.Parse(raw)
	if err != nil {
		// url.Error quotes the whole URL, password included: report only its cause.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, fmt.Errorf("URL does not parse (%w); %s", err, want)
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, fmt.Errorf("URL %q has scheme %q; %s", redact(u), u.Scheme, want)
	case u.Host == "" || u.Hostname() == "":
		return nil, fmt.Errorf("URL %q has no host; %s", redact(u), want)
	}
	return u, nil
}

// redact returns u as a string without its user info.
func redact(u *url.URL) string {
	if u.User == nil {
		return u.String()
	}
	c := *u
	c.User = nil
	return c.String()
}
