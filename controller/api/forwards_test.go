package api_test

import (
	"context"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/tpf-dev/tpf/controller/api"
	"github.com/tpf-dev/tpf/controller/apijson"
	"github.com/tpf-dev/tpf/controller/forwards"
)

var uuidText = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

// TestCreateMatchesContract checks the create answer byte for byte against
// the contract's sample: its eleven fields, in order, formatted alike.
func TestCreateMatchesContract(t *testing.T) {
	t.Parallel()
	e := newEnv(t, api.Config{})
	res := e.do("POST", e.forwardsPath(e.router), e.token, seedRequest())
	if res.status != http.StatusCreated {
		t.Fatalf("got %d %s, want 201", res.status, res.body)
	}
	if ct := res.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type: got %q, want application/json", ct)
	}
	f := decode[apijson.Forward](t, res.body)
	if !uuidText.MatchString(f.ID) {
		t.Errorf("id: got %q, want a lower-case UUID", f.ID)
	}
	if f.Port < 49152 || f.Port > 65535 {
		t.Errorf("port: got %d, want within 49152-65535", f.Port)
	}
	want := fmt.Sprintf(`{"id":"%s","port":%d,"revoked_early":false,"allow_only_cidr":"81.2.69.0/24",`+
		`"authorized_at":null,"expires_at":"2024-06-22T04:33:29+00:00","expired":false,`+
		`"entry_point":"us-east1.mkcld.io","dst_address":"192.168.88.43","dst_port":22,`+
		`"time_to_expire":"2 hours from now",`, f.ID, f.Port)
	if got := string(res.body); !strings.HasPrefix(got, want) {
		t.Errorf("body:\ngot  %s\nwant %s…", got, want)
	}
	if f.Status != "pending" || f.RouterID != e.router.String() {
		t.Errorf("extra fields: got status %q router %q, want pending %s", f.Status, f.RouterID, e.router)
	}

	// GET answers the same object.
	get := e.do("GET", e.forwardsPath(e.router)+"/"+f.ID, e.token, nil)
	if get.status != http.StatusOK || string(get.body) != string(res.body) {
		t.Errorf("get: got %d %s, want 200 %s", get.status, get.body, res.body)
	}
	// The list is a bare array of the same objects.
	list := e.do("GET", e.forwardsPath(e.router), e.token, nil)
	if wantList := "[" + strings.TrimSuffix(string(res.body), "\n") + "]\n"; list.status != http.StatusOK || string(list.body) != wantList {
		t.Errorf("list: got %d %s, want 200 %s", list.status, list.body, wantList)
	}
}

func TestTimeToExpireCountsDown(t *testing.T) {
	t.Parallel()
	e := newEnv(t, api.Config{})
	f := e.create(e.router, e.token, seedRequest())
	path := e.forwardsPath(e.router) + "/" + f.ID
	steps := []struct {
		since   time.Duration // since creation
		want    string
		expired bool
	}{
		{time.Second, "1 hour from now", false},
		{60 * time.Minute, "1 hour from now", false},
		{61 * time.Minute, "59 minutes from now", false},
		{119 * time.Minute, "1 minute from now", false},
		{119*time.Minute + 59*time.Second, "1 second from now", false},
		{120 * time.Minute, "0 seconds ago", true},
		{123 * time.Minute, "3 minutes ago", true},
		{120*time.Minute + 49*time.Hour, "2 days ago", true},
	}
	for _, s := range steps {
		e.clock.Set(seedNow.Add(s.since))
		got := decode[apijson.Forward](t, e.do("GET", path, e.token, nil).body)
		if got.TimeToExpire != s.want || got.Expired != s.expired {
			t.Errorf("at %s: got %q expired=%v, want %q expired=%v", e.clock.Now().Format(time.RFC3339), got.TimeToExpire, got.Expired, s.want, s.expired)
		}
	}
	// An expired forward has left the list but is still readable.
	if list := e.do("GET", e.forwardsPath(e.router), e.token, nil); string(list.body) != "[]\n" {
		t.Errorf("list after expiry: got %s, want []", list.body)
	}
}

func TestRevoke(t *testing.T) {
	t.Parallel()
	e := newEnv(t, api.Config{})
	f := e.create(e.router, e.token, seedRequest())
	path := e.forwardsPath(e.router) + "/" + f.ID

	e.clock.Advance(time.Minute)
	res := e.do("DELETE", path, e.token, nil)
	if res.status != http.StatusNoContent || len(res.body) != 0 {
		t.Fatalf("delete: got %d %q, want 204 and no body", res.status, res.body)
	}
	got := decode[apijson.Forward](t, e.do("GET", path, e.token, nil).body)
	if !got.RevokedEarly || got.Expired || got.Status != "removing" {
		t.Errorf("after revoke: got revoked_early=%v expired=%v status=%q, want true false removing", got.RevokedEarly, got.Expired, got.Status)
	}
	if list := e.do("GET", e.forwardsPath(e.router), e.token, nil); string(list.body) != "[]\n" {
		t.Errorf("list after revoke: got %s, want []", list.body)
	}
	// Revoking again changes nothing.
	if res := e.do("DELETE", path, e.token, nil); res.status != http.StatusNoContent {
		t.Errorf("second delete: got %d, want 204", res.status)
	}
	for _, state := range []string{"all", "ended"} {
		hist := decode[[]apijson.Forward](t, e.do("GET", e.forwardsPath(e.router)+"?state="+state, e.token, nil).body)
		if len(hist) != 1 || hist[0].ID != f.ID || !hist[0].RevokedEarly {
			t.Errorf("?state=%s: got %+v, want the revoked forward", state, hist)
		}
	}
}

func TestHistoryListing(t *testing.T) {
	t.Parallel()
	e := newEnv(t, api.Config{})
	var ids []string
	for range 3 {
		ids = append(ids, e.create(e.router, e.token, seedRequest()).ID)
		e.clock.Advance(time.Second)
	}
	e.do("DELETE", e.forwardsPath(e.router)+"/"+ids[0], e.token, nil)

	all := decode[[]apijson.Forward](t, e.do("GET", e.forwardsPath(e.router)+"?state=all", e.token, nil).body)
	if len(all) != 3 || all[0].ID != ids[2] || all[2].ID != ids[0] {
		t.Errorf("?state=all: got %d forwards, want 3 newest first", len(all))
	}
	page := decode[[]apijson.Forward](t, e.do("GET", e.forwardsPath(e.router)+"?state=all&limit=2", e.token, nil).body)
	if len(page) != 2 {
		t.Errorf("?limit=2: got %d forwards, want 2", len(page))
	}
	active := decode[[]apijson.Forward](t, e.do("GET", e.forwardsPath(e.router)+"?state=active", e.token, nil).body)
	if len(active) != 2 || active[0].ID != ids[1] {
		t.Errorf("?state=active: got %d forwards, want the 2 live ones oldest first", len(active))
	}
	for _, q := range []string{"?state=bogus", "?state=all&limit=0", "?state=all&limit=1001", "?state=all&limit=x"} {
		if res := e.do("GET", e.forwardsPath(e.router)+q, e.token, nil); res.status != http.StatusUnprocessableEntity {
			t.Errorf("%s: got %d %s, want 422", q, res.status, res.body)
		}
	}
}

func TestNotFound(t *testing.T) {
	t.Parallel()
	e := newEnv(t, api.Config{})
	f := e.create(e.router, e.token, seedRequest())
	otherToken, otherRouter := e.addAccount("globex")
	otherF := e.create(otherRouter, otherToken, seedRequest())

	unknown := uuid.NewString()
	mine := e.forwardsPath(e.router)
	theirs := e.forwardsPath(otherRouter)
	cases := []struct{ method, path string }{
		{"GET", "/api/routers/" + unknown + "/transient-forwarding"},
		{"POST", "/api/routers/" + unknown + "/transient-forwarding"},
		{"GET", "/api/routers/not-a-uuid/transient-forwarding"},
		{"GET", "/api/routers/" + strings.ToUpper(e.router.String()) + "x/transient-forwarding"},
		{"GET", mine + "/" + unknown},
		{"DELETE", mine + "/" + unknown},
		{"GET", mine + "/12345"},
		{"DELETE", mine + "/12345"},
		{"GET", mine + "/" + otherF.ID}, // a forward of another account, under my router
		{"GET", theirs},
		{"POST", theirs},
		{"GET", theirs + "/" + otherF.ID},
		{"DELETE", theirs + "/" + otherF.ID},
		{"GET", "/api/routers/" + otherRouter.String()},
		{"DELETE", "/api/routers/" + otherRouter.String()},
		{"GET", "/api/nothing-here"},
	}
	for _, c := range cases {
		res := e.do(c.method, c.path, e.token, seedRequest())
		if res.status != http.StatusNotFound || string(res.body) != `{"message":"Not found."}`+"\n" {
			t.Errorf("%s %s: got %d %s, want 404", c.method, c.path, res.status, res.body)
		}
	}
	// The other account's forward is untouched, and mine is still there.
	if got := decode[apijson.Forward](t, e.do("GET", theirs+"/"+otherF.ID, otherToken, nil).body); got.RevokedEarly {
		t.Error("another account's forward was revoked")
	}
	if res := e.do("GET", mine+"/"+f.ID, e.token, nil); res.status != http.StatusOK {
		t.Errorf("own forward: got %d, want 200", res.status)
	}
}

func TestAuthentication(t *testing.T) {
	t.Parallel()
	e := newEnv(t, api.Config{})
	for _, header := range []string{"", "Bearer", "Bearer nope", "Basic " + e.token, "Bearer " + e.token + "x"} {
		req, _ := http.NewRequest("GET", e.srv.URL+e.forwardsPath(e.router), nil)
		if header != "" {
			req.Header.Set("Authorization", header)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body := make([]byte, 100)
		n, _ := res.Body.Read(body)
		res.Body.Close()
		if res.StatusCode != http.StatusUnauthorized || string(body[:n]) != `{"message":"Unauthenticated."}`+"\n" {
			t.Errorf("Authorization %q: got %d %s, want 401 Unauthenticated.", header, res.StatusCode, body[:n])
		}
	}
}

func TestRateLimit(t *testing.T) {
	t.Parallel()
	e := newEnv(t, api.Config{RateLimitPerMinute: 3})
	for i := range 3 {
		res := e.do("GET", e.forwardsPath(e.router), e.token, nil)
		if res.status != http.StatusOK {
			t.Fatalf("request %d: got %d, want 200", i+1, res.status)
		}
		if got, want := res.header.Get("X-RateLimit-Remaining"), fmt.Sprint(2-i); got != want || res.header.Get("X-RateLimit-Limit") != "3" {
			t.Errorf("request %d: got remaining %q limit %q, want %s 3", i+1, got, res.header.Get("X-RateLimit-Limit"), want)
		}
	}
	res := e.do("GET", e.forwardsPath(e.router), e.token, nil)
	if res.status != http.StatusTooManyRequests || string(res.body) != `{"message":"Too Many Attempts."}`+"\n" {
		t.Fatalf("4th request: got %d %s, want 429", res.status, res.body)
	}
	if ra := res.header.Get("Retry-After"); ra == "" || ra == "0" {
		t.Errorf("Retry-After: got %q, want seconds until the window resets", ra)
	}
	// Another token has its own budget.
	other, _ := e.addAccount("globex")
	if res := e.do("GET", "/api/routers", other, nil); res.status != http.StatusOK {
		t.Errorf("other token: got %d, want 200", res.status)
	}
}

func TestConcurrentCreatesGetDistinctPorts(t *testing.T) {
	t.Parallel()
	e := newEnv(t, api.Config{})
	const n = 200
	ports := make(chan int, n)
	var wg sync.WaitGroup
	errs := make(chan string, n)
	for range n {
		wg.Go(func() {
			res := e.do("POST", e.forwardsPath(e.router), e.token, seedRequest())
			if res.status != http.StatusCreated {
				errs <- fmt.Sprintf("%d %s", res.status, res.body)
				return
			}
			ports <- decode[apijson.Forward](t, res.body).Port
		})
	}
	wg.Wait()
	close(ports)
	close(errs)
	for err := range errs {
		t.Errorf("create: got %s, want 201", err)
	}
	seen := map[int]bool{}
	for p := range ports {
		if seen[p] {
			t.Errorf("port %d handed out twice", p)
		}
		seen[p] = true
	}
	if len(seen) != n {
		t.Errorf("got %d distinct ports, want %d", len(seen), n)
	}
}

func TestPortPoolExhaustedAndReuse(t *testing.T) {
	t.Parallel()
	e := newEnv(t, api.Config{})
	small := e.addRegion("tiny", "tiny.example.net", 40000, 40002)
	ctx := context.Background()
	p, err := e.store.Authenticate(ctx, e.token)
	if err != nil {
		t.Fatal(err)
	}
	r, _, err := forwards.New(e.store).CreateRouter(ctx, p, newRouter("small", small.ID), seedNow)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	seen := map[int]bool{}
	for range 3 {
		f := e.create(r.ID, e.token, seedRequest())
		seen[f.Port] = true
		ids = append(ids, f.ID)
	}
	if len(seen) != 3 {
		t.Fatalf("got ports %v, want 40000-40002 each once", seen)
	}
	res := e.do("POST", e.forwardsPath(r.ID), e.token, seedRequest())
	if res.status != http.StatusServiceUnavailable || !strings.Contains(string(res.body), "No free port") {
		t.Fatalf("4th create: got %d %s, want 503 No free port", res.status, res.body)
	}

	// A revoked forward's port stays held until the router confirms the
	// removal or the grace period passes.
	e.do("DELETE", e.forwardsPath(r.ID)+"/"+ids[0], e.token, nil)
	if res := e.do("POST", e.forwardsPath(r.ID), e.token, seedRequest()); res.status != http.StatusServiceUnavailable {
		t.Fatalf("create right after revoke: got %d %s, want 503", res.status, res.body)
	}
	e.clock.Advance(10 * time.Minute)
	if n, err := e.store.ReleasePorts(ctx, e.clock.Now().Add(-10*time.Minute), e.clock.Now()); err != nil || n != 1 {
		t.Fatalf("release: got %d, %v, want 1 port", n, err)
	}
	// Freed, but not for the same router: a stale rule for that port may
	// still sit on it. Another router in the region may take it.
	if res := e.do("POST", e.forwardsPath(r.ID), e.token, seedRequest()); res.status != http.StatusServiceUnavailable {
		t.Fatalf("same router after grace: got %d %s, want 503", res.status, res.body)
	}
	r2, _, err := forwards.New(e.store).CreateRouter(ctx, p, newRouter("small2", small.ID), seedNow)
	if err != nil {
		t.Fatal(err)
	}
	f := e.create(r2.ID, e.token, seedRequest())
	old := decode[apijson.Forward](t, e.do("GET", e.forwardsPath(r.ID)+"/"+ids[0], e.token, nil).body)
	if f.Port != old.Port {
		t.Errorf("reused port: got %d, want %d", f.Port, old.Port)
	}
}

func TestWrongMethod(t *testing.T) {
	t.Parallel()
	e := newEnv(t, api.Config{})
	cases := []struct{ method, path, allow string }{
		{"PUT", e.forwardsPath(e.router), "GET, POST"},
		{"POST", e.forwardsPath(e.router) + "/" + uuid.NewString(), "GET, DELETE"},
		{"POST", "/api/regions", "GET"},
		{"DELETE", "/api/audit-log", "GET"},
		{"GET", "/api/routers/" + e.router.String() + "/agent-token", "POST"},
	}
	for _, c := range cases {
		res := e.do(c.method, c.path, e.token, nil)
		if res.status != http.StatusMethodNotAllowed || res.header.Get("Allow") != c.allow {
			t.Errorf("%s %s: got %d Allow %q, want 405 Allow %q", c.method, c.path, res.status, res.header.Get("Allow"), c.allow)
		}
	}
}
