package tpfctl

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Client calls tpf's REST API. BaseURL and Token must be set; the zero
// value of HTTP means a client with a 30-second timeout per request.
//
// Every method answers the decoded value and the body exactly as the API
// sent it (for -o json). Non-2xx answers are *APIError; transport failures
// are wrapped errors naming the URL, never the token.
type Client struct {
	// BaseURL is the controller, http(s)://host[:port] without a trailing
	// slash.
	BaseURL string
	// Token is the API token sent as a bearer token.
	Token string
	// HTTP makes the requests; nil means defaultHTTPClient.
	HTTP *http.Client
}

var defaultHTTPClient = &http.Client{Timeout: 30 * time.Second}

// Throttled GETs (429) are retried this often, waiting as long as the API's
// Retry-After says when that is at most maxRetryWait.
const (
	maxRetries   = 3
	maxRetryWait = time.Minute
)

// APIError is an answer of the API other than 2xx: its status code and its
// {"message": …}, and for a 422 every field's messages in the API's order.
type APIError struct {
	Status  int
	Message string
	Fields  []FieldErrors
	// RetryAfter is the answer's Retry-After header (429, 503), empty if none.
	RetryAfter string
}

// FieldErrors is one field of a 422 answer with its messages.
type FieldErrors struct {
	Field    string
	Messages []string
}

func (e *APIError) Error() string {
	msg := e.Message
	if msg == "" {
		msg = fmt.Sprintf("the API answered %d %s", e.Status, http.StatusText(e.Status))
	}
	if e.RetryAfter != "" {
		msg += " (retry after " + e.RetryAfter + "s)"
	}
	return msg
}

// Forward is the API's forward object.
type Forward struct {
	ID                string  `json:"id"`
	Port              int     `json:"port"`
	RevokedEarly      bool    `json:"revoked_early"`
	AllowOnlyCIDR     string  `json:"allow_only_cidr"`
	ExpiresAt         string  `json:"expires_at"`
	Expired           bool    `json:"expired"`
	EntryPoint        string  `json:"entry_point"`
	DstAddress        string  `json:"dst_address"`
	DstPort           int     `json:"dst_port"`
	TimeToExpire      string  `json:"time_to_expire"`
	RouterID          string  `json:"router_id"`
	Status            string  `json:"status"`
	Masquerade        bool    `json:"masquerade"`
	CreatedAt         string  `json:"created_at"`
	RevokedAt         *string `json:"revoked_at"`
	RouterError       *string `json:"router_error"`
	EdgeError         *string `json:"edge_error"`
	ConnectionsActive int     `json:"connections_active"`
}

// NewForward is the creation object of POST …/transient-forwarding.
type NewForward struct {
	ExpireAfterMinutes int64  `json:"expire_after_minutes"`
	DstPort            int    `json:"dst_port"`
	DstAddress         string `json:"dst_address"`
	AllowFrom          string `json:"allow_from"`
	Masquerade         bool   `json:"masquerade"`
}

// Router is the API's router object.
type Router struct {
	ID            string `json:"id"`
	Name          string `json:"name"`
	Region        string `json:"region"`
	TunnelAddress string `json:"tunnel_address"`
	CreatedAt     string `json:"created_at"`
	Agent         Agent  `json:"agent"`
}

// Agent is a router's agent state.
type Agent struct {
	Connected       bool    `json:"connected"`
	ConnectedAt     *string `json:"connected_at"`
	LastSeenAt      *string `json:"last_seen_at"`
	AgentVersion    string  `json:"agent_version"`
	RouterOSVersion string  `json:"routeros_version"`
	Board           string  `json:"board"`
	Identity        string  `json:"identity"`
	DesiredRevision int64   `json:"desired_revision"`
	AppliedRevision int64   `json:"applied_revision"`
	InSync          bool    `json:"in_sync"`
	LastError       string  `json:"last_error"`
}

// Region is the API's region object; Edge is nil when no tpf edge serves it.
type Region struct {
	ID         string `json:"id"`
	EntryPoint string `json:"entry_point"`
	PortMin    int    `json:"port_min"`
	PortMax    int    `json:"port_max"`
	Edge       *Edge  `json:"edge"`
}

// Edge is a region's edge state.
type Edge struct {
	Connected       bool    `json:"connected"`
	LastSeenAt      *string `json:"last_seen_at"`
	Version         string  `json:"version"`
	DesiredRevision int64   `json:"desired_revision"`
	AppliedRevision int64   `json:"applied_revision"`
	LastError       string  `json:"last_error"`
}

// Connection is one connection the edge relayed for a forward.
type Connection struct {
	ID        string  `json:"id"`
	Source    string  `json:"source"`
	StartedAt string  `json:"started_at"`
	EndedAt   *string `json:"ended_at"`
	BytesUp   int64   `json:"bytes_up"`
	BytesDown int64   `json:"bytes_down"`
	Reason    string  `json:"reason"`
}

func forwardsPath(router string) string {
	return "/api/routers/" + url.PathEscape(router) + "/transient-forwarding"
}

func forwardPath(router, id string) string {
	return forwardsPath(router) + "/" + url.PathEscape(id)
}

// Routers lists the account's routers.
func (c *Client) Routers(ctx context.Context) ([]Router, []byte, error) {
	return call[[]Router](ctx, c, http.MethodGet, "/api/routers", nil)
}

// Router reads one router by id.
func (c *Client) Router(ctx context.Context, id string) (Router, []byte, error) {
	return call[Router](ctx, c, http.MethodGet, "/api/routers/"+url.PathEscape(id), nil)
}

// Regions lists the regions with their edge state.
func (c *Client) Regions(ctx context.Context) ([]Region, []byte, error) {
	return call[[]Region](ctx, c, http.MethodGet, "/api/regions", nil)
}

// Forwards lists a router's forwards: the live ones when state is empty,
// else history ("all" or "ended"), newest first, at most limit (0: the API's
// default).
func (c *Client) Forwards(ctx context.Context, router, state string, limit int) ([]Forward, []byte, error) {
	q := url.Values{}
	if state != "" {
		q.Set("state", state)
	}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	path := forwardsPath(router)
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	return call[[]Forward](ctx, c, http.MethodGet, path, nil)
}

// Forward reads one forward, also an ended one.
func (c *Client) Forward(ctx context.Context, router, id string) (Forward, []byte, error) {
	return call[Forward](ctx, c, http.MethodGet, forwardPath(router, id), nil)
}

// CreateForward opens a forward.
func (c *Client) CreateForward(ctx context.Context, router string, nf NewForward) (Forward, []byte, error) {
	return call[Forward](ctx, c, http.MethodPost, forwardsPath(router), nf)
}

// RevokeForward ends a forward now; revoking an ended one is harmless.
func (c *Client) RevokeForward(ctx context.Context, router, id string) error {
	_, err := c.do(ctx, http.MethodDelete, forwardPath(router, id), nil)
	return err
}

// Connections lists the connections relayed for a forward, newest first, at
// most limit (0: the API's default).
func (c *Client) Connections(ctx context.Context, router, id string, limit int) ([]Connection, []byte, error) {
	path := forwardPath(router, id) + "/connections"
	if limit > 0 {
		path += "?limit=" + strconv.Itoa(limit)
	}
	return call[[]Connection](ctx, c, http.MethodGet, path, nil)
}

// call makes a request and decodes its answer into T.
func call[T any](ctx context.Context, c *Client, method, path string, body any) (T, []byte, error) {
	var v T
	raw, err := c.do(ctx, method, path, body)
	if err != nil {
		return v, nil, err
	}
	if err := json.Unmarshal(raw, &v); err != nil {
		return v, nil, fmt.Errorf("%s %s: the API's answer is not what tpfctl expects: %w", method, c.BaseURL+path, err)
	}
	return v, raw, nil
}

// do makes a request and answers the body of a 2xx answer, or *APIError.
// GETs throttled with 429 are retried after Retry-After.
func (c *Client) do(ctx context.Context, method, path string, body any) ([]byte, error) {
	var payload []byte
	if body != nil {
		var err error
		if payload, err = json.Marshal(body); err != nil {
			return nil, err
		}
	}
	for attempt := 0; ; attempt++ {
		raw, err := c.once(ctx, method, path, payload)
		var apiErr *APIError
		if method != http.MethodGet || attempt >= maxRetries || !errors.As(err, &apiErr) || apiErr.Status != http.StatusTooManyRequests {
			return raw, err
		}
		wait, perr := strconv.Atoi(apiErr.RetryAfter)
		if perr != nil || wait < 0 || time.Duration(wait)*time.Second > maxRetryWait {
			return raw, err
		}
		t := time.NewTimer(time.Duration(wait) * time.Second)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, err
		case <-t.C:
		}
	}
}

// once makes one request.
func (c *Client) once(ctx context.Context, method, path string, payload []byte) ([]byte, error) {
	var rd io.Reader
	if payload != nil {
		rd = bytes.NewReader(payload)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.BaseURL+path, rd)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+c.Token)
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "tpfctl")
	if payload != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	hc := c.HTTP
	if hc == nil {
		hc = defaultHTTPClient
	}
	res, err := hc.Do(req)
	if err != nil {
		// *url.Error names the method and URL; the token is only in a header.
		return nil, fmt.Errorf("cannot reach the API: %w", err)
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(res.Body, 64<<20))
	if err != nil {
		return nil, fmt.Errorf("%s %s: reading the answer: %w", method, c.BaseURL+path, err)
	}
	if res.StatusCode >= 200 && res.StatusCode < 300 {
		return raw, nil
	}
	return nil, decodeAPIError(res.StatusCode, res.Header.Get("Retry-After"), raw)
}

// decodeAPIError reads an error answer. The 422 fields keep the API's
// order (its check order), which a map would lose.
func decodeAPIError(status int, retryAfter string, raw []byte) *APIError {
	e := &APIError{Status: status, RetryAfter: retryAfter}
	var body struct {
		Message string                     `json:"message"`
		Errors  map[string]json.RawMessage `json:"errors"`
	}
	if json.Unmarshal(raw, &body) != nil {
		return e // not JSON (a proxy's page): the status says it all
	}
	e.Message = body.Message
	if body.Errors != nil {
		e.Fields = orderedFieldErrors(raw)
	}
	return e
}

// orderedFieldErrors reads "errors": {"field": ["message", …], …} in the
// order the fields appear.
func orderedFieldErrors(raw []byte) []FieldErrors {
	var top map[string]json.RawMessage
	if json.Unmarshal(raw, &top) != nil {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(top["errors"]))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil
	}
	var out []FieldErrors
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return out
		}
		name, _ := tok.(string)
		var msgs []string
		if err := dec.Decode(&msgs); err != nil {
			return out
		}
		out = append(out, FieldErrors{Field: name, Messages: msgs})
	}
	return out
}

// isUUID reports whether s is written as a UUID (8-4-4-4-12 hex digits).
func isUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i, r := range s {
		switch i {
		case 8, 13, 18, 23:
			if r != '-' {
				return false
			}
		default:
			if !strings.ContainsRune("0123456789abcdefABCDEF", r) {
				return false
			}
		}
	}
	return true
}
