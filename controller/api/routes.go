package api

import (
	"net/http"

	"github.com/tpf-dev/tpf/shared/syncproto"
)

// routes lists every route of the API. Paths without a method answer 405 for
// the methods they do not serve.
func (s *server) routes(mux *http.ServeMux) {
	const forwards = "/api/routers/{router_id}/transient-forwarding"
	const accesses = "/api/routers/{router_id}/transient-access"

	mux.Handle("GET "+forwards, s.auth(s.handleForwardList()))
	mux.Handle("POST "+forwards, s.auth(s.handleForwardCreate()))
	mux.Handle(forwards, methodNotAllowed("GET, POST"))
	mux.Handle("GET "+forwards+"/{id}", s.auth(s.handleForwardGet()))
	mux.Handle("DELETE "+forwards+"/{id}", s.auth(s.handleForwardRevoke()))
	mux.Handle(forwards+"/{id}", methodNotAllowed("GET, DELETE"))
	mux.Handle("GET "+forwards+"/{id}/connections", s.auth(s.handleConnectionList()))
	mux.Handle(forwards+"/{id}/connections", methodNotAllowed("GET"))

	mux.Handle("GET "+accesses, s.auth(s.handleAccessList()))
	mux.Handle("POST "+accesses, s.auth(s.handleAccessCreate()))
	mux.Handle(accesses, methodNotAllowed("GET, POST"))
	mux.Handle("GET "+accesses+"/{id}", s.auth(s.handleAccessGet()))
	mux.Handle("DELETE "+accesses+"/{id}", s.auth(s.handleAccessRevoke()))
	mux.Handle(accesses+"/{id}", methodNotAllowed("GET, DELETE"))
	mux.Handle("GET "+accesses+"/{id}/connections", s.auth(s.handleAccessConnectionList()))
	mux.Handle(accesses+"/{id}/connections", methodNotAllowed("GET"))

	mux.Handle("GET /api/routers", s.auth(s.handleRouterList()))
	mux.Handle("POST /api/routers", s.auth(s.handleRouterCreate()))
	mux.Handle("/api/routers", methodNotAllowed("GET, POST"))
	mux.Handle("GET /api/routers/{router_id}", s.auth(s.handleRouterGet()))
	mux.Handle("DELETE /api/routers/{router_id}", s.auth(s.handleRouterDelete()))
	mux.Handle("/api/routers/{router_id}", methodNotAllowed("GET, DELETE"))

	mux.Handle("POST /api/routers/{router_id}/agent-token", s.auth(s.handleAgentTokenRotate()))
	mux.Handle("/api/routers/{router_id}/agent-token", methodNotAllowed("POST"))
	mux.Handle("POST /api/routers/{router_id}/install-script", s.auth(s.handleInstallScript()))
	mux.Handle("/api/routers/{router_id}/install-script", methodNotAllowed("POST"))

	mux.Handle("GET /api/tokens", s.auth(s.handleTokenList()))
	mux.Handle("POST /api/tokens", s.auth(s.handleTokenCreate()))
	mux.Handle("/api/tokens", methodNotAllowed("GET, POST"))
	mux.Handle("DELETE /api/tokens/{id}", s.auth(s.handleTokenRevoke()))
	mux.Handle("/api/tokens/{id}", methodNotAllowed("DELETE"))

	mux.Handle("GET /api/regions", s.auth(s.handleRegionList()))
	mux.Handle("/api/regions", methodNotAllowed("GET"))
	mux.Handle("GET /api/audit-log", s.auth(s.handleAuditLog()))
	mux.Handle("/api/audit-log", methodNotAllowed("GET"))
	mux.Handle("GET /api/openapi.json", s.handleOpenAPI())
	mux.Handle("/api/openapi.json", methodNotAllowed("GET"))

	mux.Handle("GET /healthz", handleHealthz())
	mux.Handle("GET /readyz", s.handleReadyz())
	if s.cfg.Metrics != nil {
		mux.Handle("GET /metrics", s.handleMetrics())
	}

	if s.cfg.Agents != nil {
		mux.Handle("GET "+syncproto.AgentPath, s.cfg.Agents)
	}
	if s.cfg.Edges != nil {
		mux.Handle("GET "+syncproto.EdgePath, s.cfg.Edges)
	}

	mux.Handle("/api/", notFound())
	if s.cfg.Web != nil {
		mux.Handle("/", s.cfg.Web)
	} else {
		mux.Handle("/", notFound())
	}
}
