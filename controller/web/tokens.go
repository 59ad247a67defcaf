package web

import (
	"net/http"
	"strings"
	"time"

	"github.com/tpf-dev/tpf/controller/fleet"
)

// tokenRow is one API token on the tokens page.
type tokenRow struct {
	ID, Name  string
	CreatedAt time.Time
	RevokedAt *time.Time
	// Current: the token this session signed in with.
	Current bool
}

// newToken is a token just issued, with its secret: shown once.
type newToken struct {
	Name, Secret string
}

type tokensBody struct {
	Tokens []tokenRow
	Active int
	Form   createForm
	New    *newToken
	Banner *banner
	CSRF   string
}

// handleTokens lists the account's API tokens; ?revoked=ID (where a revoke
// returns to) names the token just revoked.
func (v *views) handleTokens(w http.ResponseWriter, r *http.Request, in signedIn) {
	v.renderTokens(w, r, in, http.StatusOK, tokensBody{Form: createForm{Values: map[string]string{}}}, r.URL.Query().Get("revoked"))
}

// renderTokens reads the account's tokens and renders the page; revoked, when
// set, is the id of the token the banner says was revoked.
func (v *views) renderTokens(w http.ResponseWriter, r *http.Request, in signedIn, code int, body tokensBody, revoked string) {
	list, err := v.store.Tokens(r.Context(), in.principal.AccountID)
	if err != nil {
		v.writeError(w, r, err)
		return
	}
	body.CSRF = in.session.csrf
	for _, t := range list {
		row := tokenRow{ID: t.ID.String(), Name: t.Name, CreatedAt: t.CreatedAt, RevokedAt: t.RevokedAt, Current: t.ID == in.principal.TokenID}
		if row.RevokedAt == nil {
			body.Active++
		}
		if revoked != "" && row.ID == revoked && row.RevokedAt != nil {
			body.Banner = &banner{Kind: "info", Title: "Token revoked.",
				Message: "The token " + row.Name + " authenticates nothing any more; its web sessions are over."}
		}
		body.Tokens = append(body.Tokens, row)
	}
	p := page{Title: "API tokens", Nav: "tokens", Session: in.view(), Body: body}
	if body.New != nil {
		p.ReplaceURL = "/tokens"
	}
	v.render(w, r, code, "tokens", p)
}

// handleTokenIssue issues an API token (store.IssueToken, as
// POST /api/tokens) and shows its secret this once.
func (v *views) handleTokenIssue(w http.ResponseWriter, r *http.Request, in signedIn) {
	body := tokensBody{Form: createForm{Values: map[string]string{}}}
	var errs fleet.Problems
	raw := strings.TrimSpace(r.PostForm.Get(fieldName))
	body.Form.Values[fieldName] = raw
	name, _ := errs.Text(fieldName, raw, fleet.MaxTokenName)
	if errs.Len() > 0 {
		body.Form.Errors = map[string][]string{fieldName: errs.Messages(fieldName)}
		v.renderTokens(w, r, in, http.StatusUnprocessableEntity, body, "")
		return
	}
	_, secret, err := v.store.IssueToken(r.Context(), in.principal.AccountID, in.principal.Actor(), name, v.now())
	if err != nil {
		v.writeError(w, r, err)
		return
	}
	body.Form.Values = map[string]string{}
	body.New = &newToken{Name: name, Secret: secret}
	v.renderTokens(w, r, in, http.StatusCreated, body, "")
}

// token finds one of the account's tokens by the path's id.
func (v *views) token(r *http.Request, in signedIn) (fleet.APIToken, error) {
	id, ok := pathID(r, "id")
	if !ok {
		return fleet.APIToken{}, fleet.ErrNotFound
	}
	list, err := v.store.Tokens(r.Context(), in.principal.AccountID)
	if err != nil {
		return fleet.APIToken{}, err
	}
	for _, t := range list {
		if t.ID == id {
			return t, nil
		}
	}
	return fleet.APIToken{}, fleet.ErrNotFound
}

// handleTokenRevokeConfirm asks before revoking a token, and says so when it
// is the one this session signed in with.
func (v *views) handleTokenRevokeConfirm(w http.ResponseWriter, r *http.Request, in signedIn) {
	t, err := v.token(r, in)
	if err != nil {
		v.writeError(w, r, err)
		return
	}
	body := confirmBody{Heading: "Revoke the API token " + t.Name + "?", Action: "/tokens/" + t.ID.String() + "/revoke",
		Button: "Revoke " + t.Name, Danger: true, Cancel: "/tokens", CSRF: in.session.csrf, Crumb: "API tokens", CrumbURL: "/tokens"}
	switch {
	case t.RevokedAt != nil:
		body.Lines = []string{"It was revoked already, on " + formatTime(t.RevokedAt, "Jan 2 15:04") + " UTC; revoking it again changes nothing."}
	default:
		body.Lines = []string{"Scripts and tools that send it are refused from then on, and every web session signed in with it ends.",
			"This cannot be undone; issue a new token to replace it."}
	}
	if t.ID == in.principal.TokenID && t.RevokedAt == nil {
		body.Lines = append(body.Lines, "It is the token you signed in with: revoking it signs you out.")
	}
	v.render(w, r, http.StatusOK, "confirm", page{Title: "Revoke " + t.Name, Nav: "tokens", Session: in.view(), Body: body})
}

// handleTokenRevoke revokes a token (store.RevokeToken, as
// DELETE /api/tokens/{id}), which ends its web sessions: revoking the
// session's own token signs the browser out.
func (v *views) handleTokenRevoke(w http.ResponseWriter, r *http.Request, in signedIn) {
	id, ok := pathID(r, "id")
	if !ok {
		v.writeError(w, r, fleet.ErrNotFound)
		return
	}
	if _, _, err := v.store.RevokeToken(r.Context(), in.principal.AccountID, in.principal.Actor(), id, v.now()); err != nil {
		v.writeError(w, r, err)
		return
	}
	if id == in.principal.TokenID {
		v.setSessionCookie(w, r, "", -1)
		http.Redirect(w, r, "/signin?revoked=1", http.StatusSeeOther)
		return
	}
	http.Redirect(w, r, "/tokens?revoked="+id.String(), http.StatusSeeOther)
}
