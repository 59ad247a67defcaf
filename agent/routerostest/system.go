package routerostest

import (
	"fmt"
	"strings"
	"time"
)

// resourceOrder is the order /system/resource/print lists properties in.
var resourceOrder = []string{
	"uptime", "version", "build-time", "free-memory", "total-memory",
	"cpu", "cpu-count", "cpu-load", "free-hdd-space", "total-hdd-space",
	"architecture-name", "board-name", "platform",
}

// resourcePrintLocked answers /system/resource/print: one row, no .id
// (the menu is a singleton), values of a small CHR.
func (s *Server) resourcePrintLocked(req *request) []sentence {
	row := map[string]string{
		"uptime":            formatUptime(time.Since(s.started)),
		"version":           s.cfg.Version + " (stable)",
		"build-time":        "2025-03-11 11:59:04",
		"free-memory":       "912150528",
		"total-memory":      "1073741824",
		"cpu":               "QEMU",
		"cpu-count":         "1",
		"cpu-load":          "1",
		"free-hdd-space":    "95510528",
		"total-hdd-space":   "134217728",
		"architecture-name": "x86_64",
		"board-name":        s.cfg.BoardName,
		"platform":          "MikroTik",
	}
	return s.printLocked(req, newTable(resourceOrder...), []map[string]string{row})
}

func (s *Server) identityPrintLocked(req *request) []sentence {
	return s.printLocked(req, newTable("name"), []map[string]string{{"name": s.identity}})
}

func (s *Server) identitySetLocked(req *request) []sentence {
	if name, bad := req.unknownAttr("name"); bad {
		return unknownParameter(name)
	}
	if name, ok := req.attrs["name"]; ok {
		s.identity = name
		s.writes++
	}
	return []sentence{done()}
}

// formatUptime writes d the RouterOS way: 1w2d3h4m5s, zero units left out.
func formatUptime(d time.Duration) string {
	secs := int64(d / time.Second)
	var b strings.Builder
	for _, u := range []struct {
		suffix string
		size   int64
	}{{"w", 7 * 86400}, {"d", 86400}, {"h", 3600}, {"m", 60}} {
		if n := secs / u.size; n > 0 {
			fmt.Fprintf(&b, "%d%s", n, u.suffix)
			secs %= u.size
		}
	}
	if secs > 0 || b.Len() == 0 {
		fmt.Fprintf(&b, "%ds", secs)
	}
	return b.String()
}
