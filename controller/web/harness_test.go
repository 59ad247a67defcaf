package web_test

import (
	"context"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tpf-dev/tpf/controller/fleet"
	"github.com/tpf-dev/tpf/controller/forwards"
	"github.com/tpf-dev/tpf/controller/store"
	"github.com/tpf-dev/tpf/controller/store/storetest"
	"github.com/tpf-dev/tpf/controller/web"
	"github.com/tpf-dev/tpf/shared/syncproto"
)

// t0 is when the fixtures are created; tests' clocks start here.
var t0 = time.Date(2026, 3, 14, 9, 26, 53, 0, time.UTC)

// fakeClock is a settable clock shared by the server and the test.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// env is the web views over a fresh fleet (storetest.NewFleet: account acme,
// region eu1, router r1), configured by newEnv's options, and a browser-like
// client that keeps cookies and does not follow redirects. (The API's tests
// run them behind the API.)
type env struct {
	t      testing.TB
	fleet  *storetest.Fleet
	clock  *fakeClock
	srv    *httptest.Server
	client *http.Client
}

func newEnv(t testing.TB, opts ...func(*web.Config)) *env {
	t.Helper()
	e := &env{t: t, fleet: storetest.NewFleet(t, t0), clock: &fakeClock{t: t0.Add(time.Minute)}}
	cfg := web.Config{Now: e.clock.Now}
	for _, o := range opts {
		o(&cfg)
	}
	e.srv = httptest.NewServer(web.New(e.fleet.Store, cfg))
	t.Cleanup(e.srv.Close)
	e.client = newClient(t)
	return e
}

func newClient(t testing.TB) *http.Client {
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// response is an answer with its body read.
type response struct {
	*http.Response
	body string
}

func (e *env) do(req *http.Request) response {
	e.t.Helper()
	res, err := e.client.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return response{res, string(b)}
}

func (e *env) get(path string) response {
	e.t.Helper()
	req, err := http.NewRequest(http.MethodGet, e.srv.URL+path, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	return e.do(req)
}

// post submits a form the way a browser does.
func (e *env) post(path string, form url.Values, header ...string) response {
	e.t.Helper()
	req, err := http.NewRequest(http.MethodPost, e.srv.URL+path, strings.NewReader(form.Encode()))
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	return e.do(req)
}

// signIn signs the client in with the fixture's API token and returns the
// session's CSRF token, read off the fleet page.
func (e *env) signIn() string {
	e.t.Helper()
	res := e.post("/signin", url.Values{"token": {e.fleet.APIToken}})
	if res.StatusCode != http.StatusSeeOther {
		e.t.Fatalf("sign in: got %d, want 303\n%s", res.StatusCode, res.body)
	}
	page := e.get("/")
	if page.StatusCode != http.StatusOK {
		e.t.Fatalf("fleet page after sign in: got %d, want 200", page.StatusCode)
	}
	return csrfOf(e.t, page.body)
}

// sessionID is the client's session cookie's value.
func (e *env) sessionID() string {
	e.t.Helper()
	u, err := url.Parse(e.srv.URL)
	if err != nil {
		e.t.Fatal(err)
	}
	for _, c := range e.client.Jar.Cookies(u) {
		if c.Name == "tpf_session" {
			return c.Value
		}
	}
	e.t.Fatal("the client holds no tpf_session cookie")
	return ""
}

// sessionStored reports whether the database holds the session with id.
func (e *env) sessionStored(id string) bool {
	e.t.Helper()
	var n int
	err := e.fleet.Pool.QueryRow(context.Background(),
		"select count(*) from web_sessions where id_hash = sha256(convert_to($1, 'UTF8'))", id).Scan(&n)
	if err != nil {
		e.t.Fatal(err)
	}
	return n > 0
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func csrfOf(t testing.TB, body string) string {
	t.Helper()
	m := csrfField.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no csrf field in page:\n%s", body)
	}
	return m[1]
}

func routerPath(r fleet.Router) string { return "/routers/" + r.ID.String() }

// contains fails the test unless body holds every one of want, as markup or
// as text that html/template escaped.
func contains(t testing.TB, body string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(body, w) && !strings.Contains(body, htmlEscape(w)) {
			t.Errorf("page lacks %q", w)
		}
	}
}

func lacks(t testing.TB, body string, unwanted ...string) {
	t.Helper()
	for _, w := range unwanted {
		if strings.Contains(body, w) || strings.Contains(body, htmlEscape(w)) {
			t.Errorf("page shows %q, want it absent", w)
		}
	}
}

// addRouter registers another router of the fixture's account.
func addRouter(t testing.TB, st *store.Store, p fleet.Principal, name, tunnel string, at time.Time) fleet.Router {
	t.Helper()
	r, _, err := forwards.New(st).CreateRouter(context.Background(), p, forwards.NewRouter{Name: name, Region: "eu1", TunnelAddress: netip.MustParseAddr(tunnel)}, at)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// connectAgent makes router's agent connected at at, introduced as hello says.
func connectAgent(t testing.TB, st *store.Store, router fleet.Router, at time.Time) {
	t.Helper()
	ctx := context.Background()
	if err := st.AgentConnected(ctx, router.ID, at); err != nil {
		t.Fatal(err)
	}
	err := forwards.New(st).AgentHello(ctx, router.ID, syncproto.Hello{AgentVersion: "1.4.2",
		Router: syncproto.Router{RouterOSVersion: "7.18.2", Board: "RB5009UG+S+", Identity: router.Name + "-identity"}}, at)
	if err != nil {
		t.Fatal(err)
	}
}

// confirm reports every live forward of router applied at its current
// revision, as its agent would after a clean pass.
func confirm(t testing.TB, st *store.Store, p fleet.Principal, router fleet.Router, at time.Time) {
	t.Helper()
	ctx := context.Background()
	rt, err := st.Router(ctx, p.AccountID, router.ID)
	if err != nil {
		t.Fatal(err)
	}
	live, err := st.LiveForwards(ctx, p.AccountID, router.ID, at)
	if err != nil {
		t.Fatal(err)
	}
	rep := syncproto.Report{Revision: rt.Revision, AgentVersion: "1.4.2", Present: []string{}}
	for _, f := range live {
		rep.Results = append(rep.Results, syncproto.Result{ID: f.ID.String(), State: syncproto.StateApplied})
		rep.Present = append(rep.Present, f.ID.String())
	}
	if _, err := forwards.New(st).ApplyReport(ctx, router.ID, rep, at); err != nil {
		t.Fatal(err)
	}
}
