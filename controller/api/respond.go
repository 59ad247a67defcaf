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

	"github.com/tpf-dev/tpf/controller/apijson"
	"github.com/tpf-dev/tpf/controller/fleet"
)

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
		writeJSON(w, bad.status, apijson.Message{Message: bad.msg})
		return
	}
	var verr *validationError
	if errors.As(err, &verr) {
		writeJSON(w, http.StatusUnprocessableEntity, verr.body())
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
	writeJSON(w, code, apijson.Message{Message: msg})
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

type requestIDKey struct{}

func withRequestID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, requestIDKey{}, id)
}

func requestID(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey{}).(string)
	return id
}
