package api_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/tpf-dev/tpf/controller/api"
	"github.com/tpf-dev/tpf/controller/apijson"
	"github.com/tpf-dev/tpf/controller/fleet"
	"github.com/tpf-dev/tpf/shared/syncproto"
)

func (e *env) accessesPath(router uuid.UUID) string {
	return "/api/routers/" + router.String() + "/transient-access"
}

// accessRequest is an SSH access for two hours from 81.2.69.0/24.
func accessRequest() map[string]any {
	return map[string]any{"type": "ssh", "expire_after_minutes": 120, "allow_from": "81.2.69.0/24"}
}

func (e *env) createAccess(router uuid.UUID, token string, body any) (apijson.Access, response) {
	e.t.Helper()
	res := e.do("POST", e.accessesPath(router), token, body)
	if res.status != http.StatusCreated {
		e.t.Fatalf("create access: got %d %s, want 201", res.status, res.body)
	}
	return decode[apijson.Access](e.t, res.body), res
}

// TestAccessJSON checks the answers of create, get and list byte for byte:
// the password in the create's answer only.
func TestAccessJSON(t *testing.T) {
	t.Parallel()
	e := newEnv(t, api.Config{})
	a, res := e.createAccess(e.router, e.token, accessRequest())
	if ct := res.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type: got %q, want application/json", ct)
	}
	if !uuidText.MatchString(a.ID) || !strings.HasPrefix(a.Username, "tpf-") || len(a.Password) != 24 || a.Port < 49152 {
		t.Fatalf("got id %q, username %q, password of %d characters, port %d", a.ID, a.Username, len(a.Password), a.Port)
	}
	want := fmt.Sprintf(`{"id":"%[1]s","router_id":"%[2]s","type":"ssh","username":"%[3]s","password":"%[4]s",`+
		`"entry_point":"us-east1.mkcld.io","port":%[5]d,"allow_from":"81.2.69.0/24","read_only":false,`+
		`"created_at":"2024-06-22T02:33:29+00:00","expires_at":"2024-06-22T04:33:29+00:00","time_to_expire":"2 hours from now",`+
		`"expired":false,"revoked_early":false,"revoked_at":null,"status":"pending","service_port":22,`+
		`"ssh_command":"ssh -p %[5]d %[3]s@us-east1.mkcld.io","router_error":null,"edge_error":null,"tunnel_error":null,`+
		`"connections_active":0}`+"\n", a.ID, e.router, a.Username, a.Password, a.Port)
	if got := string(res.body); got != want {
		t.Errorf("create:\ngot  %s\nwant %s", got, want)
	}

	// GET answers the same object without the password; so does the list.
	withoutPassword := strings.Replace(want, `"password":"`+a.Password+`",`, "", 1)
	get := e.do("GET", e.accessesPath(e.router)+"/"+a.ID, e.token, nil)
	if get.status != http.StatusOK || string(get.body) != withoutPassword {
		t.Errorf("get: got %d %s, want 200 %s", get.status, get.body, withoutPassword)
	}
	list := e.do("GET", e.accessesPath(e.router), e.token, nil)
	if wantList := "[" + strings.TrimSuffix(withoutPassword, "\n") + "]\n"; list.status != http.StatusOK || string(list.body) != wantList {
		t.Errorf("list: got %d %s, want 200 %s", list.status, list.body, wantList)
	}

	// A WinBox access: digit strings, read-only, no ssh_command; its
	// service port follows what the router's agent reports.
	e.clock.Advance(time.Second)
	w, _ := e.createAccess(e.router, e.token, map[string]any{"type": "winbox", "expire_after_minutes": "30", "allow_from": "81.2.69.7", "read_only": true})
	if w.Type != "winbox" || !w.ReadOnly || w.ServicePort != 8291 || w.SSHCommand != "" || w.AllowFrom != "81.2.69.7/32" || w.TimeToExpire != "30 minutes from now" || w.Password == "" {
		t.Errorf("winbox access: got %+v", w)
	}
	if _, err := e.svc().ApplyReport(context.Background(), e.router, syncproto.Report{Revision: 1,
		Results: []syncproto.Result{{ID: w.ID, State: syncproto.StateApplied, ServicePort: 18291}}, Present: []string{w.ID}}, seedNow); err != nil {
		t.Fatal(err)
	}
	got := decode[apijson.Access](t, e.do("GET", e.accessesPath(e.router)+"/"+w.ID, e.token, nil).body)
	if got.ServicePort != 18291 || got.Status != "active" || got.Password != "" {
		t.Errorf("after the agent's report: got service port %d, status %q, password %q; want 18291, active, none", got.ServicePort, got.Status, got.Password)
	}
	// Newest first.
	all := decode[[]apijson.Access](t, e.do("GET", e.accessesPath(e.router)+"?state=all", e.token, nil).body)
	if len(all) != 2 || all[0].ID != w.ID || all[1].ID != a.ID {
		t.Errorf("?state=all: got %d accesses, want the winbox one, then the ssh one", len(all))
	}
}

func TestAccessValidation(t *testing.T) {
	t.Parallel()
	e := newEnv(t, api.Config{})
	cases := []struct {
		body any
		want string
	}{
		{map[string]any{}, `{"message":"The type field is required. (and 2 more errors)","errors":{"type":["The type field is required."],` +
			`"expire_after_minutes":["The expire after minutes field is required."],"allow_from":["The allow from field is required."]}}`},
		{map[string]any{"type": "telnet", "expire_after_minutes": 1441, "allow_from": "10.0.0.0/24"},
			`{"message":"The selected type is invalid. (and 2 more errors)","errors":{"type":["The selected type is invalid."],` +
				`"expire_after_minutes":["The expire after minutes field must be between 10 and 1440."],` +
				`"allow_from":["The allow from field must be a publicly routed IPv4 address or range; 10.0.0.0/24 is private."]}}`},
		{map[string]any{"type": 1, "expire_after_minutes": "12.5", "allow_from": "81.2.69.0/16", "read_only": "yes"},
			`{"message":"The type field must be a string. (and 3 more errors)","errors":{"type":["The type field must be a string."],` +
				`"expire_after_minutes":["The expire after minutes field must be an integer."],` +
				`"allow_from":["The allow from field must be a CIDR range between /24 and /32."],` +
				`"read_only":["The read only field must be true or false."]}}`},
		{map[string]any{"type": "ssh", "expire_after_minutes": 60, "allow_from": "198.51.100.0/24"},
			`{"message":"The allow from field must be a publicly routed IPv4 address or range; 198.51.100.0/24 is documentation.","errors":{"allow_from":["The allow from field must be a publicly routed IPv4 address or range; 198.51.100.0/24 is documentation."]}}`},
	}
	for _, c := range cases {
		res := e.do("POST", e.accessesPath(e.router), e.token, c.body)
		if res.status != http.StatusUnprocessableEntity || string(res.body) != c.want+"\n" {
			t.Errorf("%v:\ngot  %d %s\nwant 422 %s", c.body, res.status, res.body, c.want)
		}
	}
	for _, body := range []string{"not json", "[1]", "null"} {
		if res := e.do("POST", e.accessesPath(e.router), e.token, body); res.status != http.StatusBadRequest {
			t.Errorf("%s: got %d %s, want 400", body, res.status, res.body)
		}
	}
	for _, q := range []string{"?state=ended", "?state=active", "?limit=0", "?state=all&limit=1001"} {
		if res := e.do("GET", e.accessesPath(e.router)+q, e.token, nil); res.status != http.StatusUnprocessableEntity {
			t.Errorf("list%s: got %d %s, want 422", q, res.status, res.body)
		}
	}
	if list := e.do("GET", e.accessesPath(e.router), e.token, nil); string(list.body) != "[]\n" {
		t.Errorf("nothing was created: got %s, want []", list.body)
	}
}

// Accesses are not forwards: each answers 404 under the other's endpoints,
// and neither shows in the other's lists.
func TestAccessesAndForwardsApart(t *testing.T) {
	t.Parallel()
	e := newEnv(t, api.Config{})
	f := e.create(e.router, e.token, seedRequest())
	forwardsBefore := e.do("GET", e.forwardsPath(e.router), e.token, nil)
	a, _ := e.createAccess(e.router, e.token, accessRequest())
	otherToken, otherRouter := e.addAccount("globex")
	theirs, _ := e.createAccess(otherRouter, otherToken, accessRequest())

	unknown := uuid.NewString()
	fw, ac := e.forwardsPath(e.router), e.accessesPath(e.router)
	cases := []struct{ method, path string }{
		{"GET", fw + "/" + a.ID},
		{"DELETE", fw + "/" + a.ID},
		{"GET", fw + "/" + a.ID + "/connections"},
		{"GET", ac + "/" + f.ID},
		{"DELETE", ac + "/" + f.ID},
		{"GET", ac + "/" + f.ID + "/connections"},
		{"GET", ac + "/" + unknown},
		{"DELETE", ac + "/" + unknown},
		{"GET", ac + "/" + unknown + "/connections"},
		{"GET", ac + "/not-a-uuid"},
		{"GET", ac + "/" + theirs.ID},
		{"DELETE", ac + "/" + theirs.ID},
		{"GET", e.accessesPath(otherRouter)},
		{"POST", e.accessesPath(otherRouter)},
		{"GET", e.accessesPath(otherRouter) + "/" + theirs.ID},
		{"DELETE", e.accessesPath(otherRouter) + "/" + theirs.ID},
		{"GET", "/api/routers/" + unknown + "/transient-access"},
		{"POST", "/api/routers/" + unknown + "/transient-access"},
		{"POST", "/api/routers/not-a-uuid/transient-access"},
	}
	for _, c := range cases {
		for _, body := range []any{accessRequest(), map[string]any{"type": "telnet"}} {
			res := e.do(c.method, c.path, e.token, body)
			if res.status != http.StatusNotFound || string(res.body) != `{"message":"Not found."}`+"\n" {
				t.Errorf("%s %s: got %d %s, want 404", c.method, c.path, res.status, res.body)
			}
		}
	}
	// Nothing was revoked, and the forwards' answers did not change.
	if got := decode[apijson.Access](t, e.do("GET", ac+"/"+a.ID, e.token, nil).body); got.RevokedEarly {
		t.Error("the access was revoked through the forwards' endpoint")
	}
	if got := decode[apijson.Forward](t, e.do("GET", fw+"/"+f.ID, e.token, nil).body); got.RevokedEarly {
		t.Error("the forward was revoked through the accesses' endpoint")
	}
	if got := decode[apijson.Access](t, e.do("GET", e.accessesPath(otherRouter)+"/"+theirs.ID, otherToken, nil).body); got.RevokedEarly {
		t.Error("another account's access was revoked")
	}
	for _, q := range []string{"", "?state=all"} {
		list := decode[[]apijson.Forward](t, e.do("GET", fw+q, e.token, nil).body)
		if len(list) != 1 || list[0].ID != f.ID {
			t.Errorf("forwards%s: got %d, want only the forward", q, len(list))
		}
	}
	if after := e.do("GET", e.forwardsPath(e.router), e.token, nil); string(after.body) != string(forwardsBefore.body) {
		t.Errorf("the forwards' list changed with an access:\nbefore %s\nafter  %s", forwardsBefore.body, after.body)
	}
	list := decode[[]apijson.Access](t, e.do("GET", ac+"?state=all", e.token, nil).body)
	if len(list) != 1 || list[0].ID != a.ID {
		t.Errorf("accesses: got %d, want only the access", len(list))
	}
}

func TestAccessRevoke(t *testing.T) {
	t.Parallel()
	e := newEnv(t, api.Config{})
	a, _ := e.createAccess(e.router, e.token, accessRequest())
	path := e.accessesPath(e.router) + "/" + a.ID
	e.clock.Advance(time.Minute)
	res := e.do("DELETE", path, e.token, nil)
	if res.status != http.StatusNoContent || len(res.body) != 0 {
		t.Fatalf("delete: got %d %q, want 204 and no body", res.status, res.body)
	}
	got := decode[apijson.Access](t, e.do("GET", path, e.token, nil).body)
	if !got.RevokedEarly || got.RevokedAt == nil || *got.RevokedAt != "2024-06-22T02:34:29+00:00" || got.Status != "removing" {
		t.Errorf("after revoke: got revoked_early=%v revoked_at=%v status=%q, want true, 02:34:29, removing", got.RevokedEarly, got.RevokedAt, got.Status)
	}
	if res := e.do("DELETE", path, e.token, nil); res.status != http.StatusNoContent {
		t.Errorf("second delete: got %d, want 204", res.status)
	}
	if list := e.do("GET", e.accessesPath(e.router), e.token, nil); string(list.body) != "[]\n" {
		t.Errorf("live list after revoke: got %s, want []", list.body)
	}
	if all := decode[[]apijson.Access](t, e.do("GET", e.accessesPath(e.router)+"?state=all", e.token, nil).body); len(all) != 1 || !all[0].RevokedEarly {
		t.Errorf("?state=all after revoke: got %+v, want the revoked access", all)
	}
	events := decode[[]apijson.AuditEvent](t, e.do("GET", "/api/audit-log", e.token, nil).body)
	if len(events) < 2 || events[0].Action != fleet.ActionAccessRevoke || events[1].Action != fleet.ActionAccessCreate || events[0].SubjectID != a.ID {
		t.Errorf("audit log: got %+v, want access.revoke after access.create", events)
	}
}

func TestAccessWrongMethod(t *testing.T) {
	t.Parallel()
	e := newEnv(t, api.Config{})
	ac := e.accessesPath(e.router)
	for _, c := range []struct{ method, path, allow string }{
		{"PUT", ac, "GET, POST"},
		{"DELETE", ac, "GET, POST"},
		{"POST", ac + "/" + uuid.NewString(), "GET, DELETE"},
		{"PATCH", ac + "/" + uuid.NewString(), "GET, DELETE"},
		{"POST", ac + "/" + uuid.NewString() + "/connections", "GET"},
	} {
		res := e.do(c.method, c.path, e.token, nil)
		if res.status != http.StatusMethodNotAllowed || res.header.Get("Allow") != c.allow {
			t.Errorf("%s %s: got %d Allow %q, want 405 Allow %q", c.method, c.path, res.status, res.header.Get("Allow"), c.allow)
		}
	}
}

// The password is in the create's answer and nowhere else: not in later
// answers, not in the audit log, not in the controller's log.
func TestAccessPasswordShownOnce(t *testing.T) {
	t.Parallel()
	var logs lockedBuffer
	log := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	e := newEnv(t, api.Config{Logger: log})
	var passwords []string
	var ids []string
	for _, body := range []map[string]any{accessRequest(), {"type": "winbox", "expire_after_minutes": 10, "allow_from": "81.2.69.7", "read_only": true}} {
		a, _ := e.createAccess(e.router, e.token, body)
		passwords, ids = append(passwords, a.Password), append(ids, a.ID)
	}
	// Every read there is, and a revoke, at debug level.
	var bodies []string
	for _, path := range []string{
		e.accessesPath(e.router), e.accessesPath(e.router) + "?state=all",
		e.accessesPath(e.router) + "/" + ids[0], e.accessesPath(e.router) + "/" + ids[1],
		e.accessesPath(e.router) + "/" + ids[0] + "/connections",
		"/api/audit-log", "/api/routers/" + e.router.String(),
	} {
		res := e.do("GET", path, e.token, nil)
		if res.status != http.StatusOK {
			t.Errorf("GET %s: got %d %s, want 200", path, res.status, res.body)
		}
		bodies = append(bodies, string(res.body))
	}
	e.do("DELETE", e.accessesPath(e.router)+"/"+ids[0], e.token, nil)
	e.clock.Advance(11 * time.Minute)
	if _, err := e.svc().ExpireDue(context.Background(), e.clock.Now(), 10); err != nil {
		t.Fatal(err)
	}
	res := e.do("GET", "/api/audit-log", e.token, nil)
	bodies = append(bodies, string(res.body))
	events := decode[[]apijson.AuditEvent](t, res.body)
	var actions []string
	for _, ev := range events {
		actions = append(actions, ev.Action)
	}
	if want := []string{"access.expire", "access.revoke", "access.create", "access.create"}; strings.Join(actions[:4], " ") != strings.Join(want, " ") {
		t.Errorf("audit log: got %v, want %v first", actions, want)
	}

	out := logs.String()
	if !strings.Contains(out, `"msg":"request"`) {
		t.Fatalf("the request lines are missing from the log:\n%s", out)
	}
	for _, pw := range passwords {
		if pw == "" {
			t.Fatal("an empty password")
		}
		for _, b := range bodies {
			if strings.Contains(b, pw) {
				t.Errorf("an answer after the create holds the password %q:\n%s", pw, b)
			}
		}
		if strings.Contains(out, pw) {
			t.Errorf("the log holds the password %q:\n%s", pw, out)
		}
	}
}
