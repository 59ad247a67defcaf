package web

import (
	"crypto/subtle"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/tpf-dev/tpf/controller/fleet"
)

// sessionCookie names the cookie holding the session id: 32 random bytes,
// opaque. The API token a user signs in with is never stored, in the cookie
// or in the database; the session remembers only the token's id. Sessions
// live in PostgreSQL (store.WebSession, only a hash of their id), so they
// survive restarts and work on every replica.
const sessionCookie = "tpf_session"

// maxFormBytes bounds form bodies; the largest valid one is far smaller.
const maxFormBytes = 64 << 10

// session is what a request of a signed-in browser needs of its session.
type session struct {
	// csrf is the token every form of the session carries.
	csrf string
}

// secureRequest reports whether the browser reached us over TLS, directly or
// through a proxy that terminated it.
func secureRequest(r *http.Request) bool {
	return r.TLS != nil || strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https")
}

func (v *views) setSessionCookie(w http.ResponseWriter, r *http.Request, id string, maxAge int) {
	http.SetCookie(w, &http.Cookie{
		Name: sessionCookie, Value: id, Path: "/", MaxAge: maxAge,
		HttpOnly: true, Secure: secureRequest(r), SameSite: http.SameSiteLaxMode,
	})
}

// signedIn is who a request acts for.
type signedIn struct {
	principal fleet.Principal
	sessionID string
	session   session
}

func (in signedIn) view() *sessionView {
	return &sessionView{Account: in.principal.AccountName, Token: in.principal.TokenName, CSRF: in.session.csrf}
}

type authedHandler func(w http.ResponseWriter, r *http.Request, in signedIn)

// auth runs h for a signed-in, unexpired session whose token is still valid
// (checked on every request, so revoking a token ends its sessions). Without one,
// pages redirect to the sign-in form and fragments answer 401. POSTs must
// carry the session's CSRF token in the form field "csrf".
func (v *views) auth(h authedHandler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		now := v.now()
		c, err := r.Cookie(sessionCookie)
		if err != nil {
			v.toSignIn(w, r)
			return
		}
		// One query reads the session and checks its token is not revoked.
		stored, p, err := v.store.WebSession(r.Context(), c.Value, now)
		if errors.Is(err, fleet.ErrUnauthenticated) {
			v.toSignIn(w, r)
			return
		}
		if err != nil {
			v.internalError(w, r, err)
			return
		}
		sess := session{csrf: stored.CSRF}
		if r.Method == http.MethodPost {
			r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
			if err := r.ParseForm(); err != nil {
				v.renderError(w, r, http.StatusBadRequest, "The form could not be read.")
				return
			}
			if subtle.ConstantTimeCompare([]byte(r.PostForm.Get("csrf")), []byte(sess.csrf)) != 1 {
				v.renderError(w, r, http.StatusForbidden, "This form has expired or did not come from this site. Reload the page and try again.")
				return
			}
		}
		h(w, r, signedIn{principal: p, sessionID: c.Value, session: sess})
	})
}

// toSignIn answers a request without a valid session: a 401 for the pages'
// polling, else a redirect to the sign-in form that comes back here.
func (v *views) toSignIn(w http.ResponseWriter, r *http.Request) {
	if r.URL.Query().Get("fragment") != "" {
		w.Header().Set("Cache-Control", "no-store")
		http.Error(w, "signed out", http.StatusUnauthorized)
		return
	}
	target := "/signin"
	if r.Method == http.MethodGet && r.URL.RequestURI() != "/" {
		target += "?next=" + url.QueryEscape(r.URL.RequestURI())
	}
	http.Redirect(w, r, target, http.StatusSeeOther)
}

type signInForm struct {
	Next    string
	Message string
	// Notice says why the browser was signed out, when it was.
	Notice string
}

func (v *views) handleSignInForm(w http.ResponseWriter, r *http.Request) {
	next := r.URL.Query().Get("next")
	if !localPath(next) {
		next = "/"
	}
	form := signInForm{Next: next}
	if r.URL.Query().Get("revoked") != "" {
		form.Notice = "You revoked the token you had signed in with, which signed you out. Sign in with another token of the account."
	}
	v.render(w, r, http.StatusOK, "signin", page{Title: "Sign in", Body: form})
}

// handleSignIn checks the API token and starts a session. Cross-origin
// posts (login CSRF) are refused by the CrossOriginProtection around every
// route.
func (v *views) handleSignIn(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		v.renderError(w, r, http.StatusBadRequest, "The form could not be read.")
		return
	}
	next := r.PostForm.Get("next")
	if !localPath(next) {
		next = "/"
	}
	token := strings.TrimSpace(r.PostForm.Get("token"))
	if token == "" {
		v.render(w, r, http.StatusUnprocessableEntity, "signin", page{Title: "Sign in",
			Body: signInForm{Next: next, Message: "Enter an API token of your account."}})
		return
	}
	p, err := v.store.Authenticate(r.Context(), token)
	if errors.Is(err, fleet.ErrUnauthenticated) {
		v.render(w, r, http.StatusUnauthorized, "signin", page{Title: "Sign in",
			Body: signInForm{Next: next, Message: "That token is unknown or has been revoked."}})
		return
	}
	if err != nil {
		v.internalError(w, r, err)
		return
	}
	// A fresh id at every sign-in: a session id planted before cannot be
	// carried into the signed-in session.
	if c, err := r.Cookie(sessionCookie); err == nil {
		if err := v.store.DeleteWebSession(r.Context(), c.Value); err != nil {
			v.internalError(w, r, err)
			return
		}
	}
	now := v.now()
	id, _, err := v.store.CreateWebSession(r.Context(), p.TokenID, now, now.Add(v.cfg.SessionLifetime))
	if err != nil {
		v.internalError(w, r, err)
		return
	}
	v.setSessionCookie(w, r, id, int(v.cfg.SessionLifetime/time.Second))
	http.Redirect(w, r, next, http.StatusSeeOther)
}

func (v *views) handleSignOut(w http.ResponseWriter, r *http.Request, in signedIn) {
	if err := v.store.DeleteWebSession(r.Context(), in.sessionID); err != nil {
		v.internalError(w, r, err)
		return
	}
	v.setSessionCookie(w, r, "", -1)
	http.Redirect(w, r, "/signin", http.StatusSeeOther)
}
