package daemon

import (
	"github.com/tpf-dev/tpf/shared/peerlink"
	"github.com/tpf-dev/tpf/shared/syncproto"
)

// AgentURL turns the controller's base URL (http, https, ws or wss) into
// its agent endpoint's websocket URL.
func AgentURL(base string) (string, error) { return syncproto.URL(base, syncproto.AgentPath) }

// logger is what the daemon's parts log through (a *slog.Logger).
type logger interface {
	Info(msg string, args ...any)
	Warn(msg string, args ...any)
}

// newLink returns the agent's link to the controller at url (see package
// peerlink): it says hello on every connect, hands every desired set to
// setDesired, and sends only the newest report (Publish), also one made
// while the link was down.
func (d *Daemon) newLink(url string) (*peerlink.Client, error) {
	return peerlink.New(peerlink.Config{
		URL: url, Token: d.cfg.Token, TokenName: "TPF_AGENT_TOKEN", TLS: d.cfg.ControllerTLS,
		Heartbeat: d.cfg.Heartbeat,
		Hello:     func() any { return d.hello() },
		Receive: func(m syncproto.Envelope) {
			if m.Type == syncproto.TypeDesired {
				d.setDesired(m.Desired)
			}
		},
		Logger: d.cfg.Logger,
	})
}
