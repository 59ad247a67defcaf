package api_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/tpf-dev/tpf/controller/api"
	"github.com/tpf-dev/tpf/controller/fleet"
	"github.com/tpf-dev/tpf/controller/forwards"
)

var scriptToken = regexp.MustCompile(`:set \(\$env->"TPF_AGENT_TOKEN"\) "([^"]+)"`)

func (e *env) installScript(query, token string) response {
	e.t.Helper()
	return e.do("POST", "/api/routers/"+e.router.String()+"/install-script"+query, token, nil)
}

// installScriptAs fetches the script the way a request naming host (and,
// when proto is set, sent through a proxy that says X-Forwarded-Proto:
// proto) would.
func (e *env) installScriptAs(host, proto string) response {
	e.t.Helper()
	req, err := http.NewRequest("POST", e.srv.URL+"/api/routers/"+e.router.String()+"/install-script", nil)
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+e.token)
	if proto != "" {
		req.Header.Set("X-Forwarded-Proto", proto)
	}
	req.Host = host
	res, err := e.srv.Client().Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return response{status: res.StatusCode, header: res.Header, body: b}
}

// fieldErrors reads a 422's messages by field.
func fieldErrors(t *testing.T, body []byte) map[string][]string {
	t.Helper()
	var v struct {
		Message string          `json:"message"`
		Errors  json.RawMessage `json:"errors"`
	}
	if err := json.Unmarshal(body, &v); err != nil || v.Message == "" {
		t.Fatalf("not a 422 body (%v): %s", err, body)
	}
	out := map[string][]string{}
	if err := json.Unmarshal(v.Errors, &out); err != nil {
		t.Fatalf("errors: %v: %s", err, body)
	}
	return out
}

// agentToken gives the router an agent token, as if its agent held one.
func (e *env) agentToken() string {
	e.t.Helper()
	ctx := context.Background()
	p, err := e.store.Authenticate(ctx, e.token)
	if err != nil {
		e.t.Fatal(err)
	}
	tok, err := forwards.New(e.store).RotateAgentToken(ctx, p, e.router, seedNow)
	if err != nil {
		e.t.Fatal(err)
	}
	return tok
}

// agentWorks says whether an agent token authenticates as e's router.
func (e *env) agentWorks(token string) bool {
	e.t.Helper()
	rt, err := e.store.AuthenticateAgent(context.Background(), token)
	if errors.Is(err, fleet.ErrUnauthenticated) {
		return false
	}
	if err != nil {
		e.t.Fatal(err)
	}
	if rt.ID != e.router {
		e.t.Fatalf("agent token authenticates router %s, want %s", rt.ID, e.router)
	}
	return true
}

func TestInstallScript(t *testing.T) {
	t.Parallel()
	e := newEnv(t, api.Config{PublicURL: "https://tpf.example.net"})
	old := e.agentToken()

	res := e.installScript("", e.token)
	if res.status != http.StatusOK {
		t.Fatalf("got %d %s, want 200", res.status, res.body)
	}
	if ct := res.header.Get("Content-Type"); ct != "text/plain; charset=utf-8" {
		t.Errorf("Content-Type: got %q, want text/plain; charset=utf-8", ct)
	}
	if cc := res.header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("Cache-Control: got %q, want no-store (the script holds secrets)", cc)
	}
	s := string(res.body)
	for _, want := range []string{
		"/system/device-mode/update container=yes",
		"/interface/veth/add name=veth-tpf-agent",
		"/interface/bridge/add name=tpf-agent",
		`:set ($env->"TPF_CONTROLLER_URL") "https://tpf.example.net"`,
		"/container/envs/add",
		"start-on-boot=yes logging=yes",
		"/user/group/add name=tpf-agent policy=read,write,api,policy,",
		"acme-r1",
		e.router.String(),
	} {
		if !strings.Contains(s, want) {
			t.Errorf("script lacks %q", want)
		}
	}
	m := scriptToken.FindStringSubmatch(s)
	if m == nil {
		t.Fatalf("no agent token in the script:\n%s", s)
	}
	first := m[1]

	// The script's token replaced the agent's: the old one is dead, the new
	// one works.
	if e.agentWorks(old) {
		t.Error("the agent token from before the script still works; fetching the script must rotate it")
	}
	if !e.agentWorks(first) {
		t.Error("the script's agent token does not work")
	}

	// Fetching again rotates again: the first script's token stops working.
	res = e.installScript("", e.token)
	m = scriptToken.FindStringSubmatch(string(res.body))
	if res.status != http.StatusOK || m == nil {
		t.Fatalf("second fetch: got %d %s", res.status, res.body)
	}
	second := m[1]
	if second == first {
		t.Fatal("second fetch: got the same agent token again")
	}
	if e.agentWorks(first) || !e.agentWorks(second) {
		t.Errorf("after a second fetch: first token works %v, second %v; want false, true", e.agentWorks(first), e.agentWorks(second))
	}
	// and a new RouterOS password each time
	pw := regexp.MustCompile(`TPF_ROUTEROS_PASSWORD"\) "([A-Za-z0-9._-]+)"`)
	if a, b := pw.FindStringSubmatch(s), pw.FindStringSubmatch(string(res.body)); a == nil || b == nil || a[1] == b[1] {
		t.Errorf("RouterOS passwords: got %q and %q, want two different ones", a, b)
	}

	// The rotation is in the audit log.
	audit := e.do("GET", "/api/audit-log", e.token, nil)
	if n := strings.Count(string(audit.body), string(fleet.ActionAgentTokenRotate)); n < 3 {
		t.Errorf("audit log: got %d agent-token rotations, want 3: %s", n, audit.body)
	}
}

// Issuing a script rotates the agent token, so a GET (a prefetch, a
// replayed link) must not: it answers 405 and leaves the agent connected.
func TestInstallScriptIsNotAGet(t *testing.T) {
	t.Parallel()
	e := newEnv(t, api.Config{})
	tok := e.agentToken()
	for _, method := range []string{"GET", "HEAD", "PUT"} {
		res := e.do(method, "/api/routers/"+e.router.String()+"/install-script", e.token, nil)
		if res.status != http.StatusMethodNotAllowed || res.header.Get("Allow") != "POST" {
			t.Errorf("%s: got %d Allow %q, want 405 Allow POST", method, res.status, res.header.Get("Allow"))
		}
	}
	if !e.agentWorks(tok) {
		t.Error("a GET of the install script rotated the agent token; only a POST may")
	}
}

func TestInstallScriptRefusals(t *testing.T) {
	t.Parallel()
	e := newEnv(t, api.Config{PublicURL: "https://tpf.example.net"})
	tok := e.agentToken()

	if res := e.installScript("", ""); res.status != http.StatusUnauthorized {
		t.Errorf("no API token: got %d, want 401", res.status)
	}
	other, _ := e.addAccount("other")
	if res := e.installScript("", other); res.status != http.StatusNotFound {
		t.Errorf("another account's router: got %d %s, want 404", res.status, res.body)
	}
	if res := e.do("POST", "/api/routers/not-a-uuid/install-script", e.token, nil); res.status != http.StatusNotFound {
		t.Errorf("bad router id: got %d, want 404", res.status)
	}
	for q, field := range map[string]string{
		"?subnet=nope":                    "subnet",
		"?subnet=172.31.254.0/31":         "subnet",
		"?arch=mipsbe":                    "arch",
		"?host=fd00::1":                   "host",
		"?disk=../x":                      "disk",
		"?image_url=ftp://x":              "image_url",
		"?image_url=http://127.0.0.1/tpf": "image_url",
		"?routeros_user=admin":            "routeros_user",
	} {
		res := e.installScript(q, e.token)
		if res.status != http.StatusUnprocessableEntity {
			t.Errorf("%s: got %d %s, want 422", q, res.status, res.body)
			continue
		}
		if errs := fieldErrors(t, res.body); len(errs[field]) == 0 {
			t.Errorf("%s: got %s, want an error on %s", q, res.body, field)
		}
	}
	if !e.agentWorks(tok) {
		t.Error("a refused request rotated the agent token; it must leave it alone")
	}
}

// A controller fetched through localhost (or any loopback, unspecified or
// link-local address) without TPF_PUBLIC_URL would send every agent to
// itself: 422 on controller_url, naming TPF_PUBLIC_URL, and the token is
// left alone.
func TestInstallScriptUnreachableURL(t *testing.T) {
	t.Parallel()
	e := newEnv(t, api.Config{})
	tok := e.agentToken()
	check := func(what string, res response, url string) {
		t.Helper()
		if res.status != http.StatusUnprocessableEntity {
			t.Errorf("%s: got %d, want 422:\n%s", what, res.status, res.body)
			return
		}
		msgs := fieldErrors(t, res.body)["controller_url"]
		if len(msgs) != 1 || !strings.Contains(msgs[0], "TPF_PUBLIC_URL") || !strings.Contains(msgs[0], url) {
			t.Errorf("%s: got %s, want a controller_url error naming %s and TPF_PUBLIC_URL", what, res.body, url)
		}
	}
	// e.srv listens on 127.0.0.1: the request names it
	check("through 127.0.0.1", e.installScript("", e.token), e.srv.URL)
	for _, host := range []string{"localhost:8080", "[::1]:8080", "0.0.0.0:8080", "169.254.0.10", "[fe80::1]:8080"} {
		check("Host "+host, e.installScriptAs(host, ""), "http://"+host)
	}
	check("https through localhost", e.installScriptAs("localhost", "https"), "https://localhost")
	if !e.agentWorks(tok) {
		t.Error("a refused request rotated the agent token; it must leave it alone")
	}

	// TPF_PUBLIC_URL itself pointing at loopback: the message says it is the setting
	e = newEnv(t, api.Config{PublicURL: "http://127.0.0.1:8080/"})
	res := e.installScript("?host=192.168.88.10", e.token)
	check("TPF_PUBLIC_URL on loopback", res, "TPF_PUBLIC_URL (http://127.0.0.1:8080)")
}

// An internal name over plain http works, with a warning in the script.
func TestInstallScriptPlainHTTP(t *testing.T) {
	t.Parallel()
	e := newEnv(t, api.Config{})
	res := e.installScriptAs("tpf.internal:8080", "")
	s := string(res.body)
	if res.status != http.StatusOK {
		t.Fatalf("got %d %s, want 200", res.status, s)
	}
	if !strings.Contains(s, `:set ($env->"TPF_CONTROLLER_URL") "http://tpf.internal:8080"`) {
		t.Errorf("script lacks the request's URL:\n%s", s)
	}
	header := s[:strings.Index(s, "\n{\n")]
	if !strings.Contains(header, "# WARNING: the controller URL in this script is plain http.") {
		t.Errorf("the header does not warn about plain http:\n%s", header)
	}
	res = e.installScriptAs("tpf.example.net", "https")
	if res.status != http.StatusOK || strings.Contains(string(res.body), "plain http") {
		t.Errorf("https: got %d, or a plain-http warning", res.status)
	}
}

func TestInstallScriptOptions(t *testing.T) {
	t.Parallel()
	e := newEnv(t, api.Config{PublicURL: "https://tpf.example.net/"})

	res := e.installScript("?host=192.168.88.10", e.token)
	s := string(res.body)
	if res.status != http.StatusOK {
		t.Fatalf("host variant: got %d %s", res.status, s)
	}
	if !strings.Contains(s, `:put "TPF_CONTROLLER_URL=https://tpf.example.net"`) || !strings.Contains(s, "address=192.168.88.10/32") {
		t.Errorf("host variant lacks the public URL or the host's address:\n%s", s)
	}
	if strings.Contains(s, "/container") {
		t.Error("host variant uses /container, which MIPS routers lack")
	}
	tok := regexp.MustCompile(`:put "TPF_AGENT_TOKEN=([^"]+)"`).FindStringSubmatch(s)
	if tok == nil || !e.agentWorks(tok[1]) {
		t.Errorf("host variant: the printed agent token does not work (%q)", tok)
	}

	res = e.installScript("?subnet=10.250.0.0/29&disk=usb1&arch=arm64&image_url=https://downloads.example.net/tpf", e.token)
	s = string(res.body)
	for _, want := range []string{"address=10.250.0.2/29 gateway=10.250.0.1", `:local dir "usb1/"`, `:if ($plat != "arm64")`, "/tool/fetch", `"https://tpf.example.net"`} {
		if res.status != http.StatusOK || !strings.Contains(s, want) {
			t.Errorf("options: got %d, script lacks %q", res.status, want)
		}
	}
}

// Without PublicURL the URL is the request's own, https behind a proxy that
// says so.
func TestInstallScriptForwardedProto(t *testing.T) {
	t.Parallel()
	e := newEnv(t, api.Config{})
	res := e.installScriptAs("tpf.example.net", "https")
	if want := `:set ($env->"TPF_CONTROLLER_URL") "https://tpf.example.net"`; !strings.Contains(string(res.body), want) {
		t.Errorf("got %d, script lacks %q", res.status, want)
	}
}
