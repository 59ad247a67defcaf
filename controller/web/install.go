package web

import (
	"errors"
	"net/http"
	"time"

	"github.com/tpf-dev/tpf/controller/fleet"
	"github.com/tpf-dev/tpf/controller/install"
)

// installBody is the page that shows a router's install script once: after
// the router was added, or after its agent token was rotated.
type installBody struct {
	RouterID, RouterName, Region, TunnelAddress string
	// TunnelEndpoint is the region's edge's WireGuard endpoint; empty in a
	// manual region.
	TunnelEndpoint string
	// Created: the router is new; otherwise its token was rotated.
	Created bool
	// AgentToken is the router's agent token, in the script too.
	AgentToken string
	Script     string
	// Fetch is the one-line RouterOS command that fetches and runs a fresh
	// script through the API (with an API token the operator fills in).
	Fetch string
}

// scriptParams are the install script's parameters for router rt of region
// rg, as the API's POST /api/routers/{id}/install-script makes them with
// its defaults (the container variant): the controller's URL, the router,
// the region's tunnel endpoint where tpf manages the tunnel, a new RouterOS
// password. The agent token is a stand-in of its shape until the caller
// sets the real one, so that the parameters can be checked before a token
// is issued (a refused script must leave the token as it was).
func (v *views) scriptParams(r *http.Request, rt fleet.Router, rg fleet.Region, now time.Time) install.Params {
	p := install.Params{
		ControllerURL: install.PublicURL(r, v.cfg.PublicURL),
		AgentToken:    install.StandInToken,
		RouterID:      rt.ID.String(),
		RouterName:    rt.Name,
		Password:      install.NewPassword(),
		Generated:     now,
	}
	if rg.Tunnel.Managed {
		p.TunnelEndpoint = rg.Tunnel.Endpoint
	}
	return p
}

// checkScript says why no script can be made with p, in words for the
// operator; "" when one can.
func checkScript(p install.Params) string {
	_, err := install.Script(p)
	var fe *install.FieldError
	switch {
	case err == nil:
		return ""
	case errors.As(err, &fe) && fe.Field == "controller_url":
		return "No install script can be made: the controller's URL as this request names it " + fe.Message +
			". The operator sets TPF_PUBLIC_URL to fix it."
	default:
		return "No install script can be made: " + err.Error() + "."
	}
}

// toInstallBody renders the script of p for router rt and the page around it.
func (v *views) toInstallBody(r *http.Request, rt fleet.Router, p install.Params, created bool) (installBody, error) {
	script, err := install.Script(p)
	if err != nil {
		return installBody{}, err
	}
	return installBody{
		RouterID: rt.ID.String(), RouterName: rt.Name, Region: rt.Region, TunnelAddress: rt.TunnelAddress.String(),
		TunnelEndpoint: p.TunnelEndpoint, Created: created, AgentToken: p.AgentToken, Script: script,
		Fetch: `/tool/fetch http-method=post url="` + p.ControllerURL + "/api/routers/" + rt.ID.String() +
			`/install-script" http-header-field="Authorization: Bearer API_TOKEN" dst-path=tpf-install.rsc;` +
			` /import file-name=tpf-install.rsc; /file/remove tpf-install.rsc`,
	}, nil
}
