package cli

import (
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/tpf-dev/tpf/controller/api"
	"github.com/tpf-dev/tpf/controller/edge"
	"github.com/tpf-dev/tpf/controller/expiry"
	"github.com/tpf-dev/tpf/controller/store"
	"github.com/tpf-dev/tpf/shared/forward"
	"github.com/tpf-dev/tpf/shared/syncproto"
)

// settingDocs is what --help lists; every setting read below appears here.
var settingDocs = []struct{ name, doc string }{
	{"DATABASE_URL", "PostgreSQL URL (required), e.g. postgres://tpf@db/tpf"},
	{"TPF_DB_POOL_SIZE", "database connections per replica, besides one for change notifications (default 16)"},
	{"TPF_DB_LOCK_TIMEOUT", "how long a statement waits for a row lock before its transaction is retried (default 5s)"},
	{"TPF_DB_STATEMENT_TIMEOUT", "how long one statement may run (default 30s)"},
	{"TPF_LISTEN", "HTTP listen address (default 127.0.0.1:8080)"},
	{"TPF_TLS_CERT", "PEM certificate (chain) file: serve HTTPS, so agents and clients connect with TLS (default: plain HTTP, e.g. behind a TLS-terminating proxy)"},
	{"TPF_TLS_KEY", "PEM private key file for TPF_TLS_CERT"},
	{"TPF_PUBLIC_URL", "the controller's URL as agents reach it, written into install scripts, e.g. https://tpf.example.net (default: the scheme and host of the request for the script)"},
	{"TPF_MIN_EXPIRE_MINUTES", "smallest expire_after_minutes accepted (default 10)"},
	{"TPF_MAX_EXPIRE_MINUTES", "largest expire_after_minutes accepted (default 1440)"},
	{"TPF_ALLOW_SOURCES", "extra allow_from ranges accepted although not public, comma-separated CIDRs (labs; default none)"},
	{"TPF_RATE_LIMIT_PER_MINUTE", "API requests per token and minute, per replica; 0 turns limiting off (default 60)"},
	{"TPF_METRICS_TOKEN", "bearer token /metrics requires (default: none; /metrics needs no API token, scrape it over a private network)"},
	{"TPF_PORT_GRACE", "how long an ended forward's port stays held when its router never confirms the removal (default 10m)"},
	{"TPF_EDGE_REGION", "serve: also run the edge (entry point) of this region in-process, for single-node installs (default: none)"},
	{"TPF_EDGE_BIND", "the address the edge's listeners bind (default 0.0.0.0)"},
	{"TPF_EDGE_MAX_CONNECTIONS", "serve: concurrent connections per forward; 0 means no limit (default 16)"},
	{"TPF_EDGE_IDLE_TIMEOUT", "serve: cut a connection idle this long; 0 means never (default 30m)"},
	{"TPF_EDGE_RATE", "serve: bytes per second per connection and direction; 0 means no cap (default 2097152, 16 Mbit/s)"},
	{"TPF_EDGE_TOKEN", "edge: the region's edge token (from `region token`)"},
	{"TPF_CONTROLLER_URL", "edge: the controller's URL, http(s)://host[:port]"},
	{"TPF_CA_FILE", "edge: PEM CA bundle that verifies the controller (default: system roots)"},
	{"TPF_EDGE_KEY_FILE", "the file holding the edge's WireGuard private key, made on first need (default /var/lib/tpf-edge/wireguard.key)"},
	{"TPF_EDGE_STRICT", "edge: close every listener after this long without the controller; 0 keeps serving unexpired forwards (default 0)"},
	{"TPF_LOG_LEVEL", "debug, info, warn or error (default info)"},
	{"TPF_LOG_FORMAT", "text or json (default text)"},
}

// settings are the serve settings, read and checked in one place.
type settings struct {
	databaseURL string
	pool        store.PoolConfig
	listen      string
	tlsCert     string
	tlsKey      string
	api         api.Config
	expiry      expiry.Config
	edgeLimits  syncproto.Limits
	edgeRegion  string
	edge        edge.Config
	logLevel    slog.Level
	logJSON     bool
}

func readSettings(getenv Env) (settings, error) {
	s := settings{
		databaseURL: getenv("DATABASE_URL"),
		listen:      getenv("TPF_LISTEN"),
	}
	if s.databaseURL == "" {
		return s, fmt.Errorf("DATABASE_URL is not set: point it at the PostgreSQL database, e.g. postgres://tpf@localhost/tpf")
	}
	if s.listen == "" {
		s.listen = "127.0.0.1:8080"
	}
	s.tlsCert, s.tlsKey = getenv("TPF_TLS_CERT"), getenv("TPF_TLS_KEY")
	if (s.tlsCert == "") != (s.tlsKey == "") {
		return s, fmt.Errorf("TPF_TLS_CERT and TPF_TLS_KEY go together: set both to serve HTTPS, or neither")
	}
	if s.tlsCert != "" {
		if _, err := tls.LoadX509KeyPair(s.tlsCert, s.tlsKey); err != nil {
			return s, fmt.Errorf("TPF_TLS_CERT/TPF_TLS_KEY: %w", err)
		}
	}
	if v := getenv("TPF_PUBLIC_URL"); v != "" {
		u, err := url.Parse(v)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
			return s, fmt.Errorf("TPF_PUBLIC_URL=%q: want the controller's URL as agents reach it, e.g. https://tpf.example.net", v)
		}
		s.api.PublicURL = v
	}
	var err error
	if s.pool, err = poolSettings(getenv); err != nil {
		return s, err
	}
	if s.api.MinExpireMinutes, err = intSetting(getenv, "TPF_MIN_EXPIRE_MINUTES", api.DefaultMinExpireMinutes, 1, 525600); err != nil {
		return s, err
	}
	if s.api.MaxExpireMinutes, err = intSetting(getenv, "TPF_MAX_EXPIRE_MINUTES", api.DefaultMaxExpireMinutes, 1, 525600); err != nil {
		return s, err
	}
	if s.api.MinExpireMinutes > s.api.MaxExpireMinutes {
		return s, fmt.Errorf("TPF_MIN_EXPIRE_MINUTES (%d) is above TPF_MAX_EXPIRE_MINUTES (%d)", s.api.MinExpireMinutes, s.api.MaxExpireMinutes)
	}
	if s.api.AllowSources, err = prefixesSetting(getenv, "TPF_ALLOW_SOURCES"); err != nil {
		return s, err
	}
	if s.api.RateLimitPerMinute, err = intSetting(getenv, "TPF_RATE_LIMIT_PER_MINUTE", 60, 0, 1_000_000); err != nil {
		return s, err
	}
	s.api.MetricsToken = getenv("TPF_METRICS_TOKEN")
	if s.expiry.PortGrace, err = durationSetting(getenv, "TPF_PORT_GRACE", expiry.DefaultPortGrace); err != nil {
		return s, err
	}
	if s.logLevel, s.logJSON, err = logSettings(getenv); err != nil {
		return s, err
	}
	if s.edgeLimits.MaxConnections, err = intSetting(getenv, "TPF_EDGE_MAX_CONNECTIONS", 16, 0, 1_000_000); err != nil {
		return s, err
	}
	idle, err := durationOrZero(getenv, "TPF_EDGE_IDLE_TIMEOUT", 30*time.Minute)
	if err != nil {
		return s, err
	}
	s.edgeLimits.IdleSeconds = int(idle / time.Second)
	rate, err := intSetting(getenv, "TPF_EDGE_RATE", 2<<20, 0, 1<<40)
	if err != nil {
		return s, err
	}
	s.edgeLimits.BytesPerSecond = int64(rate)
	if s.edgeRegion = getenv("TPF_EDGE_REGION"); s.edgeRegion != "" {
		if s.edge, err = edgeConfig(getenv, "0.0.0.0"); err != nil {
			return s, err
		}
	}
	return s, nil
}

// durationOrZero reads a duration where 0 means "off".
func durationOrZero(getenv Env, name string, def time.Duration) (time.Duration, error) {
	if getenv(name) == "0" {
		return 0, nil
	}
	return durationSetting(getenv, name, def)
}

// logSettings reads TPF_LOG_LEVEL and TPF_LOG_FORMAT.
func logSettings(getenv Env) (level slog.Level, json bool, err error) {
	switch v := strings.ToLower(getenv("TPF_LOG_LEVEL")); v {
	case "", "info":
		level = slog.LevelInfo
	case "debug":
		level = slog.LevelDebug
	case "warn":
		level = slog.LevelWarn
	case "error":
		level = slog.LevelError
	default:
		return 0, false, fmt.Errorf("TPF_LOG_LEVEL=%q: use debug, info, warn or error", v)
	}
	switch v := getenv("TPF_LOG_FORMAT"); v {
	case "", "text":
	case "json":
		json = true
	default:
		return 0, false, fmt.Errorf("TPF_LOG_FORMAT=%q: use text or json", v)
	}
	return level, json, nil
}

func newLogger(w io.Writer, level slog.Level, json bool) *slog.Logger {
	opts := &slog.HandlerOptions{Level: level}
	if json {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

func (s settings) logger(w io.Writer) *slog.Logger { return newLogger(w, s.logLevel, s.logJSON) }

func intSetting(getenv Env, name string, def, lo, hi int) (int, error) {
	v := getenv(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < lo || n > hi {
		return 0, fmt.Errorf("%s=%q: want a whole number from %d to %d", name, v, lo, hi)
	}
	return n, nil
}

func durationSetting(getenv Env, name string, def time.Duration) (time.Duration, error) {
	v := getenv(name)
	if v == "" {
		return def, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("%s=%q: want a positive duration such as 10m or 1h", name, v)
	}
	return d, nil
}

func prefixesSetting(getenv Env, name string) ([]netip.Prefix, error) {
	p, err := forward.ParsePrefixes(getenv(name))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return p, nil
}

// poolSettings reads the database pool's size and timeouts.
func poolSettings(getenv Env) (store.PoolConfig, error) {
	var c store.PoolConfig
	size, err := intSetting(getenv, "TPF_DB_POOL_SIZE", store.DefaultMaxConns, 1, 1000)
	if err != nil {
		return c, err
	}
	c.MaxConns = int32(size)
	if c.LockTimeout, err = durationSetting(getenv, "TPF_DB_LOCK_TIMEOUT", store.DefaultLockTimeout); err != nil {
		return c, err
	}
	if c.StatementTimeout, err = durationSetting(getenv, "TPF_DB_STATEMENT_TIMEOUT", store.DefaultStatementTimeout); err != nil {
		return c, err
	}
	return c, nil
}
