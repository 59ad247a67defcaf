// Package api serves the controller's REST API: the transient-forwarding
// endpoints exactly as the product contract describes them, plus routers,
// regions and the audit log. routes.go lists every route.
//
// Handlers decode, validate, call the forwards service (or the store, for
// accounts, tokens, regions and the audit log) and encode; they hold no state
// beyond the rate limiter. The JSON they answer is package apijson's; the
// rules of a new forward are package fleet's (ValidateNewForward), which the
// web views apply too: this package reads the JSON body onto them.
package api

import (
	"context"
	"log/slog"
	"net/http"
	"net/netip"
	"time"

	"github.com/tpf-dev/tpf/controller/fleet"
	"github.com/tpf-dev/tpf/controller/forwards"
	"github.com/tpf-dev/tpf/controller/metrics"
	"github.com/tpf-dev/tpf/controller/store"
)

// Defaults for Config's zero values.
const (
	// DefaultMinExpireMinutes and DefaultMaxExpireMinutes are fleet's
	// defaults for the bounds of expire_after_minutes.
	DefaultMinExpireMinutes = fleet.DefaultMinExpireMinutes
	DefaultMaxExpireMinutes = fleet.DefaultMaxExpireMinutes
	// maxBodyBytes bounds request bodies; the largest valid one is far smaller.
	maxBodyBytes = 64 << 10
	// Forward history pages.
	defaultHistoryLimit = 100
	maxHistoryLimit     = 1000
)

// Config configures the API. The zero value serves the contract's defaults
// with rate limiting off.
type Config struct {
	// MinExpireMinutes and MaxExpireMinutes bound expire_after_minutes;
	// zero means 10 and 1440.
	MinExpireMinutes int
	MaxExpireMinutes int
	// AllowSources are extra ranges accepted as allow_from although not
	// globally reachable (labs, tests); nil accepts only global ranges.
	AllowSources []netip.Prefix
	// RateLimitPerMinute limits requests per API token; zero turns limiting off.
	RateLimitPerMinute int
	// Now reads the clock, once per request; nil means time.Now.
	Now func() time.Time
	// Logger receives a line per request and internal errors; nil discards.
	Logger *slog.Logger
	// Agents serves the agents' websocket endpoint (syncproto.AgentPath);
	// nil leaves it unrouted.
	Agents http.Handler
	// PublicURL is the controller's URL as agents reach it
	// (https://tpf.example.net), written into install scripts; empty means
	// the scheme and host of the request asking for the script.
	PublicURL string
	// Edges serves the edges' websocket endpoint (syncproto.EdgePath); nil
	// leaves it unrouted.
	Edges http.Handler
	// Web serves every path outside /api/ (the web views, package web); nil
	// answers those with the JSON 404 too.
	Web http.Handler
	// Metrics is served at /metrics and records every request's latency;
	// nil leaves /metrics unrouted and records nothing.
	Metrics *metrics.Metrics
	// MetricsToken, when set, is the bearer token /metrics requires
	// (TPF_METRICS_TOKEN); empty serves /metrics to anyone who reaches it,
	// as Prometheus usually scrapes over a private network.
	MetricsToken string
	// Ready is what /readyz checks; nil means the store's database answers
	// within two seconds and its schema has no pending migration. Its
	// error's text is shown to the caller, so it must be safe to show.
	Ready func(ctx context.Context) error
}

// ForwardRules are the rules Config sets for new forwards
// (fleet.ValidateNewForward): give them to the web views too, so that their
// form accepts exactly what the API accepts.
func (c Config) ForwardRules() fleet.ForwardRules {
	return fleet.ForwardRules{
		MinExpireMinutes: c.MinExpireMinutes,
		MaxExpireMinutes: c.MaxExpireMinutes,
		AllowSources:     c.AllowSources,
	}.WithDefaults()
}

func (c Config) withDefaults() Config {
	rules := c.ForwardRules()
	c.MinExpireMinutes, c.MaxExpireMinutes = rules.MinExpireMinutes, rules.MaxExpireMinutes
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// server carries what the handlers close over.
type server struct {
	// svc makes every change to routers and forwards and reads them for an
	// account; store holds the rest (accounts, tokens, regions, audit log).
	svc     *forwards.Service
	store   *store.Store
	cfg     Config
	limiter *rateLimiter
}

// NewServer returns the API's handler over st.
func NewServer(st *store.Store, cfg Config) http.Handler {
	cfg = cfg.withDefaults()
	s := &server{svc: forwards.New(st), store: st, cfg: cfg, limiter: newRateLimiter(cfg.RateLimitPerMinute, time.Minute)}
	mux := http.NewServeMux()
	s.routes(mux)
	return s.logRequests(s.observeRequests(recoverPanics(s.cfg.Logger, mux)))
}

// now is the one clock reading a request uses, in whole UTC seconds like
// every time the API shows.
func (s *server) now() time.Time {
	return s.cfg.Now().UTC().Truncate(time.Second)
}
