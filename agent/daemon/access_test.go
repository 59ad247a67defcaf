package daemon_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/tpf-dev/tpf/agent/daemon"
	"github.com/tpf-dev/tpf/agent/routeros"
	"github.com/tpf-dev/tpf/agent/routerostest"
	"github.com/tpf-dev/tpf/shared/syncproto"
)

// An access as the controller sends it before the agent confirmed it.
const (
	accessID   = "6ba7b810-9dad-11d1-80b4-00c04fd430c8"
	accessUser = "tpf-k3m9x2q7ab"
	accessPass = "Xq7-mK2_pL9.vR4+wT8-hN3_"
)

// controller is a fake controller that sends one set to every agent that
// connects and hands on every report. Close stops it for good: the agent
// then runs alone.
type controller struct {
	*httptest.Server
	reports chan *syncproto.Report
}

func startController(t testing.TB, set *syncproto.Desired) *controller {
	t.Helper()
	c := &controller{reports: make(chan *syncproto.Report, 256)}
	c.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer ws.CloseNow()
		ctx := r.Context()
		msg, _ := syncproto.Encode(set)
		ws.Write(ctx, websocket.MessageText, msg)
		for {
			_, data, err := ws.Read(ctx)
			if err != nil {
				return
			}
			if m, err := syncproto.Decode(data); err == nil && m.Type == syncproto.TypeReport {
				select {
				case c.reports <- m.Report:
				default:
				}
			}
		}
	}))
	t.Cleanup(c.stop)
	return c
}

// stop closes the controller and every connection to it.
func (c *controller) stop() {
	c.CloseClientConnections()
	c.Close()
}

// waitReport waits for a report that ok accepts.
func (c *controller) waitReport(t testing.TB, what string, ok func(*syncproto.Report) bool) *syncproto.Report {
	t.Helper()
	deadline := time.After(15 * time.Second)
	for {
		select {
		case r := <-c.reports:
			if ok(r) {
				return r
			}
		case <-deadline:
			t.Fatalf("no report %s", what)
			return nil
		}
	}
}

// syncBuffer is a bytes.Buffer safe for the logger's concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startAgent runs a daemon against ros and ctl until the test ends, its
// log (debug level) written to logs.
func startAgent(t testing.TB, ros *routerostest.Server, ctl *controller, logs *syncBuffer) *daemon.Daemon {
	t.Helper()
	d, err := daemon.New(daemon.Config{ControllerURL: ctl.URL, Token: "tok", Router: routeros.Config{Address: ros.Addr(), User: "admin"},
		Resync: time.Hour, Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); d.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return d
}

func startEmulator(t testing.TB, logs *syncBuffer) *routerostest.Server {
	t.Helper()
	ros := routerostest.New(routerostest.Config{Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	if err := ros.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ros.Close() })
	return ros
}

func accessDesired(expires time.Time) *syncproto.Desired {
	return &syncproto.Desired{Revision: 7, TunnelAddress: netip.MustParseAddr(tunnelAddr), EdgeAddress: netip.MustParseAddr(edgeAddr),
		Forwards: []syncproto.Forward{}, SentAt: time.Now().UTC().Truncate(time.Second),
		Accesses: []syncproto.Access{{ID: accessID, Service: syncproto.ServiceSSH, Username: accessUser, Password: accessPass, ExpiresAt: expires}}}
}

func hasUser(ros *routerostest.Server, name string) bool {
	return slices.ContainsFunc(ros.Rows(routerostest.MenuUser), func(r map[string]string) bool { return r["name"] == name })
}

// TestAccessExpiresWithControllerGone: the agent removes an access's user
// and rule at its expiry, on the controller's time it keeps, also once the
// controller is gone.
func TestAccessExpiresWithControllerGone(t *testing.T) {
	t.Parallel()
	var logs syncBuffer
	ros := startEmulator(t, &logs)
	expires := time.Now().Add(4 * time.Second).Truncate(time.Second)
	ctl := startController(t, accessDesired(expires))
	startAgent(t, ros, ctl, &logs)

	ctl.waitReport(t, "with the access applied", func(r *syncproto.Report) bool {
		return r.Revision == 7 && len(r.Results) == 1 && r.Results[0].State == syncproto.StateApplied && slices.Contains(r.Present, accessID)
	})
	if !hasUser(ros, accessUser) {
		t.Fatal("no user on the router")
	}
	ctl.stop()

	deadline := time.Now().Add(15 * time.Second)
	for hasUser(ros, accessUser) || slices.ContainsFunc(ros.Rows(routerostest.MenuFilter), func(r map[string]string) bool { return r["comment"] != "" }) {
		if time.Now().After(deadline) {
			t.Fatalf("the access outlived its expiry with the controller gone: users %v, rules %v", ros.Rows(routerostest.MenuUser), ros.Rows(routerostest.MenuFilter))
		}
		time.Sleep(50 * time.Millisecond)
	}
	if time.Now().Before(expires) {
		t.Errorf("removed before its expiry %v", expires)
	}
}

// TestAccessPasswordNotInOutput: the password reaches the router and no
// log line, report or stored set of the agent, also when the router's
// refusal quotes it.
func TestAccessPasswordNotInOutput(t *testing.T) {
	t.Parallel()
	var agentLogs, routerLogs syncBuffer
	ros := startEmulator(t, &routerLogs)
	ros.SetFault(routerostest.Fault{FailNext: 1, FailCommand: "/user/add", FailMessage: "failure: password " + accessPass + " is too weak"})
	ctl := startController(t, accessDesired(time.Now().Add(time.Hour)))
	d := startAgent(t, ros, ctl, &agentLogs)

	var reports []*syncproto.Report
	ctl.waitReport(t, "with the refusal", func(r *syncproto.Report) bool {
		reports = append(reports, r)
		return len(r.Results) == 1 && r.Results[0].State == syncproto.StateFailed
	})
	ctl.waitReport(t, "with the access applied after the retry", func(r *syncproto.Report) bool {
		reports = append(reports, r)
		return len(r.Results) == 1 && r.Results[0].State == syncproto.StateApplied
	})
	if !hasUser(ros, accessUser) {
		t.Fatal("no user on the router")
	}
	encoded, _ := json.Marshal(reports)
	stored, _ := json.Marshal(d.Desired())
	for what, text := range map[string]string{"agent log": agentLogs.String(), "reports": string(encoded), "stored set": string(stored)} {
		if strings.Contains(text, accessPass) {
			t.Errorf("the password is in the %s:\n%s", what, text)
		}
	}
	if !strings.Contains(string(encoded), `password \u003credacted\u003e is too weak`) {
		t.Errorf("the refusal is not in the reports: %s", encoded)
	}
	// The router's own log shows the command, the password blanked.
	if !strings.Contains(routerLogs.String(), "=password=<redacted>") {
		t.Errorf("the router's log shows no /user/add")
	}
}
