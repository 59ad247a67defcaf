package store_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/tpf-dev/tpf/controller/fleet"
	"github.com/tpf-dev/tpf/controller/store/storetest"
)

var tokensT0 = time.Date(2026, 2, 3, 4, 5, 6, 0, time.UTC)

func TestIssueListRevokeTokens(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := storetest.NewFleet(t, tokensT0)
	st, p := f.Store, f.Principal

	tok, secret, err := st.IssueToken(ctx, p.AccountID, p.Actor(), "ci", tokensT0.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if tok.Name != "ci" || tok.AccountID != p.AccountID || !tok.CreatedAt.Equal(tokensT0.Add(time.Minute)) || tok.RevokedAt != nil {
		t.Errorf("issued token: got %+v", tok)
	}
	ci, err := st.Authenticate(ctx, secret)
	if err != nil || ci.TokenID != tok.ID || ci.TokenName != "ci" {
		t.Fatalf("the issued secret: got %+v, %v, want token %s", ci, err, tok.ID)
	}

	list, err := st.Tokens(ctx, p.AccountID)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].ID != p.TokenID || list[1].ID != tok.ID {
		t.Fatalf("tokens: got %+v, want the default token, then ci", list)
	}

	// Another account sees none of them and cannot revoke them.
	_, other, err := st.CreateAccount(ctx, "globex", tokensT0)
	if err != nil {
		t.Fatal(err)
	}
	op, err := st.Authenticate(ctx, other)
	if err != nil {
		t.Fatal(err)
	}
	if list, err := st.Tokens(ctx, op.AccountID); err != nil || len(list) != 1 || list[0].ID != op.TokenID {
		t.Errorf("the other account's tokens: got %+v, %v, want its own only", list, err)
	}
	for _, id := range []uuid.UUID{tok.ID, uuid.New()} {
		if _, _, err := st.RevokeToken(ctx, op.AccountID, op.Actor(), id, tokensT0); !errors.Is(err, fleet.ErrNotFound) {
			t.Errorf("revoke %s as another account: got %v, want ErrNotFound", id, err)
		}
	}

	at := tokensT0.Add(2 * time.Minute)
	got, revoked, err := st.RevokeToken(ctx, p.AccountID, p.Actor(), tok.ID, at)
	if err != nil || !revoked || got.RevokedAt == nil || !got.RevokedAt.Equal(at) {
		t.Fatalf("revoke: got %+v, %v, %v, want revoked at %s", got, revoked, err, at)
	}
	if _, err := st.Authenticate(ctx, secret); !errors.Is(err, fleet.ErrUnauthenticated) {
		t.Errorf("the revoked secret: got %v, want ErrUnauthenticated", err)
	}
	got, revoked, err = st.RevokeToken(ctx, p.AccountID, p.Actor(), tok.ID, at.Add(time.Hour))
	if err != nil || revoked || !got.RevokedAt.Equal(at) {
		t.Errorf("revoke again: got %+v, %v, %v, want unchanged, not revoked again", got, revoked, err)
	}
	if _, err := st.Authenticate(ctx, f.APIToken); err != nil {
		t.Errorf("the default token after ci's revoke: %v", err)
	}

	// One create and one revoke in the audit log, as the principal's.
	events, err := st.AuditEvents(ctx, p.AccountID, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for _, ev := range events {
		if ev.SubjectID == tok.ID {
			seen[ev.Action]++
			if ev.Actor != p.Actor() {
				t.Errorf("audit %s: actor %q, want %q", ev.Action, ev.Actor, p.Actor())
			}
		}
	}
	if seen[fleet.ActionTokenCreate] != 1 || seen[fleet.ActionTokenRevoke] != 1 || len(seen) != 2 {
		t.Errorf("audit events of the token: got %v, want one create and one revoke", seen)
	}
}
