package api

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// validationError is a 422 answer in the shape clients of the original
// service parse: {"message": "...", "errors": {"field": ["..."]}}, fields in
// the order they were checked.
type validationError struct {
	fields []string
	msgs   map[string][]string
}

func (e *validationError) Error() string { return e.message() }

// add records a failed rule for field.
func (e *validationError) add(field, msg string) {
	if e.msgs == nil {
		e.msgs = map[string][]string{}
	}
	if _, ok := e.msgs[field]; !ok {
		e.fields = append(e.fields, field)
	}
	e.msgs[field] = append(e.msgs[field], msg)
}

// err returns e when any rule failed, else nil.
func (e *validationError) err() error {
	if len(e.fields) == 0 {
		return nil
	}
	return e
}

// message is the first failure, with a count of the others, as Laravel says it.
func (e *validationError) message() string {
	total := 0
	for _, f := range e.fields {
		total += len(e.msgs[f])
	}
	msg := e.msgs[e.fields[0]][0]
	switch more := total - 1; more {
	case 0:
		return msg
	case 1:
		return msg + " (and 1 more error)"
	default:
		return fmt.Sprintf("%s (and %d more errors)", msg, more)
	}
}

func (e *validationError) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	msg, _ := json.Marshal(e.message())
	b.WriteString(`{"message":`)
	b.Write(msg)
	b.WriteString(`,"errors":{`)
	for i, f := range e.fields {
		if i > 0 {
			b.WriteByte(',')
		}
		k, _ := json.Marshal(f)
		v, _ := json.Marshal(e.msgs[f])
		b.Write(k)
		b.WriteByte(':')
		b.Write(v)
	}
	b.WriteString("}}")
	return b.Bytes(), nil
}

// fields reads typed values out of a decoded JSON object, recording a
// Laravel-style message for each field that is missing or of the wrong type.
type fields struct {
	raw  map[string]json.RawMessage
	errs *validationError
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

func (f fields) required(field string) bool {
	if !f.present(field) {
		f.errs.add(field, "The "+fieldName(field)+" field is required.")
		return false
	}
	return true
}

var integerText = regexp.MustCompile(`^-?(0|[1-9][0-9]*)$`)

// integer reads a required integer in [lo, hi]; JSON numbers without a
// fraction and strings holding one are accepted.
func (f fields) integer(field string, lo, hi int64) (int64, bool) {
	if !f.required(field) {
		return 0, false
	}
	v := bytes.TrimSpace(f.raw[field])
	text := string(v)
	if v[0] == '"' {
		if err := json.Unmarshal(v, &text); err != nil {
			text = ""
		}
	}
	if !integerText.MatchString(text) {
		f.errs.add(field, "The "+fieldName(field)+" field must be an integer.")
		return 0, false
	}
	n, err := strconv.ParseInt(text, 10, 64)
	if err != nil || n < lo || n > hi {
		f.errs.add(field, fmt.Sprintf("The %s field must be between %d and %d.", fieldName(field), lo, hi))
		return 0, false
	}
	return n, true
}

// text reads a required string of at most maxLen bytes.
func (f fields) text(field string, maxLen int) (string, bool) {
	if !f.required(field) {
		return "", false
	}
	var s string
	if err := json.Unmarshal(f.raw[field], &s); err != nil {
		f.errs.add(field, "The "+fieldName(field)+" field must be a string.")
		return "", false
	}
	if strings.TrimSpace(s) == "" {
		f.errs.add(field, "The "+fieldName(field)+" field is required.")
		return "", false
	}
	if len(s) > maxLen {
		f.errs.add(field, fmt.Sprintf("The %s field must not be greater than %d characters.", fieldName(field), maxLen))
		return "", false
	}
	if !utf8.ValidString(s) || strings.ContainsFunc(s, unicode.IsControl) {
		f.errs.add(field, "The "+fieldName(field)+" field must not contain control characters.")
		return "", false
	}
	return s, true
}

// boolean reads an optional boolean; absent or null is false.
func (f fields) boolean(field string) (bool, bool) {
	if !f.present(field) {
		return false, true
	}
	var b bool
	if err := json.Unmarshal(f.raw[field], &b); err != nil {
		f.errs.add(field, "The "+fieldName(field)+" field must be true or false.")
		return false, false
	}
	return b, true
}

// queryLimit reads the ?limit= of a listing: 1..maxHistoryLimit, default
// defaultHistoryLimit.
func queryLimit(q url.Values, errs *validationError) int {
	v := q.Get("limit")
	if v == "" {
		return defaultHistoryLimit
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > maxHistoryLimit {
		errs.add("limit", fmt.Sprintf("The limit field must be between 1 and %d.", maxHistoryLimit))
		return defaultHistoryLimit
	}
	return n
}
