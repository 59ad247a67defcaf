package routerostest

import "strings"

// routeTable lists every command the emulator knows. Anything else gets
// the "no such command" traps.
func (s *Server) routeTable() map[string]handler {
	return map[string]handler{
		"/cancel": s.cancelLocked,

		"/ip/firewall/nat/print":  s.natPrintLocked,
		"/ip/firewall/nat/getall": s.natPrintLocked,
		"/ip/firewall/nat/add":    s.natAddLocked,
		"/ip/firewall/nat/set":    s.natSetLocked,
		"/ip/firewall/nat/remove": s.natRemoveLocked,
		"/ip/firewall/nat/move":   s.natMoveLocked,

		"/ip/firewall/connection/print":  s.conntrackPrintLocked,
		"/ip/firewall/connection/getall": s.conntrackPrintLocked,
		"/ip/firewall/connection/remove": s.conntrackRemoveLocked,

		"/system/resource/print":  s.resourcePrintLocked,
		"/system/resource/getall": s.resourcePrintLocked,
		"/system/identity/print":  s.identityPrintLocked,
		"/system/identity/getall": s.identityPrintLocked,
		"/system/identity/set":    s.identitySetLocked,
	}
}

// cancelLocked answers /cancel. Every command here finishes before the next
// is read, so there is never anything to cancel: just !done.
func (s *Server) cancelLocked(req *request) []sentence {
	if name, bad := req.unknownAttr("tag"); bad {
		return unknownParameter(name)
	}
	return []sentence{done()}
}

// unknownCommand answers a command path the emulator does not have the way
// RouterOS does: a category-0 trap naming the first segment that does not
// resolve (the last one if only the command is wrong), a second trap, then
// !done.
func (s *Server) unknownCommand(command string) []sentence {
	segs := strings.Split(strings.TrimPrefix(command, "/"), "/")
	bad := segs[len(segs)-1]
	dir := ""
	for _, seg := range segs[:len(segs)-1] {
		dir += "/" + seg
		if !s.isDirectory(dir) {
			bad = seg
			break
		}
	}
	return []sentence{
		trap(0, "no such command or directory ("+bad+")"),
		trap(-1, "no such command prefix"),
		done(),
	}
}

func (s *Server) isDirectory(dir string) bool {
	for path := range s.routes {
		if strings.HasPrefix(path, dir+"/") {
			return true
		}
	}
	return false
}
