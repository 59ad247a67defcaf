// Package web serves the controller's fleet views: server-rendered pages
// (html/template, plain CSS, a little JavaScript for countdowns, instant
// filtering and polling) behind the same accounts and tokens as the API.
// An operator signs in with an API token and gets a session cookie; every
// form carries a per-session CSRF token.
//
//   - /            the fleet: every router of the account with its agent's
//     state, its management tunnel's, revisions, live forwards and last
//     error; totals, filter, search
//   - /routers/{id} one router: its tunnel, its forwards with countdowns, who
//     created them, their connections, a 24-hour timeline; create and revoke
//     forwards; open a WinBox or SSH login to the router itself (a
//     transient access, its password shown once on the page that answers
//     the form) and revoke it
//   - /routers/new  add a router; the answer shows its install script once
//   - /routers/{id}/agent-token, /routers/{id}/delete  confirm, then rotate
//     the router's agent token (showing a fresh install script once) or
//     delete the router
//   - /tokens       the account's API tokens: issue (the secret shown once)
//     and revoke, after a confirmation
//   - /audit        the account's audit log, newest first, paged (?before=ID)
//
// Every admin action goes through the same code the API's does
// (forwards.Service for routers, forwards and accesses, the store for tokens
// and the audit log, package install for scripts). Pages that show a secret
// (an install script, an API token, an access's password) are answers to a
// POST, never stored or redirected to: showing it again means issuing a new
// one.
//
// The pages poll fragments of themselves (?fragment=live) to stay current
// without reloading. The API serves this handler for every path outside
// /api/ (api.Config.Web). The package reads and writes through the store and
// applies the API's own rules to new forwards and accesses
// (fleet.ValidateNewForward, ValidateNewAccess, with the operator's
// Config.Forwards); it must not import the API, the hub or the edge.
package web

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/tpf-dev/tpf/controller/fleet"
	"github.com/tpf-dev/tpf/controller/forwards"
	"github.com/tpf-dev/tpf/controller/store"
)

// Defaults for Config's zero values.
const (
	DefaultSessionLifetime = 12 * time.Hour
	DefaultFleetPoll       = 5 * time.Second
	DefaultRouterPoll      = 2 * time.Second
)

// Config configures the web views. The zero value works: the contract's
// forward rules, real time, 12-hour sessions.
type Config struct {
	// Forwards are the rules the create forms of forwards and accesses
	// apply (expiry bounds, extra allowed sources); give it the API's
	// (api.Config.ForwardRules), so the forms accept exactly what the API
	// accepts. The zero value is the contract's rules.
	Forwards fleet.ForwardRules
	// Now reads the clock, once per request; nil means time.Now.
	Now func() time.Time
	// Logger receives internal errors; nil discards.
	Logger *slog.Logger
	// SessionLifetime is how long a sign-in lasts; zero means 12 hours.
	SessionLifetime time.Duration
	// FleetPoll and RouterPoll are how often the pages refresh their live
	// parts; zero means 5 and 2 seconds.
	FleetPoll  time.Duration
	RouterPoll time.Duration
	// PublicURL is the controller's URL as agents reach it, written into
	// install scripts (give it the API's, TPF_PUBLIC_URL); empty means the
	// scheme and host each request came in with, as the API does.
	PublicURL string
}

func (c Config) withDefaults() Config {
	c.Forwards = c.Forwards.WithDefaults()
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.SessionLifetime == 0 {
		c.SessionLifetime = DefaultSessionLifetime
	}
	if c.FleetPoll == 0 {
		c.FleetPoll = DefaultFleetPoll
	}
	if c.RouterPoll == 0 {
		c.RouterPoll = DefaultRouterPoll
	}
	return c
}

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// views carries what the handlers close over.
type views struct {
	svc   *forwards.Service
	store *store.Store
	cfg   Config
	pages map[string]*template.Template
	// assetVersion changes with the embedded static files, so browsers
	// may cache them for long.
	assetVersion string
}

// New returns the web views' handler. Sessions live in the store's
// database: they survive restarts, and every replica serves every browser.
func New(st *store.Store, cfg Config) http.Handler {
	cfg = cfg.withDefaults()
	v := &views{svc: forwards.New(st), store: st, cfg: cfg, assetVersion: hashFS(staticFS)}
	v.pages = parsePages(v.funcs())
	mux := http.NewServeMux()
	v.routes(mux)
	// Browsers' cross-origin POSTs are refused outright (Sec-Fetch-Site,
	// Origin), and each form also carries the session's CSRF token.
	cop := http.NewCrossOriginProtection()
	cop.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v.renderError(w, r, http.StatusForbidden, "Cross-origin request refused.")
	}))
	return securityHeaders(cop.Handler(mux))
}

// routes lists every route of the web views.
func (v *views) routes(mux *http.ServeMux) {
	mux.Handle("GET /signin", http.HandlerFunc(v.handleSignInForm))
	mux.Handle("POST /signin", http.HandlerFunc(v.handleSignIn))
	mux.Handle("POST /signout", v.auth(v.handleSignOut))

	mux.Handle("GET /{$}", v.auth(v.handleFleet))
	mux.Handle("GET /routers/{router_id}", v.auth(v.handleRouter))
	mux.Handle("POST /routers/{router_id}/forwards", v.auth(v.handleForwardCreate))
	mux.Handle("POST /routers/{router_id}/forwards/{id}/revoke", v.auth(v.handleForwardRevoke))
	mux.Handle("POST /routers/{router_id}/access", v.auth(v.handleAccessCreate))
	mux.Handle("POST /routers/{router_id}/access/{id}/revoke", v.auth(v.handleAccessRevoke))

	mux.Handle("GET /routers/new", v.auth(v.handleRouterNew))
	mux.Handle("POST /routers", v.auth(v.handleRouterCreate))
	mux.Handle("GET /routers/{router_id}/agent-token", v.auth(v.handleRotateConfirm))
	mux.Handle("POST /routers/{router_id}/agent-token", v.auth(v.handleRotate))
	mux.Handle("GET /routers/{router_id}/delete", v.auth(v.handleRouterDeleteConfirm))
	mux.Handle("POST /routers/{router_id}/delete", v.auth(v.handleRouterDelete))

	mux.Handle("GET /tokens", v.auth(v.handleTokens))
	mux.Handle("POST /tokens", v.auth(v.handleTokenIssue))
	mux.Handle("GET /tokens/{id}/revoke", v.auth(v.handleTokenRevokeConfirm))
	mux.Handle("POST /tokens/{id}/revoke", v.auth(v.handleTokenRevoke))

	mux.Handle("GET /audit", v.auth(v.handleAudit))

	mux.Handle("GET /static/", v.handleStatic())
	mux.Handle("/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v.renderError(w, r, http.StatusNotFound, "There is nothing here.")
	}))
}

// securityHeaders sets the headers every answer carries: a content security
// policy that admits only this origin's scripts and styles (no inline
// script), no framing, no sniffing, no referrer leaving the site.
func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
		h.Set("X-Frame-Options", "DENY")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "same-origin")
		next.ServeHTTP(w, r)
	})
}

// now is the one clock reading a request uses, in whole UTC seconds.
func (v *views) now() time.Time {
	return v.cfg.Now().UTC().Truncate(time.Second)
}

func (v *views) handleStatic() http.Handler {
	sub, _ := fs.Sub(staticFS, "static")
	files := http.StripPrefix("/static/", http.FileServerFS(sub))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/") { // no directory listings
			v.renderError(w, r, http.StatusNotFound, "There is nothing here.")
			return
		}
		if r.URL.Query().Get("v") == v.assetVersion {
			w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
		} else {
			w.Header().Set("Cache-Control", "no-cache")
		}
		files.ServeHTTP(w, r)
	})
}

func hashFS(fsys fs.FS) string {
	h := sha256.New()
	fs.WalkDir(fsys, ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(fsys, path)
		h.Write([]byte(path))
		h.Write(b)
		return err
	})
	return hex.EncodeToString(h.Sum(nil))[:12]
}

// parsePages parses each page with the shared layout.
func parsePages(funcs template.FuncMap) map[string]*template.Template {
	pages := map[string]*template.Template{}
	for _, name := range []string{"signin", "fleet", "router", "error", "router_new", "install", "confirm", "tokens", "audit", "access"} {
		t := template.New(name).Funcs(funcs)
		pages[name] = template.Must(t.ParseFS(templateFS, "templates/layout.html", "templates/"+name+".html"))
	}
	return pages
}

// page is what every page's layout reads.
type page struct {
	Title string
	// Nav is which nav entry is current: "fleet", "router", "add",
	// "tokens" or "audit".
	Nav     string
	Session *sessionView
	Asset   string // the static files' version
	// ServerNow lets the page's script correct for the browser's clock.
	ServerNow string
	// ReplaceURL, on a page that answers a POST and shows a secret, is the
	// URL the page's script puts in the address bar, so that reloading or
	// coming back loads that page instead of posting again (and so issuing
	// another secret).
	ReplaceURL string
	Body       any
}

// sessionView is the signed-in principal as the layout shows it.
type sessionView struct {
	Account string
	Token   string
	CSRF    string
}

// render writes the named page, or only its live part when the request asks
// for ?fragment=live (the pages' polling). A fragment's ETag is a hash of
// the data it shows, so an unchanged one answers 304 without being rendered:
// polling a page nobody changed costs its queries only.
func (v *views) render(w http.ResponseWriter, r *http.Request, code int, name string, p page) {
	p.Asset, p.ServerNow = v.assetVersion, v.now().Format(time.RFC3339)
	tmpl := "layout"
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	if r.URL.Query().Get("fragment") == "live" && code == http.StatusOK {
		tmpl = "live"
		etag, err := fingerprint(name, v.assetVersion, p.Body)
		if err != nil {
			v.internalError(w, r, err)
			return
		}
		h.Set("ETag", etag)
		h.Set("Cache-Control", "private, no-cache")
		if r.Header.Get("If-None-Match") == etag {
			w.WriteHeader(http.StatusNotModified)
			return
		}
	}
	var buf bytes.Buffer
	if err := v.pages[name].ExecuteTemplate(&buf, tmpl, p); err != nil {
		h.Del("ETag")
		v.internalError(w, r, err)
		return
	}
	h.Set("Content-Type", "text/html; charset=utf-8")
	writeBody(w, r, code, buf.Bytes())
}

// fingerprint is a weak ETag naming what a page's live part shows.
func fingerprint(parts ...any) (string, error) {
	sum := sha256.New()
	if err := json.NewEncoder(sum).Encode(parts); err != nil {
		return "", err
	}
	return `W/"` + hex.EncodeToString(sum.Sum(nil)[:16]) + `"`, nil
}

// writeBody writes body with code, gzipped when the client takes it and the
// body is worth it (a fleet page of 1,000 routers shrinks about tenfold).
func writeBody(w http.ResponseWriter, r *http.Request, code int, body []byte) {
	h := w.Header()
	h.Add("Vary", "Accept-Encoding")
	if len(body) < 1024 || !acceptsGzip(r) {
		w.WriteHeader(code)
		w.Write(body)
		return
	}
	h.Set("Content-Encoding", "gzip")
	w.WriteHeader(code)
	zw, _ := gzip.NewWriterLevel(w, gzip.BestSpeed)
	zw.Write(body)
	zw.Close()
}

func acceptsGzip(r *http.Request) bool {
	for _, part := range strings.Split(r.Header.Get("Accept-Encoding"), ",") {
		coding, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		if strings.EqualFold(strings.TrimSpace(coding), "gzip") && strings.ReplaceAll(params, " ", "") != "q=0" {
			return true
		}
	}
	return false
}

// renderError answers with the error page.
func (v *views) renderError(w http.ResponseWriter, r *http.Request, code int, msg string) {
	var buf bytes.Buffer
	err := v.pages["error"].ExecuteTemplate(&buf, "layout", page{Title: http.StatusText(code), Asset: v.assetVersion, ServerNow: v.now().Format(time.RFC3339),
		Body: struct {
			Code    int
			Message string
		}{code, msg}})
	if err != nil {
		http.Error(w, msg, code)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	w.Write(buf.Bytes())
}

// writeError answers err: not found for ErrNotFound (also another account's
// things), a sign-in for ErrUnauthenticated, else a logged internal error.
func (v *views) writeError(w http.ResponseWriter, r *http.Request, err error) {
	switch {
	case errors.Is(err, fleet.ErrNotFound):
		v.renderError(w, r, http.StatusNotFound, "There is no such router, forward or token in this account.")
	case errors.Is(err, fleet.ErrUnauthenticated):
		v.toSignIn(w, r)
	default:
		v.internalError(w, r, err)
	}
}

func (v *views) internalError(w http.ResponseWriter, r *http.Request, err error) {
	v.cfg.Logger.LogAttrs(r.Context(), slog.LevelError, "web: internal error",
		slog.String("method", r.Method), slog.String("path", r.URL.Path), slog.String("err", err.Error()))
	v.renderError(w, r, http.StatusInternalServerError, "Something went wrong on our side; the error is logged.")
}

// localPath reports whether s is a path on this site, safe to redirect to
// after sign-in (no scheme, no host, no //evil.example).
func localPath(s string) bool {
	return strings.HasPrefix(s, "/") && !strings.HasPrefix(s, "//") && !strings.HasPrefix(s, `/\`) &&
		!strings.ContainsAny(s, "\r\n\t")
}
