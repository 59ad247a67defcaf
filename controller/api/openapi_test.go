package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"go/ast"
	"go/parser"
	"go/printer"
	"go/token"
	"io"
	"mime"
	"net/http"
	"net/netip"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/google/uuid"
	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/tpf-dev/tpf/controller/api"
	"github.com/tpf-dev/tpf/controller/apijson"
	"github.com/tpf-dev/tpf/controller/fleet"
	"github.com/tpf-dev/tpf/controller/forwards"
	"github.com/tpf-dev/tpf/controller/hub"
	"github.com/tpf-dev/tpf/shared/syncproto"
)

// The OpenAPI document (openapi.json) must describe exactly what the API
// serves. Two tests hold it to that:
//
//   - TestOpenAPIListsEveryRoute reads routes.go and checks that every route
//     registered there is in the document, and every operation of the
//     document is registered there;
//   - TestOpenAPIDescribesRealAnswers stands the API up over PostgreSQL,
//     provokes every answer the document lists (but 500) on every operation,
//     and validates each real answer — status, content type, required
//     headers, body — against the document's schema for it.

// docURL is where the document is registered in the schema compiler.
const docURL = "https://tpf.invalid/openapi.json"

// registration is one mux.Handle call of routes.go.
type registration struct {
	method, path string
	// allow lists the methods of a path's 405 handler (methodNotAllowed).
	allow []string
}

// registrations reads routes.go. Routes that are no part of the JSON API
// are left out: the web views (Config.Web) and the catch-all 404s.
func registrations(t *testing.T) []registration {
	t.Helper()
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, "routes.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	known := map[string]string{ // selector expressions routes.go uses
		"syncproto.AgentPath": syncproto.AgentPath,
		"syncproto.EdgePath":  syncproto.EdgePath,
	}
	consts := map[string]string{}
	text := func(n ast.Node) string {
		var b bytes.Buffer
		printer.Fprint(&b, fset, n)
		return b.String()
	}
	var eval func(ast.Expr) string
	eval = func(x ast.Expr) string {
		switch x := x.(type) {
		case *ast.BasicLit:
			if s, err := strconv.Unquote(x.Value); err == nil {
				return s
			}
		case *ast.Ident:
			if s, ok := consts[x.Name]; ok {
				return s
			}
		case *ast.BinaryExpr:
			if x.Op == token.ADD {
				return eval(x.X) + eval(x.Y)
			}
		case *ast.SelectorExpr:
			if s, ok := known[text(x)]; ok {
				return s
			}
		case *ast.ParenExpr:
			return eval(x.X)
		}
		t.Fatalf("routes.go: cannot read %s at %s; teach registrations in openapi_test.go", text(x), fset.Position(x.Pos()))
		return ""
	}
	var out []registration
	ast.Inspect(f, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.ValueSpec:
			for i, name := range n.Names {
				if i < len(n.Values) {
					consts[name.Name] = eval(n.Values[i])
				}
			}
		case *ast.CallExpr:
			sel, ok := n.Fun.(*ast.SelectorExpr)
			if !ok || text(sel.X) != "mux" || (sel.Sel.Name != "Handle" && sel.Sel.Name != "HandleFunc") {
				return true
			}
			handler := text(n.Args[1])
			if strings.Contains(handler, "Web") || strings.HasPrefix(handler, "notFound(") {
				return true
			}
			pattern := eval(n.Args[0])
			r := registration{path: pattern}
			if m, p, ok := strings.Cut(pattern, " "); ok {
				r.method, r.path = m, p
			}
			if call, ok := n.Args[1].(*ast.CallExpr); ok && text(call.Fun) == "methodNotAllowed" {
				for _, m := range strings.Split(eval(call.Args[0]), ",") {
					r.allow = append(r.allow, strings.TrimSpace(m))
				}
			}
			if r.method == "" && r.allow == nil {
				t.Errorf("routes.go: %q serves every method; the document cannot describe that", pattern)
			}
			out = append(out, r)
		}
		return true
	})
	if len(out) < 10 {
		t.Fatalf("routes.go: found only %d routes: %+v", len(out), out)
	}
	return out
}

// methods are the operations an OpenAPI path item may hold.
var methods = []string{"get", "put", "post", "delete", "options", "head", "patch", "trace"}

func TestOpenAPIListsEveryRoute(t *testing.T) {
	t.Parallel()
	doc := embeddedDoc(t)
	paths := doc["paths"].(map[string]any)
	registered := map[string]bool{}
	for _, r := range registrations(t) {
		item, ok := paths[r.path].(map[string]any)
		if !ok {
			t.Errorf("routes.go serves %s, which openapi.json lacks", r.path)
			continue
		}
		if r.method != "" {
			registered[r.method+" "+r.path] = true
			if item[strings.ToLower(r.method)] == nil {
				t.Errorf("routes.go serves %s %s, which openapi.json lacks", r.method, r.path)
			}
			continue
		}
		var documented []string
		for _, m := range methods {
			if item[m] != nil {
				documented = append(documented, strings.ToUpper(m))
			}
		}
		if !slices.Equal(sorted(r.allow), sorted(documented)) {
			t.Errorf("%s: routes.go allows %v, openapi.json documents %v", r.path, r.allow, documented)
		}
	}
	ids := map[string]bool{}
	for path, v := range paths {
		item := v.(map[string]any)
		for _, m := range methods {
			op, ok := item[m].(map[string]any)
			if !ok {
				continue
			}
			if !registered[strings.ToUpper(m)+" "+path] {
				t.Errorf("openapi.json documents %s %s, which routes.go does not serve", strings.ToUpper(m), path)
			}
			id, _ := op["operationId"].(string)
			if id == "" || ids[id] {
				t.Errorf("%s %s: operationId %q is missing or not unique", m, path, id)
			}
			ids[id] = true
			// Path parameters: exactly the template's.
			var want, got []string
			for _, seg := range strings.Split(path, "/") {
				if strings.HasPrefix(seg, "{") {
					want = append(want, strings.Trim(seg, "{}"))
				}
			}
			for _, params := range []any{item["parameters"], op["parameters"]} {
				list, _ := params.([]any)
				for _, p := range list {
					p := resolve(doc, p.(map[string]any))
					if p["in"] == "path" {
						got = append(got, p["name"].(string))
						if p["required"] != true {
							t.Errorf("%s %s: path parameter %s is not required", m, path, p["name"])
						}
					}
				}
			}
			if !slices.Equal(sorted(want), sorted(got)) {
				t.Errorf("%s %s: path parameters %v, want %v", m, path, got, want)
			}
		}
	}
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	sort.Strings(s)
	return s
}

// embeddedDoc is openapi.json as the API serves it with default settings.
func embeddedDoc(t *testing.T) map[string]any {
	t.Helper()
	e := newEnv(t, api.Config{})
	res := e.do("GET", "/api/openapi.json", "", nil)
	if res.status != http.StatusOK {
		t.Fatalf("GET /api/openapi.json: got %d, want 200", res.status)
	}
	return decode[map[string]any](t, res.body)
}

// resolve follows a local $ref ("#/components/…").
func resolve(doc map[string]any, v map[string]any) map[string]any {
	for {
		ref, ok := v["$ref"].(string)
		if !ok {
			return v
		}
		var cur any = doc
		for _, part := range strings.Split(strings.TrimPrefix(ref, "#/"), "/") {
			cur = cur.(map[string]any)[unescapePointer(part)]
		}
		v = cur.(map[string]any)
	}
}

func escapePointer(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "~", "~0"), "/", "~1")
}

func unescapePointer(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "~1", "/"), "~0", "~")
}

func TestOpenAPIFollowsSettings(t *testing.T) {
	t.Parallel()
	e := newEnv(t, api.Config{MinExpireMinutes: 5, MaxExpireMinutes: 60})
	doc := decode[map[string]any](t, e.do("GET", "/api/openapi.json", "", nil).body)
	minutes := doc["components"].(map[string]any)["schemas"].(map[string]any)["ExpireAfterMinutes"].(map[string]any)["oneOf"].([]any)[0].(map[string]any)
	if minutes["minimum"] != 5.0 || minutes["maximum"] != 60.0 {
		t.Errorf("expire_after_minutes bounds: got %v..%v, want 5..60", minutes["minimum"], minutes["maximum"])
	}
}

// docCheck validates real answers against the document and remembers which
// of its answers it has seen.
type docCheck struct {
	t       *testing.T
	doc     map[string]any
	c       *jsonschema.Compiler
	schemas map[string]*jsonschema.Schema
	seen    map[string]bool // "GET /api/routers 200"
}

func newDocCheck(t *testing.T, raw []byte) *docCheck {
	t.Helper()
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020) // OpenAPI 3.1's schemas are JSON Schema 2020-12
	c.AssertFormat()
	if err := c.AddResource(docURL, inst); err != nil {
		t.Fatal(err)
	}
	d := &docCheck{t: t, doc: decode[map[string]any](t, raw), c: c, schemas: map[string]*jsonschema.Schema{}, seen: map[string]bool{}}
	// Every component schema compiles (and so every $ref in them resolves).
	for name := range d.doc["components"].(map[string]any)["schemas"].(map[string]any) {
		d.schema("#/components/schemas/" + name)
	}
	return d
}

func (d *docCheck) schema(pointer string) *jsonschema.Schema {
	d.t.Helper()
	if s, ok := d.schemas[pointer]; ok {
		return s
	}
	s, err := d.c.Compile(docURL + pointer)
	if err != nil {
		d.t.Fatalf("compile %s: %v", pointer, err)
	}
	d.schemas[pointer] = s
	return s
}

// template finds the document's path for a request path.
func (d *docCheck) template(path string) string {
	segs := strings.Split(path, "/")
	best, bestLiterals := "", -1
	for tpl := range d.doc["paths"].(map[string]any) {
		tsegs := strings.Split(tpl, "/")
		if len(tsegs) != len(segs) {
			continue
		}
		literals := 0
		for i, s := range tsegs {
			if s == segs[i] {
				literals++
			} else if !strings.HasPrefix(s, "{") {
				literals = -1
				break
			}
		}
		if literals > bestLiterals {
			best, bestLiterals = tpl, literals
		}
	}
	return best
}

// operation is the document's operation for a request, with its pointer.
func (d *docCheck) operation(method, path string) (string, map[string]any, string) {
	d.t.Helper()
	tpl := d.template(path)
	if tpl == "" {
		d.t.Fatalf("%s %s: no path of the document matches", method, path)
	}
	op, ok := d.doc["paths"].(map[string]any)[tpl].(map[string]any)[strings.ToLower(method)].(map[string]any)
	if !ok {
		d.t.Fatalf("%s %s: the document has no %s operation on %s", method, path, method, tpl)
	}
	return tpl, op, "#/paths/" + escapePointer(tpl) + "/" + strings.ToLower(method)
}

// check validates one real answer.
func (d *docCheck) check(method, target string, status int, header http.Header, body []byte) {
	d.t.Helper()
	path, _, _ := strings.Cut(target, "?")
	tpl, op, ptr := d.operation(method, path)
	code := strconv.Itoa(status)
	resp, ok := op["responses"].(map[string]any)[code].(map[string]any)
	if !ok {
		d.t.Errorf("%s %s answered %d %s, which the document does not list for %s %s", method, target, status, body, method, tpl)
		return
	}
	d.seen[method+" "+tpl+" "+code] = true
	ptr += "/responses/" + code
	if ref, ok := resp["$ref"].(string); ok {
		ptr = strings.TrimPrefix(ref, "#")
		ptr = "#" + ptr
		resp = resolve(d.doc, resp)
	}
	headers, _ := resp["headers"].(map[string]any)
	for name, h := range headers {
		if resolve(d.doc, h.(map[string]any))["required"] == true && header.Get(name) == "" {
			d.t.Errorf("%s %s → %d: header %s missing", method, target, status, name)
		}
	}
	content, ok := resp["content"].(map[string]any)
	if !ok {
		if len(body) != 0 {
			d.t.Errorf("%s %s → %d: the document says no body, got %s", method, target, status, body)
		}
		return
	}
	mt, _, err := mime.ParseMediaType(header.Get("Content-Type"))
	if err != nil || content[mt] == nil {
		d.t.Errorf("%s %s → %d: content type %q is not the document's (%v)", method, target, status, header.Get("Content-Type"), keys(content))
		return
	}
	var inst any = string(body)
	if mt == "application/json" {
		if inst, err = jsonschema.UnmarshalJSON(bytes.NewReader(body)); err != nil {
			d.t.Errorf("%s %s → %d: body is not JSON: %v\n%s", method, target, status, err, body)
			return
		}
	}
	if err := d.schema(ptr + "/content/" + escapePointer(mt) + "/schema").Validate(inst); err != nil {
		d.t.Errorf("%s %s → %d: the body does not match the document:\n%s\n%v", method, target, status, body, err)
	}
}

// checkRequest validates a request body the API accepted against the
// operation's requestBody schema.
func (d *docCheck) checkRequest(method, path string, body any) {
	d.t.Helper()
	_, _, ptr := d.operation(method, path)
	b, err := json.Marshal(body)
	if err != nil {
		d.t.Fatal(err)
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	if err != nil {
		d.t.Fatal(err)
	}
	if err := d.schema(ptr + "/requestBody/content/application~1json/schema").Validate(inst); err != nil {
		d.t.Errorf("%s %s: the API accepted %s, which the document's request schema refuses:\n%v", method, path, b, err)
	}
}

func keys(m map[string]any) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return sorted(out)
}

// send is env.do with extra headers, checked against the document.
func (d *docCheck) send(e *env, method, target, token string, body any, hdr http.Header) response {
	d.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			d.t.Fatal(err)
		}
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, e.srv.URL+target, rd)
	if err != nil {
		d.t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := e.srv.Client().Do(req)
	if err != nil {
		d.t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		d.t.Fatal(err)
	}
	d.check(method, target, res.StatusCode, res.Header, b)
	return response{status: res.StatusCode, header: res.Header, body: b}
}

// want is send, expecting a status.
func (d *docCheck) want(status int, e *env, method, target, token string, body any) response {
	d.t.Helper()
	res := d.send(e, method, target, token, body, nil)
	if res.status != status {
		d.t.Errorf("%s %s: got %d %s, want %d", method, target, res.status, res.body, status)
	}
	return res
}

// dial opens a websocket to path and checks the handshake's answer.
func (d *docCheck) dial(e *env, path, token string) *websocket.Conn {
	d.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ws, res, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(e.srv.URL, "http")+path,
		&websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {"Bearer " + token}}})
	if err != nil {
		d.t.Fatalf("dial %s: %v", path, err)
	}
	d.t.Cleanup(func() { ws.CloseNow() })
	d.check("GET", path, res.StatusCode, res.Header, nil)
	return ws
}

// operations lists the document's operations as method and path template.
func (d *docCheck) operations() [][2]string {
	var out [][2]string
	for path, item := range d.doc["paths"].(map[string]any) {
		for _, m := range methods {
			if item.(map[string]any)[m] != nil {
				out = append(out, [2]string{strings.ToUpper(m), path})
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i][1]+out[i][0] < out[j][1]+out[j][0] })
	return out
}

// lists reports whether the document lists status for the operation.
func (d *docCheck) lists(method, path string, status int) bool {
	op := d.doc["paths"].(map[string]any)[path].(map[string]any)[strings.ToLower(method)].(map[string]any)
	return op["responses"].(map[string]any)[strconv.Itoa(status)] != nil
}

// usesSecurity reports whether the operation takes a bearer token.
func (d *docCheck) usesSecurity(method, path string) bool {
	op := d.doc["paths"].(map[string]any)[path].(map[string]any)[strings.ToLower(method)].(map[string]any)
	sec, ok := op["security"].([]any)
	if !ok {
		return true // the document's default: the API token
	}
	for _, s := range sec {
		if len(s.(map[string]any)) > 0 {
			return true
		}
	}
	return false
}

// fill puts ids into a path template.
func fill(tpl string, ids map[string]string) string {
	for k, v := range ids {
		tpl = strings.ReplaceAll(tpl, "{"+k+"}", v)
	}
	return tpl
}

func TestOpenAPIDescribesRealAnswers(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	var h *hub.Hub // set once the env's store exists
	e := newMetricsEnv(t, api.Config{PublicURL: "https://tpf.example.net",
		Agents: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { h.ServeHTTP(w, r) }),
		Edges:  http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { h.Edges().ServeHTTP(w, r) }),
	})
	h = hub.New(forwards.New(e.store), hub.Config{})
	h.Start(ctx)
	t.Cleanup(h.Stop)

	res := e.do("GET", "/api/openapi.json", "", nil)
	d := newDocCheck(t, res.body)
	d.check("GET", "/api/openapi.json", res.status, res.header, res.body)

	// Operations.
	d.want(200, e, "GET", "/healthz", "", nil)
	d.want(200, e, "GET", "/readyz", "", nil)
	d.want(200, e, "GET", "/metrics", "", nil)

	// Routers.
	routerBody := map[string]any{"name": "r2", "region": e.region.ID, "tunnel_address": "10.99.0.7"}
	d.checkRequest("POST", "/api/routers", routerBody)
	r2 := decode[apijson.Router](t, d.want(201, e, "POST", "/api/routers", e.token, routerBody).body)
	d.want(422, e, "POST", "/api/routers", e.token, map[string]any{"name": "", "tunnel_address": "::1"})
	d.want(400, e, "POST", "/api/routers", e.token, "[1, 2]")
	d.want(413, e, "POST", "/api/routers", e.token, `{"name": "`+strings.Repeat("x", 70<<10)+`"}`)
	d.want(200, e, "GET", "/api/routers", e.token, nil)
	router := "/api/routers/" + e.router.String()
	d.want(200, e, "GET", router, e.token, nil)
	d.want(404, e, "GET", "/api/routers/not-a-uuid", e.token, nil)

	// Forwards.
	forwards := e.forwardsPath(e.router)
	d.checkRequest("POST", forwards, seedRequest())
	f1 := decode[apijson.Forward](t, d.want(201, e, "POST", forwards, e.token, seedRequest()).body)
	digits := map[string]any{"expire_after_minutes": "60", "dst_port": "8080", "dst_address": "10.1.2.3", "allow_from": "81.2.69.7", "masquerade": true, "note": "ignored"}
	d.checkRequest("POST", forwards, digits)
	f2 := decode[apijson.Forward](t, d.want(201, e, "POST", forwards, e.token, digits).body)
	d.want(422, e, "POST", forwards, e.token, map[string]any{"expire_after_minutes": 5, "dst_address": "169.254.169.254"})
	d.want(400, e, "POST", forwards, e.token, "not json")
	d.want(413, e, "POST", forwards, e.token, strings.Repeat(" ", 65<<10)+"{}")
	d.want(200, e, "GET", forwards, e.token, nil)
	d.want(200, e, "GET", forwards+"?state=active", e.token, nil)
	d.want(422, e, "GET", forwards+"?state=bogus&limit=0", e.token, nil)
	d.want(200, e, "GET", forwards+"/"+f1.ID, e.token, nil)
	d.want(204, e, "DELETE", forwards+"/"+f1.ID, e.token, nil)
	d.want(204, e, "DELETE", forwards+"/"+f1.ID, e.token, nil) // harmless again
	if f := decode[map[string]any](t, d.want(200, e, "GET", forwards+"/"+f1.ID, e.token, nil).body); f["revoked_at"] == nil {
		t.Errorf("revoked forward: got %v, want revoked_at set", f)
	}
	d.want(200, e, "GET", forwards+"?state=all&limit=5", e.token, nil)
	d.want(200, e, "GET", forwards+"?state=ended", e.token, nil)
	d.want(404, e, "GET", forwards+"/"+uuid.NewString(), e.token, nil)

	// A forward the router refused, with connections through the edge.
	if _, err := e.svc().ApplyReport(ctx, e.router, syncproto.Report{Revision: 1, Results: []syncproto.Result{{ID: f2.ID, State: syncproto.StateRefused, Error: "loopback"}}}, seedNow); err != nil {
		t.Fatal(err)
	}
	start := seedNow.Add(time.Minute)
	src := netip.MustParseAddrPort("81.2.69.7:51515")
	if err := e.svc().RecordConnections(ctx, e.region.ID, []syncproto.Connection{
		{ID: uuid.NewString(), ForwardID: f2.ID, Source: src, Start: start},
		{ID: uuid.NewString(), ForwardID: f2.ID, Source: src, Start: start, End: start.Add(time.Minute), BytesUp: 10, BytesDown: 20, Reason: "client closed"},
	}); err != nil {
		t.Fatal(err)
	}
	if f := decode[map[string]any](t, d.want(200, e, "GET", forwards+"/"+f2.ID, e.token, nil).body); f["router_error"] == nil || f["connections_active"] != 1.0 {
		t.Errorf("refused forward: got %v, want router_error and one active connection", f)
	}
	if cs := decode[[]map[string]any](t, d.want(200, e, "GET", forwards+"/"+f2.ID+"/connections", e.token, nil).body); len(cs) != 2 {
		t.Errorf("connections: got %d, want 2", len(cs))
	}
	d.want(422, e, "GET", forwards+"/"+f2.ID+"/connections?limit=1001", e.token, nil)
	d.want(404, e, "GET", forwards+"/"+uuid.NewString()+"/connections", e.token, nil)

	// Transient access.
	accesses := e.accessesPath(e.router)
	d.checkRequest("POST", accesses, accessRequest())
	a1 := decode[apijson.Access](t, d.want(201, e, "POST", accesses, e.token, accessRequest()).body)
	winbox := map[string]any{"type": "winbox", "expire_after_minutes": "30", "allow_from": "81.2.69.7", "read_only": true, "note": "ignored"}
	d.checkRequest("POST", accesses, winbox)
	a2 := decode[apijson.Access](t, d.want(201, e, "POST", accesses, e.token, winbox).body)
	d.want(422, e, "POST", accesses, e.token, map[string]any{"type": "telnet", "expire_after_minutes": 5})
	d.want(400, e, "POST", accesses, e.token, "[]")
	d.want(413, e, "POST", accesses, e.token, strings.Repeat(" ", 65<<10)+"{}")
	d.want(200, e, "GET", accesses, e.token, nil)
	d.want(200, e, "GET", accesses+"?state=live", e.token, nil)
	d.want(422, e, "GET", accesses+"?state=ended", e.token, nil)
	d.want(200, e, "GET", accesses+"/"+a1.ID, e.token, nil)
	d.want(204, e, "DELETE", accesses+"/"+a1.ID, e.token, nil)
	d.want(204, e, "DELETE", accesses+"/"+a1.ID, e.token, nil) // harmless again
	d.want(200, e, "GET", accesses+"?state=all&limit=5", e.token, nil)
	d.want(404, e, "GET", accesses+"/"+f2.ID, e.token, nil) // a forward is no access
	d.want(404, e, "GET", forwards+"/"+a2.ID, e.token, nil) // nor the other way round
	if err := e.svc().RecordConnections(ctx, e.region.ID, []syncproto.Connection{
		{ID: uuid.NewString(), ForwardID: a2.ID, Source: src, Start: start},
	}); err != nil {
		t.Fatal(err)
	}
	if cs := decode[[]map[string]any](t, d.want(200, e, "GET", accesses+"/"+a2.ID+"/connections", e.token, nil).body); len(cs) != 1 {
		t.Errorf("access connections: got %d, want 1", len(cs))
	}
	d.want(422, e, "GET", accesses+"/"+a2.ID+"/connections?limit=0", e.token, nil)
	d.want(404, e, "GET", accesses+"/"+f2.ID+"/connections", e.token, nil)

	// Regions, without and with an edge.
	d.want(200, e, "GET", "/api/regions", e.token, nil)
	edgeToken, err := e.svc().IssueEdgeToken(ctx, e.region.ID)
	if err != nil {
		t.Fatal(err)
	}
	d.want(200, e, "GET", "/api/regions", e.token, nil)

	// Audit log.
	events := decode[[]apijson.AuditEvent](t, d.want(200, e, "GET", "/api/audit-log", e.token, nil).body)
	if len(events) < 3 {
		t.Fatalf("audit events: got %d, want at least 3", len(events))
	}
	d.want(200, e, "GET", "/api/audit-log?limit=1&before="+strconv.FormatInt(events[0].ID, 10), e.token, nil)
	d.want(422, e, "GET", "/api/audit-log?before=first", e.token, nil)

	// Agent token and install script.
	d.want(201, e, "POST", router+"/agent-token", e.token, nil)
	d.want(200, e, "POST", router+"/install-script?arch=arm64&disk=usb1", e.token, nil)
	d.want(422, e, "POST", router+"/install-script?host=nowhere", e.token, nil)

	// API tokens: issue, list, revoke (twice), and a token revoking itself.
	tokenBody := map[string]any{"name": "ci"}
	d.checkRequest("POST", "/api/tokens", tokenBody)
	ci := decode[apijson.CreatedToken](t, d.want(201, e, "POST", "/api/tokens", e.token, tokenBody).body)
	d.want(422, e, "POST", "/api/tokens", e.token, map[string]any{"name": strings.Repeat("x", 65)})
	d.want(400, e, "POST", "/api/tokens", e.token, "[]")
	d.want(413, e, "POST", "/api/tokens", e.token, `{"name": "`+strings.Repeat("x", 70<<10)+`"}`)
	d.want(200, e, "GET", "/api/tokens", e.token, nil)
	d.want(204, e, "DELETE", "/api/tokens/"+ci.ID, e.token, nil)
	d.want(204, e, "DELETE", "/api/tokens/"+ci.ID, e.token, nil) // harmless again
	d.want(404, e, "DELETE", "/api/tokens/"+uuid.NewString(), e.token, nil)
	d.want(404, e, "DELETE", "/api/tokens/not-a-uuid", e.token, nil)
	self := decode[apijson.CreatedToken](t, d.want(201, e, "POST", "/api/tokens", e.token, map[string]any{"name": "self"}).body)
	d.want(204, e, "DELETE", "/api/tokens/"+self.ID, self.Token, nil)
	d.want(401, e, "GET", "/api/tokens", self.Token, nil)

	// The peers' websockets: a real agent and edge, then refused handshakes.
	d.dial(e, syncproto.AgentPath, r2.AgentToken)
	d.dial(e, syncproto.EdgePath, edgeToken)
	waitUntil(t, "the agent's connection to be recorded", func() bool {
		rt := decode[map[string]any](t, e.do("GET", "/api/routers/"+r2.ID, e.token, nil).body)
		return rt["agent"].(map[string]any)["connected_at"] != nil
	})
	d.want(200, e, "GET", "/api/routers/"+r2.ID, e.token, nil)
	waitUntil(t, "the edge's connection to be recorded", func() bool {
		rs := decode[[]map[string]any](t, e.do("GET", "/api/regions", e.token, nil).body)
		edge, _ := rs[0]["edge"].(map[string]any)
		return edge != nil && edge["last_seen_at"] != nil
	})
	d.want(200, e, "GET", "/api/regions", e.token, nil)
	for path, tok := range map[string]string{syncproto.AgentPath: r2.AgentToken, syncproto.EdgePath: edgeToken} {
		d.send(e, "GET", path, tok, nil, nil) // 426: not an upgrade
		d.send(e, "GET", path, tok, nil, http.Header{"Connection": {"Upgrade"}, "Upgrade": {"websocket"}, "Sec-Websocket-Version": {"12"}})
	}
	d.want(204, e, "DELETE", "/api/routers/"+r2.ID, e.token, nil)

	// A region whose single port is taken: 503.
	e.addRegion("tiny", "tiny.example.net", 50000, 50000)
	tiny := decode[apijson.Router](t, d.want(201, e, "POST", "/api/routers", e.token, map[string]any{"name": "tiny-r", "region": "tiny", "tunnel_address": "10.99.0.9"}).body)
	d.want(201, e, "POST", "/api/routers/"+tiny.ID+"/transient-forwarding", e.token, seedRequest())
	d.want(503, e, "POST", "/api/routers/"+tiny.ID+"/transient-forwarding", e.token, seedRequest())
	d.want(503, e, "POST", "/api/routers/"+tiny.ID+"/transient-access", e.token, accessRequest())

	// Every operation: 401 with a wrong token, 404 for an unknown router.
	ids := map[string]string{"router_id": e.router.String(), "id": f2.ID}
	for _, op := range d.operations() {
		method, tpl := op[0], op[1]
		var body any
		if method == "POST" {
			body = seedRequest()
		}
		if d.usesSecurity(method, tpl) && tpl != "/metrics" {
			d.want(401, e, method, fill(tpl, ids), "tpf_wrong", body)
		}
		if strings.Contains(tpl, "{router_id}") {
			d.want(404, e, method, fill(tpl, map[string]string{"router_id": uuid.NewString(), "id": f2.ID}), e.token, body)
		}
	}

	// /readyz with a schema behind the code.
	if _, err := e.store.Pool().Exec(ctx, "delete from schema_migrations where version = '0003_edges'"); err != nil {
		t.Fatal(err)
	}
	d.want(503, e, "GET", "/readyz", "", nil)

	// /metrics with TPF_METRICS_TOKEN.
	secured := newMetricsEnv(t, api.Config{MetricsToken: "scrape"})
	d.want(401, secured, "GET", "/metrics", "", nil)
	d.want(200, secured, "GET", "/metrics", "scrape", nil)

	// Rate limiting: one request a minute, then 429 on every operation
	// that has it.
	limited := newEnv(t, api.Config{RateLimitPerMinute: 1})
	d.want(200, limited, "GET", "/api/routers", limited.token, nil)
	lids := map[string]string{"router_id": limited.router.String(), "id": uuid.NewString()}
	for _, op := range d.operations() {
		if d.lists(op[0], op[1], 429) {
			d.want(429, limited, op[0], fill(op[1], lids), limited.token, nil)
		}
	}

	// Every answer the document lists was seen, but 500 (a failure inside).
	for _, op := range d.operations() {
		item := d.doc["paths"].(map[string]any)[op[1]].(map[string]any)[strings.ToLower(op[0])].(map[string]any)
		for code := range item["responses"].(map[string]any) {
			if code != "500" && !d.seen[op[0]+" "+op[1]+" "+code] {
				t.Errorf("%s %s → %s: the document lists it, the test never saw it", op[0], op[1], code)
			}
		}
	}
	if t.Failed() {
		return
	}
	t.Logf("%d operations, %d documented answers seen and validated", len(d.operations()), len(d.seen))
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestOpenAPIEnumsMatchFleet ties the document's enumerations to the
// controller's vocabulary.
func TestOpenAPIEnumsMatchFleet(t *testing.T) {
	t.Parallel()
	schemas := embeddedDoc(t)["components"].(map[string]any)["schemas"].(map[string]any)
	enum := func(schema, prop string) []string {
		var out []string
		for _, v := range schemas[schema].(map[string]any)["properties"].(map[string]any)[prop].(map[string]any)["enum"].([]any) {
			out = append(out, v.(string))
		}
		return sorted(out)
	}
	statuses := sorted([]string{string(fleet.StatusPending), string(fleet.StatusActive), string(fleet.StatusRemoving), string(fleet.StatusRemoved)})
	if got := enum("Forward", "status"); !slices.Equal(got, statuses) {
		t.Errorf("Forward.status: got %v, want %v", got, statuses)
	}
	if got := enum("Access", "status"); !slices.Equal(got, statuses) {
		t.Errorf("Access.status: got %v, want %v", got, statuses)
	}
	if got := enum("Access", "type"); !slices.Equal(got, sorted(fleet.Services)) {
		t.Errorf("Access.type: got %v, want %v", got, sorted(fleet.Services))
	}
	actions := sorted([]string{fleet.ActionForwardCreate, fleet.ActionForwardRevoke, fleet.ActionForwardExpire,
		fleet.ActionAccessCreate, fleet.ActionAccessRevoke, fleet.ActionAccessExpire,
		fleet.ActionRouterCreate, fleet.ActionRouterDelete, fleet.ActionAgentTokenRotate,
		fleet.ActionTokenCreate, fleet.ActionTokenRevoke})
	if got := enum("AuditEvent", "action"); !slices.Equal(got, actions) {
		t.Errorf("AuditEvent.action: got %v, want %v", got, actions)
	}
}
