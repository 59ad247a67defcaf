package web

import (
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/tpf-dev/tpf/controller/fleet"
	"github.com/tpf-dev/tpf/controller/store"
)

const (
	// window is how far back the router page looks.
	window = 24 * time.Hour
	// maxRecentForwards and maxRecentConnections bound the router page's
	// reads; live forwards always come first.
	maxRecentForwards    = 500
	maxRecentConnections = 2000
	// connectionsPerForward is how many connections a forward's row lists.
	connectionsPerForward = 5
)

// forwardRow is one forward on the router page.
type forwardRow struct {
	ID         string
	Address    string // entry point and port: what users connect to
	Dst        string
	AllowFrom  string
	Masquerade bool
	Status     string
	CreatedAt  time.Time
	CreatedBy  string
	ExpiresAt  time.Time
	// Remaining is the countdown as first shown, in whole minutes so the
	// fragment stays the same between polls; the script counts seconds.
	Remaining   string
	EndedAt     *time.Time
	Ended       string // "revoked by token ci", "expired"
	RouterError string
	EdgeError   string
	// WaitsForTunnel: the forward is pending and the router's managed
	// tunnel is not up, without which it cannot turn active.
	WaitsForTunnel bool
	Active         int
	Conns          []connRow
	ConnsTotal     int
	Highlight      bool
}

// connRow is one connection through a forward.
type connRow struct {
	Source    string
	StartedAt time.Time
	Open      bool
	Duration  string
	BytesUp   int64
	BytesDown int64
	Reason    string
}

// createForm is the create-forward form: what was typed and, after a failed
// create, the API's messages per field (fleet.ValidateNewForward's).
type createForm struct {
	Values  map[string]string
	Errors  map[string][]string
	General string
	Min     int
	Max     int
}

// newCreateForm is an empty form, ready to take what was posted.
func newCreateForm() createForm { return createForm{Values: map[string]string{}} }

// value reads a posted field, trimmed, and keeps it to show again.
func (f createForm) value(r *http.Request, name string) string {
	val := strings.TrimSpace(r.PostForm.Get(name))
	f.Values[name] = val
	return val
}

// refuse puts each field's messages next to it; false when there are none.
func (f *createForm) refuse(problems fleet.Problems) bool {
	if problems.Len() == 0 {
		return false
	}
	f.Errors = map[string][]string{}
	for _, field := range problems.Fields() {
		f.Errors[field] = problems.Messages(field)
	}
	return true
}

type routerBody struct {
	Router fleetRow
	// Edge is the router's region's edge, nil when no tpf edge serves it.
	Edge     *edgeView
	Tunnel   tunnelView
	Live     []forwardRow
	Ended    []forwardRow
	Timeline timeline
	Form     createForm
	// Accesses are the router's live transient accesses, newest first;
	// AccessForm opens one (AccessPath is where it posts).
	Accesses   []accessRow
	AccessForm createForm
	AccessPath string
	// Banner reports what the last form did.
	Banner   *banner
	Poll     int // milliseconds
	CSRF     string
	FormPath string
}

// routerForms are the router page's forms as a request left them; a form
// with nil Values is shown fresh, with its defaults.
type routerForms struct {
	forward, access createForm
}

type edgeView struct {
	Connected bool
	Seen      string
	LastError string
}

// tunnelView is the router's end of the management tunnel as the facts card
// shows it. Its State is that of fleetRow.Tunnel; in a manual region the
// rest is empty.
type tunnelView struct {
	State, Text string
	// Handshake is when the router last shook hands with the edge,
	// coarse ("3 min ago"), and HandshakeAt the time itself.
	Handshake, HandshakeAt string
	// Endpoint is the edge as the router last reached it, or else as the
	// region gives it (Configured).
	Endpoint   string
	Configured bool
	// Rx and Tx are the bytes the router received from and sent to the
	// edge, for humans; empty before the agent reported any.
	Rx, Tx string
	// Key is the router's public key, KeyShort its first characters.
	Key, KeyShort string
	Error         string
}

// toTunnelView describes router rt's tunnel to region rg's edge at now.
func toTunnelView(rt fleet.Router, rg fleet.Region, row fleetRow, now time.Time) tunnelView {
	v := tunnelView{State: row.Tunnel, Text: row.TunnelText, Error: row.TunnelError}
	if !rt.TunnelManaged {
		v.Text = "your own VPN (manual region)"
		return v
	}
	t := rt.Tunnel
	if t.LastHandshake != nil {
		v.Handshake, v.HandshakeAt = agoCoarse(*t.LastHandshake, now), t.LastHandshake.UTC().Format(time.RFC3339)
	}
	v.Endpoint = t.Endpoint
	if v.Endpoint == "" && rg.Tunnel.Endpoint != "" {
		v.Endpoint, v.Configured = rg.Tunnel.Endpoint, true
	}
	if t.ReportedAt != nil {
		v.Rx, v.Tx = formatBytes(t.RxBytes), formatBytes(t.TxBytes)
	}
	v.Key, v.KeyShort = t.PublicKey, shortKey(t.PublicKey)
	return v
}

// shortKey is the start of a WireGuard public key, enough to tell keys
// apart at a glance.
func shortKey(k string) string {
	const n = 10
	if len(k) <= n+1 {
		return k
	}
	return k[:n] + "…"
}

type banner struct {
	Kind    string // "ok" or "info"
	Title   string
	Message string
}

func (v *views) handleRouter(w http.ResponseWriter, r *http.Request, in signedIn) {
	id, ok := pathID(r, "router_id")
	if !ok {
		v.writeError(w, r, fleet.ErrNotFound)
		return
	}
	v.renderRouter(w, r, in, id, http.StatusOK, routerForms{})
}

// pathRouter is the principal's router that the path's router_id names;
// otherwise it answers 404 (also for an id that is not a UUID) and false.
func (v *views) pathRouter(w http.ResponseWriter, r *http.Request, in signedIn) (fleet.Router, bool) {
	id, ok := pathID(r, "router_id")
	if !ok {
		v.writeError(w, r, fleet.ErrNotFound)
		return fleet.Router{}, false
	}
	rt, err := v.svc.Router(r.Context(), in.principal.AccountID, id)
	if err != nil {
		v.writeError(w, r, err)
		return fleet.Router{}, false
	}
	return rt, true
}

// renderRouter reads what the router page shows and renders it with forms.
func (v *views) renderRouter(w http.ResponseWriter, r *http.Request, in signedIn, id uuid.UUID, code int, forms routerForms) {
	form, accessForm := forms.forward, forms.access
	if form.Values == nil {
		form.Values = map[string]string{fleet.FieldExpireAfterMinutes: "120"}
	}
	if accessForm.Values == nil {
		accessForm = v.freshAccessForm(r)
	}
	now := v.now()
	ctx := r.Context()
	account := in.principal.AccountID
	rt, err := v.svc.Router(ctx, account, id)
	if err != nil {
		v.writeError(w, r, err)
		return
	}
	region, err := v.store.Region(ctx, rt.Region)
	if err != nil {
		v.writeError(w, r, err)
		return
	}
	since := now.Add(-window)
	forwards, err := v.store.RecentForwards(ctx, account, id, since, maxRecentForwards)
	if err != nil {
		v.writeError(w, r, err)
		return
	}
	conns, err := v.store.RecentConnections(ctx, account, id, since, maxRecentConnections)
	if err != nil {
		v.writeError(w, r, err)
		return
	}
	accesses, err := v.svc.Accesses(ctx, account, id, true, maxLiveAccesses, now)
	if err != nil {
		v.writeError(w, r, err)
		return
	}
	byForward := map[uuid.UUID][]fleet.Connection{}
	for _, c := range conns {
		byForward[c.ForwardID] = append(byForward[c.ForwardID], c)
	}

	form.Min, form.Max = v.cfg.Forwards.MinExpireMinutes, v.cfg.Forwards.MaxExpireMinutes
	accessForm.Min, accessForm.Max = form.Min, form.Max
	body := routerBody{
		Router: toFleetRow(rt, store.LiveForwardCounts{}, now), Form: form, AccessForm: accessForm,
		Poll: int(v.cfg.RouterPoll / time.Millisecond), CSRF: in.session.csrf,
		FormPath: "/routers/" + id.String() + "/forwards", AccessPath: "/routers/" + id.String() + "/access",
	}
	body.Tunnel = toTunnelView(rt, region, body.Router, now)
	waitsForTunnel := rt.TunnelManaged && body.Router.Tunnel != fleet.TunnelUp
	q := r.URL.Query()
	for _, a := range accesses {
		row := toAccessRow(a, now)
		row.WaitsForTunnel = waitsForTunnel && row.Status == string(fleet.StatusPending)
		row.Highlight = row.ID == q.Get("access-opened")
		body.Accesses = append(body.Accesses, row)
	}
	if region.EdgeManaged {
		e := &edgeView{Connected: region.Edge.Connected(now), LastError: region.Edge.LastError}
		if region.Edge.SeenAt != nil {
			e.Seen = agoCoarse(*region.Edge.SeenAt, now)
		}
		body.Edge = e
	}
	created, revoked := q.Get("created"), q.Get("revoked")
	for _, f := range forwards {
		row := toForwardRow(f, byForward[f.ID], now)
		row.Highlight = row.ID == created
		row.WaitsForTunnel = waitsForTunnel && row.Status == string(fleet.StatusPending)
		if f.Live(now) {
			body.Live = append(body.Live, row)
			body.Router.Counts.Live++
		} else {
			body.Ended = append(body.Ended, row)
		}
		switch row.ID {
		case created:
			msg := "Connect to " + row.Address + " from " + row.AllowFrom + " to reach " + row.Dst + ". It turns active once the router confirms it"
			if waitsForTunnel {
				msg += " and its management tunnel is up"
			}
			body.Banner = &banner{Kind: "ok", Title: "Forward created.", Message: msg + "."}
		case revoked:
			body.Banner = &banner{Kind: "info", Title: "Forward revoked.",
				Message: "The forward to " + row.Dst + " on " + row.Address + " is ended; the router removes its rule now."}
		}
	}
	if revoked := q.Get("access-revoked"); revoked != "" && q.Get("fragment") != "live" {
		body.Banner = v.accessRevokedBanner(r, account, rt.ID, revoked)
	}
	body.Timeline = layoutTimeline(forwards, byForward, now)
	v.render(w, r, code, "router", page{Title: rt.Name, Nav: "router", Session: in.view(), Body: body})
}

func toForwardRow(f store.ForwardView, conns []fleet.Connection, now time.Time) forwardRow {
	row := forwardRow{
		ID: f.ID.String(), Address: f.EntryPoint + ":" + strconv.Itoa(int(f.Port)),
		Dst: f.DstAddress.String() + ":" + strconv.Itoa(int(f.DstPort)), AllowFrom: f.AllowFrom.String(),
		Masquerade: f.Masquerade, Status: string(f.StatusAt(now)), CreatedAt: f.CreatedAt,
		CreatedBy: f.CreatedBy, ExpiresAt: f.ExpiresAt, EndedAt: f.EndedAt,
		RouterError: f.RouterError, EdgeError: f.EdgeError, Active: f.ConnectionsActive,
		ConnsTotal: len(conns),
	}
	if row.CreatedBy != "" {
		row.CreatedBy = "token " + row.CreatedBy
	}
	row.Remaining = remaining(f.ExpiresAt, now)
	switch {
	case f.RevokedAt != nil && f.RevokedBy != "":
		row.Ended = "revoked by token " + f.RevokedBy
	case f.RevokedAt != nil:
		row.Ended = "revoked"
	case f.EndedAt != nil || f.Expired(now):
		row.Ended = "expired"
	}
	for i, c := range conns {
		if i == connectionsPerForward {
			break
		}
		cr := connRow{Source: c.Source, StartedAt: c.StartedAt, Open: c.EndedAt == nil,
			BytesUp: c.BytesUp, BytesDown: c.BytesDown, Reason: c.Reason}
		if c.EndedAt != nil {
			cr.Duration = span(c.EndedAt.Sub(c.StartedAt))
		}
		row.Conns = append(row.Conns, cr)
	}
	return row
}

// handleForwardCreate creates a forward from the form with the API's own
// rules and messages (fleet.ValidateNewForward); a failure shows the form
// again with the messages next to the fields (422), a success redirects to
// the router page. The fields are named as the API's creation object names
// them, so the messages fit.
func (v *views) handleForwardCreate(w http.ResponseWriter, r *http.Request, in signedIn) {
	// An unknown router is a 404 even when the form is also wrong.
	rt, ok := v.pathRouter(w, r, in)
	if !ok {
		return
	}
	form := newCreateForm()
	value := func(name string) string { return form.value(r, name) }
	input := fleet.NewForwardInput{
		ExpireAfterMinutes: value(fleet.FieldExpireAfterMinutes),
		DstPort:            value(fleet.FieldDstPort),
		DstAddress:         value(fleet.FieldDstAddress),
		AllowFrom:          value(fleet.FieldAllowFrom),
		Masquerade:         r.PostForm.Get(fleet.FieldMasquerade) != "",
	}
	if input.Masquerade {
		form.Values[fleet.FieldMasquerade] = "on"
	}
	nf, problems := fleet.ValidateNewForward(input, v.cfg.Forwards)
	if form.refuse(problems) {
		v.renderRouter(w, r, in, rt.ID, http.StatusUnprocessableEntity, routerForms{forward: form})
		return
	}
	f, err := v.svc.CreateForward(r.Context(), in.principal, rt.ID, nf, v.now())
	if errors.Is(err, fleet.ErrPortsExhausted) {
		form.General = "No free port is left at this router's entry point; try again when other forwards have ended."
		v.renderRouter(w, r, in, rt.ID, http.StatusServiceUnavailable, routerForms{forward: form})
		return
	}
	if err != nil {
		v.writeError(w, r, err)
		return
	}
	http.Redirect(w, r, "/routers/"+rt.ID.String()+"?created="+url.QueryEscape(f.ID.String())+"#f-"+f.ID.String(), http.StatusSeeOther)
}

// handleForwardRevoke ends a forward early, like the API's DELETE; revoking
// one that already ended is harmless.
func (v *views) handleForwardRevoke(w http.ResponseWriter, r *http.Request, in signedIn) {
	routerID, ok1 := pathID(r, "router_id")
	id, ok2 := pathID(r, "id")
	if !ok1 || !ok2 {
		v.writeError(w, r, fleet.ErrNotFound)
		return
	}
	if err := v.svc.RevokeForward(r.Context(), in.principal, routerID, id, v.now()); err != nil {
		v.writeError(w, r, err)
		return
	}
	http.Redirect(w, r, "/routers/"+routerID.String()+"?revoked="+id.String(), http.StatusSeeOther)
}

// pathID reads a UUID path parameter; anything else names nothing.
func pathID(r *http.Request, name string) (uuid.UUID, bool) {
	s := r.PathValue(name)
	id, err := uuid.Parse(s)
	return id, err == nil && len(s) == 36
}
