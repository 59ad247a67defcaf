package web_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"net/http/httptest"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"github.com/google/uuid"

	"github.com/tpf-dev/tpf/controller/fleet"
	"github.com/tpf-dev/tpf/controller/forwards"
	"github.com/tpf-dev/tpf/controller/store/storetest"
	"github.com/tpf-dev/tpf/controller/web"
	"github.com/tpf-dev/tpf/shared/syncproto"
)

// TestBrowser drives the web views in headless Chromium (Debian's chromium
// package): sign in, see the fleet, create a forward through the form, watch
// it turn active when the router confirms it, revoke it and see it go. Each
// page's screenshot is kept in .artifacts/screenshots/ at the repository's
// root (CI keeps that folder as an artifact).
func TestBrowser(t *testing.T) {
	t.Parallel()
	ctx := startBrowser(t)
	now := time.Now().UTC().Truncate(time.Second)
	f := storetest.NewFleet(t, now.Add(-30*time.Hour))
	waiting := seedFleet(t, f, now)

	views := web.New(f.Store, web.Config{FleetPoll: time.Second, RouterPoll: 500 * time.Millisecond})
	srv := httptest.NewServer(views)
	t.Cleanup(srv.Close)
	watchConsole(t, ctx)
	shots := screenshotDir(t)
	shot := func(name string) {
		t.Helper()
		b, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatalf("screenshot %s: %v", name, err)
		}
		if err := os.WriteFile(filepath.Join(shots, name+".png"), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	run := func(what string, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(ctx, steps...); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	text := func(sel string) string {
		t.Helper()
		s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
		if err != nil {
			t.Fatalf("text of %s: %v", sel, err)
		}
		return s
	}
	eval := func(js string) int {
		t.Helper()
		n, err := chromedp.Run(ctx, chromedp.Evaluate[int](js))
		if err != nil {
			t.Fatalf("evaluate %s: %v", js, err)
		}
		return n
	}

	// Signed out, the fleet sends us to the sign-in form.
	run("open the fleet", chromedp.Navigate(srv.URL+"/"), chromedp.WaitVisible(chromedp.CSS("#token")))
	shot("1-signin")
	run("sign in with a wrong token",
		chromedp.SendKeys(chromedp.CSS("#token"), "tpf_wrong"),
		chromedp.Click(chromedp.CSS("button.primary")),
		chromedp.WaitVisible(chromedp.CSS("#token-error")))
	if got := text("#token-error"); got != "That token is unknown or has been revoked." {
		t.Errorf("wrong token: got %q", got)
	}
	run("sign in",
		chromedp.SendKeys(chromedp.CSS("#token"), f.APIToken),
		chromedp.Click(chromedp.CSS("button.primary")),
		chromedp.WaitVisible(chromedp.CSS("#fleet-rows")))

	// The fleet: every router, the totals, instant filtering.
	rows := eval(`document.querySelectorAll("#fleet-rows tr[data-search]").length`)
	if rows != 24 {
		t.Errorf("fleet rows: got %d, want 24", rows)
	}
	if got := text(".totals .tile:nth-child(1) .n"); got != "24" {
		t.Errorf("routers total: got %q, want 24", got)
	}
	shot("2-fleet")
	run("filter instantly", chromedp.SendKeys(chromedp.CSS(`input[name="q"]`), "lyon"))
	if got := eval(`[...document.querySelectorAll("#fleet-rows tr[data-search]")].filter(r => !r.hidden).length`); got != 1 {
		t.Errorf("rows shown for 'lyon': got %d, want 1", got)
	}
	shot("3-fleet-filtered")
	// The next poll asks the server for ?q=lyon, which filters the same way.
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](`document.querySelectorAll("#fleet-rows tr[data-search]").length === 1 && location.search === "?q=lyon"`,
		chromedp.WithPollingTimeout(5*time.Second))); err != nil {
		t.Errorf("rows after a poll with ?q=lyon: %v", err)
	}
	// Clearing the search brings every router back at once.
	eval(`(() => { const q = document.querySelector('input[name="q"]'); q.value = ""; q.dispatchEvent(new Event("input")); return 0 })()`)
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](`document.querySelectorAll("#fleet-rows tr[data-search]:not([hidden])").length === 24`,
		chromedp.WithPollingTimeout(5*time.Second))); err != nil {
		t.Errorf("rows after clearing the search: %v", err)
	}

	// The router page.
	run("open r1", chromedp.Navigate(srv.URL+"/routers/"+f.Router.ID.String()), chromedp.WaitVisible(chromedp.CSS("#create-form")))
	shot("4-router")

	// A refused create shows the API's messages next to the fields.
	run("create a bad forward",
		chromedp.SendKeys(chromedp.CSS("#dst_address"), "169.254.169.254"),
		chromedp.SendKeys(chromedp.CSS("#dst_port"), "22"),
		chromedp.SendKeys(chromedp.CSS("#allow_from"), "198.51.100.0/24"),
		chromedp.Click(chromedp.CSS(`#create-form button[type="submit"]`)),
		chromedp.WaitVisible(chromedp.CSS(".field-error")))
	errs := text("#create-form")
	for _, want := range []string{
		"The dst address field must be a private (RFC 1918) or publicly routed IPv4 address; 169.254.169.254 is link-local.",
		"The allow from field must be a publicly routed IPv4 address or range; 198.51.100.0/24 is documentation.",
	} {
		if !strings.Contains(errs, want) {
			t.Errorf("form after a bad create lacks %q; it says:\n%s", want, errs)
		}
	}
	shot("5-router-invalid")

	// A good one: pending until the router confirms it.
	run("create a forward",
		chromedp.SetValue(chromedp.CSS("#dst_address"), "192.168.88.50"),
		chromedp.SetValue(chromedp.CSS("#dst_port"), "443"),
		chromedp.SetValue(chromedp.CSS("#allow_from"), "81.2.69.0/24"),
		chromedp.SetValue(chromedp.CSS("#expire_after_minutes"), "60"),
		chromedp.Click(chromedp.CSS(`#create-form button[type="submit"]`)),
		chromedp.WaitVisible(chromedp.CSS("[data-banner]")))
	created := findForward(t, f, "192.168.88.50", time.Now())
	row := `#live-forwards tr[data-forward="` + created.ID.String() + `"]`
	run("see it pending", chromedp.WaitVisible(chromedp.CSS(row+`[data-status="pending"]`)))
	if got := text("[data-banner]"); !strings.Contains(got, fmt.Sprintf("Connect to eu1.example.net:%d from 81.2.69.0/24", created.Port)) {
		t.Errorf("banner: got %q", got)
	}
	// The countdown ticks in the browser.
	first := text(row + " .countdown")
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](fmt.Sprintf(`document.querySelector(%q).textContent !== %q`, row+" .countdown", first),
		chromedp.WithPollingTimeout(5*time.Second))); err != nil {
		t.Fatalf("the countdown does not tick: %v", err)
	}
	// The live part is replaced every 2 s; read the countdown once it
	// stands in the new part too.
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](fmt.Sprintf(`(document.querySelector(%q)?.textContent ?? "").startsWith("59m ")`, row+" .countdown"),
		chromedp.WithPollingTimeout(5*time.Second))); err != nil {
		t.Errorf("countdown of a 60-minute forward: got %q, want 59m …", text(row+" .countdown"))
	}

	// The router confirms it; the page shows it active without a reload.
	confirm(t, f.Store, f.Principal, f.Router, time.Now())
	run("see it active", chromedp.WaitVisible(chromedp.CSS(row+`[data-status="active"]`), chromedp.RetryInterval(100*time.Millisecond)))
	shot("6-router-active")

	// Revoke it (accepting the confirmation); it leaves the live forwards.
	dialogs := chromedp.Events(ctx, page.JavascriptDialogOpening)
	go func() {
		for _, err := range dialogs {
			if err != nil {
				return
			}
			chromedp.Call(ctx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: true})
		}
	}()
	run("revoke it",
		chromedp.Click(chromedp.CSS(row+` button.danger`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-banner]`)),
		chromedp.WaitNotPresent(chromedp.CSS(row)))
	if got := text("[data-banner]"); !strings.HasPrefix(got, "Forward revoked.") {
		t.Errorf("banner after revoke: got %q", got)
	}
	ended := `#ended-forwards tr[data-forward="` + created.ID.String() + `"]`
	run("see it removing", chromedp.WaitVisible(chromedp.CSS(ended+`[data-status="removing"]`)))
	// The router confirms the removal: removed, without a reload.
	confirm(t, f.Store, f.Principal, f.Router, time.Now())
	run("see it removed", chromedp.WaitVisible(chromedp.CSS(ended+`[data-status="removed"]`), chromedp.RetryInterval(100*time.Millisecond)))
	got, err := f.Store.Forward(context.Background(), f.Principal.AccountID, f.Router.ID, created.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.RevokedAt == nil {
		t.Error("the store does not have the forward revoked")
	}
	shot("7-router-revoked")

	// A router of a managed region whose tunnel is down: its pending
	// forward says what it waits for.
	run("open a router whose tunnel is down", chromedp.Navigate(srv.URL+"/routers/"+waiting.ID.String()), chromedp.WaitVisible(chromedp.CSS("#tunnel")))
	if got := text("#tunnel .v"); !strings.HasPrefix(got, "down · last handshake 2") || !strings.Contains(got, "min ago · edge 81.2.69.100:51820") {
		t.Errorf("tunnel line: got %q, want down · last handshake 20 min ago · edge 81.2.69.100:51820 …", got)
	}
	if got := text("#live-forwards .wait-text"); got != "waiting for the management tunnel" {
		t.Errorf("its pending forward: got %q, want waiting for the management tunnel", got)
	}
	shot("8-router-tunnel-down")
	run("filter the fleet by tunnel down", chromedp.Navigate(srv.URL+"/?state=tunnel-down"), chromedp.WaitVisible(chromedp.CSS("#fleet-rows")))
	if got := eval(`document.querySelectorAll("#fleet-rows tr[data-search]").length`); got != 3 {
		t.Errorf("routers whose tunnel is down: got %d, want 3", got)
	}
	shot("9-fleet-tunnel-down")

	run("sign out",
		chromedp.Click(chromedp.CSS(`.who button`)),
		chromedp.WaitVisible(chromedp.CSS("#token")))
}

// watchConsole fails the test for every script error and policy violation
// (CSP) the browser reports; the network log is expected to show 401, 404
// and 422 answers.
func watchConsole(t *testing.T, ctx context.Context) {
	t.Helper()
	var consoleMu sync.Mutex
	var consoleErrors []string
	go func() {
		for m, err := range chromedp.Console(ctx) {
			if err != nil {
				return
			}
			if (m.Type == chromedp.ConsoleError || m.IsException()) && m.Source != "network" {
				consoleMu.Lock()
				consoleErrors = append(consoleErrors, fmt.Sprintf("%s (%s:%d)", m.Text, m.URL, m.Line))
				consoleMu.Unlock()
			}
		}
	}()
	t.Cleanup(func() {
		consoleMu.Lock()
		defer consoleMu.Unlock()
		for _, e := range consoleErrors {
			t.Errorf("browser console: %s", e)
		}
	})
}

// startBrowser starts headless Chromium for the test. Without Chromium the
// test is skipped, except under CI=true, where it fails.
func startBrowser(t *testing.T) context.Context {
	t.Helper()
	path, err := exec.LookPath("chromium")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("chromium is not installed (apt-get install chromium): %v", err)
		}
		t.Skipf("skipping the browser test: chromium is not installed (apt-get install chromium)")
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1440, 960),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-default-apps", true),
		chromedp.Flag("force-color-profile", "srgb"),
		chromedp.Flag("hide-scrollbars", true),
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	t.Cleanup(cancel)
	ctx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	t.Cleanup(cancelAlloc)
	ctx, cancelTab := chromedp.NewContext(ctx)
	t.Cleanup(cancelTab)
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return ctx
}

// screenshotDir is .artifacts/screenshots at the repository's root.
func screenshotDir(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the test's directory")
		}
		dir = parent
	}
	dir = filepath.Join(dir, ".artifacts", "screenshots")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

func findForward(t *testing.T, f *storetest.Fleet, dst string, now time.Time) fleet.Forward {
	t.Helper()
	live, err := f.Store.LiveForwards(context.Background(), f.Principal.AccountID, f.Router.ID, now)
	if err != nil {
		t.Fatal(err)
	}
	for _, fw := range live {
		if fw.DstAddress.String() == dst {
			return fw
		}
	}
	t.Fatalf("no live forward to %s", dst)
	return fleet.Forward{}
}

// seedFleet gives the fixture's account a fleet worth looking at: r1 with a
// day of forwards and connections, and 23 more routers in every state, every
// third of them in region us1, whose tunnel tpf manages. It answers the
// router of us1 whose tunnel is down while a forward waits for it.
func seedFleet(t *testing.T, f *storetest.Fleet, now time.Time) (waiting fleet.Router) {
	t.Helper()
	ctx := context.Background()
	st, p := f.Store, f.Principal
	connectAgent(t, st, f.Router, now.Add(-26*time.Hour))

	type past struct {
		dst     string
		port    uint16
		from    string
		created time.Duration // before now
		lasts   time.Duration
		revoke  time.Duration // after creation; 0: runs to its expiry
		conns   int
	}
	history := []past{
		{"192.168.88.43", 22, "81.2.69.0/24", 21 * time.Hour, 2 * time.Hour, 0, 3},
		{"192.168.88.10", 443, "81.2.69.7/32", 15 * time.Hour, 4 * time.Hour, 50 * time.Minute, 2},
		{"192.168.88.43", 22, "81.2.69.0/24", 9 * time.Hour, 3 * time.Hour, 0, 4},
		{"192.168.88.20", 8291, "81.2.69.7/32", 4 * time.Hour, time.Hour, 20 * time.Minute, 1},
		{"192.168.88.43", 22, "81.2.69.0/24", 90 * time.Minute, 3 * time.Hour, 0, 2},
	}
	for i, h := range history {
		at := now.Add(-h.created)
		fw, err := forwards.New(st).CreateForward(ctx, p, f.Router.ID, fleet.NewForward{
			DstAddress: netip.MustParseAddr(h.dst), DstPort: h.port, AllowFrom: netip.MustParsePrefix(h.from), Duration: h.lasts,
		}, at)
		if err != nil {
			t.Fatal(err)
		}
		confirm(t, st, p, f.Router, at.Add(3*time.Second))
		var conns []syncproto.Connection
		ran := h.lasts
		if h.revoke > 0 {
			ran = h.revoke
		}
		for c := range h.conns {
			start := at.Add(time.Duration(c+1) * ran / time.Duration(h.conns+2))
			conn := syncproto.Connection{ID: uuid.NewString(), ForwardID: fw.ID.String(),
				Source: netip.MustParseAddrPort(fmt.Sprintf("81.2.69.%d:%d", 7+c, 50000+i*10+c)), Start: start,
				End: start.Add(ran / time.Duration(h.conns+3)), BytesUp: int64(20000 * (c + 1)), BytesDown: int64(900000 * (c + 2)), Reason: "client closed"}
			if i == len(history)-1 && c == h.conns-1 {
				conn.Start, conn.End, conn.Reason = now.Add(-4*time.Minute), time.Time{}, "" // still open
			}
			conns = append(conns, conn)
		}
		if err := forwards.New(st).RecordConnections(ctx, "eu1", conns); err != nil {
			t.Fatal(err)
		}
		if h.revoke > 0 {
			if err := forwards.New(st).RevokeForward(ctx, p, f.Router.ID, fw.ID, at.Add(h.revoke)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if _, err := forwards.New(st).ExpireDue(ctx, now, 100); err != nil {
		t.Fatal(err)
	}
	confirm(t, st, p, f.Router, now.Add(-time.Second))

	// The rest of the fleet.
	addManagedRegion(t, st, now.Add(-30*time.Hour))
	states := []string{"connected", "connected", "connected", "offline", "never", "error", "connected", "behind"}
	names := []string{"hq-core", "branch-lisbon", "branch-porto", "branch-lyon", "lab-new", "dc-edge", "store-%02d"}
	for i := range 23 {
		name := names[min(i, len(names)-1)]
		if strings.Contains(name, "%") {
			name = fmt.Sprintf(name, i)
		}
		state := states[i%len(states)]
		var rt fleet.Router
		if i%3 != 1 {
			rt = addRouter(t, st, p, name, fmt.Sprintf("10.99.1.%d", i+1), now.Add(-30*time.Hour))
		} else {
			rt = addManagedRouter(t, st, p, name, now.Add(-30*time.Hour))
			// Up, but down where the agent went offline or a forward is
			// waiting, and never up where the agent never came.
			handshake := now.Add(-30 * time.Second)
			switch state {
			case "offline":
				handshake = now.Add(-3 * time.Hour)
			case "behind":
				handshake, waiting = now.Add(-20*time.Minute), rt
			}
			if state != "never" {
				key := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{byte(i)}, 32))
				reportTunnel(t, st, rt, syncproto.TunnelState{PublicKey: key, Peers: []syncproto.PeerState{{
					LastHandshake: handshake, Endpoint: "81.2.69.100:51820", RxBytes: int64(i) << 20, TxBytes: int64(i) << 16}}}, now)
			}
		}
		switch state {
		case "connected":
			connectAgent(t, st, rt, now.Add(-time.Duration(i)*time.Hour))
			confirm(t, st, p, rt, now)
		case "offline":
			connectAgent(t, st, rt, now.Add(-5*time.Hour))
			if err := st.AgentDisconnected(ctx, rt.ID, now.Add(-3*time.Hour)); err != nil {
				t.Fatal(err)
			}
		case "error":
			connectAgent(t, st, rt, now)
			if _, err := forwards.New(st).ApplyReport(ctx, rt.ID, syncproto.Report{AgentVersion: "1.4.2", Error: "dial 192.168.88.1:8728: connection refused"}, now); err != nil {
				t.Fatal(err)
			}
		case "behind":
			connectAgent(t, st, rt, now)
			if _, err := forwards.New(st).CreateForward(ctx, p, rt.ID, fleet.NewForward{DstAddress: netip.MustParseAddr("192.168.1.5"), DstPort: 3389,
				AllowFrom: netip.MustParsePrefix("81.2.69.0/24"), Duration: 2 * time.Hour}, now); err != nil {
				t.Fatal(err)
			}
		}
	}
	return waiting
}
