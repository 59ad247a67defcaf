package api

import (
	"errors"
	"net/http"
	"net/netip"
	"net/url"

	"github.com/tpf-dev/tpf/controller/fleet"
	"github.com/tpf-dev/tpf/controller/install"
)

// handleInstallScript answers, as text/plain, the RouterOS script that
// installs the router's agent (package install): paste it into the router's
// terminal. It embeds the controller's URL (Config.PublicURL, else this
// request's scheme and Host) and a fresh agent token.
//
// Issuing that token rotates the router's agent token, exactly like
// POST /api/routers/{id}/agent-token: the previous token stops working at
// once, the agent connected with it is disconnected, and every script
// issued before stops working. That is why it is a POST (a GET answers 405):
// a prefetch or a replayed link must not disconnect an agent. Issue the
// script when about to run it. Forwards are untouched.
//
// Query parameters (no request body), all optional: host (the off-router variant: the
// agent runs on that Linux host, for MIPS routers), subnet (container
// network, default 172.31.254.0/30), disk (e.g. usb1), image_url (where the
// router downloads the image archive; default: uploaded by hand), arch
// (arm, arm64 or x86; default: read on the router), routeros_user (default
// tpf). A bad one answers 422 and leaves the token as it was; so does a
// controller URL agents cannot reach (localhost, loopback, unspecified or
// link-local: a request through localhost without TPF_PUBLIC_URL), in a
// 422 on controller_url that names TPF_PUBLIC_URL.
func (s *server) handleInstallScript() authedHandler {
	return func(w http.ResponseWriter, r *http.Request, p fleet.Principal) {
		id, err := pathID(r, "router_id")
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		params, err := installParams(r.URL.Query())
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		rt, err := s.svc.Router(r.Context(), p.AccountID, id)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		now := s.now()
		params.ControllerURL = install.PublicURL(r, s.cfg.PublicURL)
		params.RouterID, params.RouterName = rt.ID.String(), rt.Name
		if rt.TunnelManaged {
			region, err := s.store.Region(r.Context(), rt.Region)
			if err != nil {
				s.writeError(w, r, err)
				return
			}
			params.TunnelEndpoint = region.Tunnel.Endpoint
		}
		params.Password = install.NewPassword()
		params.Generated = now

		// Check every parameter before the token is rotated, with a stand-in
		// of the same shape.
		params.AgentToken = install.StandInToken
		if _, err := install.Script(params); err != nil {
			s.writeError(w, r, installError(err, params.ControllerURL, s.cfg.PublicURL != ""))
			return
		}
		params.AgentToken, err = s.svc.RotateAgentToken(r.Context(), p, id, now)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		script, err := install.Script(params)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("Content-Disposition", `inline; filename="tpf-install.rsc"`)
		w.WriteHeader(http.StatusOK)
		w.Write([]byte(script))
	}
}

// installParams reads the script's query parameters.
func installParams(q url.Values) (install.Params, error) {
	var errs fleet.Problems
	var p install.Params
	if v := q.Get("host"); v != "" {
		a, err := netip.ParseAddr(v)
		if err != nil {
			errs.Add("host", "The host field must be the IPv4 address of the Linux host that runs the agent.")
		}
		p.Host = a
	}
	if v := q.Get("subnet"); v != "" {
		pfx, err := netip.ParsePrefix(v)
		if err != nil {
			errs.Add("subnet", "The subnet field must be an IPv4 network such as 172.31.254.0/30.")
		}
		p.Subnet = pfx
	}
	p.Disk = q.Get("disk")
	p.ImageURL = q.Get("image_url")
	p.Arch = q.Get("arch")
	p.User = q.Get("routeros_user")
	return p, invalid(errs)
}

// installError turns a parameter the script cannot carry into a 422 on the
// query parameter of the same name. The controller's URL is no parameter
// but the operator's setting, or the request's own host: the answer names
// TPF_PUBLIC_URL, which fixes it (a controller fetched through localhost or
// an internal name would otherwise send every agent to 127.0.0.1).
func installError(err error, controllerURL string, configured bool) error {
	var fe *install.FieldError
	if !errors.As(err, &fe) {
		return err
	}
	var errs fleet.Problems
	switch {
	case fe.Field == "controller_url" && configured:
		errs.Add("controller_url", "The controller's URL, TPF_PUBLIC_URL ("+controllerURL+"), "+fe.Message+"; the operator sets TPF_PUBLIC_URL to the URL agents reach the controller at.")
	case fe.Field == "controller_url":
		errs.Add("controller_url", "The controller's URL as this request names it ("+controllerURL+") "+fe.Message+"; the operator sets TPF_PUBLIC_URL to the URL agents reach the controller at, e.g. https://tpf.example.net.")
	default:
		errs.Add(fe.Field, "The "+fleet.FieldLabel(fe.Field)+" field "+fe.Message+".")
	}
	return invalid(errs)
}
