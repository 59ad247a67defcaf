package api

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"fmt"
	"net/http"
)

// openAPIDocument is the OpenAPI 3.1 description of everything routes.go
// serves but the web views, written by hand. openapi_test.go checks that it
// lists exactly the routes of routes.go and validates real answers against
// it, so a change to the API that it does not describe fails the tests.
//
//go:embed openapi.json
var openAPIDocument []byte

// handleOpenAPI serves the document, with this server's bounds of
// expire_after_minutes (TPF_MIN_EXPIRE_MINUTES, TPF_MAX_EXPIRE_MINUTES)
// filled in. It needs no token.
func (s *server) handleOpenAPI() http.Handler {
	doc, err := openAPIFor(s.cfg)
	if err != nil {
		panic(err) // the embedded document is broken; the tests catch it
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(doc)
	})
}

// openAPIFor returns the document for cfg.
func openAPIFor(cfg Config) ([]byte, error) {
	var doc map[string]any
	dec := json.NewDecoder(bytes.NewReader(openAPIDocument))
	dec.UseNumber()
	if err := dec.Decode(&doc); err != nil {
		return nil, fmt.Errorf("openapi.json: %w", err)
	}
	minutes, ok := lookup(doc, "components", "schemas", "ExpireAfterMinutes", "oneOf", 0).(map[string]any)
	if !ok {
		return nil, fmt.Errorf("openapi.json: no components.schemas.ExpireAfterMinutes.oneOf[0]")
	}
	minutes["minimum"], minutes["maximum"] = cfg.MinExpireMinutes, cfg.MaxExpireMinutes
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(doc); err != nil {
		return nil, fmt.Errorf("openapi.json: %w", err)
	}
	return buf.Bytes(), nil
}

// lookup walks a decoded JSON value by object keys and array indexes; nil
// when the path does not exist.
func lookup(v any, path ...any) any {
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, _ := v.(map[string]any)
			v = m[k]
		case int:
			a, _ := v.([]any)
			if k >= len(a) {
				return nil
			}
			v = a[k]
		}
	}
	return v
}
