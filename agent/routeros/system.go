package routeros

import (
	"context"
	"fmt"

	"github.com/tpf-dev/tpf/shared/syncproto"
)

// System reads what the agent reports about its router: the RouterOS
// version as the router prints it ("7.18.2 (stable)"), the board name and
// the identity. It blocks for two commands.
func (c *Client) System(ctx context.Context) (syncproto.Router, error) {
	res, err := c.run(ctx, "/system/resource/print", "=.proplist=version,board-name")
	if err != nil {
		return syncproto.Router{}, fmt.Errorf("read system resource of %s: %w", c.addr, err)
	}
	if len(res.Re) == 0 {
		return syncproto.Router{}, fmt.Errorf("read system resource of %s: no row", c.addr)
	}
	id, err := c.run(ctx, "/system/identity/print", "=.proplist=name")
	if err != nil {
		return syncproto.Router{}, fmt.Errorf("read system identity of %s: %w", c.addr, err)
	}
	r := syncproto.Router{
		RouterOSVersion: res.Re[0].Map["version"],
		Board:           res.Re[0].Map["board-name"],
	}
	c.setVersion(r.RouterOSVersion)
	if len(id.Re) > 0 {
		r.Identity = id.Re[0].Map["name"]
	}
	return r, nil
}

// RouterOSVersion returns the router's RouterOS version as it prints it
// ("7.18.2 (stable)"), read once per connection (System reads it too). It
// blocks for one command the first time.
func (c *Client) RouterOSVersion(ctx context.Context) (string, error) {
	c.vmu.Lock()
	v := c.version
	c.vmu.Unlock()
	if v != "" {
		return v, nil
	}
	res, err := c.run(ctx, "/system/resource/print", "=.proplist=version")
	if err != nil {
		return "", fmt.Errorf("read RouterOS version of %s: %w", c.addr, err)
	}
	if len(res.Re) == 0 || res.Re[0].Map["version"] == "" {
		return "", fmt.Errorf("read RouterOS version of %s: no version", c.addr)
	}
	v = res.Re[0].Map["version"]
	c.setVersion(v)
	return v, nil
}

func (c *Client) setVersion(v string) {
	c.vmu.Lock()
	defer c.vmu.Unlock()
	if v != "" {
		c.version = v
	}
}
