package tpfctl

import (
	"errors"
	"fmt"
	"io"
	"net/http"
)

// Exit codes, documented in --help; scripts rely on them.
const (
	ExitOK              = 0
	ExitError           = 1 // the API could not be reached, a server error, a forward that failed while waiting
	ExitUsage           = 2 // bad command line or configuration
	ExitNotFound        = 3 // no such router or forward (404)
	ExitInvalid         = 4 // the API refused the request's fields (422)
	ExitUnauthenticated = 5 // no token, or the API refused it (401)
	ExitTimeout         = 6 // --wait ran out of time
)

// ExitCode is the process exit code for an error returned by Run: ExitOK
// for nil.
func ExitCode(err error) int {
	if err == nil {
		return ExitOK
	}
	var coded *codedError
	if errors.As(err, &coded) {
		return coded.code
	}
	var apiErr *APIError
	if errors.As(err, &apiErr) {
		switch apiErr.Status {
		case http.StatusNotFound:
			return ExitNotFound
		case http.StatusUnprocessableEntity:
			return ExitInvalid
		case http.StatusUnauthorized:
			return ExitUnauthenticated
		}
	}
	return ExitError
}

// codedError is an error of tpfctl's own with the exit code it means.
type codedError struct {
	code int
	msg  string
	// hint is a second line telling how to go on, e.g. where the usage is.
	hint string
}

func (e *codedError) Error() string { return e.msg }

func usageErrorf(hint, format string, args ...any) error {
	return &codedError{code: ExitUsage, msg: fmt.Sprintf(format, args...), hint: hint}
}

// printError writes err for a person: one line, then a 422's fields one per
// message, or the hint of a usage error.
func printError(w io.Writer, err error) {
	fmt.Fprintln(w, "tpfctl:", err)
	var apiErr *APIError
	if errors.As(err, &apiErr) {
		for _, f := range apiErr.Fields {
			for _, m := range f.Messages {
				fmt.Fprintf(w, "  %s: %s\n", f.Field, m)
			}
		}
	}
	var coded *codedError
	if errors.As(err, &coded) && coded.hint != "" {
		fmt.Fprintln(w, coded.hint)
	}
}
