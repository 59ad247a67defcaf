package api_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/netip"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/tpf-dev/tpf/controller/api"
	"github.com/tpf-dev/tpf/controller/apijson"
	"github.com/tpf-dev/tpf/controller/web"
)

// webEnv is the API serving the web views (Config.Web) as tpf-controller
// serve does, with the API's forward rules given to the views, and a
// browser-like client signed in to them.
type webEnv struct {
	*env
	browser *http.Client
	csrf    string
}

func newWebEnv(t *testing.T, cfg api.Config) *webEnv {
	t.Helper()
	var views http.Handler
	cfg.Web = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { views.ServeHTTP(w, r) })
	e := newEnv(t, cfg)
	views = web.New(e.store, web.Config{Forwards: cfg.ForwardRules(), Now: e.clock.Now})

	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	w := &webEnv{env: e, browser: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
	if res := w.post("/signin", url.Values{"token": {e.token}}); res.status != http.StatusSeeOther {
		t.Fatalf("sign in: got %d, want 303\n%s", res.status, res.body)
	}
	page := w.get("/")
	m := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindSubmatch(page.body)
	if page.status != http.StatusOK || m == nil {
		t.Fatalf("fleet page after sign in: got %d without a csrf field, want 200 with one\n%s", page.status, page.body)
	}
	w.csrf = string(m[1])
	return w
}

func (w *webEnv) get(path string) response {
	w.t.Helper()
	res, err := w.browser.Get(w.srv.URL + path)
	return w.read(res, err)
}

func (w *webEnv) post(path string, form url.Values) response {
	w.t.Helper()
	res, err := w.browser.PostForm(w.srv.URL+path, form)
	return w.read(res, err)
}

func (w *webEnv) read(res *http.Response, err error) response {
	w.t.Helper()
	if err != nil {
		w.t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		w.t.Fatal(err)
	}
	return response{status: res.StatusCode, header: res.Header, body: b}
}

// TestWebFormShowsTheAPIMessages submits the same values to the API (as JSON
// strings) and through the web views' create form: the page shows exactly
// the API's 422 messages, each next to its field, also under an operator's
// own rules.
func TestWebFormShowsTheAPIMessages(t *testing.T) {
	t.Parallel()
	cases := []map[string]string{
		{},
		{"dst_address": "169.254.169.254", "dst_port": "22", "allow_from": "81.2.69.0/24", "expire_after_minutes": "60"},
		{"dst_address": "192.168.88.43", "dst_port": "70000", "allow_from": "198.51.100.0/24", "expire_after_minutes": "5"},
		{"dst_address": "192.168.088.43", "dst_port": "ssh", "allow_from": "81.2.69.0/16", "expire_after_minutes": "1441"},
		{"dst_address": "127.0.0.1", "dst_port": "0", "allow_from": "10.0.0.1", "expire_after_minutes": "two hours"},
		{"dst_address": "::1", "dst_port": "22", "allow_from": "not an address", "expire_after_minutes": "120"},
		{"dst_address": "192.168.88.43", "dst_port": "22", "allow_from": "10.0.0.1", "expire_after_minutes": "45"},
	}
	configs := map[string]api.Config{
		"defaults":       {},
		"operator rules": {MinExpireMinutes: 30, MaxExpireMinutes: 60, AllowSources: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}},
	}
	for name, cfg := range configs {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			w := newWebEnv(t, cfg)
			refused := 0
			for _, values := range cases {
				res := w.do("POST", w.forwardsPath(w.router), w.token, values)
				if res.status != http.StatusUnprocessableEntity {
					continue // accepted under these rules: nothing to compare
				}
				refused++
				want := decode[apijson.ValidationError](t, res.body)
				form := url.Values{"csrf": {w.csrf}}
				for k, v := range values {
					form.Set(k, v)
				}
				page := w.post("/routers/"+w.router.String()+"/forwards", form)
				if page.status != http.StatusUnprocessableEntity {
					t.Fatalf("%v: the form got %d, want 422 like the API", values, page.status)
				}
				body := string(page.body)
				for _, f := range want.Errors {
					at := strings.Index(body, `id="`+f.Field+`"`)
					if at < 0 {
						t.Fatalf("%v: the form has no input for %s", values, f.Field)
					}
					section := body[at:]
					if end := strings.Index(section[1:], `<div class="field`); end >= 0 {
						section = section[:end+1]
					}
					for _, m := range f.Messages {
						if !strings.Contains(section, `<p class="field-error">`+templateEscape(m)+`</p>`) {
							t.Errorf("%v: the form's field %s lacks the API's message %q", values, f.Field, m)
						}
					}
				}
				if got := strings.Count(body, `<p class="field-error">`); got != messageCount(want) {
					t.Errorf("%v: the form shows %d messages, the API %d", values, got, messageCount(want))
				}
			}
			if refused < len(cases)-1 {
				t.Errorf("the API refused %d of %d cases; want all but at most one", refused, len(cases))
			}
		})
	}
}

func messageCount(v apijson.ValidationError) int {
	n := 0
	for _, f := range v.Errors {
		n += len(f.Messages)
	}
	return n
}

// templateEscape escapes s as html/template does in text.
func templateEscape(s string) string {
	return strings.NewReplacer("<", "&lt;", ">", "&gt;", "&", "&amp;", "'", "&#39;", `"`, "&#34;", "+", "&#43;").Replace(s)
}

// TestWebBehindTheAPI: the API serves the web views on every path outside
// /api/, keeps its JSON 404 inside, and revoking a token through the API
// ends its web sessions at once.
func TestWebBehindTheAPI(t *testing.T) {
	t.Parallel()
	w := newWebEnv(t, api.Config{})

	if res := w.get("/routers/" + w.router.String()); res.status != http.StatusOK || !strings.Contains(string(res.body), `name="csrf"`) {
		t.Errorf("GET the router page: got %d, want 200 with the create form", res.status)
	}
	res := w.get("/api/nowhere")
	if res.status != http.StatusNotFound || strings.TrimSpace(string(res.body)) != `{"message":"Not found."}` {
		t.Errorf("GET /api/nowhere: got %d %q, want the JSON 404", res.status, res.body)
	}

	tokens := decode[[]apijson.Token](t, w.do("GET", "/api/tokens", w.token, nil).body)
	if len(tokens) != 1 {
		t.Fatalf("tokens: got %d, want 1", len(tokens))
	}
	if res := w.do("DELETE", "/api/tokens/"+tokens[0].ID, w.token, nil); res.status != http.StatusNoContent {
		t.Fatalf("revoke the token: got %d %s, want 204", res.status, res.body)
	}
	if res := w.get("/"); res.status != http.StatusSeeOther {
		t.Errorf("the web views after revoking the token: got %d, want 303 to sign in", res.status)
	}
	var msg apijson.Message
	if err := json.Unmarshal(w.do("GET", "/api/tokens", w.token, nil).body, &msg); err != nil || msg.Message != "Unauthenticated." {
		t.Errorf("the API after revoking the token: got %q, %v, want Unauthenticated.", msg.Message, err)
	}
}
