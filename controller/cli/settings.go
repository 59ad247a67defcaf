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
	"github.com/tpf-dev/tpf/controller/expiry"
	"github.com/tpf-dev/tpf/shared/forward"
)

// settingDocs is what --help lists; every setting read below appears here.
var settingDocs = []struct{ name, doc string }{
	{"DATABASE_URL", "PostgreSQL URL (required), e.g. postgres://tpf@db/tpf"},
	{"TPF_LISTEN", "HTTP listen address (default 127.0.0.1:8080)"},
	{"TPF_TLS_CERT", "PEM certificate (chain) file: serve HTTPS, so agents and clients connect with TLS (default: plain HTTP, e.g. behind a TLS-terminating proxy)"},
	{"TPF_TLS_KEY", "PEM private key file for TPF_TLS_CERT"},
	{"TPF_PUBLIC_URL", "the controller's URL as agents reach it, written into install scripts, e.g. https://tpf.example.net (default: the scheme and host of the request for the script)"},
	{"TPF_MIN_EXPIRE_MINUTES", "smallest expire_after_minutes accepted (default 10)"},
	{"TPF_MAX_EXPIRE_MINUTES", "largest expire_after_minutes accepted (default 1440)"},
	{"TPF_ALLOW_SOURCES", "extra allow_from ranges accepted although not public, comma-separated CIDRs (labs; default none)"},
	{"TPF_RATE_LIMIT_PER_MINUTE", "API requests per token and minute, per replica; 0 turns limiting off (default 60)"},
	{"TPF_PORT_GRACE", "how long an ended forward's port stays held when its router never confirms the removal (default 10m)"},
	{"TPF_LOG_LEVEL", "debug, info, warn or error (default info)"},
	{"TPF_LOG_FORMAT", "text or json (default text)"},
}

// settings are the serve settings, read and checked in one place.
type settings struct {
	databaseURL string
	listen      string
	tlsCert     string
	tlsKey      string
	api         api.Config
	expiry      expiry.Config
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
	if s.expiry.PortGrace, err = durationSetting(getenv, "TPF_PORT_GRACE", expiry.DefaultPortGrace); err != nil {
		return s, err
	}
	if s.logLevel, s.logJSON, err = logSettings(getenv); err != nil {
		return s, err
	}
	return s, nil
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
