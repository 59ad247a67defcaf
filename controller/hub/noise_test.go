package hub_test

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/coder/websocket"

	"github.com/tpf-dev/tpf/controller/hub"
	"github.com/tpf-dev/tpf/shared/syncproto"
)

// lockedLog is a log buffer the hub's goroutines may write at once.
type lockedLog struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *lockedLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *lockedLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// A peer that sends garbage gets an error answer to each message, but the
// log holds only a few warnings; and a message holding NUL, which the
// database cannot store, is refused at the boundary.
func TestMisbehavingPeerIsAnsweredNotLogged(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	var logs lockedLog
	_, url := startHub(t, f.st, hub.Config{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	a, _, err := dial(t, url, f.agentToken)
	if err != nil {
		t.Fatal(err)
	}
	a.next(syncproto.TypeDesired)
	const garbage = 200
	for range garbage {
		if err := a.ws.Write(context.Background(), websocket.MessageText, []byte(`{"type":"frobnicate","v":1}`)); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.ws.Write(context.Background(), websocket.MessageText,
		[]byte(`{"type":"report","v":1,"report":{"revision":1,"agent_version":"x\u0000y","results":[],"present":[]}}`)); err != nil {
		t.Fatal(err)
	}
	answers := 0
	for answers < garbage+1 {
		msg := a.next(syncproto.TypeError)
		answers++
		if answers == garbage+1 && !strings.Contains(msg.Error.Message, "NUL") {
			t.Errorf("answer to the NUL report: got %q, want it to name the NUL character", msg.Error.Message)
		}
	}
	if n := strings.Count(logs.String(), "unreadable message"); n == 0 || n > 5 {
		t.Errorf("warnings about %d unreadable messages: got %d lines, want 1 to 5", garbage+1, n)
	}
	// The link still works: the peer's report is recorded.
	a.send(&syncproto.Report{Revision: 1, AgentVersion: "v9", Results: []syncproto.Result{}, Present: []string{}})
	waitFor(t, "the report", func() bool {
		r, err := f.st.Router(context.Background(), f.p.AccountID, f.router.ID)
		return err == nil && r.Agent.AgentVersion == "v9"
	})
}
