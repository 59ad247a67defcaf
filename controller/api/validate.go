package api

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/url"
	"strconv"

	"github.com/tpf-dev/tpf/controller/apijson"
	"github.com/tpf-dev/tpf/controller/fleet"
)

// validationError is a 422 answer: the rules a request broke, in the order
// they were checked (fleet.Problems), answered as apijson.ValidationError.
type validationError struct {
	problems fleet.Problems
}

// invalid is nil when p holds no problem, else the 422 listing them.
func invalid(p fleet.Problems) error {
	if p.Len() == 0 {
		return nil
	}
	return &validationError{p}
}

func (e *validationError) Error() string { return e.body().Message }

// body is the answer's body: every field's messages, fields in check order.
func (e *validationError) body() apijson.ValidationError {
	errs := make([]apijson.FieldErrors, 0, e.problems.Len())
	for _, f := range e.problems.Fields() {
		errs = append(errs, apijson.FieldErrors{Field: f, Messages: e.problems.Messages(f)})
	}
	return apijson.NewValidationError(errs)
}

// fields reads the values of a decoded JSON object for the rules in package
// fleet, recording in errs what the JSON itself gets wrong (a missing field,
// a value of the wrong type).
type fields struct {
	raw  map[string]json.RawMessage
	errs *fleet.Problems
}

// present reports whether field holds a value: absent, null and "" count as
// missing (the original service turns empty strings into null).
func (f fields) present(field string) bool {
	v, ok := f.raw[field]
	if !ok {
		return false
	}
	v = bytes.TrimSpace(v)
	return !bytes.Equal(v, []byte("null")) && !bytes.Equal(v, []byte(`""`))
}

// str reads a string field for the rules: "" when missing, ok false when
// the value is not a JSON string.
func (f fields) str(field string) (s string, ok bool) {
	if !f.present(field) {
		return "", true
	}
	if err := json.Unmarshal(f.raw[field], &s); err != nil {
		return "", false
	}
	return s, true
}

// integer reads an integer field for the rules, as written: a string's
// content or a number's JSON text ("120", "12.5", "1e30"); the rules refuse
// anything but decimal digits. ok is false for other JSON values.
func (f fields) integer(field string) (text string, ok bool) {
	if !f.present(field) {
		return "", true
	}
	v := bytes.TrimSpace(f.raw[field])
	switch {
	case v[0] == '"':
		if err := json.Unmarshal(v, &text); err != nil {
			return "", false
		}
		return text, true
	case v[0] == '-' || v[0] >= '0' && v[0] <= '9':
		return string(v), true
	default:
		return "", false
	}
}

// boolean reads an optional boolean: false when missing, ok false when the
// value is not a JSON boolean.
func (f fields) boolean(field string) (b, ok bool) {
	if !f.present(field) {
		return false, true
	}
	if err := json.Unmarshal(f.raw[field], &b); err != nil {
		return false, false
	}
	return b, true
}

// text reads a required text field of at most maxLen bytes (fleet's rules
// for text), recording its problem.
func (f fields) text(field string, maxLen int) (string, bool) {
	s, ok := f.str(field)
	if !ok {
		f.errs.WrongType(field, "a string")
		return "", false
	}
	return f.errs.Text(field, s, maxLen)
}

// newForwardInput maps the creation object onto fleet's input, whose rules
// say what is wrong with it.
func newForwardInput(raw map[string]json.RawMessage) fleet.NewForwardInput {
	f := fields{raw: raw}
	var in fleet.NewForwardInput
	wrong := func(field string, ok bool) {
		if !ok {
			in.WrongType = append(in.WrongType, field)
		}
	}
	var ok bool
	in.ExpireAfterMinutes, ok = f.integer(fleet.FieldExpireAfterMinutes)
	wrong(fleet.FieldExpireAfterMinutes, ok)
	in.DstPort, ok = f.integer(fleet.FieldDstPort)
	wrong(fleet.FieldDstPort, ok)
	in.DstAddress, ok = f.str(fleet.FieldDstAddress)
	wrong(fleet.FieldDstAddress, ok)
	in.AllowFrom, ok = f.str(fleet.FieldAllowFrom)
	wrong(fleet.FieldAllowFrom, ok)
	in.Masquerade, ok = f.boolean(fleet.FieldMasquerade)
	wrong(fleet.FieldMasquerade, ok)
	return in
}

// queryLimit reads the ?limit= of a listing: 1..maxHistoryLimit, default
// defaultHistoryLimit.
func queryLimit(q url.Values, errs *fleet.Problems) int {
	v := q.Get("limit")
	if v == "" {
		return defaultHistoryLimit
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > maxHistoryLimit {
		errs.Add("limit", fmt.Sprintf("The limit field must be between 1 and %d.", maxHistoryLimit))
		return defaultHistoryLimit
	}
	return n
}
