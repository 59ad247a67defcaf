// Package api serves the controller's REST API: the transient-forwarding
// endpoints exactly as the product contract describes them, plus routers,
// regions and the audit log. routes.go lists every route.
//
// Handlers decode, validate, call the store and encode; they hold no state
// beyond the rate limiter.
package api

import (
	"context"
	"log/slog"
	"net/http"
	"net/netip"
	"time"

	"github.com/tpf-dev/tpf/controller/metrics"
	"github.com/tpf-dev/tpf/controller/store"
)

// Defaults for Config's zero values.
const (
	DefaultMinExpireMinutes = 10
	DefaultMaxExpireMinutes = 1440
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

func (c Config) withDefaults() Config {
	if c.MinExpireMinutes == 0 {
		c.MinExpireMinutes = DefaultMinExpireMinutes
	}
	if c.MaxExpireMinutes == 0 {
		c.MaxExpireMinutes = DefaultMaxExpireMinutes
	}
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
	store   *store.Store
	cfg     Config
	limiter *rateLimiter
}

// NewServer returns the API's handler.
func NewServer(st *store.Store, cfg Config) http.Handler {
	cfg = cfg.withDefaults()
	s := &server{store: st, cfg: cfg, limiter: newRateLimiter(cfg.RateLimitPerMinute, time.Minute)}
	mux := http.NewServeMux()
	s.routes(mux)
	return s.logRequests(s.observeRequests(recoverPanics(s.cfg.Logger, mux)))
}

// now is the one clock reading a request uses, in whole UTC seconds like
// every time the API shows.
func (s *server) now() time.Time {
	return s.cfg.Now().UTC().Truncate(time.Second)
}
