package api

import (
	"encoding/json"
	"errors"

	"github.com/tpf-dev/tpf/controller/fleet"
)

// ParseNewForward applies the rules of POST …/transient-forwarding to raw,
// the fields of a request object: the same checks in the same order, with the
// same messages. cfg supplies the expiry bounds and the extra allowed
// sources (its zero values mean the defaults). problems maps each failing
// field to its messages; it is nil when nf is valid. The web views' create
// form uses it, so the form and the API accept exactly the same forwards.
func ParseNewForward(raw map[string]json.RawMessage, cfg Config) (nf fleet.NewForward, problems map[string][]string) {
	s := &server{cfg: cfg.withDefaults()}
	nf, err := s.readNewForward(raw)
	if err == nil {
		return nf, nil
	}
	var invalid *validationError
	if !errors.As(err, &invalid) {
		return nf, map[string][]string{"": {err.Error()}} // readNewForward fails only with a validationError
	}
	return nf, invalid.msgs
}
