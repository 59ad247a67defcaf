package apijson

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
)

// Message is the body of every error answer but a 422:
// {"message": "Not found."}.
type Message struct {
	Message string `json:"message"`
}

// FieldErrors is one field of a 422 answer with its messages.
type FieldErrors struct {
	Field    string
	Messages []string
}

// ValidationError is the body of a 422 answer, in the shape clients of the
// original service parse:
//
//	{"message": "…", "errors": {"field": ["…"], …}}
//
// Errors keeps the fields in the order the API checked them, which a map
// would lose, both when it is encoded and when it is decoded. Decoding also
// reads any other error answer: its Errors are then nil.
type ValidationError struct {
	Message string
	Errors  []FieldErrors
}

// NewValidationError is the body for errs with the summary Laravel writes:
// the first message, and how many others there are
// ("… (and 1 more error)", "… (and 2 more errors)").
func NewValidationError(errs []FieldErrors) ValidationError {
	total := 0
	first := ""
	for _, f := range errs {
		if first == "" && len(f.Messages) > 0 {
			first = f.Messages[0]
		}
		total += len(f.Messages)
	}
	msg := first
	switch more := total - 1; {
	case more == 1:
		msg += " (and 1 more error)"
	case more > 1:
		msg += fmt.Sprintf(" (and %d more errors)", more)
	}
	return ValidationError{Message: msg, Errors: errs}
}

// MarshalJSON writes the message, then the fields in their order.
func (v ValidationError) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	msg, err := json.Marshal(v.Message)
	if err != nil {
		return nil, err
	}
	b.WriteString(`{"message":`)
	b.Write(msg)
	b.WriteString(`,"errors":{`)
	for i, f := range v.Errors {
		if i > 0 {
			b.WriteByte(',')
		}
		k, err := json.Marshal(f.Field)
		if err != nil {
			return nil, err
		}
		m, err := json.Marshal(f.Messages)
		if err != nil {
			return nil, err
		}
		b.Write(k)
		b.WriteByte(':')
		b.Write(m)
	}
	b.WriteString("}}")
	return b.Bytes(), nil
}

// UnmarshalJSON reads the message and the fields in the order they appear.
func (v *ValidationError) UnmarshalJSON(data []byte) error {
	var body struct {
		Message string          `json:"message"`
		Errors  json.RawMessage `json:"errors"`
	}
	if err := json.Unmarshal(data, &body); err != nil {
		return err
	}
	*v = ValidationError{Message: body.Message}
	if len(body.Errors) == 0 || string(body.Errors) == "null" {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(body.Errors))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return errors.New(`apijson: "errors" is not an object`)
	}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		name, _ := tok.(string)
		var msgs []string
		if err := dec.Decode(&msgs); err != nil {
			return fmt.Errorf("apijson: the messages of %q: %w", name, err)
		}
		v.Errors = append(v.Errors, FieldErrors{Field: name, Messages: msgs})
	}
	return nil
}
