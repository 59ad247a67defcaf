package tpfctl_test

import (
	"context"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/tpf-dev/tpf/controller/tpfctl"
)

// desiredPassword is the password r1's desired set carries for access id:
// what its agent sets on the router.
func (h *harness) desiredPassword(id string) string {
	h.t.Helper()
	set, err := h.fleet.Service.DesiredSet(context.Background(), h.fleet.Router.ID, time.Now())
	if err != nil {
		h.t.Fatal(err)
	}
	for _, a := range set.Accesses {
		if a.ID == id {
			return a.Password
		}
	}
	h.t.Fatalf("r1's desired set lacks access %s", id)
	return ""
}

// field is the value of the "name  value" line of a printed object.
func field(t testing.TB, out, name string) string {
	t.Helper()
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + ` {2,}(.*)$`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no %q line in:\n%s", name, out)
	}
	return m[1]
}

func TestAccessLifecycle(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	id := h.fleet.Router.ID.String()

	// SSH, read-only: where to connect first, then the ssh line, the user
	// and its password; a note on stderr that it is shown only now.
	r := h.run(t, "access", "create", "r1", "--type", "ssh", "--for", "1h", "--allow-from", "81.2.69.7", "--read-only").want(t, tpfctl.ExitOK)
	if first, _, _ := strings.Cut(r.stdout, "\n"); !strings.HasPrefix(first, "connect to") || !strings.Contains(first, "eu1.example.net:50") {
		t.Errorf("got first line %q, want connect to eu1.example.net:50…", first)
	}
	accessID, user, password := field(t, r.stdout, "id"), field(t, r.stdout, "username"), field(t, r.stdout, "password")
	port := strings.TrimPrefix(field(t, r.stdout, "connect to"), "eu1.example.net:")
	if got, want := field(t, r.stdout, "ssh"), "ssh -p "+port+" "+user+"@eu1.example.net"; got != want {
		t.Errorf("ssh line: got %q, want %q", got, want)
	}
	if !strings.HasPrefix(user, "tpf-") || len(password) != 24 || password != h.desiredPassword(accessID) {
		t.Errorf("got user %q password %q; want a tpf- user and the password r1's agent is given", user, password)
	}
	r.wantOut(t, "ssh, read-only", "81.2.69.7/32", "pending", "r1 ("+id+")", "0 open")
	if exp := field(t, r.stdout, "expires"); !strings.HasSuffix(exp, "(in 1h)") && !strings.HasSuffix(exp, "(in 59m)") {
		t.Errorf("expires: got %q, want … (in 1h) or (in 59m)", exp)
	}
	r.wantErr(t, "The password is shown only now")

	// -o json is the API's access object, password included; --minutes and
	// --from are --for and --allow-from.
	jr := h.run(t, "access", "create", "--type", "winbox", "--minutes", "30", "--from", "81.2.69.0/24", id, "-o", "json").want(t, tpfctl.ExitOK)
	w := decode[tpfctl.Access](t, jr.stdout)
	if w.Type != "winbox" || w.ReadOnly || w.AllowFrom != "81.2.69.0/24" || w.TimeToExpire != "30 minutes from now" || w.SSHCommand != "" ||
		w.Password == "" || w.Password != h.desiredPassword(w.ID) || w.EntryPoint != "eu1.example.net" || w.Status != "pending" {
		t.Errorf("got %+v, want a pending WinBox access with its password", w)
	}
	if jr.stderr != "" {
		t.Errorf("-o json: got stderr %q, want none", jr.stderr)
	}
	// The WinBox one says where WinBox connects.
	h.run(t, "access", "get", "r1", w.ID).want(t, 0).wantOut(t, "eu1.example.net:"+strconv.Itoa(w.Port)+"  (WinBox: Connect To)")

	// list, never a password (both were created within a second: the
	// order, newest first, is not tested here).
	r = h.run(t, "access", "list", "r1").want(t, tpfctl.ExitOK)
	r.wantOut(t, "ID", "TYPE", "USER", "CONNECT TO", accessID, w.ID, user, "ssh, read-only", "winbox", "81.2.69.7/32", "81.2.69.0/24", "in 29m")
	if strings.Contains(r.stdout, password) || strings.Contains(r.stdout, w.Password) {
		t.Errorf("access list shows a password:\n%s", r.stdout)
	}
	live := decode[[]tpfctl.Access](t, h.run(t, "access", "list", "--router", "r1", "-o", "json").want(t, 0).stdout)
	if len(live) != 2 || live[0].ID == live[1].ID || (live[0].ID != w.ID && live[0].ID != accessID) || (live[1].ID != w.ID && live[1].ID != accessID) ||
		live[0].Password != "" || live[1].Password != "" {
		t.Errorf("got live %+v, want the WinBox and the SSH access, without passwords", live)
	}

	// get, by name or id, the router first or as --router; no password.
	for _, args := range [][]string{{"access", "get", "r1", accessID}, {"access", "get", accessID, "--router", id}} {
		r = h.run(t, args...).want(t, tpfctl.ExitOK)
		r.wantOut(t, "connect to", "ssh -p "+port, user, "pending")
		if strings.Contains(r.stdout, "password") || strings.Contains(r.stdout, password) {
			t.Errorf("%v shows the password:\n%s", args, r.stdout)
		}
	}
	got := decode[tpfctl.Access](t, h.run(t, "-o", "json", "access", "get", "r1", accessID).want(t, 0).stdout)
	if got.ID != accessID || got.Password != "" || got.SSHCommand != "ssh -p "+port+" "+user+"@eu1.example.net" {
		t.Errorf("got %+v, want access %s with its ssh command and no password", got, accessID)
	}

	// connections: none yet.
	h.run(t, "access", "connections", "r1", accessID).want(t, 0).wantOut(t, "No connections through access "+accessID)

	// revoke, then it is history.
	h.run(t, "access", "revoke", "r1", accessID).want(t, tpfctl.ExitOK).wantOut(t, "Revoked ssh access "+accessID+" (user "+user, "status removing")
	again := decode[tpfctl.Access](t, h.run(t, "access", "revoke", "r1", accessID, "-o", "json").want(t, 0).stdout)
	if !again.RevokedEarly || again.Status != "removing" || again.RevokedAt == nil {
		t.Errorf("got %+v after revoke, want revoked_early, removing", again)
	}
	h.run(t, "access", "revoke", "r1", accessID).want(t, 0).wantOut(t, "Revoked ssh access") // an early revoke stays one
	live = decode[[]tpfctl.Access](t, h.run(t, "access", "list", "r1", "-o", "json").want(t, 0).stdout)
	if len(live) != 1 || live[0].ID != w.ID {
		t.Errorf("got live %+v, want only the WinBox access", live)
	}
	h.run(t, "access", "list", "r1", "--all").want(t, 0).wantOut(t, accessID, "removing (revoked)", "revoked ")
	if all := decode[[]tpfctl.Access](t, h.run(t, "access", "list", "r1", "--all", "--limit", "1", "-o", "json").want(t, 0).stdout); len(all) != 1 {
		t.Errorf("got --all --limit 1 %+v, want one access", all)
	}

	// Accesses are no forwards.
	if fw := decode[[]tpfctl.Forward](t, h.run(t, "forwards", "list", "--router", "r1", "--all", "-o", "json").want(t, 0).stdout); len(fw) != 0 {
		t.Errorf("forwards list shows %d forwards, want none", len(fw))
	}

	// A router without accesses says so.
	h.addRouter("r2")
	h.run(t, "access", "list", "r2").want(t, 0).wantOut(t, "No live accesses on router r2.")
	h.run(t, "access", "list", "r2", "--all").want(t, 0).wantOut(t, "No accesses on router r2.")
}

func TestAccessErrors(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	fw := h.createJSON()
	create := []string{"access", "create", "r1", "--type", "ssh", "--for", "1h", "--allow-from", "81.2.69.7"}
	with := func(extra ...string) []string { return append(append([]string{}, create...), extra...) }

	tests := []struct {
		name   string
		args   []string
		code   int
		stderr []string
	}{
		{"422 lists every field in the API's order", []string{"access", "create", "r1", "--type", "ssh", "--for", "5m", "--allow-from", "198.51.100.0/24"},
			tpfctl.ExitInvalid, []string{
				"tpfctl: open ssh access to router r1: The expire after minutes field must be between 10 and 1440. (and 1 more error)\n" +
					"  expire_after_minutes: The expire after minutes field must be between 10 and 1440.\n" +
					"  allow_from: The allow from field must be a publicly routed IPv4 address or range; 198.51.100.0/24 is documentation.\n"}},
		{"422 a long one", with("--for", "25h"), tpfctl.ExitInvalid, []string{"  expire_after_minutes: "}},
		{"unknown type", with("--type", "telnet"), tpfctl.ExitUsage, []string{"--type telnet: the type is winbox or ssh", "tpfctl access create --help"}},
		{"missing flags", []string{"access", "create", "r1"}, tpfctl.ExitUsage, []string{"access create: missing --type, --for, --allow-from"}},
		{"missing router", []string{"access", "create", "--type", "ssh", "--for", "1h", "--allow-from", "81.2.69.7"}, tpfctl.ExitUsage, []string{"access create: missing R"}},
		{"router twice", with("--router", "r1"), tpfctl.ExitUsage, []string{"name the router once"}},
		{"for and minutes", with("--minutes", "60"), tpfctl.ExitUsage, []string{"give --for or --minutes, not both"}},
		{"allow-from and from", with("--from", "81.2.69.7"), tpfctl.ExitUsage, []string{"give --allow-from or --from, not both"}},
		{"seconds", with("--for", "90s"), tpfctl.ExitUsage, []string{"--for 90s is not a whole number of minutes", "try 1m or 2m"}},
		{"minutes not positive", []string{"access", "create", "r1", "--type", "ssh", "--minutes", "0", "--allow-from", "81.2.69.7"}, tpfctl.ExitUsage, []string{"--minutes 0 must be positive"}},
		{"minutes not a number", []string{"access", "create", "r1", "--type", "ssh", "--minutes", "1h", "--allow-from", "81.2.69.7"}, tpfctl.ExitUsage, []string{`invalid value "1h" for flag -minutes`}},
		{"unknown router", []string{"access", "create", "nosuch", "--type", "ssh", "--for", "1h", "--allow-from", "81.2.69.7"}, tpfctl.ExitNotFound, []string{`no router is named "nosuch"`}},
		{"404 router by id", []string{"access", "list", uuid.NewString()}, tpfctl.ExitNotFound, []string{"Not found."}},
		{"404 access", []string{"access", "get", "r1", uuid.NewString()}, tpfctl.ExitNotFound, []string{"Not found."}},
		{"404 revoke", []string{"access", "revoke", "r1", uuid.NewString()}, tpfctl.ExitNotFound, []string{"Not found."}},
		{"404 a forward's id", []string{"access", "get", "r1", fw.ID}, tpfctl.ExitNotFound, []string{"Not found."}},
		{"404 revoke a forward's id", []string{"access", "revoke", "r1", fw.ID}, tpfctl.ExitNotFound, []string{"Not found."}},
		{"404 connections", []string{"access", "connections", "r1", uuid.NewString()}, tpfctl.ExitNotFound, []string{"Not found."}},
		{"limit on live", []string{"access", "list", "r1", "--limit", "5"}, tpfctl.ExitUsage, []string{"--limit applies to --all"}},
		{"422 limit", []string{"access", "list", "r1", "--all", "--limit", "5000"}, tpfctl.ExitInvalid, []string{"  limit: "}},
		{"missing id", []string{"access", "revoke", "r1"}, tpfctl.ExitUsage, []string{"access revoke: missing ID"}},
		{"missing everything", []string{"access", "get"}, tpfctl.ExitUsage, []string{"access get: missing R ID"}},
		{"extra operand", []string{"access", "get", "r1", fw.ID, "x"}, tpfctl.ExitUsage, []string{`unexpected argument "x"`}},
		{"group alone", []string{"access"}, tpfctl.ExitUsage, []string{"access needs a subcommand: create, list, get, revoke, connections"}},
		{"401", with("--token", "tpf_wrong"), tpfctl.ExitUnauthenticated, []string{"Unauthenticated."}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := h.run(t, tt.args...).want(t, tt.code)
			r.wantErr(t, tt.stderr...)
			if r.stdout != "" {
				t.Errorf("got stdout %q, want none", r.stdout)
			}
		})
	}
	// The forward named by the 404s is untouched.
	if got := decode[tpfctl.Forward](t, h.run(t, "forwards", "get", "--router", "r1", fw.ID, "-o", "json").want(t, 0).stdout); got.RevokedEarly {
		t.Error("access revoke revoked a forward")
	}
	// No access was opened by any of it.
	if live := decode[[]tpfctl.Access](t, h.run(t, "access", "list", "r1", "-o", "json").want(t, 0).stdout); len(live) != 0 {
		t.Errorf("got %d live accesses, want 0", len(live))
	}
}

func TestAccessHelp(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.run(t, "--help").want(t, 0).wantOut(t, "access create", "access list", "access revoke", "WinBox and SSH logins")
	h.run(t, "access", "create", "--help").want(t, 0).wantOut(t, "Usage: tpfctl access create R --type winbox|ssh --for DURATION --allow-from CIDR [--read-only]",
		"--type TYPE", "--minutes N", "--from CIDR", "--read-only", "shown this once")
	h.run(t, "help", "access").want(t, 0).wantOut(t, "access create", "access connections")
	h.run(t, "access", "list", "-h").want(t, 0).wantOut(t, "--all", "--limit N")
	h.run(t, "help", "access", "revoke").want(t, 0).wantOut(t, "Usage: tpfctl access revoke R ID")
}
