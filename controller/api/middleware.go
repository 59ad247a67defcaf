package api

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/tpf-dev/tpf/controller/apijson"
	"github.com/tpf-dev/tpf/controller/fleet"
)

// authedHandler is a handler that runs for an authenticated principal.
type authedHandler func(w http.ResponseWriter, r *http.Request, p fleet.Principal)

// auth authenticates the bearer token, applies the token's rate limit and
// calls h. Failures answer 401 {"message":"Unauthenticated."}.
func (s *server) auth(h authedHandler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		secret, ok := bearerToken(r)
		if !ok {
			s.writeError(w, r, fleet.ErrUnauthenticated)
			return
		}
		p, err := s.store.Authenticate(r.Context(), secret)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		if !s.limiter.allow(w, p.TokenID.String(), s.cfg.Now()) {
			writeJSON(w, http.StatusTooManyRequests, apijson.Message{Message: "Too Many Attempts."})
			return
		}
		h(w, r, p)
	})
}

func bearerToken(r *http.Request) (string, bool) {
	scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	token = strings.TrimSpace(token)
	return token, token != ""
}

// rateLimiter allows limit requests per window and key, in fixed windows that
// start at a key's first request (as the original service's throttle does).
// Limits are per controller replica.
type rateLimiter struct {
	limit  int
	window time.Duration

	mu      sync.Mutex
	windows map[string]*rateWindow
}

type rateWindow struct {
	start time.Time
	count int
}

func newRateLimiter(limit int, window time.Duration) *rateLimiter {
	return &rateLimiter{limit: limit, window: window, windows: map[string]*rateWindow{}}
}

// allow counts a request for key and sets the X-RateLimit-* headers; when
// the limit is spent it also sets Retry-After and returns false.
func (l *rateLimiter) allow(w http.ResponseWriter, key string, now time.Time) bool {
	if l.limit <= 0 {
		return true
	}
	l.mu.Lock()
	win := l.windows[key]
	if win == nil || now.Sub(win.start) >= l.window {
		if len(l.windows) > 10000 {
			l.sweepLocked(now)
		}
		win = &rateWindow{start: now}
		l.windows[key] = win
	}
	win.count++
	count, reset := win.count, win.start.Add(l.window)
	l.mu.Unlock()

	h := w.Header()
	h.Set("X-RateLimit-Limit", strconv.Itoa(l.limit))
	h.Set("X-RateLimit-Remaining", strconv.Itoa(max(l.limit-count, 0)))
	if count <= l.limit {
		return true
	}
	retry := int(reset.Sub(now).Round(time.Second) / time.Second)
	h.Set("Retry-After", strconv.Itoa(max(retry, 1)))
	h.Set("X-RateLimit-Reset", strconv.FormatInt(reset.Unix(), 10))
	return false
}

// sweepLocked drops finished windows so the map does not grow without bound.
func (l *rateLimiter) sweepLocked(now time.Time) {
	for k, win := range l.windows {
		if now.Sub(win.start) >= l.window {
			delete(l.windows, k)
		}
	}
}

func methodNotAllowed(allow string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Allow", allow)
		writeJSON(w, http.StatusMethodNotAllowed, apijson.Message{Message: "The " + r.Method + " method is not supported for this route. Supported methods: " + allow + "."})
	})
}

func notFound() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusNotFound, apijson.Message{Message: "Not found."})
	})
}

// statusRecorder remembers the status a handler wrote, for the request log.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.ResponseWriter.Write(b)
}

func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// logRequests gives every request an id (X-Request-Id, kept when the client
// sent a sane one) and logs one line when it ends. It never logs headers, so
// tokens stay out of the log.
func (s *server) logRequests(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := s.cfg.Now()
		id := r.Header.Get("X-Request-Id")
		if !validRequestID(id) {
			id = newRequestID()
		}
		w.Header().Set("X-Request-Id", id)
		rec := &statusRecorder{ResponseWriter: w}
		next.ServeHTTP(rec, r.WithContext(withRequestID(r.Context(), id)))
		s.cfg.Logger.LogAttrs(r.Context(), slog.LevelInfo, "request",
			slog.String("request_id", id), slog.String("method", r.Method),
			slog.String("path", r.URL.Path), slog.Int("status", rec.status),
			slog.Duration("duration", s.cfg.Now().Sub(start)))
	})
}

func validRequestID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for _, c := range id {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

func newRequestID() string {
	b := make([]byte, 8)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// recoverPanics turns a handler panic into a 500 and a log line instead of a
// dropped connection.
func recoverPanics(log *slog.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			v := recover()
			if v == nil {
				return
			}
			if err, ok := v.(error); ok && errors.Is(err, http.ErrAbortHandler) {
				panic(v)
			}
			log.Error("handler panic", "request_id", requestID(r.Context()), "panic", v)
			writeJSON(w, http.StatusInternalServerError, apijson.Message{Message: "Server Error."})
		}()
		next.ServeHTTP(w, r)
	})
}
