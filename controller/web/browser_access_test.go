package web_test

import (
	"context"
	"github.com/google/uuid"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	cdpbrowser "github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/tpf-dev/tpf/controller/fleet"
	"github.com/tpf-dev/tpf/controller/store/storetest"
	"github.com/tpf-dev/tpf/controller/web"
)

// TestBrowserAccess drives the router page's "Log in to the router" form in
// headless Chromium, touching nothing but the pages: the form suggests the
// browser's own address; a refused form shows the rules' messages; Open SSH
// answers the page with the login and its password, once, which the copy
// buttons copy and reloading does not post again; Open WinBox shows the
// address for WinBox's Connect To; the router page lists both and revokes
// one after a confirmation. The form, the refused form, both password pages
// and the list must fit 390 and 1280 pixels (screenshots access-*-390.png,
// access-*-1280.png in .artifacts/screenshots/).
func TestBrowserAccess(t *testing.T) {
	t.Parallel()
	ctx := startBrowser(t)
	watchConsole(t, ctx)
	now := time.Now().UTC().Truncate(time.Second)
	f := storetest.NewFleet(t, now.Add(-30*time.Hour))
	seedFleet(t, f, now)
	bg := context.Background()
	// The browser comes from 127.0.0.1, a source this operator accepts (as
	// make run does).
	srv := httptest.NewServer(web.New(f.Store, web.Config{RouterPoll: 500 * time.Millisecond,
		Forwards: fleet.ForwardRules{AllowSources: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}}))
	t.Cleanup(srv.Close)
	for _, perm := range []string{"clipboard-read", "clipboard-write"} {
		if _, err := chromedp.CallBrowser(ctx, cdpbrowser.SetPermission, cdpbrowser.SetPermissionParams{
			Permission: &cdpbrowser.PermissionDescriptor{Name: perm}, Setting: cdpbrowser.PermissionSettingGranted, Origin: srv.URL,
		}); err != nil {
			t.Fatalf("grant %s: %v", perm, err)
		}
	}
	b := &browserPage{t: t, ctx: ctx, shots: screenshotDir(t)}
	routerURL := srv.URL + "/routers/" + f.Router.ID.String()
	value := func(sel string) string {
		t.Helper()
		s, err := chromedp.Run(ctx, chromedp.Value(chromedp.CSS(sel)))
		if err != nil {
			t.Fatalf("value of %s: %v", sel, err)
		}
		return s
	}
	// newest is the live access the last step opened: the one not seen
	// before (two opened within a second share their creation time).
	seen := map[uuid.UUID]bool{}
	newest := func() fleet.Access {
		t.Helper()
		list, err := f.Service.Accesses(bg, f.Principal.AccountID, f.Router.ID, true, 10, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range list {
			if !seen[a.ID] {
				seen[a.ID] = true
				return a
			}
		}
		t.Fatalf("live accesses: got %d, none new", len(list))
		return fleet.Access{}
	}

	b.run("open the fleet", chromedp.Navigate(srv.URL+"/"), chromedp.WaitVisible(chromedp.CSS("#token")))
	b.run("sign in",
		chromedp.SendKeys(chromedp.CSS("#token"), f.APIToken),
		chromedp.Click(chromedp.CSS("button.primary")),
		chromedp.WaitVisible(chromedp.CSS("#fleet-rows")))
	b.run("open r1", chromedp.Navigate(routerURL), chromedp.WaitVisible(chromedp.CSS("#access-form")))
	if got := value("#access_allow_from"); got != "127.0.0.1/32" {
		t.Errorf("suggested source: got %q, want the browser's 127.0.0.1/32", got)
	}
	if got := value("#access_expire_after_minutes"); got != "60" {
		t.Errorf("suggested duration: got %q, want 60", got)
	}
	b.fits("access-form")

	// A refused form: the rules' messages next to the fields, the page
	// scrolled to the form.
	b.run("open a bad login",
		chromedp.SetValue(chromedp.CSS("#access_allow_from"), "198.51.100.0/24"),
		chromedp.SetValue(chromedp.CSS("#access_expire_after_minutes"), "5"),
		chromedp.Click(chromedp.CSS("#open-ssh")),
		chromedp.WaitVisible(chromedp.CSS("#access-form .field-error")))
	errs := b.text("#access-form")
	for _, want := range []string{
		"No login was opened; see below.",
		"The allow from field must be a publicly routed IPv4 address or range; 198.51.100.0/24 is documentation.",
		"The expire after minutes field must be between 10 and 1440.",
	} {
		if !strings.Contains(errs, want) {
			t.Errorf("the refused form lacks %q; it says:\n%s", want, errs)
		}
	}
	if got := b.location(); !strings.HasSuffix(got, "/access#access-card") {
		t.Errorf("address of the refused form: got %s, want …/access#access-card", got)
	}
	b.fits("access-invalid")

	// Open SSH, read-only: the page with the password.
	b.run("open an SSH login",
		chromedp.SetValue(chromedp.CSS("#access_allow_from"), "127.0.0.1"),
		chromedp.SetValue(chromedp.CSS("#access_expire_after_minutes"), "45"),
		chromedp.Click(chromedp.CSS("#access_read_only")),
		chromedp.Click(chromedp.CSS("#open-ssh")),
		chromedp.WaitVisible(chromedp.CSS("#access-password")))
	ssh := newest()
	if ssh.Service != fleet.ServiceSSH || !ssh.ReadOnly || ssh.AllowFrom.String() != "127.0.0.1/32" || ssh.ExpiresAt.Sub(ssh.CreatedAt) != 45*time.Minute {
		t.Errorf("the form opened %+v, want read-only SSH from 127.0.0.1/32 for 45 minutes", ssh)
	}
	password := b.text("#access-password")
	if len(password) != 24 {
		t.Errorf("password shown: %q, want 24 characters", password)
	}
	command := "ssh -p " + strconv.Itoa(int(ssh.Port)) + " " + ssh.Username + "@eu1.example.net"
	if got := b.text("#access-ssh"); got != command {
		t.Errorf("ssh line: got %q, want %q", got, command)
	}
	for sel, want := range map[string]string{"#access-entry": "eu1.example.net", "#access-port": strconv.Itoa(int(ssh.Port)), "#access-user": ssh.Username} {
		if got := b.text(sel); got != want {
			t.Errorf("%s: got %q, want %q", sel, got, want)
		}
	}
	// Reloading or coming back loads the router's page, not the form's
	// POST (which would open another login).
	if got, want := b.location(), routerURL+"?access-opened="+ssh.ID.String()+"#a-"+ssh.ID.String(); got != want {
		t.Errorf("address after opening: got %s, want %s", got, want)
	}
	b.copyChecks("#access-ssh", command)
	b.copyChecks("#access-password", password)
	b.fits("access-ssh")

	// The router page lists it (never the password) and polls its status.
	b.run("continue to the router", chromedp.Click(chromedp.CSS("#to-router")),
		chromedp.WaitVisible(chromedp.CSS(`#live-access tr[data-access="`+ssh.ID.String()+`"][data-status="pending"]`)))
	if shown, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`document.documentElement.outerHTML.includes(`+strconv.Quote(password)+`)`)); err != nil || shown {
		t.Errorf("the router page holds the password: %v, %v", shown, err)
	}

	// Open WinBox with what the form suggests: the address for Connect To.
	b.run("open a WinBox login", chromedp.Click(chromedp.CSS("#open-winbox")), chromedp.WaitVisible(chromedp.CSS("#access-connect")))
	winbox := newest()
	if winbox.Service != fleet.ServiceWinbox || winbox.ReadOnly || winbox.AllowFrom.String() != "127.0.0.1/32" || winbox.ExpiresAt.Sub(winbox.CreatedAt) != time.Hour {
		t.Errorf("the form opened %+v, want WinBox with full rights from 127.0.0.1/32 for an hour", winbox)
	}
	connect := "eu1.example.net:" + strconv.Itoa(int(winbox.Port))
	if got := b.text("#access-connect"); got != connect {
		t.Errorf("Connect To: got %q, want %q", got, connect)
	}
	b.copyChecks("#access-connect", connect)
	b.fits("access-winbox")

	// Both on the router page; revoke the SSH one after the confirmation.
	b.run("back to the router", chromedp.Click(chromedp.CSS("#to-router")),
		chromedp.WaitVisible(chromedp.CSS(`#live-access tr[data-access="`+winbox.ID.String()+`"]`)))
	if got := b.eval(`document.querySelectorAll("#live-access tr[data-access]").length`); got != 2 {
		t.Errorf("live accesses listed: got %d, want 2", got)
	}
	b.fits("access-list")
	dialogs := chromedp.Events(ctx, page.JavascriptDialogOpening)
	go func() {
		for _, err := range dialogs {
			if err != nil {
				return
			}
			chromedp.Call(ctx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: true})
		}
	}()
	row := `#live-access tr[data-access="` + ssh.ID.String() + `"]`
	b.run("revoke the SSH login",
		chromedp.Click(chromedp.CSS(row+" button.danger")),
		chromedp.WaitVisible(chromedp.CSS("[data-banner]")),
		chromedp.WaitNotPresent(chromedp.CSS(row)))
	if got := b.text("[data-banner]"); !strings.HasPrefix(got, "Access revoked.") || !strings.Contains(got, ssh.Username) {
		t.Errorf("banner after revoking: got %q", got)
	}
	got, err := f.Service.Access(bg, f.Principal.AccountID, f.Router.ID, ssh.ID)
	if err != nil || got.RevokedAt == nil {
		t.Errorf("the revoked access: got revoked_at %v, %v; want revoked", got.RevokedAt, err)
	}
}
