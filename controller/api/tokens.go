package api

import (
	"net/http"

	"github.com/tpf-dev/tpf/controller/apijson"
	"github.com/tpf-dev/tpf/controller/fleet"
)

// toTokenJSON is t as the API shows it: never its secret or hash.
func toTokenJSON(t fleet.APIToken) apijson.Token {
	return apijson.Token{ID: t.ID.String(), Name: t.Name, CreatedAt: apijson.FormatTime(t.CreatedAt), RevokedAt: apijson.FormatTimePtr(t.RevokedAt)}
}

// handleTokenList answers the account's API tokens, revoked ones too,
// oldest first.
func (s *server) handleTokenList() authedHandler {
	return func(w http.ResponseWriter, r *http.Request, p fleet.Principal) {
		list, err := s.store.Tokens(r.Context(), p.AccountID)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		out := make([]apijson.Token, len(list))
		for i, t := range list {
			out[i] = toTokenJSON(t)
		}
		writeJSON(w, http.StatusOK, out)
	}
}

// handleTokenCreate issues an API token of the account, {"name": …}, and
// answers 201 with its secret, shown only this once.
func (s *server) handleTokenCreate() authedHandler {
	return func(w http.ResponseWriter, r *http.Request, p fleet.Principal) {
		raw, err := decodeObject(w, r)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		var errs fleet.Problems
		name, _ := fields{raw: raw, errs: &errs}.text("name", fleet.MaxTokenName)
		if err := invalid(errs); err != nil {
			s.writeError(w, r, err)
			return
		}
		tok, secret, err := s.store.IssueToken(r.Context(), p.AccountID, p.Actor(), name, s.now())
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		writeJSON(w, http.StatusCreated, apijson.CreatedToken{
			ID: tok.ID.String(), Name: tok.Name, CreatedAt: apijson.FormatTime(tok.CreatedAt), Token: secret,
		})
	}
}

// handleTokenRevoke revokes one of the account's API tokens (also the one
// making the request, whose next request then answers 401) and ends its web
// sessions. Repeating it is harmless.
func (s *server) handleTokenRevoke() authedHandler {
	return func(w http.ResponseWriter, r *http.Request, p fleet.Principal) {
		id, err := pathID(r, "id")
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		if _, _, err := s.store.RevokeToken(r.Context(), p.AccountID, p.Actor(), id, s.now()); err != nil {
			s.writeError(w, r, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}
}
