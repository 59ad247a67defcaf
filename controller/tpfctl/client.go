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

	"github.com/tpf-dev/tpf/controller/apijson"
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
	Fields  []apijson.FieldErrors
	// RetryAfter is the answer's Retry-After header (429, 503), empty if none.
	RetryAfter string
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

// The API's JSON, as package apijson defines it for the API and its
// clients alike.
type (
	Forward    = apijson.Forward
	NewForward = apijson.NewForward
	Router     = apijson.Router
	Agent      = apijson.Agent
	Tunnel     = apijson.Tunnel
	Region     = apijson.Region
	Edge       = apijson.Edge
	Connection = apijson.Connection
	Access     = apijson.Access
	NewAccess  = apijson.NewAccess
)

func forwardsPath(router string) string {
	return "/api/routers/" + url.PathEscape(router) + "/transient-forwarding"
}

func forwardPath(router, id string) string {
	return forwardsPath(router) + "/" + url.PathEscape(id)
}

func accessesPath(router string) string {
	return "/api/routers/" + url.PathEscape(router) + "/transient-access"
}

func accessPath(router, id string) string {
	return accessesPath(router) + "/" + url.PathEscape(id)
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

// Accesses lists a router's accesses, newest first: the live ones, or with
// all every one, at most limit (0: the API's default).
func (c *Client) Accesses(ctx context.Context, router string, all bool, limit int) ([]Access, []byte, error) {
	q := url.Values{}
	if all {
		q.Set("state", "all")
	}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	path := accessesPath(router)
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	return call[[]Access](ctx, c, http.MethodGet, path, nil)
}

// Access reads one access, also an ended one; never its password.
func (c *Client) Access(ctx context.Context, router, id string) (Access, []byte, error) {
	return call[Access](ctx, c, http.MethodGet, accessPath(router, id), nil)
}

// CreateAccess opens an access; the answer holds its password, the only
// time the API shows it.
func (c *Client) CreateAccess(ctx context.Context, router string, na NewAccess) (Access, []byte, error) {
	return call[Access](ctx, c, http.MethodPost, accessesPath(router), na)
}

// RevokeAccess ends an access now; revoking an ended one is harmless.
func (c *Client) RevokeAccess(ctx context.Context, router, id string) error {
	_, err := c.do(ctx, http.MethodDelete, accessPath(router, id), nil)
	return err
}

// AccessConnections lists the connections relayed for an access, newest
// first, at most limit (0: the API's default).
func (c *Client) AccessConnections(ctx context.Context, router, id string, limit int) ([]Connection, []byte, error) {
	path := accessPath(router, id) + "/connections"
	if limit > 0 {
		path += "?limit=" + strconv.Itoa(limit)
	}
	return call[[]Connection](ctx, c, http.MethodGet, path, nil)
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
// order (its check order).
func decodeAPIError(status int, retryAfter string, raw []byte) *APIError {
	e := &APIError{Status: status, RetryAfter: retryAfter}
	var body apijson.ValidationError
	if err := json.Unmarshal(raw, &body); err != nil {
		var msg apijson.Message
		if json.Unmarshal(raw, &msg) == nil {
			e.Message = msg.Message // "errors" unreadable: the message still says it
		}
		return e // not JSON (a proxy's page): the status says it all
	}
	e.Message, e.Fields = body.Message, body.Errors
	return e
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
