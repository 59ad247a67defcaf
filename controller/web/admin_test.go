package web_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tpf-dev/tpf/controller/fleet"
	"github.com/tpf-dev/tpf/controller/web"
)

// publicURL is the controller's URL as the admin tests' agents reach it.
const publicURL = "https://tpf.example.net"

func withPublicURL(c *web.Config) { c.PublicURL = publicURL }

var (
	agentTokenShown = regexp.MustCompile(`id="agent-token" tabindex="0">(tpfa_[^<]+)</pre>`)
	apiTokenShown   = regexp.MustCompile(`id="new-token-secret" tabindex="0">(tpf_[^<]+)</pre>`)
)

// shown is the secret re shows in body, failing the test without one.
func shown(t testing.TB, re *regexp.Regexp, body string) string {
	t.Helper()
	m := re.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("the page shows no secret (%s):\n%s", re, body)
	}
	return m[1]
}

func (e *env) routerCount() int {
	e.t.Helper()
	list, err := e.fleet.Service.Routers(context.Background(), e.fleet.Principal.AccountID)
	if err != nil {
		e.t.Fatal(err)
	}
	return len(list)
}

func TestAddRouter(t *testing.T) {
	t.Parallel()
	e := newEnv(t, withPublicURL)
	ctx := context.Background()
	addManagedRegion(t, e.fleet.Store, t0)
	csrf := e.signIn()

	form := e.get("/routers/new")
	if form.StatusCode != http.StatusOK {
		t.Fatalf("GET /routers/new: got %d, want 200", form.StatusCode)
	}
	contains(t, form.body, `<option value="eu1" data-manual selected>`, `<option value="us1">`, `id="tunnel-field" data-manual-only`)

	// The API's rules and messages, next to the fields; nothing is added.
	for _, c := range []struct {
		form url.Values
		want map[string]string
	}{
		{url.Values{"region": {"eu1"}}, map[string]string{"name": "The name field is required.", "tunnel_address": "The tunnel address field is required."}},
		{url.Values{"name": {"b7"}}, map[string]string{"region": "The region field is required."}},
		{url.Values{"name": {"b7"}, "region": {"mars"}}, map[string]string{"region": "The selected region is invalid."}},
		{url.Values{"name": {strings.Repeat("x", 101)}, "region": {"us1"}}, map[string]string{"name": "The name field must not be greater than 100 characters."}},
		{url.Values{"name": {"b7"}, "region": {"eu1"}, "tunnel_address": {"10.99.0.300"}}, map[string]string{"tunnel_address": "The tunnel address field must be a valid IPv4 address."}},
		{url.Values{"name": {"b7"}, "region": {"eu1"}, "tunnel_address": {"224.0.0.1"}}, map[string]string{"tunnel_address": "The tunnel address field must be a unicast IPv4 address."}},
	} {
		c.form.Set("csrf", csrf)
		res := e.post("/routers", c.form)
		if res.StatusCode != http.StatusUnprocessableEntity {
			t.Errorf("%v: got %d, want 422", c.form, res.StatusCode)
			continue
		}
		for field, msg := range c.want {
			if !strings.Contains(res.body, msg) && !strings.Contains(res.body, htmlEscape(msg)) {
				t.Errorf("%v: field %s lacks the message %q", c.form, field, msg)
			}
		}
	}
	if n := e.routerCount(); n != 1 {
		t.Fatalf("routers after refused forms: got %d, want 1", n)
	}

	// A manual region takes the given tunnel address; the answer is the
	// install script with the router's agent token, once.
	res := e.post("/routers", url.Values{"csrf": {csrf}, "name": {"branch-7"}, "region": {"eu1"}, "tunnel_address": {"10.99.0.7"}})
	if res.StatusCode != http.StatusCreated {
		t.Fatalf("add a router: got %d, want 201\n%s", res.StatusCode, res.body)
	}
	if cc := res.Header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("Cache-Control of the page with the script: got %q, want no-store", cc)
	}
	token := shown(t, agentTokenShown, res.body)
	rt, err := e.fleet.Service.AuthenticateAgent(ctx, token)
	if err != nil {
		t.Fatalf("the shown agent token: %v", err)
	}
	if rt.Name != "branch-7" || rt.Region != "eu1" || rt.TunnelAddress != netip.MustParseAddr("10.99.0.7") {
		t.Errorf("added router: got %s in %s at %s", rt.Name, rt.Region, rt.TunnelAddress)
	}
	contains(t, res.body, "Router branch-7 added", "# tpf agent for router branch-7 ("+rt.ID.String()+")",
		`"TPF_CONTROLLER_URL") "`+publicURL+`"`, `<meta name="tpf-replace-url" content="/routers/`+rt.ID.String()+`">`,
		`/tool/fetch http-method=post url="`+publicURL+`/api/routers/`+rt.ID.String()+`/install-script"`,
		"your own VPN (manual region)")
	if strings.Count(res.body, token) != 2 { // in the script and on its own
		t.Errorf("the agent token shows %d times, want 2", strings.Count(res.body, token))
	}
	lacks(t, e.get(routerPath(rt)).body, token)

	// A managed region allocates the address (a typed one is ignored: the
	// form hides the field there) and names the edge's endpoint.
	res = e.post("/routers", url.Values{"csrf": {csrf}, "name": {"branch-8"}, "region": {"us1"}, "tunnel_address": {"10.99.0.8"}})
	if res.StatusCode != http.StatusCreated {
		t.Fatalf("add a router in us1: got %d, want 201\n%s", res.StatusCode, res.body)
	}
	rt, err = e.fleet.Service.AuthenticateAgent(ctx, shown(t, agentTokenShown, res.body))
	if err != nil {
		t.Fatal(err)
	}
	if rt.Region != "us1" || !netip.MustParsePrefix("100.64.0.0/10").Contains(rt.TunnelAddress) {
		t.Errorf("router of us1: got %s at %s, want an address allocated in 100.64.0.0/10", rt.Region, rt.TunnelAddress)
	}
	contains(t, res.body, "us1.example.net:51820", rt.TunnelAddress.String())

	events, err := e.fleet.Store.AuditEvents(ctx, e.fleet.Principal.AccountID, 0, 2)
	if err != nil {
		t.Fatal(err)
	}
	if len(events) != 2 || events[0].Action != fleet.ActionRouterCreate || events[0].Actor != e.fleet.Principal.Actor() {
		t.Errorf("audit after adding: got %+v, want router.create by the session's token", events)
	}
}

// TestInstallScriptNeedsAReachableURL: without Config.PublicURL the script
// names the controller as the request did, and a loopback name is refused
// before anything is created or rotated.
func TestInstallScriptNeedsAReachableURL(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	csrf := e.signIn()
	res := e.post("/routers", url.Values{"csrf": {csrf}, "name": {"b9"}, "region": {"eu1"}, "tunnel_address": {"10.99.0.9"}})
	if res.StatusCode != http.StatusUnprocessableEntity {
		t.Fatalf("add a router through 127.0.0.1: got %d, want 422", res.StatusCode)
	}
	contains(t, res.body, "TPF_PUBLIC_URL")
	if n := e.routerCount(); n != 1 {
		t.Errorf("routers after a refused script: got %d, want 1", n)
	}
	res = e.post(routerPath(e.fleet.Router)+"/agent-token", url.Values{"csrf": {csrf}})
	if res.StatusCode != http.StatusUnprocessableEntity {
		t.Fatalf("rotate through 127.0.0.1: got %d, want 422", res.StatusCode)
	}
	contains(t, res.body, "TPF_PUBLIC_URL", "The agent token was left as it was.")
	if _, err := e.fleet.Service.AuthenticateAgent(context.Background(), e.fleet.AgentToken); err != nil {
		t.Errorf("the agent token after a refused rotation: %v", err)
	}

	// Through a proxy that names the controller, the script does too.
	req, err := http.NewRequest(http.MethodPost, e.srv.URL+"/routers", strings.NewReader(url.Values{
		"csrf": {csrf}, "name": {"b9"}, "region": {"eu1"}, "tunnel_address": {"10.99.0.9"}}.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Host = "tpf.example.net"
	// The client's jar keys cookies by the Host it sends; the proxy passes
	// the browser's cookie on.
	req.AddCookie(&http.Cookie{Name: "tpf_session", Value: e.sessionID()})
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("X-Forwarded-Proto", "https")
	res = e.do(req)
	if res.StatusCode != http.StatusCreated {
		t.Fatalf("add a router through tpf.example.net: got %d (%s), want 201\n%s", res.StatusCode, res.Header.Get("Location"), res.body)
	}
	contains(t, res.body, `"TPF_CONTROLLER_URL") "https://tpf.example.net"`)
}

func TestRotateAgentToken(t *testing.T) {
	t.Parallel()
	e := newEnv(t, withPublicURL)
	ctx := context.Background()
	csrf := e.signIn()
	path := routerPath(e.fleet.Router)
	contains(t, e.get(path).body, `href="`+path+`/agent-token"`, `href="`+path+`/delete"`)

	ask := e.get(path + "/agent-token")
	if ask.StatusCode != http.StatusOK {
		t.Fatalf("confirmation: got %d, want 200", ask.StatusCode)
	}
	contains(t, ask.body, "Issue a new agent token for r1?", "the router's agent is disconnected", `action="`+path+`/agent-token"`)
	if _, err := e.fleet.Service.AuthenticateAgent(ctx, e.fleet.AgentToken); err != nil {
		t.Fatalf("asking rotated the token: %v", err)
	}

	res := e.post(path+"/agent-token", url.Values{"csrf": {csrf}})
	if res.StatusCode != http.StatusOK {
		t.Fatalf("rotate: got %d, want 200\n%s", res.StatusCode, res.body)
	}
	token := shown(t, agentTokenShown, res.body)
	contains(t, res.body, "New agent token for r1", "The router's previous token has stopped working.", "# tpf agent for router r1")
	if _, err := e.fleet.Service.AuthenticateAgent(ctx, e.fleet.AgentToken); !errors.Is(err, fleet.ErrUnauthenticated) {
		t.Errorf("the old agent token: got %v, want unauthenticated", err)
	}
	if rt, err := e.fleet.Service.AuthenticateAgent(ctx, token); err != nil || rt.ID != e.fleet.Router.ID {
		t.Errorf("the new agent token: got %v, %v", rt.ID, err)
	}
	if res := e.get("/routers/" + "00000000-0000-4000-8000-000000000000" + "/agent-token"); res.StatusCode != http.StatusNotFound {
		t.Errorf("confirmation for an unknown router: got %d, want 404", res.StatusCode)
	}
}

func TestDeleteRouter(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	now := e.clock.Now()
	e.fleet.Forward(t, time.Hour, now)
	e.fleet.Forward(t, time.Hour, now)
	csrf := e.signIn()
	path := routerPath(e.fleet.Router)

	ask := e.get(path + "/delete")
	if ask.StatusCode != http.StatusOK {
		t.Fatalf("confirmation: got %d, want 200", ask.StatusCode)
	}
	contains(t, ask.body, "Delete router r1?", "Its 2 live forwards are revoked at once", `action="`+path+`/delete"`)

	res := e.post(path+"/delete", url.Values{"csrf": {csrf}})
	if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/?deleted=1" {
		t.Fatalf("delete: got %d to %q, want 303 to /?deleted=1", res.StatusCode, res.Header.Get("Location"))
	}
	if _, err := e.fleet.Store.Router(ctx, e.fleet.Principal.AccountID, e.fleet.Router.ID); !errors.Is(err, fleet.ErrNotFound) {
		t.Errorf("the deleted router: got %v, want not found", err)
	}
	events, err := e.fleet.Store.AuditEvents(ctx, e.fleet.Principal.AccountID, 0, 1)
	if err != nil {
		t.Fatal(err)
	}
	if len(events) != 1 || events[0].Action != fleet.ActionRouterDelete || !strings.Contains(string(events[0].Detail), `"forwards_ended": 2`) {
		t.Errorf("audit after deleting: got %+v %s", events, events[0].Detail)
	}
	fleetPage := e.get("/?deleted=1")
	contains(t, fleetPage.body, "Router deleted.", "This account has no routers yet")
	if res := e.get(path + "/delete"); res.StatusCode != http.StatusNotFound {
		t.Errorf("confirmation for the deleted router: got %d, want 404", res.StatusCode)
	}
}

// TestAdminFormsNeedCSRF: every admin form is refused without the
// session's CSRF token, and changes nothing.
func TestAdminFormsNeedCSRF(t *testing.T) {
	t.Parallel()
	e := newEnv(t, withPublicURL)
	ctx := context.Background()
	e.signIn()
	other, _, err := e.fleet.Store.IssueToken(ctx, e.fleet.Principal.AccountID, fleet.ActorAdmin, "other", t0)
	if err != nil {
		t.Fatal(err)
	}
	path := routerPath(e.fleet.Router)
	for _, c := range []struct {
		path string
		form url.Values
	}{
		{"/routers", url.Values{"name": {"b7"}, "region": {"eu1"}, "tunnel_address": {"10.99.0.7"}}},
		{path + "/agent-token", url.Values{}},
		{path + "/delete", url.Values{}},
		{"/tokens", url.Values{"name": {"x"}}},
		{"/tokens/" + other.ID.String() + "/revoke", url.Values{}},
	} {
		for _, csrf := range []string{"", "forged"} {
			c.form.Set("csrf", csrf)
			if res := e.post(c.path, c.form); res.StatusCode != http.StatusForbidden {
				t.Errorf("POST %s with csrf %q: got %d, want 403", c.path, csrf, res.StatusCode)
			}
		}
		// A browser posting from another site is refused before that.
		if res := e.post(c.path, c.form, "Sec-Fetch-Site", "cross-site"); res.StatusCode != http.StatusForbidden {
			t.Errorf("cross-site POST %s: got %d, want 403", c.path, res.StatusCode)
		}
	}
	if n := e.routerCount(); n != 1 {
		t.Errorf("routers: got %d, want 1", n)
	}
	if _, err := e.fleet.Service.AuthenticateAgent(ctx, e.fleet.AgentToken); err != nil {
		t.Errorf("agent token: %v", err)
	}
	tokens, err := e.fleet.Store.Tokens(ctx, e.fleet.Principal.AccountID)
	if err != nil {
		t.Fatal(err)
	}
	if len(tokens) != 2 || tokens[1].RevokedAt != nil {
		t.Errorf("tokens: got %+v, want default and other, neither revoked", tokens)
	}
}

func TestTokensPage(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	csrf := e.signIn()
	page := e.get("/tokens")
	if page.StatusCode != http.StatusOK {
		t.Fatalf("GET /tokens: got %d, want 200", page.StatusCode)
	}
	contains(t, page.body, "default", "this session", "1 active")

	for name, want := range map[string]string{
		"":                      "The name field is required.",
		strings.Repeat(" ", 3):  "The name field is required.",
		strings.Repeat("n", 65): "The name field must not be greater than 64 characters.",
		"tab\tin the middle":    "The name field must not contain control characters.",
	} {
		res := e.post("/tokens", url.Values{"csrf": {csrf}, "name": {name}})
		if res.StatusCode != http.StatusUnprocessableEntity {
			t.Errorf("issue %q: got %d, want 422", name, res.StatusCode)
		}
		contains(t, res.body, want)
	}

	res := e.post("/tokens", url.Values{"csrf": {csrf}, "name": {"ci"}})
	if res.StatusCode != http.StatusCreated {
		t.Fatalf("issue: got %d, want 201\n%s", res.StatusCode, res.body)
	}
	secret := shown(t, apiTokenShown, res.body)
	contains(t, res.body, "Token ci issued", "Shown once:", `<meta name="tpf-replace-url" content="/tokens">`)
	ci, err := e.fleet.Store.Authenticate(ctx, secret)
	if err != nil || ci.TokenName != "ci" {
		t.Fatalf("the issued token: got %+v, %v", ci, err)
	}
	page = e.get("/tokens")
	lacks(t, page.body, secret)
	contains(t, page.body, "2 active", `href="/tokens/`+ci.TokenID.String()+`/revoke"`)

	// Revoke it, after a confirmation.
	ask := e.get("/tokens/" + ci.TokenID.String() + "/revoke")
	contains(t, ask.body, "Revoke the API token ci?", "every web session signed in with it ends")
	lacks(t, ask.body, "signs you out")
	res = e.post("/tokens/"+ci.TokenID.String()+"/revoke", url.Values{"csrf": {csrf}})
	if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/tokens?revoked="+ci.TokenID.String() {
		t.Fatalf("revoke: got %d to %q", res.StatusCode, res.Header.Get("Location"))
	}
	if _, err := e.fleet.Store.Authenticate(ctx, secret); !errors.Is(err, fleet.ErrUnauthenticated) {
		t.Errorf("the revoked token: got %v, want unauthenticated", err)
	}
	contains(t, e.get(res.Header.Get("Location")).body, "Token revoked.", "The token ci authenticates nothing any more")

	// Another account's token is not found.
	_, globex, err := e.fleet.Store.CreateAccount(ctx, "globex", t0)
	if err != nil {
		t.Fatal(err)
	}
	gp, err := e.fleet.Store.Authenticate(ctx, globex)
	if err != nil {
		t.Fatal(err)
	}
	for _, res := range []response{
		e.get("/tokens/" + gp.TokenID.String() + "/revoke"),
		e.post("/tokens/"+gp.TokenID.String()+"/revoke", url.Values{"csrf": {csrf}}),
	} {
		if res.StatusCode != http.StatusNotFound {
			t.Errorf("another account's token: got %d, want 404", res.StatusCode)
		}
	}
	if _, err := e.fleet.Store.Authenticate(ctx, globex); err != nil {
		t.Errorf("another account's token after trying to revoke it: %v", err)
	}

	// Revoking the session's own token signs the browser out.
	own := e.fleet.Principal.TokenID.String()
	contains(t, e.get("/tokens/"+own+"/revoke").body, "It is the token you signed in with: revoking it signs you out.")
	id := e.sessionID()
	res = e.post("/tokens/"+own+"/revoke", url.Values{"csrf": {csrf}})
	if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/signin?revoked=1" {
		t.Fatalf("revoke the own token: got %d to %q, want 303 to /signin?revoked=1", res.StatusCode, res.Header.Get("Location"))
	}
	if c := sessionCookie(t, res); c.MaxAge >= 0 {
		t.Errorf("session cookie after revoking the own token: Max-Age %d, want it cleared", c.MaxAge)
	}
	if e.sessionStored(id) {
		t.Error("the session of the revoked token is still stored")
	}
	contains(t, e.get("/signin?revoked=1").body, "which signed you out")
	if res := e.get("/tokens"); res.StatusCode != http.StatusSeeOther {
		t.Errorf("tokens page after signing out: got %d, want 303 to sign in", res.StatusCode)
	}
}

func TestAuditPage(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	st, p := e.fleet.Store, e.fleet.Principal
	now := e.clock.Now()
	fw := e.fleet.Forward(t, time.Hour, now)
	if err := e.fleet.Service.RevokeForward(ctx, p, e.fleet.Router.ID, fw.ID, now); err != nil {
		t.Fatal(err)
	}
	e.signIn()
	res := e.get("/audit")
	if res.StatusCode != http.StatusOK {
		t.Fatalf("GET /audit: got %d, want 200", res.StatusCode)
	}
	contains(t, res.body, "revoked a forward", "created a forward", "added a router", "token default",
		"forward "+fw.ID.String()[:8]+" on r1", `href="/routers/`+e.fleet.Router.ID.String()+`#f-`+fw.ID.String()+`"`,
		"<dt>dst address:</dt> <dd>192.168.88.43</dd>", "<dt>allow from:</dt> <dd>81.2.69.0/24</dd>",
		"<dt>router id:</dt> <dd><a href=\"/routers/"+e.fleet.Router.ID.String()+"\">r1 ("+e.fleet.Router.ID.String()[:8]+")</a></dd>",
		"<dt>masquerade:</dt> <dd>no</dd>", "<dt>expires at:</dt> <dd>Mar 14 10:27:53 UTC</dd>")
	lacks(t, res.body, `id="older"`, "« Newest")
	if got := strings.Index(res.body, "revoked a forward"); got > strings.Index(res.body, "created a forward") {
		t.Error("the audit log is not newest first")
	}

	// Pages of 50, newest first, ?before=ID going back.
	for i := range 60 {
		if _, _, err := st.IssueToken(ctx, p.AccountID, fleet.ActorAdmin, fmt.Sprintf("batch-%02d", i), now); err != nil {
			t.Fatal(err)
		}
	}
	events, err := st.AuditEvents(ctx, p.AccountID, 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	res = e.get("/audit")
	if got := strings.Count(res.body, "<tr data-event="); got != 50 {
		t.Errorf("events on the first page: got %d, want 50", got)
	}
	contains(t, res.body, "an admin command", "issued an API token", "API token batch-59",
		`href="/audit?before=`+strconv.FormatInt(events[49].ID, 10)+`"`)
	res = e.get("/audit?before=" + strconv.FormatInt(events[49].ID, 10))
	if got, want := strings.Count(res.body, "<tr data-event="), len(events)-50; got != want {
		t.Errorf("events on the second page: got %d, want %d", got, want)
	}
	contains(t, res.body, `<tr data-event="`+strconv.FormatInt(events[50].ID, 10)+`"`, "« Newest", "added a router")
	lacks(t, res.body, `id="older"`)
	if res := e.get("/audit?before=soon"); res.StatusCode != http.StatusBadRequest {
		t.Errorf("?before=soon: got %d, want 400", res.StatusCode)
	}

	// Another account's events are never shown.
	_, globex, err := st.CreateAccount(ctx, "globex", t0)
	if err != nil {
		t.Fatal(err)
	}
	gp, err := st.Authenticate(ctx, globex)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := st.IssueToken(ctx, gp.AccountID, gp.Actor(), "globex-secret", now); err != nil {
		t.Fatal(err)
	}
	lacks(t, e.get("/audit").body, "globex-secret")
}

func TestFleetExpiring(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	now := e.clock.Now()
	e.fleet.Forward(t, 10*time.Minute, now)
	e.fleet.Forward(t, 16*time.Minute, now)
	other := addRouter(t, e.fleet.Store, e.fleet.Principal, "r2", "10.99.0.3", t0)
	if _, err := e.fleet.Service.CreateForward(context.Background(), e.fleet.Principal, other.ID, fleet.NewForward{
		DstAddress: netip.MustParseAddr("192.168.1.2"), DstPort: 22, AllowFrom: netip.MustParsePrefix("81.2.69.0/24"), Duration: 2 * time.Hour,
	}, now); err != nil {
		t.Fatal(err)
	}
	e.signIn()
	res := e.get("/")
	contains(t, res.body, `<span class="n">1</span><span class="l">expiring within 15 min</span>`,
		`<span class="pill expiring">1 expiring</span>`, `Expiring within 15 min <span class="count">1</span>`)
	if got := fleetRows(t, e, "/?state=expiring"); got != "r1" {
		t.Errorf("routers with forwards expiring within 15 min: got %q, want r1", got)
	}
	// Two minutes on, the 16-minute forward is expiring too.
	e.clock.Advance(2 * time.Minute)
	contains(t, e.get("/").body, `<span class="n">2</span><span class="l">expiring within 15 min</span>`)
}
