package web_test

import (
	"context"
	"html"
	"net/http"
	"net/netip"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/tpf-dev/tpf/controller/fleet"
	"github.com/tpf-dev/tpf/controller/forwards"
	"github.com/tpf-dev/tpf/controller/web"
	"github.com/tpf-dev/tpf/shared/syncproto"
)

// passwordShown is the access password on the page that answers a create.
var passwordShown = regexp.MustCompile(`<code id="access-password">([^<]+)</code>`)

// accessForm is a good access form for the fixture's router.
func accessForm(csrf, service string) url.Values {
	return url.Values{"csrf": {csrf}, "type": {service}, "expire_after_minutes": {"90"}, "allow_from": {"81.2.69.7"}}
}

// liveAccesses are the fixture router's live accesses, newest first.
func (e *env) liveAccesses() []fleet.Access {
	e.t.Helper()
	list, err := e.fleet.Service.Accesses(context.Background(), e.fleet.Principal.AccountID, e.fleet.Router.ID, true, 100, e.clock.Now())
	if err != nil {
		e.t.Fatal(err)
	}
	return list
}

// desiredPassword is the password the router's desired set carries for
// access id: what its agent sets on the router.
func (e *env) desiredPassword(id uuid.UUID) string {
	e.t.Helper()
	set, err := e.fleet.Service.DesiredSet(context.Background(), e.fleet.Router.ID, e.clock.Now())
	if err != nil {
		e.t.Fatal(err)
	}
	for _, a := range set.Accesses {
		if a.ID == id.String() {
			return a.Password
		}
	}
	e.t.Fatalf("the router's desired set lacks access %s", id)
	return ""
}

func TestAccessFormOnTheRouterPage(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.signIn()
	res := e.get(routerPath(e.fleet.Router))
	if res.StatusCode != http.StatusOK {
		t.Fatalf("router page: got %d, want 200", res.StatusCode)
	}
	contains(t, res.body, "Log in to the router", `action="`+routerPath(e.fleet.Router)+`/access#access-card"`,
		`name="type" value="winbox" id="open-winbox">Open WinBox</button>`, `name="type" value="ssh" id="open-ssh">Open SSH</button>`,
		`id="access_expire_after_minutes" name="expire_after_minutes" value="60"`, `id="access_read_only" name="read_only"`,
		`id="no-access"`, "10 to 1440")
	// The test's client is 127.0.0.1, which the default rules refuse as a
	// source: nothing to suggest.
	contains(t, res.body, `id="access_allow_from" name="allow_from" value=""`)
	// The forward form keeps its own default.
	contains(t, res.body, `id="expire_after_minutes" name="expire_after_minutes" value="120"`)

	// Behind a proxy, the client's address is suggested as a /32: the
	// first that the rules accept.
	for xff, want := range map[string]string{
		"81.2.69.7":                 "81.2.69.7/32",
		"10.0.0.1, 81.2.69.8":       "81.2.69.8/32",
		"2001:db8::1, 81.2.69.9":    "81.2.69.9/32",
		"::ffff:81.2.69.10":         "81.2.69.10/32",
		"192.168.1.1, 198.51.100.7": "",
	} {
		req, _ := http.NewRequest(http.MethodGet, e.srv.URL+routerPath(e.fleet.Router), nil)
		req.Header.Set("X-Forwarded-For", xff)
		res := e.do(req)
		if !strings.Contains(res.body, `id="access_allow_from" name="allow_from" value="`+want+`"`) {
			t.Errorf("X-Forwarded-For %q: the form does not suggest %q", xff, want)
		}
		if want != "" {
			contains(t, res.body, "yours, as tpf sees it")
		}
	}

	// Where the operator accepts loopback sources (make run), the direct
	// client is suggested.
	lab := newEnv(t, func(c *web.Config) { c.Forwards.AllowSources = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")} })
	lab.signIn()
	contains(t, lab.get(routerPath(lab.fleet.Router)).body, `id="access_allow_from" name="allow_from" value="127.0.0.1/32"`)
}

// TestAccessFormShowsTheRulesMessages submits what the rules refuse: the
// router page comes back (422) with exactly fleet.ValidateNewAccess's
// messages next to their fields, what was typed kept, and nothing created.
func TestAccessFormShowsTheRulesMessages(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	csrf := e.signIn()
	ids := map[string]string{"expire_after_minutes": "access_expire_after_minutes", "allow_from": "access_allow_from", "type": "open-winbox"}
	cases := []map[string]string{
		{},
		{"type": "telnet", "expire_after_minutes": "5", "allow_from": "198.51.100.0/24"},
		{"type": "ssh", "expire_after_minutes": "1441", "allow_from": "81.2.69.0/16"},
		{"type": "winbox", "expire_after_minutes": "an hour", "allow_from": "10.0.0.1"},
	}
	for _, values := range cases {
		_, problems := fleet.ValidateNewAccess(fleet.NewAccessInput{Type: values["type"],
			ExpireAfterMinutes: values["expire_after_minutes"], AllowFrom: values["allow_from"]}, fleet.ForwardRules{})
		if problems.Len() == 0 {
			t.Fatalf("%v: the rules accept it; want a case they refuse", values)
		}
		form := url.Values{"csrf": {csrf}}
		for k, v := range values {
			form.Set(k, v)
		}
		res := e.post(routerPath(e.fleet.Router)+"/access", form)
		if res.StatusCode != http.StatusUnprocessableEntity {
			t.Fatalf("%v: got %d, want 422", values, res.StatusCode)
		}
		contains(t, res.body, "No login was opened; see below.")
		for _, field := range problems.Fields() {
			at := strings.Index(res.body, `id="`+ids[field]+`"`)
			if at < 0 {
				t.Fatalf("no input for %s", field)
			}
			// The type's messages stand above the buttons; the others
			// follow their input, before the next field.
			section := res.body[at:]
			if field == "type" {
				start := strings.LastIndex(res.body[:at], `<div class="field check">`)
				section = res.body[start:at]
			} else if end := strings.Index(section[1:], `<div class="field`); end >= 0 {
				section = section[:end+1]
			}
			for _, m := range problems.Messages(field) {
				if !strings.Contains(section, `<p class="field-error">`+htmlEscape(m)+`</p>`) {
					t.Errorf("%v: field %s lacks the message %q", values, field, m)
				}
			}
			if field != "type" && !strings.Contains(section, `aria-invalid="true"`) {
				t.Errorf("%v: field %s is not marked invalid", values, field)
			}
		}
		for _, k := range []string{"expire_after_minutes", "allow_from"} {
			if v, ok := values[k]; ok && !strings.Contains(res.body, `id="access_`+k+`" name="`+k+`" value="`+htmlEscape(v)+`"`) {
				t.Errorf("%v: the form lost what was typed in %s", values, k)
			}
		}
		// The forward form is untouched.
		contains(t, res.body, `id="expire_after_minutes" name="expire_after_minutes" value="120"`)
	}
	if n := len(e.liveAccesses()); n != 0 {
		t.Fatalf("refused forms opened %d accesses, want 0", n)
	}
}

func TestAccessCreateShowsThePasswordOnce(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	csrf := e.signIn()

	form := accessForm(csrf, "ssh")
	form.Set("read_only", "1")
	res := e.post(routerPath(e.fleet.Router)+"/access", form)
	if res.StatusCode != http.StatusCreated {
		t.Fatalf("open SSH access: got %d, want 201\n%s", res.StatusCode, res.body)
	}
	if cc := res.Header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("Cache-Control of the page with the password: got %q, want no-store", cc)
	}
	if loc := res.Header.Get("Location"); loc != "" {
		t.Errorf("the page with the password redirects to %q; it must be the POST's own answer", loc)
	}
	live := e.liveAccesses()
	if len(live) != 1 {
		t.Fatalf("after the create: got %d live accesses, want 1", len(live))
	}
	a := live[0]
	if a.Service != fleet.ServiceSSH || !a.ReadOnly || a.AllowFrom.String() != "81.2.69.7/32" || a.ExpiresAt.Sub(a.CreatedAt) != 90*time.Minute {
		t.Errorf("created %+v, want read-only SSH from 81.2.69.7/32 for 90 minutes", a)
	}
	password := html.UnescapeString(shown(t, passwordShown, res.body))
	if want := e.desiredPassword(a.ID); password != want || len(password) != 24 {
		t.Errorf("the page shows password %q, the router is given %q", password, want)
	}
	if n := strings.Count(res.body, htmlEscape(password)); n != 1 {
		t.Errorf("the password shows %d times, want 1", n)
	}
	port := itoa(a.Port)
	contains(t, res.body, "SSH access to r1", "Shown once.",
		`<pre class="script oneline" id="access-ssh" tabindex="0">ssh -p `+port+` `+a.Username+`@eu1.example.net</pre>`,
		`<code id="access-entry">eu1.example.net</code>`, `<code id="access-port">`+port+`</code>`,
		`<code id="access-user">`+a.Username+`</code>`, "read-only", "81.2.69.7/32", `<span class="status pending">pending</span>`,
		`<meta name="tpf-replace-url" content="/routers/`+e.fleet.Router.ID.String()+`?access-opened=`+a.ID.String()+`#a-`+a.ID.String()+`">`,
		`<a class="button primary" href="/routers/`+e.fleet.Router.ID.String()+`#a-`+a.ID.String()+`" id="to-router">`,
		`data-copy="access-ssh"`, `data-copy="access-password"`, `data-copy="access-user"`)
	lacks(t, res.body, "access-connect", "WinBox's")

	// The router page lists it, without the password; so does its live
	// part; it is no forward. Where the page with the password leaves the
	// address bar, the access is marked.
	contains(t, e.get(routerPath(e.fleet.Router)+"?access-opened="+a.ID.String()).body,
		`id="a-`+a.ID.String()+`" data-access="`+a.ID.String()+`" data-status="pending" class="highlight"`)
	page := e.get(routerPath(e.fleet.Router))
	for _, body := range []string{page.body, e.get(routerPath(e.fleet.Router) + "?fragment=live").body} {
		lacks(t, body, password)
		contains(t, body, `id="live-access"`, `id="a-`+a.ID.String()+`" data-access="`+a.ID.String()+`" data-status="pending"`,
			a.Username, "eu1.example.net:"+port, "81.2.69.7/32", `<span class="pill">read-only</span>`,
			`data-expires="`+a.ExpiresAt.Format(time.RFC3339)+`"`, `>1h 30m 00s</time>`,
			`action="/routers/`+e.fleet.Router.ID.String()+`/access/`+a.ID.String()+`/revoke"`)
		lacks(t, body, `data-forward="`+a.ID.String()+`"`, `id="no-access"`)
	}

	// WinBox: the address for Connect To instead of an ssh line.
	e.clock.Advance(time.Minute)
	res = e.post(routerPath(e.fleet.Router)+"/access", accessForm(csrf, "winbox"))
	if res.StatusCode != http.StatusCreated {
		t.Fatalf("open WinBox access: got %d, want 201\n%s", res.StatusCode, res.body)
	}
	w := e.liveAccesses()[0]
	if w.Service != fleet.ServiceWinbox || w.ReadOnly {
		t.Errorf("created %+v, want WinBox with full rights", w)
	}
	if got := html.UnescapeString(shown(t, passwordShown, res.body)); got != e.desiredPassword(w.ID) || got == password {
		t.Errorf("the WinBox page shows password %q; want its own", got)
	}
	contains(t, res.body, "WinBox access to r1", "Connect To",
		`<pre class="script oneline" id="access-connect" tabindex="0">eu1.example.net:`+itoa(w.Port)+`</pre>`, "full, without the sensitive policy")
	lacks(t, res.body, "access-ssh", "ssh -p")

	// The audit log says who opened them, never the password.
	events, err := e.fleet.Store.AuditEvents(context.Background(), e.fleet.Principal.AccountID, 0, 2)
	if err != nil {
		t.Fatal(err)
	}
	if len(events) != 2 || events[0].Action != fleet.ActionAccessCreate || events[0].Actor != e.fleet.Principal.Actor() {
		t.Errorf("audit after the creates: got %+v, want access.create by the session's token", events)
	}
	audit := e.get("/audit").body
	contains(t, audit, "opened a login to a router", "WinBox access "+w.ID.String()[:8]+" on r1", "SSH access "+a.ID.String()[:8]+" on r1")
	lacks(t, audit, password)
}

func TestAccessRevoke(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	csrf := e.signIn()
	if res := e.post(routerPath(e.fleet.Router)+"/access", accessForm(csrf, "ssh")); res.StatusCode != http.StatusCreated {
		t.Fatalf("open access: got %d, want 201", res.StatusCode)
	}
	a := e.liveAccesses()[0]
	revoke := routerPath(e.fleet.Router) + "/access/" + a.ID.String() + "/revoke"
	// Deleting the router would revoke it too, and says so.
	contains(t, e.get(routerPath(e.fleet.Router)+"/delete").body, "It has no live forwards.", "Its 1 live WinBox or SSH login is revoked too.")

	if res := e.post(revoke, url.Values{}); res.StatusCode != http.StatusForbidden {
		t.Errorf("revoke without the csrf token: got %d, want 403", res.StatusCode)
	}
	res := e.post(revoke, url.Values{"csrf": {csrf}})
	want := routerPath(e.fleet.Router) + "?access-revoked=" + a.ID.String() + "#access"
	if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != want {
		t.Fatalf("revoke: got %d to %q, want 303 to %q", res.StatusCode, res.Header.Get("Location"), want)
	}
	got, err := e.fleet.Service.Access(context.Background(), e.fleet.Principal.AccountID, e.fleet.Router.ID, a.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.RevokedAt == nil || got.StatusAt(e.clock.Now()) != fleet.StatusRemoving {
		t.Errorf("after revoke: got revoked_at %v status %s, want revoked and removing", got.RevokedAt, got.StatusAt(e.clock.Now()))
	}
	page := e.get(res.Header.Get("Location"))
	contains(t, page.body, "Access revoked.", "The SSH login "+a.Username+" is ended", `id="no-access"`)
	lacks(t, page.body, `id="a-`+a.ID.String()+`"`)
	// Polling does not ask for the banner again.
	contains(t, e.get(res.Header.Get("Location")+"&fragment=live").body, `id="no-access"`)

	// Revoking again is harmless; an unknown access, a forward's id and
	// another account's router are not found.
	if res := e.post(revoke, url.Values{"csrf": {csrf}}); res.StatusCode != http.StatusSeeOther {
		t.Errorf("second revoke: got %d, want 303", res.StatusCode)
	}
	fw := e.fleet.Forward(t, time.Hour, e.clock.Now())
	for _, id := range []string{uuid.NewString(), fw.ID.String(), "not-a-uuid"} {
		if res := e.post(routerPath(e.fleet.Router)+"/access/"+id+"/revoke", url.Values{"csrf": {csrf}}); res.StatusCode != http.StatusNotFound {
			t.Errorf("revoke access %s: got %d, want 404", id, res.StatusCode)
		}
	}
	if f, err := e.fleet.Store.Forward(context.Background(), e.fleet.Principal.AccountID, e.fleet.Router.ID, fw.ID); err != nil || f.RevokedAt != nil {
		t.Errorf("the forward after an access revoke named it: got %+v, %v; want it untouched", f, err)
	}
	// An unknown access in the banner's parameter shows no banner.
	lacks(t, e.get(routerPath(e.fleet.Router)+"?access-revoked="+uuid.NewString()).body, "Access revoked.")
}

func TestAccessOfAnotherAccountsRouterIsNotFound(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	_, other, err := e.fleet.Store.CreateAccount(ctx, "globex", t0)
	if err != nil {
		t.Fatal(err)
	}
	op, err := e.fleet.Store.Authenticate(ctx, other)
	if err != nil {
		t.Fatal(err)
	}
	foreign := addRouter(t, e.fleet.Store, op, "globex-gw", "10.99.0.9", t0)
	a, err := e.fleet.Service.CreateAccess(ctx, op, foreign.ID, fleet.NewAccess{Service: fleet.ServiceSSH,
		AllowFrom: netip.MustParsePrefix("81.2.69.0/24"), Duration: time.Hour}, e.clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	csrf := e.signIn()
	// Also a bad form: the router is looked at first.
	for _, form := range []url.Values{accessForm(csrf, "ssh"), {"csrf": {csrf}}} {
		if res := e.post(routerPath(foreign)+"/access", form); res.StatusCode != http.StatusNotFound {
			t.Errorf("access on another account's router: got %d, want 404", res.StatusCode)
		}
	}
	if res := e.post(routerPath(foreign)+"/access/"+a.ID.String()+"/revoke", url.Values{"csrf": {csrf}}); res.StatusCode != http.StatusNotFound {
		t.Errorf("revoke another account's access: got %d, want 404", res.StatusCode)
	}
	if res := e.post(routerPath(e.fleet.Router)+"/access/"+a.ID.String()+"/revoke", url.Values{"csrf": {csrf}}); res.StatusCode != http.StatusNotFound {
		t.Errorf("revoke another account's access through an own router: got %d, want 404", res.StatusCode)
	}
}

// TestAccessWhenNoPortIsLeft: a region whose one port a forward holds
// answers the access form with a message, not an error page.
func TestAccessWhenNoPortIsLeft(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	st, p := e.fleet.Store, e.fleet.Principal
	if _, err := st.CreateRegion(ctx, fleet.Region{ID: "tiny", EntryPoint: "tiny.example.net", Ports: fleet.PortRange{Min: 60000, Max: 60000},
		EdgeTunnelAddress: netip.MustParseAddr("10.98.0.1"), CreatedAt: t0}); err != nil {
		t.Fatal(err)
	}
	rt, _, err := forwards.New(st).CreateRouter(ctx, p, forwards.NewRouter{Name: "small", Region: "tiny", TunnelAddress: netip.MustParseAddr("10.98.0.2")}, t0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.fleet.Service.CreateForward(ctx, p, rt.ID, fleet.NewForward{DstAddress: netip.MustParseAddr("192.168.88.43"), DstPort: 22,
		AllowFrom: netip.MustParsePrefix("81.2.69.0/24"), Duration: time.Hour}, e.clock.Now()); err != nil {
		t.Fatal(err)
	}
	csrf := e.signIn()
	res := e.post(routerPath(rt)+"/access", accessForm(csrf, "winbox"))
	if res.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("access with no port left: got %d, want 503\n%s", res.StatusCode, res.body)
	}
	contains(t, res.body, "No free port is left at this router&#39;s entry point", `value="81.2.69.7"`)
}

// TestAccessWaitsForTheTunnel: in a managed region whose router's tunnel
// is not up, a pending access says what it waits for, on the router page and
// on the page with the password.
func TestAccessWaitsForTheTunnel(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	addManagedRegion(t, e.fleet.Store, t0)
	rt := addManagedRouter(t, e.fleet.Store, e.fleet.Principal, "far", t0)
	csrf := e.signIn()
	res := e.post(routerPath(rt)+"/access", accessForm(csrf, "ssh"))
	if res.StatusCode != http.StatusCreated {
		t.Fatalf("open access: got %d, want 201\n%s", res.StatusCode, res.body)
	}
	contains(t, res.body, "us1.example.net", "once the router's management tunnel is up (it is not now)")
	contains(t, e.get(routerPath(rt)).body, `<div class="wait-text">waiting for the management tunnel</div>`)
}

// TestAccessTurnsActive: once the router's agent confirms the user, the
// router page shows the access active.
func TestAccessTurnsActive(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	csrf := e.signIn()
	if res := e.post(routerPath(e.fleet.Router)+"/access", accessForm(csrf, "ssh")); res.StatusCode != http.StatusCreated {
		t.Fatalf("open access: got %d, want 201", res.StatusCode)
	}
	a := e.liveAccesses()[0]
	ctx := context.Background()
	rt, err := e.fleet.Store.Router(ctx, e.fleet.Principal.AccountID, e.fleet.Router.ID)
	if err != nil {
		t.Fatal(err)
	}
	rep := syncproto.Report{Revision: rt.Revision, AgentVersion: "1.4.2", Present: []string{a.ID.String()},
		Results: []syncproto.Result{{ID: a.ID.String(), State: syncproto.StateApplied}}}
	if _, err := e.fleet.Service.ApplyReport(ctx, e.fleet.Router.ID, rep, e.clock.Now()); err != nil {
		t.Fatal(err)
	}
	contains(t, e.get(routerPath(e.fleet.Router)).body, `id="a-`+a.ID.String()+`" data-access="`+a.ID.String()+`" data-status="active"`)
}
