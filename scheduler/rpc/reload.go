package rpc

import (
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// Operators rotate certificates and tokens without restarting: the server's TLS and its
// tokens are held in values that are swapped whole, and a Reloader re-reads their files
// when their content changes. A file that does not load keeps what was loaded before,
// so a half-written or wrong file never leaves the listener without TLS or auth.

// ServerTLS is the TLS of a scheduler's gRPC listener, reloadable: Config gives the
// listener a tls.Config that takes the current certificate, key and client CAs at each
// handshake, and Reload swaps in what the files hold now. Whether clients must present
// a certificate (a client CA file or not) is fixed at NewServerTLS.
type ServerTLS struct {
	certFile, keyFile, clientCAFile string
	cur                             atomic.Pointer[tls.Config]
}

// NewServerTLS loads the files as ServerTLSConfig does.
func NewServerTLS(certFile, keyFile, clientCAFile string) (*ServerTLS, error) {
	s := &ServerTLS{certFile: certFile, keyFile: keyFile, clientCAFile: clientCAFile}
	if err := s.Reload(); err != nil {
		return nil, err
	}
	return s, nil
}

// Files are the files Reload reads.
func (s *ServerTLS) Files() []string {
	if s.clientCAFile == "" {
		return []string{s.certFile, s.keyFile}
	}
	return []string{s.certFile, s.keyFile, s.clientCAFile}
}

// Reload reads the files again and, if they load, makes them the TLS of every new
// connection; connections already made keep theirs. On error nothing changes.
func (s *ServerTLS) Reload() error {
	cfg, err := ServerTLSConfig(s.certFile, s.keyFile, s.clientCAFile)
	if err != nil {
		return err
	}
	// The handshake uses this config whole, so it must offer HTTP/2 itself: gRPC
	// clients refuse a server that does not negotiate it by ALPN.
	cfg.NextProtos = []string{"h2"}
	s.cur.Store(cfg)
	return nil
}

// Config is the tls.Config to serve with (credentials.NewTLS(Config())): each
// handshake takes the certificates loaded last.
func (s *ServerTLS) Config() *tls.Config {
	return &tls.Config{MinVersion: tls.VersionTLS12, GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
		return s.cur.Load(), nil
	}}
}

// SetTokens replaces the Auth's tokens, for the calls authenticated from now on;
// streams already open keep the identity they had. An Auth made without tokens
// cannot start taking them, and an empty or invalid list changes nothing: a file
// caught half-written must not lock every worker out, nor let anyone in.
func (a *Auth) SetTokens(tokens []Token) error {
	if a.tokens.Load() == nil {
		return errors.New("rpc: auth: this scheduler was started without tokens; restart it to add node.grpc_auth.tokens_file")
	}
	if len(tokens) == 0 {
		return errors.New("rpc: auth: no tokens; keeping the previous ones (a file that revokes every token is taken as a mistake)")
	}
	ts, err := newTokenSet(tokens)
	if err != nil {
		return fmt.Errorf("rpc: auth: %w", err)
	}
	a.tokens.Store(ts)
	return nil
}

// DefaultReloadInterval is how often a node looks at its TLS and token files.
const DefaultReloadInterval = 5 * time.Second

// Reloader calls a load func when the content of its files changes: Check compares a
// SHA-256 digest of the files' bytes with the one last loaded. A load that fails is
// logged once per content (at error level, with the error, which names files, never
// their content), and the old configuration stays. Files are small (certificates,
// keys, tokens), so reading them every few seconds costs nothing worth a watch API.
type Reloader struct {
	what  string // what is reloaded, for the log: "node.grpc_tls"
	files []string
	load  func() error
	log   *slog.Logger

	mu      sync.Mutex
	loaded  [sha256.Size]byte // the content in use
	refused [sha256.Size]byte // the content that failed last, logged once
}

// NewReloader takes the files' content now as the one loaded: call it right after the
// first load.
func NewReloader(what string, files []string, load func() error, log *slog.Logger) *Reloader {
	if log == nil {
		log = slog.Default()
	}
	r := &Reloader{what: what, files: files, load: load, log: log}
	r.loaded, _ = r.digest()
	return r
}

// digest is the SHA-256 of every file's name, length and bytes, or of the read error.
func (r *Reloader) digest() ([sha256.Size]byte, error) {
	h := sha256.New()
	for _, f := range r.files {
		data, err := os.ReadFile(f)
		if err != nil {
			return sha256.Sum256([]byte("error: " + err.Error())), err
		}
		_, _ = fmt.Fprintf(h, "%s\x00%d\x00", f, len(data))
		_, _ = h.Write(data)
	}
	var d [sha256.Size]byte
	h.Sum(d[:0])
	return d, nil
}

// Check reloads when the files changed since the last load: reloaded reports a
// successful reload, err a failed one (the old configuration is kept).
func (r *Reloader) Check() (reloaded bool, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	d, err := r.digest()
	if err == nil {
		if d == r.loaded {
			return false, nil
		}
		err = r.load()
	}
	if err != nil {
		if d != r.refused {
			r.refused = d
			r.log.Error("reload failed; keeping the configuration loaded before", "what", r.what, "err", err)
		}
		return false, err
	}
	r.loaded, r.refused = d, [sha256.Size]byte{}
	r.log.Info("reloaded", "what", r.what, "files", r.files)
	return true, nil
}
