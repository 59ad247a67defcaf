package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/tpf-dev/tpf/controller/fleet"
)

// message is the body of every error answer: {"message": "..."}.
type message struct {
	Message string `json:"message"`
}

// writeJSON encodes v as the response body with status code.
func writeJSON(w http.ResponseWriter, code int, v any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		http.Error(w, `{"message":"Server Error."}`, http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	w.Write(buf.Bytes())
}

// errorStatus is the one table from errors to HTTP answers. Messages here are
// safe to show; anything not listed is internal and answered as a bare 500.
func errorStatus(err error) (int, string) {
	switch {
	case errors.Is(err, fleet.ErrUnauthenticated):
		return http.StatusUnauthorized, "Unauthenticated."
	case errors.Is(err, fleet.ErrNotFound):
		return http.StatusNotFound, "Not found."
	case errors.Is(err, fleet.ErrPortsExhausted):
		return http.StatusServiceUnavailable, "No free port is left at this router's entry point; try again when other forwards have ended."
	case errors.Is(err, fleet.ErrExists):
		return http.StatusConflict, "It already exists."
	default:
		return http.StatusInternalServerError, "Server Error."
	}
}

// writeError answers err per errorStatus, logging internal causes only.
func (s *server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	var bad *badRequest
	if errors.As(err, &bad) {
		writeJSON(w, bad.status, message{bad.msg})
		return
	}
	var invalid *validationError
	if errors.As(err, &invalid) {
		writeJSON(w, http.StatusUnprocessableEntity, invalid)
		return
	}
	code, msg := errorStatus(err)
	if code == http.StatusInternalServerError {
		s.cfg.Logger.LogAttrs(r.Context(), slog.LevelError, "internal error",
			slog.String("request_id", requestID(r.Context())), slog.String("err", err.Error()))
	}
	if code == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "60")
	}
	writeJSON(w, code, message{msg})
}

// badRequest is a request the API cannot read at all (not JSON, too large).
type badRequest struct {
	status int
	msg    string
}

func (e *badRequest) Error() string { return e.msg }

// decodeObject reads the body as one JSON object of raw fields. Unknown
// fields are the caller's to ignore.
func decodeObject(w http.ResponseWriter, r *http.Request) (map[string]json.RawMessage, error) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		return nil, &badRequest{http.StatusRequestEntityTooLarge, fmt.Sprintf("The request body is larger than %d bytes.", maxBodyBytes)}
	}
	if err != nil {
		return nil, &badRequest{http.StatusBadRequest, "The request body could not be read."}
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(body, &fields); err != nil || fields == nil {
		return nil, &badRequest{http.StatusBadRequest, "The request body must be a JSON object."}
	}
	return fields, nil
}

// formatTime writes times as the contract does: 2024-06-22T04:33:29+00:00.
func formatTime(t time.Time) string {
	return t.UTC().Format("2006-01-02T15:04:05-07:00")
}

func formatTimePtr(t *time.Time) *string {
	if t == nil {
		return nil
	}
	s := formatTime(*t)
	return &s
}

// relativeTime says how far t is from now the way the original service does
// ("2 hours from now", "3 minutes ago"): the largest whole unit, truncated.
func relativeTime(t, now time.Time) string {
	d := t.Sub(now)
	suffix := "from now"
	if d <= 0 {
		suffix, d = "ago", -d
	}
	secs := int64(d / time.Second)
	units := []struct {
		name string
		secs int64
	}{
		{"year", 365 * 86400},
		{"month", 30 * 86400},
		{"week", 7 * 86400},
		{"day", 86400},
		{"hour", 3600},
		{"minute", 60},
		{"second", 1},
	}
	for _, u := range units {
		if n := secs / u.secs; n >= 1 || u.secs == 1 {
			return plural(n, u.name) + " " + suffix
		}
	}
	panic("unreachable")
}

func plural(n int64, unit string) string {
	s := strconv.FormatInt(n, 10) + " " + unit
	if n != 1 {
		s += "s"
	}
	return s
}

type requestIDKey struct{}

func withRequestID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, requestIDKey{}, id)
}

func requestID(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey{}).(string)
	return id
}

// fieldName is how a field is named in messages: dst_port → "dst port".
func fieldName(field string) string {
	return strings.ReplaceAll(field, "_", " ")
}
