package api_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/tpf-dev/tpf/controller/api"
	"github.com/tpf-dev/tpf/controller/apijson"
	"github.com/tpf-dev/tpf/controller/fleet"
)

func (e *env) tokens(token string) []apijson.Token {
	e.t.Helper()
	res := e.do("GET", "/api/tokens", token, nil)
	if res.status != http.StatusOK {
		e.t.Fatalf("GET /api/tokens: got %d %s, want 200", res.status, res.body)
	}
	return decode[[]apijson.Token](e.t, res.body)
}

func TestTokens(t *testing.T) {
	t.Parallel()
	e := newEnv(t, api.Config{})

	list := e.tokens(e.token)
	if len(list) != 1 || list[0].Name != "default" || list[0].RevokedAt != nil || list[0].CreatedAt != "2024-06-22T02:33:29+00:00" {
		t.Fatalf("tokens of a new account: got %+v, want the default token, not revoked", list)
	}

	e.clock.Advance(time.Minute)
	res := e.do("POST", "/api/tokens", e.token, map[string]any{"name": "ci · deploy", "extra": 1})
	if res.status != http.StatusCreated {
		t.Fatalf("create: got %d %s, want 201", res.status, res.body)
	}
	created := decode[map[string]any](t, res.body)
	if len(created) != 4 || created["name"] != "ci · deploy" || created["created_at"] != "2024-06-22T02:34:29+00:00" {
		t.Errorf("create: got %s, want id, name, created_at and token", res.body)
	}
	ci := decode[apijson.CreatedToken](t, res.body)
	if !strings.HasPrefix(ci.Token, "tpf_") || len(ci.Token) < 40 {
		t.Errorf("create: token %q, want a tpf_ secret", ci.Token)
	}
	if res := e.do("GET", "/api/routers", ci.Token, nil); res.status != http.StatusOK {
		t.Errorf("the new token: got %d, want 200", res.status)
	}

	// Listed oldest first, without secrets; the new token sees the list too.
	res = e.do("GET", "/api/tokens", ci.Token, nil)
	list = decode[[]apijson.Token](t, res.body)
	if len(list) != 2 || list[0].Name != "default" || list[1].ID != ci.ID || list[1].RevokedAt != nil {
		t.Errorf("tokens: got %+v, want default then the new one", list)
	}
	if strings.Contains(string(res.body), ci.Token) || strings.Contains(string(res.body), e.token) || strings.Contains(string(res.body), `"token"`) {
		t.Errorf("the list shows a secret: %s", res.body)
	}

	// Revoke: 204, the token stops working, repeating is harmless.
	e.clock.Advance(time.Minute)
	if res := e.do("DELETE", "/api/tokens/"+ci.ID, e.token, nil); res.status != http.StatusNoContent || len(res.body) != 0 {
		t.Fatalf("revoke: got %d %s, want 204", res.status, res.body)
	}
	if res := e.do("GET", "/api/routers", ci.Token, nil); res.status != http.StatusUnauthorized {
		t.Errorf("revoked token: got %d, want 401", res.status)
	}
	e.clock.Advance(time.Minute)
	if res := e.do("DELETE", "/api/tokens/"+ci.ID, e.token, nil); res.status != http.StatusNoContent {
		t.Errorf("revoke again: got %d %s, want 204", res.status, res.body)
	}
	list = e.tokens(e.token)
	if len(list) != 2 || list[1].RevokedAt == nil || *list[1].RevokedAt != "2024-06-22T02:35:29+00:00" {
		t.Errorf("after revoke: got %+v, want ci revoked at 02:35:29 (the first revoke)", list)
	}

	// Another account's token, an unknown one and a malformed id: 404.
	other, _ := e.addAccount("globex")
	otherID := e.tokens(other)[0].ID
	for _, id := range []string{otherID, uuid.NewString(), "not-a-uuid", strings.ToUpper(otherID)} {
		if res := e.do("DELETE", "/api/tokens/"+id, e.token, nil); res.status != http.StatusNotFound || string(res.body) != `{"message":"Not found."}`+"\n" {
			t.Errorf("revoke %s: got %d %s, want 404", id, res.status, res.body)
		}
	}
	if res := e.do("GET", "/api/routers", other, nil); res.status != http.StatusOK {
		t.Errorf("the other account's token after the refused revokes: got %d, want 200", res.status)
	}
	if got := e.tokens(other); len(got) != 1 {
		t.Errorf("the other account's tokens: got %+v, want its default only", got)
	}

	// Create and revoke are in the audit log, with the token as subject.
	events := decode[[]struct {
		Actor     string         `json:"actor"`
		Action    string         `json:"action"`
		SubjectID string         `json:"subject_id"`
		Detail    map[string]any `json:"detail"`
	}](t, e.do("GET", "/api/audit-log", e.token, nil).body)
	var creates, revokes int
	for _, ev := range events {
		if ev.SubjectID != ci.ID {
			continue
		}
		switch ev.Action {
		case fleet.ActionTokenCreate:
			creates++
		case fleet.ActionTokenRevoke:
			revokes++
		}
		if ev.Detail["name"] != "ci · deploy" || !strings.Contains(ev.Actor, "default") {
			t.Errorf("audit event %+v: want the token's name in detail and the default token as actor", ev)
		}
	}
	if creates != 1 || revokes != 1 {
		t.Errorf("audit log: got %d creates and %d revokes of the token, want 1 and 1", creates, revokes)
	}
}

func TestTokenRevokesItself(t *testing.T) {
	t.Parallel()
	e := newEnv(t, api.Config{})
	self := e.tokens(e.token)[0].ID
	if res := e.do("DELETE", "/api/tokens/"+self, e.token, nil); res.status != http.StatusNoContent {
		t.Fatalf("self-revoke: got %d %s, want 204", res.status, res.body)
	}
	for _, path := range []string{"/api/tokens", "/api/routers"} {
		if res := e.do("GET", path, e.token, nil); res.status != http.StatusUnauthorized {
			t.Errorf("GET %s after self-revoke: got %d, want 401", path, res.status)
		}
	}
	if res := e.do("DELETE", "/api/tokens/"+self, e.token, nil); res.status != http.StatusUnauthorized {
		t.Errorf("revoke again with the revoked token: got %d, want 401", res.status)
	}
}

func TestTokenCreateValidation(t *testing.T) {
	t.Parallel()
	e := newEnv(t, api.Config{})
	for name, body := range map[string]any{
		"missing":      map[string]any{},
		"null":         map[string]any{"name": nil},
		"empty":        map[string]any{"name": ""},
		"blank":        map[string]any{"name": "   "},
		"not a string": map[string]any{"name": 7},
		"too long":     map[string]any{"name": strings.Repeat("x", 65)},
		"control":      map[string]any{"name": "ci\nprod"},
	} {
		res := e.do("POST", "/api/tokens", e.token, body)
		var v struct {
			Message string              `json:"message"`
			Errors  map[string][]string `json:"errors"`
		}
		if err := json.Unmarshal(res.body, &v); err != nil || res.status != http.StatusUnprocessableEntity || len(v.Errors["name"]) != 1 || v.Message != v.Errors["name"][0] {
			t.Errorf("%s: got %d %s, want 422 with one message for name", name, res.status, res.body)
		}
	}
	res := e.do("POST", "/api/tokens", e.token, map[string]any{"name": strings.Repeat("x", 65)})
	if want := `{"message":"The name field must not be greater than 64 characters.","errors":{"name":["The name field must not be greater than 64 characters."]}}` + "\n"; string(res.body) != want {
		t.Errorf("too long: got %s, want %s", res.body, want)
	}
	if res := e.do("POST", "/api/tokens", e.token, map[string]any{"name": strings.Repeat("x", 64)}); res.status != http.StatusCreated {
		t.Errorf("64 characters: got %d %s, want 201", res.status, res.body)
	}
	if res := e.do("POST", "/api/tokens", e.token, "[]"); res.status != http.StatusBadRequest {
		t.Errorf("not an object: got %d, want 400", res.status)
	}
	if got := e.tokens(e.token); len(got) != 2 {
		t.Errorf("refused creates made tokens: got %d tokens, want 2", len(got))
	}
}

func TestTokenRoutesRefuseOtherMethods(t *testing.T) {
	t.Parallel()
	e := newEnv(t, api.Config{})
	for _, c := range []struct{ method, path, allow string }{
		{"PUT", "/api/tokens", "GET, POST"},
		{"DELETE", "/api/tokens", "GET, POST"},
		{"GET", "/api/tokens/" + uuid.NewString(), "DELETE"},
		{"POST", "/api/tokens/" + uuid.NewString(), "DELETE"},
	} {
		res := e.do(c.method, c.path, e.token, nil)
		if res.status != http.StatusMethodNotAllowed || res.header.Get("Allow") != c.allow {
			t.Errorf("%s %s: got %d Allow %q, want 405 Allow %q", c.method, c.path, res.status, res.header.Get("Allow"), c.allow)
		}
	}
	if res := e.do("GET", "/api/tokens", "", nil); res.status != http.StatusUnauthorized {
		t.Errorf("no token: got %d, want 401", res.status)
	}
}

// The rate limiter's windows run on the server's clock (Config.Now).
func TestRateLimitFollowsTheClock(t *testing.T) {
	t.Parallel()
	e := newEnv(t, api.Config{RateLimitPerMinute: 1})
	if res := e.do("GET", "/api/tokens", e.token, nil); res.status != http.StatusOK {
		t.Fatalf("first request: got %d, want 200", res.status)
	}
	e.clock.Advance(59 * time.Second)
	res := e.do("GET", "/api/tokens", e.token, nil)
	if res.status != http.StatusTooManyRequests || res.header.Get("Retry-After") != "1" {
		t.Errorf("59 s later: got %d Retry-After %q, want 429 Retry-After 1", res.status, res.header.Get("Retry-After"))
	}
	e.clock.Advance(time.Second)
	if res := e.do("GET", "/api/tokens", e.token, nil); res.status != http.StatusOK {
		t.Errorf("a minute later: got %d, want 200 (a new window)", res.status)
	}
}
