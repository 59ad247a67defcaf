package routerostest

import (
	"maps"
	"strings"
)

// routeTable lists every command the emulator knows for version v.
// Anything else gets the "no such command" traps. WireGuard exists from
// RouterOS 7 on.
func (s *Server) routeTable(v version) map[string]handler {
	routes := map[string]handler{
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

		"/ip/address/print":  s.addressPrintLocked,
		"/ip/address/getall": s.addressPrintLocked,
		"/ip/address/add":    s.addressAddLocked,
		"/ip/address/set":    s.addressSetLocked,
		"/ip/address/remove": s.addressRemoveLocked,

		"/system/resource/print":  s.resourcePrintLocked,
		"/system/resource/getall": s.resourcePrintLocked,
		"/system/identity/print":  s.identityPrintLocked,
		"/system/identity/getall": s.identityPrintLocked,
		"/system/identity/set":    s.identitySetLocked,

		"/ip/firewall/filter/print":  s.filterPrintLocked,
		"/ip/firewall/filter/getall": s.filterPrintLocked,
		"/ip/firewall/filter/add":    s.filterAddLocked,
		"/ip/firewall/filter/set":    s.filterSetLocked,
		"/ip/firewall/filter/remove": s.filterRemoveLocked,
		"/ip/firewall/filter/move":   s.filterMoveLocked,

		"/ip/service/print":  s.servicePrintLocked,
		"/ip/service/getall": s.servicePrintLocked,
		"/ip/service/set":    s.serviceSetLocked,

		"/user/print":  s.userPrintLocked,
		"/user/getall": s.userPrintLocked,
		"/user/add":    s.userAddLocked,
		"/user/set":    s.userSetLocked,
		"/user/remove": s.userRemoveLocked,

		"/user/group/print":  s.groupPrintLocked,
		"/user/group/getall": s.groupPrintLocked,
		"/user/group/add":    s.groupAddLocked,
		"/user/group/set":    s.groupSetLocked,
		"/user/group/remove": s.groupRemoveLocked,

		"/user/active/print":  s.activePrintLocked,
		"/user/active/getall": s.activePrintLocked,
	}
	// Ending a session is request-logout up to 7.19 and remove from 7.20
	// (the dumps: 7.19.6 has only the one, 7.20.8 only the other).
	if v.atLeast(7, 20, 0) {
		routes["/user/active/remove"] = s.activeRemoveLocked
	} else {
		routes["/user/active/request-logout"] = s.activeRemoveLocked
	}
	if v.atLeast(7, 0, 0) {
		maps.Copy(routes, map[string]handler{
			"/interface/wireguard/print":  s.wgPrintLocked,
			"/interface/wireguard/getall": s.wgPrintLocked,
			"/interface/wireguard/add":    s.wgAddLocked,
			"/interface/wireguard/set":    s.wgSetLocked,
			"/interface/wireguard/remove": s.wgRemoveLocked,

			"/interface/wireguard/peers/print":  s.peerPrintLocked,
			"/interface/wireguard/peers/getall": s.peerPrintLocked,
			"/interface/wireguard/peers/add":    s.peerAddLocked,
			"/interface/wireguard/peers/set":    s.peerSetLocked,
			"/interface/wireguard/peers/remove": s.peerRemoveLocked,
		})
	}
	return routes
}

// refuseBySchema answers what the mimicked version itself lacks, before
// the emulator looks at the command: a command not in the version's tree
// gets the "no such command" traps, and a parameter the command does not
// take gets "unknown parameter <name>" (ROUTEROS.md §1.11; e.g. 7.17.1
// answers "unknown parameter is-responder"). API syntax is not checked:
// .id, .proplist and other dotted words, .tag, and ?queries; getall is
// the API's name for print; /cancel exists only in the API. It returns nil
// when the version has no tree or takes the command as it is.
func (s *Server) refuseBySchema(req *request) []sentence {
	if s.tree == nil || req.command == "/cancel" {
		return nil
	}
	path := req.command
	if dir, ok := strings.CutSuffix(path, "/getall"); ok {
		path = dir + "/print"
	}
	params, ok := s.tree.Command(path)
	if !ok {
		return s.unknownCommand(req.command)
	}
	for _, name := range req.names {
		if !strings.HasPrefix(name, ".") && !params.Has(name) {
			return unknownParameter(name)
		}
	}
	return nil
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

// isDirectory reports whether dir is a menu of the version's tree or
// holds a command of the emulator's.
func (s *Server) isDirectory(dir string) bool {
	if s.tree != nil && s.tree.IsDir(dir) {
		return true
	}
	for path := range s.routes {
		if strings.HasPrefix(path, dir+"/") {
			return true
		}
	}
	return false
}
