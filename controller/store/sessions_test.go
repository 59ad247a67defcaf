package store_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/tpf-dev/tpf/controller/fleet"
	"github.com/tpf-dev/tpf/controller/store"
	"github.com/tpf-dev/tpf/controller/store/storetest"
)

func TestWebSessions(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := storetest.NewFleet(t, tokensT0)
	st, p := f.Store, f.Principal
	now := tokensT0.Add(time.Minute)

	id, sess, err := st.CreateWebSession(ctx, p.TokenID, now, now.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if len(id) < 40 || len(sess.CSRF) < 40 || sess.CSRF == id || sess.TokenID != p.TokenID {
		t.Errorf("new session: id %q, %+v; want random id and CSRF token for the token", id, sess)
	}
	stored := func(id string) bool {
		t.Helper()
		var n int
		if err := f.Pool.QueryRow(ctx, "select count(*) from web_sessions where id_hash = sha256(convert_to($1, 'UTF8'))", id).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n == 1
	}
	if !stored(id) {
		t.Fatal("the session is not stored under its id's SHA-256")
	}

	// Read back, also through another pool (another replica).
	other := store.New(storetest.Reopen(t, f.Pool))
	got, gp, err := other.WebSession(ctx, id, now.Add(59*time.Minute))
	if err != nil || got.CSRF != sess.CSRF || !got.ExpiresAt.Equal(now.Add(time.Hour)) || gp != p {
		t.Errorf("session: got %+v %+v, %v, want %+v for %+v", got, gp, err, sess, p)
	}
	for _, bad := range []string{"", "nope", id + "x"} {
		if _, _, err := st.WebSession(ctx, bad, now); !errors.Is(err, fleet.ErrUnauthenticated) {
			t.Errorf("session %q: got %v, want ErrUnauthenticated", bad, err)
		}
	}

	// Expired: refused and deleted.
	if _, _, err := st.WebSession(ctx, id, now.Add(time.Hour)); !errors.Is(err, fleet.ErrUnauthenticated) {
		t.Errorf("expired session: got %v, want ErrUnauthenticated", err)
	}
	if stored(id) {
		t.Error("the expired session was not deleted")
	}

	// Sign-ins sweep sessions that expired unseen.
	abandoned, _, err := st.CreateWebSession(ctx, p.TokenID, now, now.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	live, _, err := st.CreateWebSession(ctx, p.TokenID, now.Add(2*time.Minute), now.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if stored(abandoned) || !stored(live) {
		t.Errorf("after a sign-in: abandoned session stored %v, live one %v; want false, true", stored(abandoned), stored(live))
	}

	// Signing out deletes it; again is harmless.
	if err := st.DeleteWebSession(ctx, live); err != nil {
		t.Fatal(err)
	}
	if err := st.DeleteWebSession(ctx, live); err != nil {
		t.Errorf("second sign-out: %v", err)
	}
	if _, _, err := st.WebSession(ctx, live, now); !errors.Is(err, fleet.ErrUnauthenticated) {
		t.Errorf("signed-out session: got %v, want ErrUnauthenticated", err)
	}
}

func TestRevokingATokenEndsItsSessions(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := storetest.NewFleet(t, tokensT0)
	st, p := f.Store, f.Principal
	now := tokensT0.Add(time.Minute)

	tok, _, err := st.IssueToken(ctx, p.AccountID, p.Actor(), "browser", now)
	if err != nil {
		t.Fatal(err)
	}
	a, _, err := st.CreateWebSession(ctx, tok.ID, now, now.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	b, _, err := st.CreateWebSession(ctx, tok.ID, now, now.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	keep, _, err := st.CreateWebSession(ctx, p.TokenID, now, now.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := st.RevokeToken(ctx, p.AccountID, p.Actor(), tok.ID, now); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := f.Pool.QueryRow(ctx, "select count(*) from web_sessions where token_id = $1", tok.ID).Scan(&n); err != nil || n != 0 {
		t.Errorf("sessions of the revoked token: got %d, %v, want 0", n, err)
	}
	for _, id := range []string{a, b} {
		if _, _, err := st.WebSession(ctx, id, now); !errors.Is(err, fleet.ErrUnauthenticated) {
			t.Errorf("a session of the revoked token: got %v, want ErrUnauthenticated", err)
		}
	}
	if _, gp, err := st.WebSession(ctx, keep, now); err != nil || gp.TokenID != p.TokenID {
		t.Errorf("another token's session: got %+v, %v, want it alive", gp, err)
	}

	// A token revoked behind the store's back (no session cleanup) still
	// ends its sessions: the check is made on every read.
	if _, err := f.Pool.Exec(ctx, "update api_tokens set revoked_at = $1 where id = $2", now, p.TokenID); err != nil {
		t.Fatal(err)
	}
	if _, _, err := st.WebSession(ctx, keep, now); !errors.Is(err, fleet.ErrUnauthenticated) {
		t.Errorf("session of a token revoked by hand: got %v, want ErrUnauthenticated", err)
	}
}
