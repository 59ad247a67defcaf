package web

import (
	"bytes"
	"cmp"
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/tpf-dev/tpf/controller/fleet"
)

// auditPageSize is how many events the audit page shows at a time.
const auditPageSize = 50

// auditRow is one audit event as the audit page shows it.
type auditRow struct {
	ID int64
	At time.Time
	// Actor is who did it, for humans ("token ci", "the expiry clock");
	// ActorTitle the actor as logged.
	Actor, ActorTitle string
	// Action says what happened ("created a forward"); Code is the action
	// as logged (forward.create).
	Action, Code string
	// Subject is what it happened to, linked to where it can be seen when
	// that still exists.
	Subject, SubjectURL, SubjectID string
	Detail                         []detailItem
}

// detailItem is one key: value of an event's detail.
type detailItem struct {
	Key, Value, URL string
}

type auditBody struct {
	Events []auditRow
	// Older pages back from the last event shown; empty on the last page.
	Older string
	// Paged: the page does not start at the newest event.
	Paged bool
}

// actionTexts are the audit actions in words.
var actionTexts = map[string]string{
	fleet.ActionForwardCreate:    "created a forward",
	fleet.ActionForwardRevoke:    "revoked a forward",
	fleet.ActionForwardExpire:    "ended an expired forward",
	fleet.ActionAccessCreate:     "opened a login to a router",
	fleet.ActionAccessRevoke:     "revoked a login to a router",
	fleet.ActionAccessExpire:     "ended an expired login to a router",
	fleet.ActionRouterCreate:     "added a router",
	fleet.ActionRouterDelete:     "deleted a router",
	fleet.ActionAgentTokenRotate: "issued a new agent token",
	fleet.ActionTokenCreate:      "issued an API token",
	fleet.ActionTokenRevoke:      "revoked an API token",
}

// handleAudit shows the account's audit log, newest first, a page at a time
// (?before=ID pages back): three queries (the session, a page of events, the
// routers that name the events' subjects).
func (v *views) handleAudit(w http.ResponseWriter, r *http.Request, in signedIn) {
	ctx := r.Context()
	var before int64
	if s := r.URL.Query().Get("before"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n < 1 {
			v.renderError(w, r, http.StatusBadRequest, "The before parameter must be a positive integer: the id of an event.")
			return
		}
		before = n
	}
	events, err := v.store.AuditEvents(ctx, in.principal.AccountID, before, auditPageSize+1)
	if err != nil {
		v.writeError(w, r, err)
		return
	}
	routers, err := v.svc.Routers(ctx, in.principal.AccountID)
	if err != nil {
		v.writeError(w, r, err)
		return
	}
	names := make(map[uuid.UUID]string, len(routers))
	for _, rt := range routers {
		names[rt.ID] = rt.Name
	}
	body := auditBody{Paged: before > 0}
	if len(events) > auditPageSize {
		events = events[:auditPageSize]
		body.Older = "/audit?before=" + strconv.FormatInt(events[len(events)-1].ID, 10)
	}
	for _, e := range events {
		body.Events = append(body.Events, toAuditRow(e, names))
	}
	v.render(w, r, http.StatusOK, "audit", page{Title: "Audit log", Nav: "audit", Session: in.view(), Body: body})
}

// toAuditRow describes e; routers names the account's routers (deleted ones
// are absent).
func toAuditRow(e fleet.AuditEvent, routers map[uuid.UUID]string) auditRow {
	row := auditRow{ID: e.ID, At: e.At, Code: e.Action, ActorTitle: e.Actor, Actor: actorText(e.Actor), SubjectID: e.SubjectID.String()}
	row.Action = actionTexts[e.Action]
	if row.Action == "" {
		row.Action = e.Action
	}
	detail := map[string]any{}
	dec := json.NewDecoder(bytes.NewReader(e.Detail))
	dec.UseNumber()
	if err := dec.Decode(&detail); err != nil && len(e.Detail) > 0 {
		detail = map[string]any{"detail": string(e.Detail)}
	}
	routerURL := func(id string) (string, string) {
		u, err := uuid.Parse(id)
		if name, ok := routers[u]; err == nil && ok {
			return name, "/routers/" + u.String()
		}
		return "", ""
	}
	str := func(k string) string { s, _ := detail[k].(string); return s }
	switch {
	case strings.HasPrefix(e.Action, "forward."):
		row.Subject = "forward " + shortID(row.SubjectID)
		if name, u := routerURL(str("router_id")); u != "" {
			row.Subject += " on " + name
			row.SubjectURL = u + "#f-" + row.SubjectID
		}
	case strings.HasPrefix(e.Action, "access."):
		row.Subject = "access " + shortID(row.SubjectID)
		if t := str("type"); t != "" {
			row.Subject = serviceText(t) + " " + row.Subject
		}
		if name, u := routerURL(str("router_id")); u != "" {
			row.Subject += " on " + name
			row.SubjectURL = u + "#a-" + row.SubjectID
		}
	case strings.HasPrefix(e.Action, "router."):
		name, u := routerURL(row.SubjectID)
		if name == "" {
			name = cmp.Or(str("name"), shortID(row.SubjectID))
		}
		row.Subject, row.SubjectURL = "router "+name, u
	case strings.HasPrefix(e.Action, "api_token."):
		row.Subject, row.SubjectURL = strings.TrimSpace("API token "+str("name")), "/tokens"
	default:
		row.Subject = shortID(row.SubjectID)
	}
	keys := make([]string, 0, len(detail))
	for k := range detail {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		item := detailItem{Key: strings.ReplaceAll(k, "_", " "), Value: detailValue(detail[k])}
		if k == "router_id" {
			if name, u := routerURL(item.Value); u != "" {
				item.Value, item.URL = name+" ("+shortID(item.Value)+")", u
			}
		}
		row.Detail = append(row.Detail, item)
	}
	return row
}

// actorText is an audit actor for humans: "token ci (uuid)" is "token ci".
func actorText(actor string) string {
	switch actor {
	case fleet.ActorExpiry:
		return "the expiry clock"
	case fleet.ActorAdmin:
		return "an admin command"
	}
	if name, ok := strings.CutPrefix(actor, "token "); ok {
		if i := strings.LastIndex(name, " ("); i > 0 && strings.HasSuffix(name, ")") {
			return "token " + name[:i]
		}
	}
	return actor
}

// detailValue writes a detail's value: text as it is, times as the pages
// write them, nested values as compact JSON.
func detailValue(v any) string {
	switch v := v.(type) {
	case string:
		if t, err := time.Parse(time.RFC3339, v); err == nil {
			return t.UTC().Format("Jan 2 15:04:05") + " UTC"
		}
		return v
	case json.Number:
		return v.String()
	case bool:
		if v {
			return "yes"
		}
		return "no"
	case nil:
		return "—"
	default:
		b, err := json.Marshal(v)
		if err != nil {
			return "?"
		}
		return string(b)
	}
}

// shortID is the start of a UUID, enough to tell ids apart on a page.
func shortID(id string) string {
	if len(id) > 8 {
		return id[:8]
	}
	return id
}
