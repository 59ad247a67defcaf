package daemon_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/tpf-dev/tpf/agent/daemon"
	"github.com/tpf-dev/tpf/agent/routeros"
	"github.com/tpf-dev/tpf/agent/routerostest"
	"github.com/tpf-dev/tpf/shared/syncproto"
)

func TestAgentURL(t *testing.T) {
	t.Parallel()
	good := map[string]string{
		"http://ctl:8080":        "ws://ctl:8080/api/agent/v1/connect",
		"https://tpf.example/":   "wss://tpf.example/api/agent/v1/connect",
		"https://tpf.example/x/": "wss://tpf.example/x/api/agent/v1/connect",
		"wss://tpf.example?a=b":  "wss://tpf.example/api/agent/v1/connect",
	}
	for in, want := range good {
		if got, err := daemon.AgentURL(in); err != nil || got != want {
			t.Errorf("AgentURL(%q): got %q, %v, want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"", "ftp://x", "ctl:8080", "http://"} {
		if _, err := daemon.AgentURL(in); err == nil {
			t.Errorf("AgentURL(%q): got no error", in)
		}
	}
}

// TestUnreadableMessageIsReported: a message the agent cannot parse is
// answered with an error message, and the link carries on.
func TestUnreadableMessageIsReported(t *testing.T) {
	t.Parallel()
	ros := routerostest.New(routerostest.Config{})
	if err := ros.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ros.Close() })

	gotError := make(chan string, 1)
	gotReport := make(chan *syncproto.Report, 16)
	ctl := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer tok" {
			http.Error(w, "no", http.StatusUnauthorized)
			return
		}
		ws, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer ws.CloseNow()
		ctx := r.Context()
		ws.Write(ctx, websocket.MessageText, []byte(`{"type":"desired","v":1,"desired":{"tunnel_address":"not an address"}}`))
		set, _ := syncproto.Encode(&syncproto.Desired{Revision: 5, TunnelAddress: netip.MustParseAddr("10.99.0.2"), EdgeAddress: netip.MustParseAddr("10.99.0.1"),
			Forwards: []syncproto.Forward{{ID: "9c56202d-c388-484d-ac9a-7677f24f1f18", Port: 50000, DstAddress: netip.MustParseAddr("192.168.88.43"), DstPort: 22, ExpiresAt: time.Now().Add(time.Hour)}}})
		ws.Write(ctx, websocket.MessageText, set)
		for {
			_, data, err := ws.Read(ctx)
			if err != nil {
				return
			}
			msg, err := syncproto.Decode(data)
			if err != nil {
				continue
			}
			switch msg.Type {
			case syncproto.TypeError:
				select {
				case gotError <- msg.Error.Message:
				default:
				}
			case syncproto.TypeReport:
				gotReport <- msg.Report
			}
		}
	}))
	t.Cleanup(ctl.Close)

	d, err := daemon.New(daemon.Config{ControllerURL: ctl.URL, Token: "tok", Router: routeros.Config{Address: ros.Addr(), User: "admin"}, Resync: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); d.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })

	select {
	case msg := <-gotError:
		if msg == "" {
			t.Error("empty error message")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the agent did not report the unreadable message")
	}
	deadline := time.After(10 * time.Second)
	for {
		select {
		case r := <-gotReport:
			if r.Revision == 5 && len(r.Results) == 1 && r.Results[0].State == syncproto.StateApplied && len(r.Present) == 1 {
				return
			}
		case <-deadline:
			t.Fatalf("no report of revision 5 applied; router NAT: %v", ros.NAT())
		}
	}
}
