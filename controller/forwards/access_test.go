package forwards_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tpf-dev/tpf/controller/fleet"
	"github.com/tpf-dev/tpf/controller/forwards"
	"github.com/tpf-dev/tpf/controller/store/storetest"
	"github.com/tpf-dev/tpf/shared/syncproto"
)

// newAccess asks for an access to service from 81.2.69.0/24 lasting d.
func newAccess(service string, d time.Duration, readOnly bool) fleet.NewAccess {
	return fleet.NewAccess{Service: service, AllowFrom: netip.MustParsePrefix("81.2.69.0/24"), Duration: d, ReadOnly: readOnly}
}

func createAccess(t *testing.T, f *storetest.Fleet, na fleet.NewAccess, at time.Time) fleet.Access {
	t.Helper()
	a, err := f.Service.CreateAccess(context.Background(), f.Principal, f.Router.ID, na, at)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// storedPassword is what the database holds of an access's password; ok is
// false when it holds none.
func storedPassword(t *testing.T, pool *pgxpool.Pool, id uuid.UUID) (pw string, ok bool) {
	t.Helper()
	var p *string
	if err := pool.QueryRow(context.Background(), `select access_password from forwards where id = $1`, id).Scan(&p); err != nil {
		t.Fatal(err)
	}
	if p == nil {
		return "", false
	}
	return *p, true
}

// desiredAccess is the access id in router's desired set at at, if any.
func desiredAccess(t *testing.T, svc *forwards.Service, router, id uuid.UUID, at time.Time) (syncproto.Access, bool) {
	t.Helper()
	d, err := svc.DesiredSet(context.Background(), router, at)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range d.Accesses {
		if a.ID == id.String() {
			return a, true
		}
	}
	return syncproto.Access{}, false
}

// auditOf returns the account's audit events of subject, oldest first.
func auditOf(t *testing.T, f *storetest.Fleet, subject uuid.UUID) []fleet.AuditEvent {
	t.Helper()
	events, err := f.Store.AuditEvents(context.Background(), f.Principal.AccountID, 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	var out []fleet.AuditEvent
	for _, e := range slices.Backward(events) {
		if e.SubjectID == subject {
			out = append(out, e)
		}
	}
	return out
}

func actions(events []fleet.AuditEvent) []string {
	var out []string
	for _, e := range events {
		out = append(out, e.Action)
	}
	return out
}

func TestCreateAccess(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := storetest.NewFleet(t, t0)
	a := createAccess(t, f, newAccess(fleet.ServiceSSH, 2*time.Hour, true), t0)

	if a.Service != fleet.ServiceSSH || !a.ReadOnly || !strings.HasPrefix(a.Username, fleet.AccessUserPrefix) || len(a.Password) != 24 {
		t.Errorf("created: got service %q, read-only %v, user %q, password of %d characters; want ssh, read-only, a tpf- user, 24 characters",
			a.Service, a.ReadOnly, a.Username, len(a.Password))
	}
	if a.DstAddress != f.Router.TunnelAddress || a.DstPort != 22 || a.Masquerade || !f.Region.Ports.Contains(a.Port) {
		t.Errorf("target: got %s:%d (masquerade %v) on port %d, want the router's tunnel address %s:22 on a port of the region",
			a.DstAddress, a.DstPort, a.Masquerade, a.Port, f.Router.TunnelAddress)
	}
	if a.StatusAt(t0) != fleet.StatusPending || a.EntryPoint != "eu1.example.net" || !a.ExpiresAt.Equal(t0.Add(2*time.Hour)) {
		t.Errorf("got status %s, entry point %q, expiry %s; want pending, eu1.example.net, two hours on", a.StatusAt(t0), a.EntryPoint, a.ExpiresAt)
	}

	// Read back: everything but the password.
	got, err := f.Service.Access(ctx, f.Principal.AccountID, f.Router.ID, a.ID)
	if err != nil {
		t.Fatal(err)
	}
	want := a
	want.Password = ""
	if got.Password != "" || got.Username != a.Username || got.Port != a.Port || got.Service != a.Service || got.DstAddress != a.DstAddress {
		t.Errorf("read back: got %+v, want %+v", got, want)
	}
	live, err := f.Service.Accesses(ctx, f.Principal.AccountID, f.Router.ID, true, 100, t0)
	if err != nil || len(live) != 1 || live[0].ID != a.ID || live[0].Password != "" {
		t.Errorf("live accesses: got %+v, %v, want the one, without its password", live, err)
	}

	// The audit event names the user, never the password.
	events := auditOf(t, f, a.ID)
	if len(events) != 1 || events[0].Action != fleet.ActionAccessCreate {
		t.Fatalf("audit: got %v, want one access.create", actions(events))
	}
	var detail map[string]any
	if err := json.Unmarshal(events[0].Detail, &detail); err != nil {
		t.Fatal(err)
	}
	if detail["username"] != a.Username || detail["type"] != "ssh" || detail["read_only"] != true || detail["allow_from"] != "81.2.69.0/24" {
		t.Errorf("audit detail: got %s", events[0].Detail)
	}
	if strings.Contains(string(events[0].Detail), a.Password) {
		t.Errorf("audit detail %s holds the password", events[0].Detail)
	}

	// Unknown and foreign routers are not found.
	if _, err := f.Service.CreateAccess(ctx, f.Principal, uuid.New(), newAccess(fleet.ServiceSSH, time.Hour, false), t0); !errors.Is(err, fleet.ErrNotFound) {
		t.Errorf("unknown router: got %v, want ErrNotFound", err)
	}
	_, token, err := f.Store.CreateAccount(ctx, "other", t0)
	if err != nil {
		t.Fatal(err)
	}
	other, err := f.Store.Authenticate(ctx, token)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Service.CreateAccess(ctx, other, f.Router.ID, newAccess(fleet.ServiceSSH, time.Hour, false), t0); !errors.Is(err, fleet.ErrNotFound) {
		t.Errorf("another account's router: got %v, want ErrNotFound", err)
	}
	if _, err := f.Service.Access(ctx, other.AccountID, f.Router.ID, a.ID); !errors.Is(err, fleet.ErrNotFound) {
		t.Errorf("another account's access: got %v, want ErrNotFound", err)
	}
}

// Accesses and forwards share one table and one port range, and each stays
// out of the other's reads.
func TestAccessesAreNotForwards(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := storetest.NewFleet(t, t0)
	fw := f.Forward(t, time.Hour, t0)
	a := createAccess(t, f, newAccess(fleet.ServiceWinbox, time.Hour, false), t0)
	acct, router := f.Principal.AccountID, f.Router.ID

	if _, err := f.Service.Forward(ctx, acct, router, a.ID); !errors.Is(err, fleet.ErrNotFound) {
		t.Errorf("an access as a forward: got %v, want ErrNotFound", err)
	}
	if _, err := f.Service.Access(ctx, acct, router, fw.ID); !errors.Is(err, fleet.ErrNotFound) {
		t.Errorf("a forward as an access: got %v, want ErrNotFound", err)
	}
	if _, err := f.Service.Connections(ctx, acct, router, a.ID, 10); !errors.Is(err, fleet.ErrNotFound) {
		t.Errorf("an access's connections as a forward's: got %v, want ErrNotFound", err)
	}
	if _, err := f.Service.AccessConnections(ctx, acct, router, fw.ID, 10); !errors.Is(err, fleet.ErrNotFound) {
		t.Errorf("a forward's connections as an access's: got %v, want ErrNotFound", err)
	}
	if conns, err := f.Service.AccessConnections(ctx, acct, router, a.ID, 10); err != nil || len(conns) != 0 {
		t.Errorf("an access's connections: got %v, %v, want none", conns, err)
	}
	live, err := f.Service.LiveForwards(ctx, acct, router, t0)
	if err != nil || len(live) != 1 || live[0].ID != fw.ID {
		t.Errorf("live forwards: got %v, %v, want only the forward", live, err)
	}
	history, err := f.Service.ForwardHistory(ctx, acct, router, false, 100, t0)
	if err != nil || len(history) != 1 || history[0].ID != fw.ID {
		t.Errorf("forward history: got %v, %v, want only the forward", history, err)
	}
	all, err := f.Service.Accesses(ctx, acct, router, false, 100, t0)
	if err != nil || len(all) != 1 || all[0].ID != a.ID {
		t.Errorf("accesses: got %v, %v, want only the access", all, err)
	}
	counts, err := f.Store.FleetForwardCounts(ctx, acct, t0)
	if err != nil || counts[router].Live != 1 {
		t.Errorf("fleet counts: got %+v, %v, want 1 live forward", counts[router], err)
	}
	recent, err := f.Store.RecentForwards(ctx, acct, router, t0.Add(-time.Hour), 100)
	if err != nil || len(recent) != 1 || recent[0].ID != fw.ID {
		t.Errorf("recent forwards: got %d, %v, want only the forward", len(recent), err)
	}
	metrics, err := f.Store.CountForwards(ctx, t0)
	if err != nil || len(metrics) != 1 || metrics[0].Forwards != 1 {
		t.Errorf("forward metrics: got %+v, %v, want 1 pending forward", metrics, err)
	}
	accessMetrics, err := f.Store.CountAccesses(ctx, t0)
	if err != nil || len(accessMetrics) != 1 || accessMetrics[0].Service != fleet.ServiceWinbox || accessMetrics[0].Accesses != 1 {
		t.Errorf("access metrics: got %+v, %v, want 1 winbox access", accessMetrics, err)
	}

	// Revoking one as the other is not found, and changes nothing.
	if err := f.Service.RevokeForward(ctx, f.Principal, router, a.ID, t0); !errors.Is(err, fleet.ErrNotFound) {
		t.Errorf("revoke an access as a forward: got %v, want ErrNotFound", err)
	}
	if err := f.Service.RevokeAccess(ctx, f.Principal, router, fw.ID, t0); !errors.Is(err, fleet.ErrNotFound) {
		t.Errorf("revoke a forward as an access: got %v, want ErrNotFound", err)
	}
	if err := f.Service.RevokeAccess(ctx, f.Principal, router, uuid.New(), t0); !errors.Is(err, fleet.ErrNotFound) {
		t.Errorf("revoke an unknown access: got %v, want ErrNotFound", err)
	}
	if got, _ := f.Service.Access(ctx, acct, router, a.ID); got.EndedAt != nil {
		t.Errorf("the access ended by a forward's revoke")
	}

	// The desired set has each in its own list.
	d, err := f.Service.DesiredSet(ctx, router, t0)
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Forwards) != 1 || d.Forwards[0].ID != fw.ID.String() || len(d.Accesses) != 1 || d.Accesses[0].ID != a.ID.String() {
		t.Errorf("desired set: got forwards %+v and accesses %+v, want one of each", d.Forwards, d.Accesses)
	}
	if got := d.Accesses[0]; got.Service != "winbox" || got.Username != a.Username || got.ReadOnly || !got.ExpiresAt.Equal(a.ExpiresAt) {
		t.Errorf("desired access: got %+v", got)
	}
}

func TestAccessPasswordUntilConfirmed(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := storetest.NewFleet(t, t0)
	a := createAccess(t, f, newAccess(fleet.ServiceSSH, time.Hour, false), t0)

	if pw, ok := storedPassword(t, f.Pool, a.ID); !ok || pw != a.Password {
		t.Fatalf("stored before the agent confirmed the user: got %q, %v, want the password", pw, ok)
	}
	d, err := f.Service.DesiredSet(ctx, f.Router.ID, t0)
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Accesses) != 1 || d.Accesses[0].Password != a.Password {
		t.Fatalf("desired set before the confirmation: got %+v, want the access with its password", d.Accesses)
	}

	// A failed pass, and a failure of the access itself, confirm nothing.
	for _, rep := range []syncproto.Report{
		{Revision: d.Revision, Error: "dial 192.168.88.1:8728: connection refused"},
		{Revision: d.Revision, Results: []syncproto.Result{{ID: a.ID.String(), State: syncproto.StateFailed, Error: "failure: user limit"}}},
	} {
		if _, err := f.Service.ApplyReport(ctx, f.Router.ID, rep, t0); err != nil {
			t.Fatal(err)
		}
		if got, ok := desiredAccess(t, f.Service, f.Router.ID, a.ID, t0); !ok || got.Password != a.Password {
			t.Errorf("after %+v: desired access %+v, want it with its password", rep, got)
		}
	}

	// The report that confirms the user takes the password away, for good.
	out, err := f.Service.ApplyReport(ctx, f.Router.ID, syncproto.Report{Revision: d.Revision,
		Results: []syncproto.Result{{ID: a.ID.String(), State: syncproto.StateApplied, ServicePort: 22}},
		Present: []string{a.ID.String()}}, t0)
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Activated) != 1 || out.Activated[0].ID != a.ID {
		t.Errorf("activated: got %+v, want the access", out.Activated)
	}
	if pw, ok := storedPassword(t, f.Pool, a.ID); ok {
		t.Errorf("stored after the confirmation: got %q, want none", pw)
	}
	got, ok := desiredAccess(t, f.Service, f.Router.ID, a.ID, t0.Add(time.Minute))
	if !ok || got.Password != "" || got.Username != a.Username {
		t.Errorf("desired set after the confirmation: got %+v, %v, want the access without a password", got, ok)
	}
	// A later failure (the router lost the user) does not bring it back.
	if _, err := f.Service.ApplyReport(ctx, f.Router.ID, syncproto.Report{Revision: d.Revision,
		Results: []syncproto.Result{{ID: a.ID.String(), State: syncproto.StateRefused, Error: "the user is gone and its password with it"}}}, t0); err != nil {
		t.Fatal(err)
	}
	if got, _ := desiredAccess(t, f.Service, f.Router.ID, a.ID, t0.Add(time.Minute)); got.Password != "" {
		t.Errorf("desired set after a refusal: got a password, want none")
	}
	if got, _ := f.Service.Access(ctx, f.Principal.AccountID, f.Router.ID, a.ID); got.RouterError == "" {
		t.Errorf("refusal: got no router error, want it kept")
	}
	// The database refuses to take a password back.
	if _, err := f.Pool.Exec(ctx, `update forwards set access_password = 'x' where id = $1`, a.ID); err == nil {
		t.Errorf("storing a password on a confirmed access: got no error, want the check to refuse it")
	}
}

func TestAccessEnds(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := storetest.NewFleet(t, t0)
	revoked := createAccess(t, f, newAccess(fleet.ServiceSSH, time.Hour, false), t0)
	expiring := createAccess(t, f, newAccess(fleet.ServiceWinbox, 10*time.Minute, false), t0.Add(time.Second))
	fw := f.Forward(t, 10*time.Minute, t0)

	// Revoked before its agent ever confirmed it: the password goes too.
	at := t0.Add(time.Minute)
	if err := f.Service.RevokeAccess(ctx, f.Principal, f.Router.ID, revoked.ID, at); err != nil {
		t.Fatal(err)
	}
	if err := f.Service.RevokeAccess(ctx, f.Principal, f.Router.ID, revoked.ID, at.Add(time.Second)); err != nil {
		t.Errorf("revoke again: got %v, want nil", err)
	}
	if _, ok := storedPassword(t, f.Pool, revoked.ID); ok {
		t.Errorf("revoked access: a password is stored, want none")
	}
	got, err := f.Service.Access(ctx, f.Principal.AccountID, f.Router.ID, revoked.ID)
	if err != nil || got.RevokedAt == nil || got.StatusAt(at) != fleet.StatusRemoving {
		t.Errorf("revoked access: got %+v, %v, want revoked and removing", got, err)
	}
	if _, ok := desiredAccess(t, f.Service, f.Router.ID, revoked.ID, at); ok {
		t.Errorf("revoked access still in the desired set")
	}

	// Expired by the clock: access.expire for the access, forward.expire
	// for the forward.
	end := t0.Add(10*time.Minute + time.Second)
	if n, err := f.Service.ExpireDue(ctx, end, 100); err != nil || n != 2 {
		t.Fatalf("expire: got %d, %v, want 2", n, err)
	}
	if _, ok := storedPassword(t, f.Pool, expiring.ID); ok {
		t.Errorf("expired access: a password is stored, want none")
	}
	for _, tt := range []struct {
		id   uuid.UUID
		want []string
	}{
		{revoked.ID, []string{fleet.ActionAccessCreate, fleet.ActionAccessRevoke}},
		{expiring.ID, []string{fleet.ActionAccessCreate, fleet.ActionAccessExpire}},
		{fw.ID, []string{fleet.ActionForwardCreate, fleet.ActionForwardExpire}},
	} {
		if got := actions(auditOf(t, f, tt.id)); !slices.Equal(got, tt.want) {
			t.Errorf("audit of %s: got %v, want %v", tt.id, got, tt.want)
		}
	}
	live, err := f.Service.Accesses(ctx, f.Principal.AccountID, f.Router.ID, true, 100, end)
	if err != nil || len(live) != 0 {
		t.Errorf("live accesses after the ends: got %d, %v, want none", len(live), err)
	}
	all, err := f.Service.Accesses(ctx, f.Principal.AccountID, f.Router.ID, false, 100, end)
	if err != nil || len(all) != 2 || all[0].ID != expiring.ID || all[1].ID != revoked.ID {
		t.Errorf("all accesses, newest first: got %d, %v, want the expired one, then the revoked one", len(all), err)
	}

	// The router's report that the user is gone makes it removed, freeing
	// its port.
	if _, err := f.Service.ApplyReport(ctx, f.Router.ID, syncproto.Report{Revision: 1, Results: []syncproto.Result{}, Present: []string{}}, end); err != nil {
		t.Fatal(err)
	}
	if got, _ := f.Service.Access(ctx, f.Principal.AccountID, f.Router.ID, revoked.ID); got.StatusAt(end) != fleet.StatusRemoved {
		t.Errorf("revoked access after the router's report: got %s, want removed", got.StatusAt(end))
	}
}

func TestDeleteRouterEndsAccesses(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := storetest.NewFleet(t, t0)
	a := createAccess(t, f, newAccess(fleet.ServiceSSH, time.Hour, false), t0)
	fw := f.Forward(t, time.Hour, t0)
	if err := f.Service.DeleteRouter(ctx, f.Principal, f.Router.ID, t0.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if _, ok := storedPassword(t, f.Pool, a.ID); ok {
		t.Errorf("access of a deleted router: a password is stored, want none")
	}
	if got := actions(auditOf(t, f, a.ID)); !slices.Equal(got, []string{fleet.ActionAccessCreate, fleet.ActionAccessRevoke}) {
		t.Errorf("audit of the access: got %v, want create and revoke", got)
	}
	if got := actions(auditOf(t, f, fw.ID)); !slices.Equal(got, []string{fleet.ActionForwardCreate, fleet.ActionForwardRevoke}) {
		t.Errorf("audit of the forward: got %v, want create and revoke", got)
	}
	del := auditOf(t, f, f.Router.ID)
	if n := len(del); n == 0 || del[n-1].Action != fleet.ActionRouterDelete {
		t.Fatalf("audit of the router: got %v, want it to end with router.delete", actions(del))
	}
	var detail map[string]any
	if err := json.Unmarshal(del[len(del)-1].Detail, &detail); err != nil {
		t.Fatal(err)
	}
	if detail["forwards_ended"] != 1.0 || detail["accesses_ended"] != 1.0 {
		t.Errorf("router.delete detail: got %s, want 1 forward and 1 access ended", del[len(del)-1].Detail)
	}
}

// The router's port of an access's service, as its agent reports it, is
// where the edge relays to.
func TestAccessServicePort(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := storetest.NewFleet(t, t0)
	a := createAccess(t, f, newAccess(fleet.ServiceWinbox, time.Hour, false), t0)
	fw := f.Forward(t, time.Hour, t0)

	target := func(at time.Time) (rev int64, byID map[string]netip.AddrPort) {
		t.Helper()
		l, err := f.Service.Listeners(ctx, "eu1", syncproto.Limits{}, at)
		if err != nil {
			t.Fatal(err)
		}
		byID = map[string]netip.AddrPort{}
		for _, li := range l.Listeners {
			byID[li.ID] = li.Target
		}
		return l.Revision, byID
	}
	rev, targets := target(t0)
	tunnel := f.Router.TunnelAddress
	if got, want := targets[a.ID.String()], netip.AddrPortFrom(tunnel, 8291); got != want {
		t.Errorf("access listener before any report: got target %s, want %s", got, want)
	}
	if got, want := targets[fw.ID.String()], netip.AddrPortFrom(tunnel, fw.Port); got != want {
		t.Errorf("forward listener: got target %s, want %s (its own port)", got, want)
	}

	report := func(port uint16) {
		t.Helper()
		if _, err := f.Service.ApplyReport(ctx, f.Router.ID, syncproto.Report{Revision: 1,
			Results: []syncproto.Result{
				{ID: a.ID.String(), State: syncproto.StateApplied, ServicePort: port},
				{ID: fw.ID.String(), State: syncproto.StateApplied, ServicePort: 9999}, // not an access: ignored
			},
			Present: []string{a.ID.String(), fw.ID.String()}}, t0); err != nil {
			t.Fatal(err)
		}
	}
	// WinBox moved to 18291 on this router: the listener follows, in a new
	// revision of the region's set.
	report(18291)
	rev2, targets := target(t0)
	if got, want := targets[a.ID.String()], netip.AddrPortFrom(tunnel, 18291); got != want || rev2 <= rev {
		t.Errorf("after the report of port 18291: got target %s at revision %d (was %d), want %s in a newer revision", got, rev2, rev, want)
	}
	if got, want := targets[fw.ID.String()], netip.AddrPortFrom(tunnel, fw.Port); got != want {
		t.Errorf("forward listener after the report: got target %s, want %s", got, want)
	}
	if got, _ := f.Service.Access(ctx, f.Principal.AccountID, f.Router.ID, a.ID); got.DstPort != 18291 {
		t.Errorf("access's port: got %d, want 18291", got.DstPort)
	}
	if got, _ := f.Service.Forward(ctx, f.Principal.AccountID, f.Router.ID, fw.ID); got.DstPort != 22 {
		t.Errorf("forward's destination port: got %d, want 22 unchanged", got.DstPort)
	}
	// The same port again changes nothing.
	report(18291)
	if rev3, _ := target(t0); rev3 != rev2 {
		t.Errorf("the same port again: got revision %d, want %d unchanged", rev3, rev2)
	}
}

func TestAccessPortsExhausted(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := storetest.NewFleet(t, t0)
	// A region of four ports: creates collide, and take the longer way.
	if _, err := f.Store.CreateRegion(ctx, fleet.Region{ID: "tiny", EntryPoint: "tiny.example.net",
		Ports: fleet.PortRange{Min: 61000, Max: 61003}, EdgeTunnelAddress: netip.MustParseAddr("10.98.0.1"), CreatedAt: t0}); err != nil {
		t.Fatal(err)
	}
	r, _, err := f.Service.CreateRouter(ctx, f.Principal, forwards.NewRouter{Name: "small", Region: "tiny", TunnelAddress: netip.MustParseAddr("10.98.0.2")}, t0)
	if err != nil {
		t.Fatal(err)
	}
	ports := map[uint16]bool{}
	users := map[string]bool{}
	for i := range 4 {
		a, err := f.Service.CreateAccess(ctx, f.Principal, r.ID, newAccess(fleet.Services[i%2], time.Hour, false), t0)
		if err != nil {
			t.Fatalf("access %d: %v", i, err)
		}
		ports[a.Port], users[a.Username] = true, true
		if a.Password == "" || a.DstAddress != r.TunnelAddress || a.DstPort != fleet.DefaultServicePort(a.Service) {
			t.Errorf("access %d: got %+v, want a password and the router's service", i, a)
		}
		for _, e := range auditOf(t, f, a.ID) {
			if strings.Contains(string(e.Detail), a.Password) {
				t.Errorf("access %d: audit detail %s holds the password", i, e.Detail)
			}
		}
	}
	if len(ports) != 4 || len(users) != 4 {
		t.Errorf("got %d ports and %d users, want 4 of each", len(ports), len(users))
	}
	if _, err := f.Service.CreateAccess(ctx, f.Principal, r.ID, newAccess(fleet.ServiceSSH, time.Hour, false), t0); !errors.Is(err, fleet.ErrPortsExhausted) {
		t.Errorf("a fifth: got %v, want ErrPortsExhausted", err)
	}
	if _, err := f.Service.CreateForward(ctx, f.Principal, r.ID, fleet.NewForward{DstAddress: netip.MustParseAddr("192.168.88.43"),
		DstPort: 22, AllowFrom: netip.MustParsePrefix("81.2.69.0/24"), Duration: time.Hour}, t0); !errors.Is(err, fleet.ErrPortsExhausted) {
		t.Errorf("a forward where accesses hold every port: got %v, want ErrPortsExhausted", err)
	}
}
