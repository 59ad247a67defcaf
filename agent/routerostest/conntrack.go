package routerostest

// conntrackOrder is the order /ip/firewall/connection/print lists
// properties in.
var conntrackOrder = []string{
	"protocol", "src-address", "dst-address", "reply-src-address", "reply-dst-address",
	"tcp-state", "timeout", "orig-packets", "orig-bytes", "repl-packets", "repl-bytes",
	"orig-rate", "repl-rate", "connection-mark", "connection-type",
	"expected", "seen-reply", "assured", "confirmed", "dying", "fasttrack", "hw-offload",
	"srcnat", "dstnat",
}

// conntrackDefaults fill what a test does not set when it adds an entry.
func conntrackDefaults() map[string]string {
	return map[string]string{
		"timeout": "23h59m59s", "orig-packets": "0", "orig-bytes": "0",
		"repl-packets": "0", "repl-bytes": "0", "orig-rate": "0bps", "repl-rate": "0bps",
		"expected": "false", "seen-reply": "false", "assured": "false", "confirmed": "true",
		"dying": "false", "fasttrack": "false", "hw-offload": "false",
		"srcnat": "false", "dstnat": "false",
	}
}

func (s *Server) conntrackPrintLocked(req *request) []sentence {
	return s.printLocked(req, s.conntrack, s.conntrack.rows)
}

func (s *Server) conntrackRemoveLocked(req *request) []sentence {
	return s.removeLocked(req, s.conntrack)
}
