package dashboard

import (
	"bytes"
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"

	"github.com/kasync/kasync/internal/nodestatus"
)

// RefreshInterval is how often the page's script fetches status.json.
const RefreshInterval = 2000 // milliseconds, as the script takes it

// Source gives the dashboard its snapshots: a node (node.Node) or, in tests, a fake.
type Source interface {
	Status(ctx context.Context) nodestatus.Status
}

// SourceFunc is a function that is a Source.
type SourceFunc func(ctx context.Context) nodestatus.Status

// Status implements Source.
func (f SourceFunc) Status(ctx context.Context) nodestatus.Status { return f(ctx) }

// Options configure the dashboard.
type Options struct {
	Source Source       // required
	Logger *slog.Logger // default slog.Default()
}

var (
	//go:embed templates/page.html
	pageHTML string
	//go:embed static
	staticFS embed.FS
)

// contentSecurityPolicy lets the page load its own script, styles and icon and
// nothing else: no inline script, no other origin.
const contentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; " +
	"base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// handler serves the dashboard.
type handler struct {
	src  Source
	log  *slog.Logger
	page *template.Template
	mux  *http.ServeMux
}

// New returns the dashboard's handler (the routes are in the package doc). Mount it at
// the root of a mux: its routes are absolute, and it answers 404 for any other path.
func New(opts Options) (http.Handler, error) {
	if opts.Source == nil {
		return nil, errors.New("dashboard: Options.Source is nil; give the node (or a SourceFunc)")
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	page, err := template.New("page").Funcs(funcs).Parse(pageHTML)
	if err != nil {
		return nil, fmt.Errorf("dashboard: parse the page template: %w", err)
	}
	static, err := fs.Sub(staticFS, "static")
	if err != nil {
		return nil, fmt.Errorf("dashboard: embedded assets: %w", err)
	}
	h := &handler{src: opts.Source, log: opts.Logger, page: page, mux: http.NewServeMux()}
	h.mux.HandleFunc("GET /{$}", h.servePage)
	h.mux.HandleFunc("GET /status.json", h.serveJSON)
	assets := http.StripPrefix("/assets/", http.FileServerFS(static))
	h.mux.Handle("GET /assets/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-cache")
		assets.ServeHTTP(w, r)
	}))
	return h, nil
}

// ServeHTTP implements http.Handler.
func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hdr := w.Header()
	hdr.Set("Content-Security-Policy", contentSecurityPolicy)
	hdr.Set("X-Content-Type-Options", "nosniff")
	hdr.Set("Referrer-Policy", "no-referrer")
	h.mux.ServeHTTP(w, r)
}

// pageData is what the page template renders.
type pageData struct {
	nodestatus.Status
	RefreshMS  int
	LatestRead bool // the latest dead letters were read (nil Latest: they were not)
}

func (h *handler) servePage(w http.ResponseWriter, r *http.Request) {
	st := h.src.Status(r.Context())
	var buf bytes.Buffer // a template error must not leave half a page behind
	if err := h.page.Execute(&buf, pageData{Status: st, RefreshMS: RefreshInterval, LatestRead: st.DeadLetters.Latest != nil}); err != nil {
		h.log.Error("dashboard: rendering the page failed", "err", err)
		http.Error(w, "dashboard: rendering the page failed; see the node's log", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write(buf.Bytes())
}

func (h *handler) serveJSON(w http.ResponseWriter, r *http.Request) {
	body, err := json.Marshal(h.src.Status(r.Context()))
	if err != nil {
		h.log.Error("dashboard: encoding the status failed", "err", err)
		http.Error(w, "dashboard: encoding the status failed; see the node's log", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write(append(body, '\n'))
}
