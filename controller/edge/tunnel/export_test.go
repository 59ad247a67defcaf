package tunnel

// UserspaceOnly makes the tunnel never try kernel WireGuard, so that tests
// behave alike on kernels with and without it.
func UserspaceOnly(c *Config) { c.userspaceOnly = true }

// NewUnprobed is New without the check of the host, to reach Apply's own
// error paths.
func NewUnprobed(cfg Config) (*Tunnel, error) { return newTunnel(cfg, false) }

// Configures returns how many times Apply changed the device's WireGuard
// configuration.
func Configures(t *Tunnel) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.configures
}
