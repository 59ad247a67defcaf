package web

import (
	"errors"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/tpf-dev/tpf/controller/fleet"
)

// Transient access on the router page: the "Log in to the router" form
// (fleet.ValidateNewAccess's rules and messages, as the API's POST
// …/transient-access), the router's live accesses with a revoke each, and
// the page that answers a create with the login's password, shown once:
// it is never stored, put in a URL or redirected to, and that page is
// no-store.

const (
	// defaultAccessMinutes is what the access form offers: an hour.
	defaultAccessMinutes = 60
	// maxLiveAccesses bounds the router page's list of live accesses.
	maxLiveAccesses = 100
)

// accessRow is one live access on the router page.
type accessRow struct {
	ID string
	// Type is fleet.ServiceWinbox or ServiceSSH, TypeText as people read it.
	Type, TypeText string
	Username       string
	ReadOnly       bool
	// Address is the entry point and port: what WinBox or ssh connects to.
	Address   string
	AllowFrom string
	Status    string
	CreatedAt time.Time
	ExpiresAt time.Time
	// Remaining is the countdown as first shown, in whole minutes (see
	// forwardRow.Remaining).
	Remaining   string
	RouterError string
	EdgeError   string
	// WaitsForTunnel: the access is pending and the router's managed
	// tunnel is not up.
	WaitsForTunnel bool
	Active         int
	// Highlight: the access the page was asked to point out
	// (?access-opened=ID).
	Highlight bool
}

// serviceText is how the pages name an access's service.
func serviceText(service string) string {
	if service == fleet.ServiceWinbox {
		return "WinBox"
	}
	return "SSH"
}

func toAccessRow(a fleet.Access, now time.Time) accessRow {
	row := accessRow{
		ID: a.ID.String(), Type: a.Service, TypeText: serviceText(a.Service), Username: a.Username, ReadOnly: a.ReadOnly,
		Address: net.JoinHostPort(a.EntryPoint, strconv.Itoa(int(a.Port))), AllowFrom: a.AllowFrom.String(),
		Status: string(a.StatusAt(now)), CreatedAt: a.CreatedAt, ExpiresAt: a.ExpiresAt,
		RouterError: a.RouterError, EdgeError: a.EdgeError, Active: a.ConnectionsActive,
	}
	row.Remaining = remaining(a.ExpiresAt, now)
	return row
}

// remaining is the countdown to expires as a page first shows it: whole
// minutes, so that the page's fragment stays the same between polls (the
// script counts the seconds).
func remaining(expires, now time.Time) string {
	left := expires.Sub(now)
	switch {
	case left <= 0:
		return "expired"
	case left < time.Minute:
		return "under 1m"
	}
	return countdown(left.Truncate(time.Minute))
}

// freshAccessForm is the access form as the router page first shows it: an
// hour, from the visitor's own address.
func (v *views) freshAccessForm(r *http.Request) createForm {
	return createForm{Values: map[string]string{
		fleet.FieldExpireAfterMinutes: strconv.Itoa(defaultAccessMinutes),
		fleet.FieldAllowFrom:          v.visitorSource(r),
	}}
}

// visitorSource is the allow_from the access form suggests: the IPv4
// address the request came from, as a /32, when the rules accept it as a
// source; else empty. Behind a reverse proxy the client is in
// X-Forwarded-For (or X-Real-IP): those headers are taken on trust, which
// is safe here since the value only fills a field of the sender's own form,
// which the rules check again on submit.
func (v *views) visitorSource(r *http.Request) string {
	var candidates []string
	for _, h := range r.Header.Values("X-Forwarded-For") {
		candidates = append(candidates, strings.Split(h, ",")...)
	}
	candidates = append(candidates, r.Header.Get("X-Real-IP"))
	if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		candidates = append(candidates, host)
	}
	for _, c := range candidates {
		addr, err := netip.ParseAddr(strings.TrimSpace(c))
		if err != nil {
			continue
		}
		addr = addr.Unmap()
		if !addr.Is4() {
			continue
		}
		source := netip.PrefixFrom(addr, 32).String()
		_, problems := fleet.ValidateNewAccess(fleet.NewAccessInput{Type: fleet.ServiceSSH,
			ExpireAfterMinutes: strconv.Itoa(v.cfg.Forwards.MinExpireMinutes), AllowFrom: source}, v.cfg.Forwards)
		if problems.Len() == 0 {
			return source
		}
	}
	return ""
}

// handleAccessCreate opens a transient access from the router page's form
// (forwards.Service.CreateAccess, as the API's POST …/transient-access) and
// answers the page with its password, this once. A failure shows the
// router page again with the rules' messages next to the fields (422).
// The type comes from the button pressed: "Open WinBox" or "Open SSH".
func (v *views) handleAccessCreate(w http.ResponseWriter, r *http.Request, in signedIn) {
	// An unknown router is a 404 even when the form is also wrong.
	rt, ok := v.pathRouter(w, r, in)
	if !ok {
		return
	}
	ctx := r.Context()
	form := newCreateForm()
	value := func(name string) string { return form.value(r, name) }
	input := fleet.NewAccessInput{
		Type:               value(fleet.FieldType),
		ExpireAfterMinutes: value(fleet.FieldExpireAfterMinutes),
		AllowFrom:          value(fleet.FieldAllowFrom),
		ReadOnly:           r.PostForm.Get(fleet.FieldReadOnly) != "",
	}
	if input.ReadOnly {
		form.Values[fleet.FieldReadOnly] = "on"
	}
	na, problems := fleet.ValidateNewAccess(input, v.cfg.Forwards)
	if form.refuse(problems) {
		v.renderRouter(w, r, in, rt.ID, http.StatusUnprocessableEntity, routerForms{access: form})
		return
	}
	now := v.now()
	a, err := v.svc.CreateAccess(ctx, in.principal, rt.ID, na, now)
	if errors.Is(err, fleet.ErrPortsExhausted) {
		form.General = "No free port is left at this router's entry point; try again when other forwards or logins have ended."
		v.renderRouter(w, r, in, rt.ID, http.StatusServiceUnavailable, routerForms{access: form})
		return
	}
	if err != nil {
		v.writeError(w, r, err)
		return
	}
	body := accessBody{
		RouterID: rt.ID.String(), RouterName: rt.Name, Row: toAccessRow(a, now),
		EntryPoint: a.EntryPoint, Port: int(a.Port), Password: a.Password, SSHCommand: a.SSHCommand(),
	}
	body.WaitsForTunnel = rt.TunnelManaged && rt.Tunnel.State(now) != fleet.TunnelUp
	// render answers no-store, as every page. The address bar gets the
	// router's page with the access marked, so that reloading shows that
	// instead of posting again; it differs from the page's links to the
	// router, which would otherwise only scroll.
	v.render(w, r, http.StatusCreated, "access", page{Title: body.Row.TypeText + " access to " + rt.Name, Nav: "router",
		Session: in.view(), ReplaceURL: "/routers/" + rt.ID.String() + "?access-opened=" + body.Row.ID + "#a-" + body.Row.ID, Body: body})
}

// accessBody is the page that answers a create: how to log in, with the
// password, shown once.
type accessBody struct {
	RouterID, RouterName string
	Row                  accessRow
	EntryPoint           string
	Port                 int
	Password             string
	// SSHCommand is the command line that logs in; empty for WinBox.
	SSHCommand     string
	WaitsForTunnel bool
}

// handleAccessRevoke ends an access early, like the API's DELETE: the
// router's agent removes the user and the edge cuts its connections.
// Revoking one that already ended is harmless.
func (v *views) handleAccessRevoke(w http.ResponseWriter, r *http.Request, in signedIn) {
	routerID, ok1 := pathID(r, "router_id")
	id, ok2 := pathID(r, "id")
	if !ok1 || !ok2 {
		v.writeError(w, r, fleet.ErrNotFound)
		return
	}
	if err := v.svc.RevokeAccess(r.Context(), in.principal, routerID, id, v.now()); err != nil {
		v.writeError(w, r, err)
		return
	}
	http.Redirect(w, r, "/routers/"+routerID.String()+"?access-revoked="+id.String()+"#access", http.StatusSeeOther)
}

// accessRevokedBanner says what revoking access id did, for the router
// page that a revoke redirects to; nil when id names no access of the
// router.
func (v *views) accessRevokedBanner(r *http.Request, account, router uuid.UUID, id string) *banner {
	aid, err := uuid.Parse(id)
	if err != nil {
		return nil
	}
	a, err := v.svc.Access(r.Context(), account, router, aid)
	if err != nil || a.RevokedAt == nil {
		return nil
	}
	return &banner{Kind: "info", Title: "Access revoked.",
		Message: "The " + serviceText(a.Service) + " login " + a.Username + " is ended: the router removes the user and its sessions are cut."}
}
