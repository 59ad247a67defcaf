package web

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/tpf-dev/tpf/controller/fleet"
)

// sessionCookie names the cookie holding the session id: 32 random bytes,
// opaque. The API token a user signs in with is never stored, in the cookie
// or here; the session remembers only the token's id.
const sessionCookie = "tpf_session"

// maxFormBytes bounds form bodies; the largest valid one is far smaller.
const maxFormBytes = 64 << 10

// session is one signed-in browser.
type session struct {
	tokenID uuid.UUID
	// csrf is the token every form of the session carries.
	csrf    string
	expires time.Time
}

// sessions maps session ids (by their hash) to sessions, in memory.
type sessions struct {
	mu   sync.Mutex
	byID map[[32]byte]session
}

func newSessions() *sessions {
	return &sessions{byID: map[[32]byte]session{}}
}

// create starts a session for tokenID and returns its id.
func (s *sessions) create(tokenID uuid.UUID, now time.Time, lifetime time.Duration) (string, session) {
	id := randomToken()
	sess := session{tokenID: tokenID, csrf: randomToken(), expires: now.Add(lifetime)}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sweepLocked(now)
	s.byID[sha256.Sum256([]byte(id))] = sess
	return id, sess
}

// get returns the live session with id.
func (s *sessions) get(id string, now time.Time) (session, bool) {
	key := sha256.Sum256([]byte(id))
	s.mu.Lock()
	defer s.mu.Unlock()
	sess, ok := s.byID[key]
	if ok && !now.Before(sess.expires) {
		delete(s.byID, key)
		return session{}, false
	}
	return sess, ok
}

func (s *sessions) delete(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.byID, sha256.Sum256([]byte(id)))
}

// sweepLocked drops expired sessions; sign-ins are rare enough to afford it.
func (s *sessions) sweepLocked(now time.Time) {
	for k, sess := range s.byID {
		if !now.Before(sess.expires) {
			delete(s.byID, k)
		}
	}
}

func randomToken() string {
	b := make([]byte, 32)
	rand.Read(b) // never fails on supported platforms
	return base64.RawURLEncoding.EncodeToString(b)
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

// auth runs h for a signed-in session whose token is still valid (checked
// on every request, so revoking a token ends its sessions). Without one,
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
		sess, ok := v.sessions.get(c.Value, now)
		if !ok {
			v.toSignIn(w, r)
			return
		}
		p, err := v.store.Principal(r.Context(), sess.tokenID)
		if errors.Is(err, fleet.ErrUnauthenticated) {
			v.sessions.delete(c.Value)
			v.toSignIn(w, r)
			return
		}
		if err != nil {
			v.internalError(w, r, err)
			return
		}
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
}

func (v *views) handleSignInForm(w http.ResponseWriter, r *http.Request) {
	next := r.URL.Query().Get("next")
	if !localPath(next) {
		next = "/"
	}
	v.render(w, r, http.StatusOK, "signin", page{Title: "Sign in", Body: signInForm{Next: next}})
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
		v.sessions.delete(c.Value)
	}
	id, _ := v.sessions.create(p.TokenID, v.now(), v.cfg.SessionLifetime)
	v.setSessionCookie(w, r, id, int(v.cfg.SessionLifetime/time.Second))
	http.Redirect(w, r, next, http.StatusSeeOther)
}

func (v *views) handleSignOut(w http.ResponseWriter, r *http.Request, in signedIn) {
	v.sessions.delete(in.sessionID)
	v.setSessionCookie(w, r, "", -1)
	http.Redirect(w, r, "/signin", http.StatusSeeOther)
}
