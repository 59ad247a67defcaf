package api

import (
	"crypto/subtle"
	"net/http"

	"github.com/tpf-dev/tpf/controller/fleet"
)

// handleMetrics serves Config.Metrics in the Prometheus text format. It does
// not take API tokens: scrapes usually come over a private network. With
// Config.MetricsToken set it requires that bearer token instead.
func (s *server) handleMetrics() http.Handler {
	h := s.cfg.Metrics.Handler()
	if s.cfg.MetricsToken == "" {
		return h
	}
	want := []byte(s.cfg.MetricsToken)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, ok := bearerToken(r)
		if !ok || subtle.ConstantTimeCompare([]byte(got), want) != 1 {
			s.writeError(w, r, fleet.ErrUnauthenticated)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// observeRequests records each request's latency in Config.Metrics by
// method, route pattern and status code. It must run outside the ServeMux
// and hand it the very request it reads afterwards: the mux sets r.Pattern
// on the request it routes. Websocket links (101) are not recorded, since
// their duration is the link's lifetime.
func (s *server) observeRequests(next http.Handler) http.Handler {
	if s.cfg.Metrics == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := s.cfg.Now()
		rec := &statusRecorder{ResponseWriter: w}
		next.ServeHTTP(rec, r)
		code := rec.status
		switch code {
		case http.StatusSwitchingProtocols:
			return
		case 0:
			code = http.StatusOK // nothing written: net/http answers 200
		}
		s.cfg.Metrics.ObserveRequest(r.Method, r.Pattern, code, s.cfg.Now().Sub(start))
	})
}
