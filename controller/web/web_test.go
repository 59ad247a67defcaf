package web_test

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/tpf-dev/tpf/controller/fleet"
	"github.com/tpf-dev/tpf/controller/forwards"
	"github.com/tpf-dev/tpf/controller/store"
	"github.com/tpf-dev/tpf/controller/store/storetest"
	"github.com/tpf-dev/tpf/controller/web"
	"github.com/tpf-dev/tpf/shared/syncproto"
)

func TestSignIn(t *testing.T) {
	t.Parallel()
	e := newEnv(t)

	res := e.get("/")
	if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/signin" {
		t.Fatalf("signed out GET /: got %d to %q, want 303 to /signin", res.StatusCode, res.Header.Get("Location"))
	}
	res = e.get("/signin")
	if res.StatusCode != http.StatusOK {
		t.Fatalf("GET /signin: got %d, want 200", res.StatusCode)
	}
	contains(t, res.body, `name="token"`, `type="password"`)

	res = e.post("/signin", url.Values{"token": {"tpf_not-a-real-token"}})
	if res.StatusCode != http.StatusUnauthorized {
		t.Fatalf("wrong token: got %d, want 401", res.StatusCode)
	}
	contains(t, res.body, "That token is unknown or has been revoked.")
	if len(res.Cookies()) != 0 {
		t.Errorf("wrong token: got cookies %v, want none", res.Cookies())
	}

	res = e.post("/signin", url.Values{"token": {e.fleet.APIToken}})
	if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/" {
		t.Fatalf("sign in: got %d to %q, want 303 to /", res.StatusCode, res.Header.Get("Location"))
	}
	c := sessionCookie(t, res)
	if !c.HttpOnly || c.SameSite != http.SameSiteLaxMode || c.Path != "/" || c.Secure {
		t.Errorf("cookie over plain HTTP: got HttpOnly=%v SameSite=%v Path=%q Secure=%v, want true Lax / false", c.HttpOnly, c.SameSite, c.Path, c.Secure)
	}
	if strings.Contains(c.Value, e.fleet.APIToken) || strings.Contains(e.fleet.APIToken, c.Value) || len(c.Value) < 40 {
		t.Errorf("cookie value %q: want an opaque random id, not the token", c.Value)
	}
	if c.MaxAge <= 0 {
		t.Errorf("cookie MaxAge %d: want the session's lifetime", c.MaxAge)
	}

	res = e.get("/")
	if res.StatusCode != http.StatusOK {
		t.Fatalf("signed in GET /: got %d, want 200", res.StatusCode)
	}
	contains(t, res.body, "acme · token default", "r1")
	for _, h := range []string{"Content-Security-Policy", "X-Frame-Options", "X-Content-Type-Options"} {
		if res.Header.Get(h) == "" {
			t.Errorf("fleet page: no %s header", h)
		}
	}
	if got := res.Header.Get("Cache-Control"); got != "no-store" {
		t.Errorf("fleet page Cache-Control: got %q, want no-store", got)
	}
}

func sessionCookie(t testing.TB, res response) *http.Cookie {
	t.Helper()
	for _, c := range res.Cookies() {
		if c.Name == "tpf_session" {
			return c
		}
	}
	t.Fatalf("no tpf_session cookie in %v", res.Header["Set-Cookie"])
	return nil
}

func TestSessionCookieSecureOverTLS(t *testing.T) {
	t.Parallel()
	e := newEnv(t)

	// Behind a proxy that terminated TLS.
	res := e.post("/signin", url.Values{"token": {e.fleet.APIToken}}, "X-Forwarded-Proto", "https")
	if c := sessionCookie(t, res); !c.Secure || !c.HttpOnly {
		t.Errorf("X-Forwarded-Proto https: got Secure=%v HttpOnly=%v, want both", c.Secure, c.HttpOnly)
	}

	// Served over TLS directly.
	srv := httptest.NewTLSServer(web.New(e.fleet.Store, web.Config{}))
	t.Cleanup(srv.Close)
	client := srv.Client()
	client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	r, err := client.PostForm(srv.URL+"/signin", url.Values{"token": {e.fleet.APIToken}})
	if err != nil {
		t.Fatal(err)
	}
	r.Body.Close()
	if c := sessionCookie(t, response{Response: r}); !c.Secure || c.SameSite != http.SameSiteLaxMode {
		t.Errorf("over TLS: got Secure=%v SameSite=%v, want true Lax", c.Secure, c.SameSite)
	}
}

func TestSignInReturnsToLocalPathsOnly(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	res := e.get(routerPath(e.fleet.Router) + "?x=1")
	want := "/signin?next=" + url.QueryEscape(routerPath(e.fleet.Router)+"?x=1")
	if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != want {
		t.Fatalf("signed out router page: got %d to %q, want 303 to %q", res.StatusCode, res.Header.Get("Location"), want)
	}
	for next, want := range map[string]string{
		routerPath(e.fleet.Router): routerPath(e.fleet.Router),
		"//evil.example/":          "/",
		"https://evil.example/":    "/",
		`/\evil.example`:           "/",
	} {
		res := e.post("/signin", url.Values{"token": {e.fleet.APIToken}, "next": {next}})
		if got := res.Header.Get("Location"); got != want {
			t.Errorf("next=%q: got redirect to %q, want %q", next, got, want)
		}
	}
}

func TestCSRF(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	csrf := e.signIn()
	create := routerPath(e.fleet.Router) + "/forwards"
	form := url.Values{"dst_address": {"192.168.88.43"}, "dst_port": {"22"}, "allow_from": {"81.2.69.0/24"}, "expire_after_minutes": {"60"}}

	for name, token := range map[string]string{"missing": "", "wrong": csrf[:len(csrf)-2] + "xx"} {
		f := url.Values{}
		for k, v := range form {
			f[k] = v
		}
		if token != "" {
			f.Set("csrf", token)
		}
		res := e.post(create, f)
		if res.StatusCode != http.StatusForbidden {
			t.Errorf("create with %s csrf token: got %d, want 403", name, res.StatusCode)
		}
		contains(t, res.body, "This form has expired or did not come from this site.")
	}
	res := e.post(routerPath(e.fleet.Router)+"/forwards/"+uuid.NewString()+"/revoke", url.Values{})
	if res.StatusCode != http.StatusForbidden {
		t.Errorf("revoke without csrf token: got %d, want 403", res.StatusCode)
	}
	if res := e.post("/signout", url.Values{}); res.StatusCode != http.StatusForbidden {
		t.Errorf("sign out without csrf token: got %d, want 403", res.StatusCode)
	}
	// A browser's cross-site post is refused even with the right token.
	f := url.Values{"csrf": {csrf}}
	for k, v := range form {
		f[k] = v
	}
	if res := e.post(create, f, "Sec-Fetch-Site", "cross-site"); res.StatusCode != http.StatusForbidden {
		t.Errorf("cross-site create: got %d, want 403", res.StatusCode)
	}
	if res := e.post("/signin", url.Values{"token": {e.fleet.APIToken}}, "Origin", "https://evil.example"); res.StatusCode != http.StatusForbidden {
		t.Errorf("cross-origin sign in: got %d, want 403", res.StatusCode)
	}

	live, err := e.fleet.Store.LiveForwards(context.Background(), e.fleet.Principal.AccountID, e.fleet.Router.ID, e.clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	if len(live) != 0 {
		t.Fatalf("refused posts created %d forwards, want 0", len(live))
	}
	// The session still works, and with its token the form does too.
	if res := e.post(create, f); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("create with the csrf token: got %d, want 303\n%s", res.StatusCode, res.body)
	}
}

func TestSignOut(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	csrf := e.signIn()
	u, _ := url.Parse(e.srv.URL)
	old := e.client.Jar.Cookies(u)

	res := e.post("/signout", url.Values{"csrf": {csrf}})
	if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/signin" {
		t.Fatalf("sign out: got %d to %q, want 303 to /signin", res.StatusCode, res.Header.Get("Location"))
	}
	if c := sessionCookie(t, res); c.MaxAge >= 0 {
		t.Errorf("sign out cookie MaxAge %d: want it deleted", c.MaxAge)
	}
	// The old session id is dead on the server too.
	e.client.Jar.SetCookies(u, old)
	if res := e.get("/"); res.StatusCode != http.StatusSeeOther {
		t.Errorf("GET / with the signed-out cookie: got %d, want 303", res.StatusCode)
	}
	if res := e.get("/?fragment=live"); res.StatusCode != http.StatusUnauthorized {
		t.Errorf("polling with the signed-out cookie: got %d, want 401", res.StatusCode)
	}
}

func TestSessionExpiresAndFollowsToken(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.signIn()
	id := e.sessionID()
	e.clock.Advance(web.DefaultSessionLifetime)
	if res := e.get("/"); res.StatusCode != http.StatusSeeOther {
		t.Errorf("after the session's lifetime: got %d, want 303 to sign in", res.StatusCode)
	}
	if e.sessionStored(id) {
		t.Error("the expired session is still stored; refusing it must delete it")
	}

	e.signIn()
	id = e.sessionID()
	// Revoking the token (as DELETE /api/tokens/{id} does) ends its
	// sessions at once.
	p := e.fleet.Principal
	if _, _, err := e.fleet.Store.RevokeToken(context.Background(), p.AccountID, p.Actor(), p.TokenID, e.clock.Now()); err != nil {
		t.Fatalf("revoke the token: %v", err)
	}
	if e.sessionStored(id) {
		t.Error("the revoked token's session is still stored")
	}
	if res := e.get("/"); res.StatusCode != http.StatusSeeOther {
		t.Errorf("after revoking the token: got %d, want 303 to sign in", res.StatusCode)
	}
	if res := e.get("/?fragment=live"); res.StatusCode != http.StatusUnauthorized {
		t.Errorf("polling after revoking the token: got %d, want 401", res.StatusCode)
	}
	if res := e.post("/signin", url.Values{"token": {e.fleet.APIToken}}); res.StatusCode != http.StatusUnauthorized {
		t.Errorf("signing in with the revoked token: got %d, want 401", res.StatusCode)
	}
}

// A session lives in the database: a new web server over it (a restart, or
// another replica with its own pool) serves the same browser, CSRF token
// and all, and only a hash of the session id is stored.
func TestSessionSurvivesRestart(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	csrf := e.signIn()
	id := e.sessionID()

	var stored int
	err := e.fleet.Pool.QueryRow(context.Background(),
		"select count(*) from web_sessions where id_hash = sha256(convert_to($1, 'UTF8')) and token_id = $2",
		id, e.fleet.Principal.TokenID).Scan(&stored)
	if err != nil || stored != 1 {
		t.Fatalf("sessions stored under the id's SHA-256: got %d, %v, want 1", stored, err)
	}
	var leaks int
	err = e.fleet.Pool.QueryRow(context.Background(),
		"select count(*) from web_sessions where position(convert_to($1, 'UTF8') in id_hash) > 0 or csrf = $1", id).Scan(&leaks)
	if err != nil || leaks != 0 {
		t.Errorf("rows holding the session id itself: got %d, %v, want 0", leaks, err)
	}

	// The restart: a new store over a new pool, new views, a new server.
	st := store.New(storetest.Reopen(t, e.fleet.Pool))
	e.srv.Close()
	e.srv = httptest.NewServer(web.New(st, web.Config{Now: e.clock.Now}))
	t.Cleanup(e.srv.Close)
	u, err := url.Parse(e.srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	e.client.Jar.SetCookies(u, []*http.Cookie{{Name: "tpf_session", Value: id, Path: "/"}})

	res := e.get("/")
	if res.StatusCode != http.StatusOK {
		t.Fatalf("after the restart: got %d, want 200 (still signed in)", res.StatusCode)
	}
	if got := csrfOf(t, res.body); got != csrf {
		t.Errorf("CSRF token after the restart: got %q, want the session's %q", got, csrf)
	}
	form := url.Values{"csrf": {csrf}, "dst_address": {"192.168.88.43"}, "dst_port": {"22"}, "allow_from": {"81.2.69.0/24"}, "expire_after_minutes": {"60"}}
	if res := e.post(routerPath(e.fleet.Router)+"/forwards", form); res.StatusCode != http.StatusSeeOther {
		t.Errorf("a form with the session's CSRF token after the restart: got %d, want 303\n%s", res.StatusCode, res.body)
	}
	form.Set("csrf", "not-it")
	if res := e.post(routerPath(e.fleet.Router)+"/forwards", form); res.StatusCode != http.StatusForbidden {
		t.Errorf("a form with a wrong CSRF token after the restart: got %d, want 403", res.StatusCode)
	}

	// Signing out on the new server ends the session everywhere.
	if res := e.post("/signout", url.Values{"csrf": {csrf}}); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign out: got %d, want 303", res.StatusCode)
	}
	if e.sessionStored(id) {
		t.Error("the signed-out session is still stored")
	}
}

func TestFleetPage(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	st, p := e.fleet.Store, e.fleet.Principal
	now := e.clock.Now()

	// r1: connected, two live forwards confirmed, one more pending (out of sync).
	connectAgent(t, st, e.fleet.Router, now)
	e.fleet.Forward(t, time.Hour, now)
	e.fleet.Forward(t, time.Hour, now)
	confirm(t, st, p, e.fleet.Router, now)
	e.fleet.Forward(t, time.Hour, now)
	// gw-branch: was connected, went away three hours ago.
	gone := addRouter(t, st, p, "gw-branch", "10.99.0.3", t0)
	connectAgent(t, st, gone, now.Add(-4*time.Hour))
	if err := st.AgentDisconnected(ctx, gone.ID, now.Add(-3*time.Hour)); err != nil {
		t.Fatal(err)
	}
	// core-lab: connected, its last pass failed.
	failing := addRouter(t, st, p, "core-lab", "10.99.0.4", t0)
	connectAgent(t, st, failing, now)
	if _, err := forwards.New(st).ApplyReport(ctx, failing.ID, syncproto.Report{Revision: 0, Error: "login failure: invalid user name or password"}, now); err != nil {
		t.Fatal(err)
	}
	// new-site: never connected.
	addRouter(t, st, p, "new-site", "10.99.0.5", t0)
	// Another account's router is never shown.
	_, other, err := st.CreateAccount(ctx, "globex", t0)
	if err != nil {
		t.Fatal(err)
	}
	op, err := st.Authenticate(ctx, other)
	if err != nil {
		t.Fatal(err)
	}
	addRouter(t, st, op, "globex-secret", "10.99.0.6", t0)

	e.signIn()
	res := e.get("/")
	contains(t, res.body, "r1", "gw-branch", "core-lab", "new-site",
		"r1-identity", "1.4.2", "RouterOS 7.18.2", "RB5009UG+S+",
		"login failure: invalid user name or password", "never connected", "4 h ago")
	lacks(t, res.body, "globex-secret")
	// Totals: 4 routers, 2 connected, 1 offline, r1 out of sync, core-lab
	// with an error, 3 live forwards of which 1 pending.
	for _, want := range []string{
		`<span class="n">4</span><span class="l">routers</span>`,
		`<span class="n">2</span><span class="l">connected</span>`,
		`<span class="n">1</span><span class="l">offline</span>`,
		`<span class="n">1</span><span class="l">out of sync</span>`,
		`<span class="n">1</span><span class="l">with errors</span>`,
		`<span class="n">3</span><span class="l">live forwards · 1 pending</span>`,
	} {
		if !strings.Contains(res.body, want) {
			t.Errorf("totals lack %s", want)
		}
	}
	if !strings.Contains(res.body, `<td class="num">3 <span class="pill pending">1 pending</span></td>`) {
		t.Errorf("r1's row does not show 3 live forwards, 1 pending")
	}

	rows := func(path string) []string {
		t.Helper()
		res := e.get(path)
		if res.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: got %d, want 200", path, res.StatusCode)
		}
		var names []string
		for _, part := range strings.Split(res.body, `<td class="name"><a href="/routers/`)[1:] {
			_, rest, _ := strings.Cut(part, `">`)
			name, _, _ := strings.Cut(rest, "</a>")
			names = append(names, name)
		}
		return names
	}
	for path, want := range map[string]string{
		"/":                     "core-lab gw-branch new-site r1",
		"/?state=connected":     "core-lab r1",
		"/?state=offline":       "gw-branch",
		"/?state=never":         "new-site",
		"/?state=out-of-sync":   "r1",
		"/?state=errors":        "core-lab",
		"/?state=forwards":      "r1",
		"/?q=BRANCH":            "gw-branch",
		"/?q=rb5009+identity":   "core-lab gw-branch r1",
		"/?q=10.99.0.5":         "new-site",
		"/?q=nothing-like-this": "",
		"/?sort=status":         "core-lab gw-branch r1 new-site",
		"/?sort=forwards":       "r1 core-lab gw-branch new-site",
		"/?state=bogus":         "core-lab gw-branch new-site r1",
	} {
		if got := strings.Join(rows(path), " "); got != want {
			t.Errorf("GET %s: got rows %q, want %q", path, got, want)
		}
	}
	contains(t, e.get("/?q=nothing-like-this").body, "No router matches.")
}

func TestFleetFragment(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.signIn()
	res := e.get("/?fragment=live")
	if res.StatusCode != http.StatusOK {
		t.Fatalf("fragment: got %d, want 200", res.StatusCode)
	}
	if strings.Contains(res.body, "<html") || !strings.Contains(res.body, `id="fleet-rows"`) {
		t.Fatalf("fragment: want the live part only, got\n%s", res.body)
	}
	etag := res.Header.Get("ETag")
	if etag == "" {
		t.Fatal("fragment: no ETag")
	}
	req, _ := http.NewRequest(http.MethodGet, e.srv.URL+"/?fragment=live", nil)
	req.Header.Set("If-None-Match", etag)
	if res := e.do(req); res.StatusCode != http.StatusNotModified {
		t.Errorf("unchanged fragment: got %d, want 304", res.StatusCode)
	}
	e.fleet.Forward(t, time.Hour, e.clock.Now())
	if res := e.do(req); res.StatusCode != http.StatusOK {
		t.Errorf("fragment after a change: got %d, want 200", res.StatusCode)
	}
}

func TestRouterPage(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	st, p := e.fleet.Store, e.fleet.Principal
	now := e.clock.Now()
	connectAgent(t, st, e.fleet.Router, now)

	active := e.fleet.Forward(t, 2*time.Hour, now.Add(-30*time.Minute))
	confirm(t, st, p, e.fleet.Router, now)
	pending := e.fleet.Forward(t, 20*time.Minute, now)
	revoked := e.fleet.Forward(t, 2*time.Hour, now.Add(-3*time.Hour))
	if err := forwards.New(st).RevokeForward(ctx, p, e.fleet.Router.ID, revoked.ID, now.Add(-2*time.Hour)); err != nil {
		t.Fatal(err)
	}
	conn := syncproto.Connection{ID: uuid.NewString(), ForwardID: active.ID.String(), Source: netip.MustParseAddrPort("81.2.69.7:51234"),
		Start: now.Add(-10 * time.Minute), End: now.Add(-5 * time.Minute), BytesUp: 2048, BytesDown: 3 << 20, Reason: "client closed"}
	open := syncproto.Connection{ID: uuid.NewString(), ForwardID: active.ID.String(), Source: netip.MustParseAddrPort("81.2.69.8:40000"),
		Start: now.Add(-time.Minute)}
	if err := forwards.New(st).RecordConnections(ctx, "eu1", []syncproto.Connection{conn, open}); err != nil {
		t.Fatal(err)
	}

	e.signIn()
	res := e.get(routerPath(e.fleet.Router))
	if res.StatusCode != http.StatusOK {
		t.Fatalf("router page: got %d, want 200", res.StatusCode)
	}
	contains(t, res.body, "r1", "connected", "RouterOS 7.18.2", "RB5009UG+S+", "10.99.0.2",
		"eu1.example.net:"+itoa(active.Port), "192.168.88.43:22", "81.2.69.0/24", "token default",
		"81.2.69.7:51234", "client closed", "3.0 MiB", "1 open · 2 in 24 h",
		"revoked by token default", "New forward", `name="expire_after_minutes" value="120"`)
	for _, want := range []string{
		`id="f-` + active.ID.String() + `" data-forward="` + active.ID.String() + `" data-status="active"`,
		`id="f-` + pending.ID.String() + `" data-forward="` + pending.ID.String() + `" data-status="pending"`,
		`id="f-` + revoked.ID.String() + `" data-forward="` + revoked.ID.String() + `" data-status="removing"`,
		`data-expires="` + active.ExpiresAt.Format(time.RFC3339) + `"`,
		`>1h 30m 00s</time>`, // the countdown as first shown, in whole minutes
		`<svg class="timeline"`, `data-lane="` + revoked.ID.String() + `"`, `class="bar revoked"`, `class="bar active ahead"`,
		`<circle class="conn open"`,
		`/forwards/` + active.ID.String() + `/revoke`,
	} {
		if !strings.Contains(res.body, want) {
			t.Errorf("router page lacks %s", want)
		}
	}
	// Revoked forwards have no revoke button.
	if strings.Contains(res.body, `/forwards/`+revoked.ID.String()+`/revoke`) {
		t.Error("the revoked forward has a revoke button")
	}

	for _, path := range []string{"/routers/" + uuid.NewString(), "/routers/not-a-uuid", "/nowhere"} {
		if res := e.get(path); res.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s: got %d, want 404", path, res.StatusCode)
		}
	}
}

func TestRouterOfAnotherAccountIsNotFound(t *testing.T) {
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
	csrf := e.signIn()
	if res := e.get(routerPath(foreign)); res.StatusCode != http.StatusNotFound {
		t.Errorf("another account's router page: got %d, want 404", res.StatusCode)
	}
	res := e.post(routerPath(foreign)+"/forwards", url.Values{"csrf": {csrf}, "dst_address": {"192.168.88.43"},
		"dst_port": {"22"}, "allow_from": {"81.2.69.0/24"}, "expire_after_minutes": {"60"}})
	if res.StatusCode != http.StatusNotFound {
		t.Errorf("create on another account's router: got %d, want 404", res.StatusCode)
	}
}

// TestCreateFormShowsTheRulesMessages submits values the rules refuse
// through the form: the page shows exactly the messages of
// fleet.ValidateNewForward (the API's 422 messages; the API's tests check
// that the form and the API agree), each next to its field, and keeps what
// was typed.
func TestCreateFormShowsTheRulesMessages(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	csrf := e.signIn()
	cases := []map[string]string{
		{},
		{"dst_address": "169.254.169.254", "dst_port": "22", "allow_from": "81.2.69.0/24", "expire_after_minutes": "60"},
		{"dst_address": "192.168.88.43", "dst_port": "70000", "allow_from": "198.51.100.0/24", "expire_after_minutes": "5"},
		{"dst_address": "192.168.088.43", "dst_port": "ssh", "allow_from": "81.2.69.0/16", "expire_after_minutes": "1441"},
		{"dst_address": "127.0.0.1", "dst_port": "0", "allow_from": "10.0.0.1", "expire_after_minutes": "two hours"},
		{"dst_address": "::1", "dst_port": "22", "allow_from": "not an address", "expire_after_minutes": "120"},
	}
	for _, values := range cases {
		_, problems := fleet.ValidateNewForward(fleet.NewForwardInput{
			ExpireAfterMinutes: values["expire_after_minutes"], DstPort: values["dst_port"],
			DstAddress: values["dst_address"], AllowFrom: values["allow_from"],
		}, fleet.ForwardRules{})
		if problems.Len() == 0 {
			t.Fatalf("%v: the rules accept it; want a case they refuse", values)
		}
		form := url.Values{"csrf": {csrf}}
		for k, v := range values {
			form.Set(k, v)
		}
		res := e.post(routerPath(e.fleet.Router)+"/forwards", form)
		if res.StatusCode != http.StatusUnprocessableEntity {
			t.Fatalf("%v: got %d, want 422", values, res.StatusCode)
		}
		for _, field := range problems.Fields() {
			msgs := problems.Messages(field)
			input := `id="` + field + `"`
			at := strings.Index(res.body, input)
			if at < 0 {
				t.Fatalf("no input for %s", field)
			}
			// The messages follow the field's input, before the next field.
			section := res.body[at:]
			if end := strings.Index(section[1:], `<div class="field`); end >= 0 {
				section = section[:end+1]
			}
			for _, m := range msgs {
				if !strings.Contains(section, `<p class="field-error">`+htmlEscape(m)+`</p>`) {
					t.Errorf("%v: field %s lacks the message %q", values, field, m)
				}
			}
			if !strings.Contains(section, `aria-invalid="true"`) {
				t.Errorf("%v: field %s is not marked invalid", values, field)
			}
		}
		for k, v := range values {
			if !strings.Contains(res.body, `name="`+k+`" value="`+htmlEscape(v)+`"`) {
				t.Errorf("%v: the form lost what was typed in %s", values, k)
			}
		}
	}
}

func htmlEscape(s string) string {
	var b bytes.Buffer
	for _, r := range s {
		switch r {
		case '<':
			b.WriteString("&lt;")
		case '>':
			b.WriteString("&gt;")
		case '&':
			b.WriteString("&amp;")
		case '\'':
			b.WriteString("&#39;")
		case '"':
			b.WriteString("&#34;")
		case '+':
			b.WriteString("&#43;")
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

func TestCreateAndRevokeThroughTheForms(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	st, p := e.fleet.Store, e.fleet.Principal
	csrf := e.signIn()

	res := e.post(routerPath(e.fleet.Router)+"/forwards", url.Values{"csrf": {csrf}, "dst_address": {" 192.168.88.43 "},
		"dst_port": {"22"}, "allow_from": {"81.2.69.7"}, "expire_after_minutes": {"90"}, "masquerade": {"1"}})
	if res.StatusCode != http.StatusSeeOther {
		t.Fatalf("create: got %d, want 303\n%s", res.StatusCode, res.body)
	}
	live, err := st.LiveForwards(ctx, p.AccountID, e.fleet.Router.ID, e.clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	if len(live) != 1 {
		t.Fatalf("after create: got %d live forwards, want 1", len(live))
	}
	f := live[0]
	if f.DstAddress.String() != "192.168.88.43" || f.DstPort != 22 || f.AllowFrom.String() != "81.2.69.7/32" ||
		!f.Masquerade || f.ExpiresAt.Sub(f.CreatedAt) != 90*time.Minute {
		t.Errorf("created %+v, want 192.168.88.43:22 from 81.2.69.7/32 for 90 minutes with masquerade", f)
	}
	loc := res.Header.Get("Location")
	if want := routerPath(e.fleet.Router) + "?created=" + f.ID.String(); !strings.HasPrefix(loc, want) {
		t.Fatalf("create redirects to %q, want %q…", loc, want)
	}
	page := e.get(loc)
	contains(t, page.body, "Forward created.", "Connect to eu1.example.net:"+itoa(f.Port)+" from 81.2.69.7/32", "masquerade")

	res = e.post(routerPath(e.fleet.Router)+"/forwards/"+f.ID.String()+"/revoke", url.Values{"csrf": {csrf}})
	if res.StatusCode != http.StatusSeeOther {
		t.Fatalf("revoke: got %d, want 303", res.StatusCode)
	}
	got, err := st.Forward(ctx, p.AccountID, e.fleet.Router.ID, f.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.RevokedAt == nil || got.StatusAt(e.clock.Now()) != fleet.StatusRemoving {
		t.Errorf("after revoke: got revoked_at %v status %s, want revoked and removing", got.RevokedAt, got.StatusAt(e.clock.Now()))
	}
	page = e.get(res.Header.Get("Location"))
	contains(t, page.body, "Forward revoked.", "revoked by token default")
	if strings.Contains(page.body, `id="live-forwards"`) {
		t.Error("the revoked forward is still listed as live")
	}
	// Revoking again is harmless; an unknown forward is not found.
	if res := e.post(routerPath(e.fleet.Router)+"/forwards/"+f.ID.String()+"/revoke", url.Values{"csrf": {csrf}}); res.StatusCode != http.StatusSeeOther {
		t.Errorf("second revoke: got %d, want 303", res.StatusCode)
	}
	if res := e.post(routerPath(e.fleet.Router)+"/forwards/"+uuid.NewString()+"/revoke", url.Values{"csrf": {csrf}}); res.StatusCode != http.StatusNotFound {
		t.Errorf("revoke of an unknown forward: got %d, want 404", res.StatusCode)
	}
}

func TestStaticFiles(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	page := e.get("/signin")
	for _, name := range []string{"style.css", "app.js"} {
		i := strings.Index(page.body, "/static/"+name+"?v=")
		if i < 0 {
			t.Fatalf("sign-in page does not link %s", name)
		}
		link := page.body[i:]
		link = link[:strings.IndexByte(link, '"')]
		res := e.get(link)
		if res.StatusCode != http.StatusOK || !strings.Contains(res.Header.Get("Cache-Control"), "immutable") {
			t.Errorf("GET %s: got %d, Cache-Control %q; want 200, immutable", link, res.StatusCode, res.Header.Get("Cache-Control"))
		}
	}
}

func itoa(port uint16) string { return strconv.Itoa(int(port)) }
