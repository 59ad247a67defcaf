package web

import (
	"net/http"
	"strconv"

	"github.com/tpf-dev/tpf/controller/fleet"
	"github.com/tpf-dev/tpf/controller/forwards"
)

// Field names of the add-router form, as the API's creation object names
// them (so that the messages fit).
const (
	fieldName          = fleet.FieldName
	fieldRegion        = fleet.FieldRegion
	fieldTunnelAddress = fleet.FieldTunnelAddress
)

// regionOption is a region in the add-router form.
type regionOption struct {
	ID, EntryPoint string
	// Manual: the region's tunnel is the operator's own VPN, so a router
	// of it needs its tunnel address given.
	Manual   bool
	Selected bool
	// Note says how its routers reach its edge.
	Note string
}

type routerNewBody struct {
	Regions []regionOption
	Form    createForm
	CSRF    string
}

func (v *views) handleRouterNew(w http.ResponseWriter, r *http.Request, in signedIn) {
	regions, err := v.store.Regions(r.Context())
	if err != nil {
		v.writeError(w, r, err)
		return
	}
	v.renderRouterNew(w, r, in, http.StatusOK, regions, createForm{Values: map[string]string{}})
}

func (v *views) renderRouterNew(w http.ResponseWriter, r *http.Request, in signedIn, code int, regions []fleet.Region, form createForm) {
	body := routerNewBody{Form: form, CSRF: in.session.csrf}
	selected := form.Values[fieldRegion]
	if selected == "" && len(regions) > 0 {
		selected = regions[0].ID
	}
	for _, rg := range regions {
		o := regionOption{ID: rg.ID, EntryPoint: rg.EntryPoint, Manual: !rg.Tunnel.Managed, Selected: rg.ID == selected}
		if o.Manual {
			o.Note = "your own VPN: give the router's tunnel address"
		} else {
			o.Note = "tpf builds the WireGuard tunnel and allocates the address from " + rg.Tunnel.Prefix.String()
		}
		body.Regions = append(body.Regions, o)
	}
	v.render(w, r, code, "router_new", page{Title: "Add a router", Nav: "add", Session: in.view(), Body: body})
}

// readNewRouter reads the add-router form with the API's rules and messages
// (fleet's, as the API's readNewRouter): a name, a region of regions, and in a manual region
// the router's tunnel address. In a managed region a typed tunnel address is
// ignored: tpf allocates it (the form hides the field there).
func readNewRouter(r *http.Request, regions []fleet.Region, form createForm) (forwards.NewRouter, fleet.Region, fleet.Problems) {
	var errs fleet.Problems
	value := func(name string) string { return form.value(r, name) }
	var nr forwards.NewRouter
	nr.Name, _ = errs.Text(fieldName, value(fieldName), fleet.MaxRouterName)
	nr.Region = value(fieldRegion)
	tunnel := value(fieldTunnelAddress)
	var region fleet.Region
	found := false
	for _, rg := range regions {
		if rg.ID == nr.Region {
			region, found = rg, true
		}
	}
	switch {
	case nr.Region == "":
		errs.Required(fieldRegion)
	case !found:
		errs.Add(fieldRegion, "The selected region is invalid.")
	case region.Tunnel.Managed:
		// tpf allocates the address.
	case tunnel == "":
		errs.Required(fieldTunnelAddress)
	default:
		nr.TunnelAddress, _ = errs.TunnelAddress(tunnel)
	}
	return nr, region, errs
}

// handleRouterCreate adds a router (forwards.Service.CreateRouter, as
// POST /api/routers) and answers its install script, with the agent token
// the router was created with: shown this once.
func (v *views) handleRouterCreate(w http.ResponseWriter, r *http.Request, in signedIn) {
	ctx := r.Context()
	regions, err := v.store.Regions(ctx)
	if err != nil {
		v.writeError(w, r, err)
		return
	}
	form := newCreateForm()
	nr, region, problems := readNewRouter(r, regions, form)
	invalid := func(code int) {
		form.refuse(problems)
		v.renderRouterNew(w, r, in, code, regions, form)
	}
	if problems.Len() > 0 {
		invalid(http.StatusUnprocessableEntity)
		return
	}
	now := v.now()
	params := v.scriptParams(r, fleet.Router{Name: nr.Name}, region, now)
	if msg := checkScript(params); msg != "" {
		form.General = msg
		v.renderRouterNew(w, r, in, http.StatusUnprocessableEntity, regions, form)
		return
	}
	rt, secret, err := v.svc.CreateRouter(ctx, in.principal, nr, now)
	if err != nil && !problems.CreateRouterError(err) {
		v.writeError(w, r, err)
		return
	}
	if problems.Len() > 0 {
		invalid(http.StatusUnprocessableEntity)
		return
	}
	params.RouterID, params.AgentToken = rt.ID.String(), secret
	body, err := v.toInstallBody(r, rt, params, true)
	if err != nil {
		v.internalError(w, r, err)
		return
	}
	v.render(w, r, http.StatusCreated, "install", page{Title: "Router " + rt.Name + " added", Nav: "add", Session: in.view(),
		ReplaceURL: "/routers/" + rt.ID.String(), Body: body})
}

// confirmBody is a page that asks before something that cannot be undone.
type confirmBody struct {
	Heading string
	// Lines say what will happen.
	Lines  []string
	Action string // where the form posts
	Button string
	// Danger: the action destroys something.
	Danger bool
	Cancel string
	CSRF   string
	// Crumb is the router or page the action is about, for the crumbs.
	Crumb, CrumbURL string
}

// handleRotateConfirm asks before rotating a router's agent token.
func (v *views) handleRotateConfirm(w http.ResponseWriter, r *http.Request, in signedIn) {
	rt, ok := v.pathRouter(w, r, in)
	if !ok {
		return
	}
	path := "/routers/" + rt.ID.String()
	lines := []string{
		"A new agent token is issued, and with it a fresh install script, shown once.",
		"The current token stops working at once: the router's agent is disconnected, and every install script issued before stops working.",
		"Its forwards stay; the router applies them again once its agent runs with the new token.",
	}
	v.render(w, r, http.StatusOK, "confirm", page{Title: "New agent token for " + rt.Name, Nav: "router", Session: in.view(),
		Body: confirmBody{Heading: "Issue a new agent token for " + rt.Name + "?", Lines: lines,
			Action: path + "/agent-token", Button: "Issue a new token and script", Danger: true, Cancel: path,
			CSRF: in.session.csrf, Crumb: rt.Name, CrumbURL: path}})
}

// handleRotate rotates a router's agent token
// (forwards.Service.RotateAgentToken, as the API's POST …/agent-token and
// …/install-script do) and answers the fresh install script, shown once.
func (v *views) handleRotate(w http.ResponseWriter, r *http.Request, in signedIn) {
	rt, ok := v.pathRouter(w, r, in)
	if !ok {
		return
	}
	ctx := r.Context()
	region, err := v.store.Region(ctx, rt.Region)
	if err != nil {
		v.writeError(w, r, err)
		return
	}
	now := v.now()
	params := v.scriptParams(r, rt, region, now)
	if msg := checkScript(params); msg != "" {
		v.renderError(w, r, http.StatusUnprocessableEntity, msg+" The agent token was left as it was.")
		return
	}
	if params.AgentToken, err = v.svc.RotateAgentToken(ctx, in.principal, rt.ID, now); err != nil {
		v.writeError(w, r, err)
		return
	}
	body, err := v.toInstallBody(r, rt, params, false)
	if err != nil {
		v.internalError(w, r, err)
		return
	}
	v.render(w, r, http.StatusOK, "install", page{Title: "New agent token for " + rt.Name, Nav: "router", Session: in.view(),
		ReplaceURL: "/routers/" + rt.ID.String(), Body: body})
}

// handleRouterDeleteConfirm asks before deleting a router, naming how many
// live forwards that ends.
func (v *views) handleRouterDeleteConfirm(w http.ResponseWriter, r *http.Request, in signedIn) {
	rt, ok := v.pathRouter(w, r, in)
	if !ok {
		return
	}
	ctx := r.Context()
	now := v.now()
	live, err := v.svc.LiveForwards(ctx, in.principal.AccountID, rt.ID, now)
	if err != nil {
		v.writeError(w, r, err)
		return
	}
	accesses, err := v.svc.Accesses(ctx, in.principal.AccountID, rt.ID, true, maxLiveAccesses, now)
	if err != nil {
		v.writeError(w, r, err)
		return
	}
	path := "/routers/" + rt.ID.String()
	var lines []string
	switch n := len(live); n {
	case 0:
		lines = append(lines, "It has no live forwards.")
	case 1:
		lines = append(lines, "Its 1 live forward is revoked at once, and open connections through it are cut.")
	default:
		lines = append(lines, "Its "+strconv.Itoa(n)+" live forwards are revoked at once, and open connections through them are cut.")
	}
	switch n := len(accesses); n {
	case 0:
	case 1:
		lines = append(lines, "Its 1 live WinBox or SSH login is revoked too.")
	default:
		lines = append(lines, "Its "+strconv.Itoa(n)+" live WinBox and SSH logins are revoked too.")
	}
	lines = append(lines,
		"Its agent, while connected, is sent one last empty set and removes tpf's rules and the management tunnel from the router; then its agent token stops working.",
		"This cannot be undone: adding the router again gives it a new id and agent token.")
	v.render(w, r, http.StatusOK, "confirm", page{Title: "Delete " + rt.Name, Nav: "router", Session: in.view(),
		Body: confirmBody{Heading: "Delete router " + rt.Name + "?", Lines: lines,
			Action: path + "/delete", Button: "Delete " + rt.Name, Danger: true, Cancel: path,
			CSRF: in.session.csrf, Crumb: rt.Name, CrumbURL: path}})
}

// handleRouterDelete deletes a router (forwards.Service.DeleteRouter, as
// DELETE /api/routers/{id}) and returns to the fleet.
func (v *views) handleRouterDelete(w http.ResponseWriter, r *http.Request, in signedIn) {
	id, ok := pathID(r, "router_id")
	if !ok {
		v.writeError(w, r, fleet.ErrNotFound)
		return
	}
	if err := v.svc.DeleteRouter(r.Context(), in.principal, id, v.now()); err != nil {
		v.writeError(w, r, err)
		return
	}
	http.Redirect(w, r, "/?deleted=1", http.StatusSeeOther)
}
