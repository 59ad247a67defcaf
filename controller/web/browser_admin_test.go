package web_test

import (
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	cdpbrowser "github.com/chromedp/cdproto/browser"
	"github.com/chromedp/chromedp"

	"github.com/tpf-dev/tpf/controller/fleet"
	"github.com/tpf-dev/tpf/controller/store/storetest"
	"github.com/tpf-dev/tpf/controller/web"
)

// layoutWidths are the widths every page must fit without a horizontal
// scroll: a phone's and a laptop's.
var layoutWidths = []int64{390, 1280}

// TestBrowserAdmin drives the admin pages in headless Chromium, touching
// nothing but the pages (no API call of its own) and checking the results in
// the database: sign in, add a router and copy its install script, rotate
// its agent token, issue an API token and copy it, revoke it, delete the
// router, read the audit log and page back, and finally revoke the session's
// own token, which signs the browser out. Every page must fit 390 and 1280
// pixels without a horizontal scroll; each is kept as a screenshot at both
// widths in .artifacts/screenshots/ (fleet-390.png, fleet-1280.png, …).
func TestBrowserAdmin(t *testing.T) {
	t.Parallel()
	ctx := startBrowser(t)
	watchConsole(t, ctx)
	now := time.Now().UTC().Truncate(time.Second)
	f := storetest.NewFleet(t, now.Add(-30*time.Hour))
	waiting := seedFleet(t, f, now)
	st, p := f.Store, f.Principal
	bg := context.Background()
	// A forward that expires within 15 minutes, for the fleet's totals.
	if _, err := f.Service.CreateForward(bg, p, f.Router.ID, fleet.NewForward{DstAddress: netip.MustParseAddr("192.168.88.60"),
		DstPort: 8080, AllowFrom: netip.MustParsePrefix("81.2.69.0/24"), Duration: 10 * time.Minute}, now); err != nil {
		t.Fatal(err)
	}

	// Agents reach the controller at its public URL (a loopback one, the
	// test server's, is refused in scripts).
	const publicURL = "https://tpf.example.net"
	srv := httptest.NewServer(web.New(st, web.Config{FleetPoll: time.Second, RouterPoll: 500 * time.Millisecond, PublicURL: publicURL}))
	t.Cleanup(srv.Close)
	// The copy buttons write to the clipboard; the test reads it back.
	for _, perm := range []string{"clipboard-read", "clipboard-write"} {
		if _, err := chromedp.CallBrowser(ctx, cdpbrowser.SetPermission, cdpbrowser.SetPermissionParams{
			Permission: &cdpbrowser.PermissionDescriptor{Name: perm}, Setting: cdpbrowser.PermissionSettingGranted, Origin: srv.URL,
		}); err != nil {
			t.Fatalf("grant %s: %v", perm, err)
		}
	}

	b := &browserPage{t: t, ctx: ctx, shots: screenshotDir(t)}
	open := func(path, sel string) {
		t.Helper()
		b.run("open "+path, chromedp.Navigate(srv.URL+path), chromedp.WaitVisible(chromedp.CSS(sel)))
	}

	open("/", "#token")
	b.fits("signin")
	b.run("sign in",
		chromedp.SendKeys(chromedp.CSS("#token"), f.APIToken),
		chromedp.Click(chromedp.CSS("button.primary")),
		chromedp.WaitVisible(chromedp.CSS("#fleet-rows")))

	// The fleet: the agents' bar has a legend, and the totals count the
	// forward that expires within 15 minutes.
	if got := b.text("#statebar-legend"); !strings.Contains(got, "connected") || !strings.Contains(got, "never connected") {
		t.Errorf("the state bar's legend: got %q", got)
	}
	if got := strings.Join(strings.Fields(b.text("#tile-expiring")), " "); got != "1 expiring within 15 min" {
		t.Errorf("expiring tile: got %q, want 1 expiring within 15 min", got)
	}
	b.fits("fleet")
	open("/?state=expiring", "#fleet-rows")
	if got := b.eval(`document.querySelectorAll("#fleet-rows tr[data-search]").length`); got != 1 {
		t.Errorf("routers with forwards expiring within 15 min: got %d, want 1", got)
	}

	open("/routers/"+f.Router.ID.String(), "#create-form")
	b.fits("router")
	open("/routers/"+waiting.ID.String(), "#tunnel")
	b.fits("router-tunnel-down")
	open("/routers/00000000-0000-4000-8000-000000000000", ".error-page")
	b.fits("error")

	// Add a router through the nav link. The tunnel address is asked only
	// in a manual region (eu1), not in a managed one (us1).
	open("/", "#fleet-rows")
	b.run("open the add-router form", chromedp.Click(chromedp.CSS(`.mainnav a[href="/routers/new"]`)), chromedp.WaitVisible(chromedp.CSS("#router-form")))
	if got := b.eval(`document.querySelector("#region").value === "eu1" && !document.querySelector("#tunnel-field").hidden ? 1 : 0`); got != 1 {
		t.Error("in manual region eu1 the form does not ask for the tunnel address")
	}
	b.run("refuse a router without a name", chromedp.Click(chromedp.CSS(`#router-form button[type="submit"]`)), chromedp.WaitVisible(chromedp.CSS(".field-error")))
	if got := b.text("#router-form"); !strings.Contains(got, "The name field is required.") || !strings.Contains(got, "The tunnel address field is required.") {
		t.Errorf("the refused form says:\n%s", got)
	}
	b.run("choose managed region us1",
		chromedp.SendKeys(chromedp.CSS("#name"), "branch-7"),
		chromedp.SetValue(chromedp.CSS("#region"), "us1"),
		chromedp.Evaluate[chromedp.Void](`document.querySelector("#region").dispatchEvent(new Event("change"))`))
	if got := b.eval(`document.querySelector("#tunnel-field").hidden ? 1 : 0`); got != 1 {
		t.Error("in managed region us1 the form still asks for the tunnel address")
	}
	b.fits("router-new")
	b.run("add the router", chromedp.Click(chromedp.CSS(`#router-form button[type="submit"]`)), chromedp.WaitVisible(chromedp.CSS("#install-script")))
	added := routerNamed(t, f, "branch-7")
	if added.Region != "us1" || !added.TunnelAddress.IsValid() {
		t.Errorf("added router: got region %q, tunnel address %s; want us1 and an allocated address", added.Region, added.TunnelAddress)
	}
	script := b.text("#install-script")
	token := b.text("#agent-token")
	for _, want := range []string{"# tpf agent for router branch-7 (" + added.ID.String() + ")", token, "us1.example.net:51820", `"` + publicURL + `"`} {
		if !strings.Contains(script, want) {
			t.Errorf("install script lacks %q", want)
		}
	}
	if rt, err := f.Service.AuthenticateAgent(bg, token); err != nil || rt.ID != added.ID {
		t.Errorf("the shown agent token: got router %v, %v; want %s", rt.ID, err, added.ID)
	}
	if got := b.text("#fetch-command"); !strings.Contains(got, "/tool/fetch http-method=post url=\""+publicURL+"/api/routers/"+added.ID.String()+"/install-script\"") {
		t.Errorf("fetch command: got %q", got)
	}
	// Reloading must not post the form again: the address bar already
	// names the router's page.
	if got := b.location(); got != srv.URL+"/routers/"+added.ID.String() {
		t.Errorf("address after adding: got %s, want the router's page", got)
	}
	b.copyChecks("#install-script", script)
	b.fits("install")
	b.run("continue to the router", chromedp.Click(chromedp.CSS("#to-router")), chromedp.WaitVisible(chromedp.CSS("#create-form")))

	// Rotate its agent token: confirm, then a fresh script once.
	b.run("ask to rotate", chromedp.Click(chromedp.CSS("#rotate-link")), chromedp.WaitVisible(chromedp.CSS("#confirm")))
	b.fits("confirm-rotate")
	b.run("rotate", chromedp.Click(chromedp.CSS("#confirm-button")), chromedp.WaitVisible(chromedp.CSS("#install-script")))
	rotated := b.text("#agent-token")
	if rotated == token || !strings.Contains(b.text("#install-script"), rotated) {
		t.Errorf("after rotating: token %q (was %q), in the script: %v", rotated, token, strings.Contains(b.text("#install-script"), rotated))
	}
	if _, err := f.Service.AuthenticateAgent(bg, token); !errors.Is(err, fleet.ErrUnauthenticated) {
		t.Errorf("the old agent token after rotating: got %v, want unauthenticated", err)
	}
	if rt, err := f.Service.AuthenticateAgent(bg, rotated); err != nil || rt.ID != added.ID {
		t.Errorf("the new agent token: got router %v, %v", rt.ID, err)
	}
	b.fits("install-rotated")

	// API tokens: issue one, copy it, revoke it.
	b.run("open the tokens", chromedp.Click(chromedp.CSS(`.mainnav a[href="/tokens"]`)), chromedp.WaitVisible(chromedp.CSS("#tokens")))
	b.run("issue a token",
		chromedp.SendKeys(chromedp.CSS("#token-name"), "laptop"),
		chromedp.Click(chromedp.CSS(`#token-form button[type="submit"]`)),
		chromedp.WaitVisible(chromedp.CSS("#new-token-secret")))
	secret := b.text("#new-token-secret")
	laptop, err := st.Authenticate(bg, secret)
	if err != nil || laptop.TokenName != "laptop" {
		t.Fatalf("the issued token: got %+v, %v", laptop, err)
	}
	b.copyChecks("#new-token-secret", secret)
	b.fits("tokens")
	b.run("ask to revoke it",
		chromedp.Click(chromedp.CSS(`tr[data-token="`+laptop.TokenID.String()+`"] a.danger`)),
		chromedp.WaitVisible(chromedp.CSS("#confirm")))
	b.fits("confirm-revoke")
	b.run("revoke it", chromedp.Click(chromedp.CSS("#confirm-button")), chromedp.WaitVisible(chromedp.CSS("[data-banner]")))
	if got := b.text("[data-banner]"); !strings.HasPrefix(got, "Token revoked.") {
		t.Errorf("banner after revoking: got %q", got)
	}
	if _, err := st.Authenticate(bg, secret); !errors.Is(err, fleet.ErrUnauthenticated) {
		t.Errorf("the revoked token: got %v, want unauthenticated", err)
	}

	// Delete the router, after a confirmation that names its live forward.
	if _, err := f.Service.CreateForward(bg, p, added.ID, fleet.NewForward{DstAddress: netip.MustParseAddr("192.168.1.9"),
		DstPort: 22, AllowFrom: netip.MustParsePrefix("81.2.69.0/24"), Duration: time.Hour}, time.Now()); err != nil {
		t.Fatal(err)
	}
	open("/routers/"+added.ID.String(), "#delete-link")
	b.run("ask to delete", chromedp.Click(chromedp.CSS("#delete-link")), chromedp.WaitVisible(chromedp.CSS("#confirm")))
	if got := b.text("#confirm"); !strings.Contains(got, "Its 1 live forward is revoked at once") {
		t.Errorf("delete confirmation says:\n%s", got)
	}
	b.fits("confirm-delete")
	b.run("delete", chromedp.Click(chromedp.CSS("#confirm-button")), chromedp.WaitVisible(chromedp.CSS("[data-banner]")))
	if _, err := st.Router(bg, p.AccountID, added.ID); !errors.Is(err, fleet.ErrNotFound) {
		t.Errorf("the deleted router: got %v, want not found", err)
	}

	// The audit log: newest first, in words, details as key: value; enough
	// events for a second page.
	for i := range 30 {
		if _, _, err := st.IssueToken(bg, p.AccountID, fleet.ActorAdmin, fmt.Sprintf("batch-%02d", i), time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	b.run("open the audit log", chromedp.Click(chromedp.CSS(`.mainnav a[href="/audit"]`)), chromedp.WaitVisible(chromedp.CSS("#audit")))
	log := b.text("#audit")
	for _, want := range []string{"an admin command", "issued an API token", "API token batch-29", "name: batch-29",
		"token default", "deleted a router", "router branch-7", "forwards ended: 1", "revoked a forward", "reason: router deleted",
		"issued a new agent token", "revoked an API token", "API token laptop", "added a router", "tunnel address: 100.64."} {
		if !strings.Contains(log, want) {
			t.Errorf("audit log's first page lacks %q", want)
		}
	}
	b.fits("audit")
	b.run("page back", chromedp.Click(chromedp.CSS("#older")), chromedp.WaitVisible(chromedp.CSS("#audit")))
	if got := b.text("#audit"); !strings.Contains(got, "created a forward") || !strings.Contains(got, "on r1") {
		t.Errorf("audit log's second page lacks the fleet's forwards:\n%s", got)
	}
	events, err := st.AuditEvents(bg, p.AccountID, 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	first := b.eval(`+document.querySelector("#audit tbody tr").getAttribute("data-event")`)
	if int64(first) != events[50].ID {
		t.Errorf("second page starts at event %d, want %d", first, events[50].ID)
	}

	// Revoking the session's own token signs the browser out.
	open("/tokens/"+p.TokenID.String()+"/revoke", "#confirm")
	if got := b.text("#confirm"); !strings.Contains(got, "revoking it signs you out") {
		t.Errorf("own token's revoke confirmation says:\n%s", got)
	}
	b.run("revoke the session's own token", chromedp.Click(chromedp.CSS("#confirm-button")), chromedp.WaitVisible(chromedp.CSS("#token")))
	if got := b.text(".signin .banner"); !strings.Contains(got, "signed you out") {
		t.Errorf("sign-in page after revoking the own token: got %q", got)
	}
	b.fits("signin-revoked")
	if _, err := st.Authenticate(bg, f.APIToken); !errors.Is(err, fleet.ErrUnauthenticated) {
		t.Errorf("the session's token after revoking it: got %v, want unauthenticated", err)
	}
	if n := b.eval(`document.cookie.length`); n != 0 {
		t.Errorf("cookies visible to scripts: %d bytes", n)
	}
}

// browserPage is a tab under test, with helpers that fail the test.
type browserPage struct {
	t     *testing.T
	ctx   context.Context
	shots string
}

// run runs steps, giving them 30 seconds; on failure it says what the page
// shows.
func (b *browserPage) run(what string, steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		shown, _ := chromedp.Run(b.ctx, chromedp.Evaluate[string](`location.href + "\n" + document.body.innerText`))
		b.t.Fatalf("%s: %v; the page shows:\n%s", what, err, shown)
	}
}

func (b *browserPage) text(sel string) string {
	b.t.Helper()
	s, err := chromedp.Run(b.ctx, chromedp.Text(chromedp.CSS(sel)))
	if err != nil {
		b.t.Fatalf("text of %s: %v", sel, err)
	}
	return s
}

func (b *browserPage) eval(js string) int {
	b.t.Helper()
	n, err := chromedp.Run(b.ctx, chromedp.Evaluate[int](js))
	if err != nil {
		b.t.Fatalf("evaluate %s: %v", js, err)
	}
	return n
}

func (b *browserPage) location() string {
	b.t.Helper()
	u, err := chromedp.Run(b.ctx, chromedp.Location())
	if err != nil {
		b.t.Fatal(err)
	}
	return u
}

// fits checks the page at each of layoutWidths: nothing makes the page
// scroll sideways (tables scroll or reflow inside their cards). It keeps a
// screenshot per width, name-390.png and name-1280.png. The viewport is
// changed in place, without reloading, so pages that answered a POST are
// measured as they are.
func (b *browserPage) fits(name string) {
	b.t.Helper()
	for _, w := range layoutWidths {
		b.run(fmt.Sprintf("resize to %d px", w), chromedp.EmulateViewport(w, 900))
		// Wider than the viewport: the page's scroll width, and the
		// elements that stick out, to say what to fix.
		res, err := chromedp.Run(b.ctx, chromedp.Evaluate[string](`(() => {
			const vw = window.innerWidth, sw = document.documentElement.scrollWidth;
			// A table with buttons at its end must not hide them behind
			// its own scroll bar either.
			for (const wrap of document.querySelectorAll(".table-wrap")) {
				if (wrap.querySelector("td.actions") && wrap.scrollWidth > wrap.clientWidth + 1) {
					const t = wrap.querySelector("table");
					return "the buttons of table" + (t && t.id ? "#" + t.id : "") + " stand outside its card: scrollWidth " + wrap.scrollWidth + " > " + wrap.clientWidth;
				}
			}
			if (sw <= vw) return "";
			const out = [];
			for (const el of document.querySelectorAll("body *")) {
				const r = el.getBoundingClientRect();
				if (r.right > vw + 0.5 && out.length < 8) out.push(el.tagName.toLowerCase() + (el.id ? "#" + el.id : "") + (el.className && el.className.baseVal === undefined ? "." + String(el.className).replace(/ +/g, ".") : "") + " right=" + Math.round(r.right));
			}
			return "scrollWidth " + sw + " > innerWidth " + vw + ": " + out.join(", ");
		})()`))
		if err != nil {
			b.t.Fatalf("measure %s at %d px: %v", name, w, err)
		}
		if res != "" {
			b.t.Errorf("page %s at %d px scrolls sideways: %s", name, w, res)
		}
		shot, err := chromedp.Run(b.ctx, chromedp.FullScreenshot(100))
		if err != nil {
			b.t.Fatalf("screenshot %s: %v", name, err)
		}
		if err := os.WriteFile(filepath.Join(b.shots, fmt.Sprintf("%s-%d.png", name, w)), shot, 0o644); err != nil {
			b.t.Fatal(err)
		}
	}
	b.run("reset the viewport", chromedp.EmulateViewport(1280, 900))
}

// copyChecks clicks the copy button of the element sel and checks that the
// clipboard then holds want, the element's text.
func (b *browserPage) copyChecks(sel, want string) {
	b.t.Helper()
	id := strings.TrimPrefix(sel, "#")
	b.run("copy "+sel, chromedp.Click(chromedp.CSS(`button[data-copy="`+id+`"]`)),
		chromedp.WaitVisible(chromedp.CSS(`button.copied[data-copy="`+id+`"]`)))
	got, err := chromedp.Run(b.ctx, chromedp.Evaluate[string](`navigator.clipboard.readText()`, chromedp.EvalAwaitPromise))
	if err != nil {
		b.t.Fatalf("read the clipboard: %v", err)
	}
	if got != want {
		b.t.Errorf("clipboard after copying %s: got %d bytes %.60q…, want %d bytes %.60q…", sel, len(got), got, len(want), want)
	}
}

// routerNamed finds the fixture account's router called name.
func routerNamed(t *testing.T, f *storetest.Fleet, name string) fleet.Router {
	t.Helper()
	list, err := f.Service.Routers(context.Background(), f.Principal.AccountID)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range list {
		if r.Name == name {
			return r
		}
	}
	t.Fatalf("no router named %s", name)
	return fleet.Router{}
}
