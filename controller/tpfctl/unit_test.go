package tpfctl

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tpf-dev/tpf/controller/apijson"
)

func TestWholeMinutes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in      string
		want    int64
		wantErr string
	}{
		{"2h", 120, ""},
		{"90m", 90, ""},
		{"1h30m", 90, ""},
		{"10m0s", 10, ""},
		{"24h", 1440, ""},
		{"90s", 0, "--for 90s is not a whole number of minutes; forwards last whole minutes (try 1m or 2m)"},
		{"1h59m30s", 0, "(try 1h59m or 2h)"},
		{"1h0m1s", 0, "(try 1h or 1h1m)"},
		{"0s", 0, "--for 0s must be positive"},
		{"-2h", 0, "must be positive"},
		{"120", 0, `--for "120" is not a duration such as 2h, 90m or 1h30m`},
		{"", 0, "is not a duration"},
	}
	for _, tt := range tests {
		got, err := wholeMinutes(tt.in)
		switch {
		case tt.wantErr == "" && err != nil:
			t.Errorf("wholeMinutes(%q): got error %v, want %d", tt.in, err, tt.want)
		case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
			t.Errorf("wholeMinutes(%q): got %d, %v, want error with %q", tt.in, got, err, tt.wantErr)
		case got != tt.want:
			t.Errorf("wholeMinutes(%q): got %d, want %d", tt.in, got, tt.want)
		}
	}
}

func TestDecodeAPIErrorKeepsFieldOrder(t *testing.T) {
	t.Parallel()
	body := `{"message":"The dst port field must be between 1 and 65535. (and 2 more errors)","errors":{"dst_port":["a"],"dst_address":["b","c"],"allow_from":["d"]}}`
	e := decodeAPIError(422, "", []byte(body))
	got := fmt.Sprint(e.Fields)
	want := "[{dst_port [a]} {dst_address [b c]} {allow_from [d]}]"
	if got != want {
		t.Errorf("got fields %s, want %s", got, want)
	}
	if e.Message != "The dst port field must be between 1 and 65535. (and 2 more errors)" {
		t.Errorf("got message %q", e.Message)
	}

	// An answer that is not the API's (a proxy's page) still says something.
	e = decodeAPIError(502, "", []byte("<html>bad gateway</html>"))
	if got, want := e.Error(), "the API answered 502 Bad Gateway"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestExitCode(t *testing.T) {
	t.Parallel()
	tests := []struct {
		err  error
		want int
	}{
		{nil, ExitOK},
		{errors.New("boom"), ExitError},
		{fmt.Errorf("get: %w", &APIError{Status: 404}), ExitNotFound},
		{fmt.Errorf("create: %w", &APIError{Status: 422}), ExitInvalid},
		{&APIError{Status: 401}, ExitUnauthenticated},
		{&APIError{Status: 500}, ExitError},
		{&APIError{Status: 429}, ExitError},
		{&APIError{Status: 400}, ExitError},
		{usageErrorf("", "bad"), ExitUsage},
		{&codedError{code: ExitNotFound, msg: "no router"}, ExitNotFound},
		{&codedError{code: ExitTimeout, msg: "slow"}, ExitTimeout},
		{context.Canceled, ExitError},
	}
	for _, tt := range tests {
		if got := ExitCode(tt.err); got != tt.want {
			t.Errorf("ExitCode(%v): got %d, want %d", tt.err, got, tt.want)
		}
	}
}

// TestThrottledGETsAreRetried checks that a 429 with a short Retry-After is
// waited out for reads, and not for writes.
func TestThrottledGETsAreRetried(t *testing.T) {
	t.Parallel()
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1)%2 == 1 {
			w.Header().Set("Retry-After", "0")
			w.WriteHeader(http.StatusTooManyRequests)
			fmt.Fprint(w, `{"message":"Too Many Attempts."}`)
			return
		}
		w.WriteHeader(http.StatusCreated)
		fmt.Fprint(w, `[]`)
	}))
	t.Cleanup(srv.Close)
	c := &Client{BaseURL: srv.URL, Token: "tpf_x"}

	list, _, err := c.Routers(context.Background())
	if err != nil || len(list) != 0 || calls.Load() != 2 {
		t.Fatalf("got %v, %v after %d calls, want an empty list after 2", list, err, calls.Load())
	}
	calls.Store(0)
	err = c.RevokeForward(context.Background(), "r", "f")
	var apiErr *APIError
	if !errors.As(err, &apiErr) || apiErr.Status != 429 || calls.Load() != 1 {
		t.Fatalf("got %v after %d calls, want the 429 after 1", err, calls.Load())
	}
	if got, want := err.Error(), "Too Many Attempts. (retry after 0s)"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestAgo(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	at := func(d time.Duration) *string {
		s := now.Add(d).Format("2006-01-02T15:04:05-07:00")
		return &s
	}
	bad := "yesterday"
	tests := []struct {
		at      *string
		ago     string
		whenAgo string
	}{
		{nil, "never", ""},
		{at(0), "0 seconds ago", "2026-05-01T12:00:00+00:00 (0 seconds ago)"},
		{at(-61 * time.Minute), "1 hour ago", "2026-05-01T10:59:00+00:00 (1 hour ago)"},
		{at(3 * time.Minute), "3 minutes from now", "2026-05-01T12:03:00+00:00 (3 minutes from now)"},
		{&bad, "yesterday", "yesterday"},
	}
	for _, tt := range tests {
		if got := agoOf(tt.at, now); got != tt.ago {
			t.Errorf("agoOf(%v): got %q, want %q", deref(tt.at), got, tt.ago)
		}
		if got := whenAgo(tt.at, now); got != tt.whenAgo {
			t.Errorf("whenAgo(%v): got %q, want %q", deref(tt.at), got, tt.whenAgo)
		}
	}
}

func TestBytesText(t *testing.T) {
	t.Parallel()
	for n, want := range map[int64]string{0: "0 B", 1023: "1023 B", 1024: "1.0 KiB", 1536: "1.5 KiB", 5 << 20: "5.0 MiB", 3 << 30: "3.0 GiB"} {
		if got := bytesText(n); got != want {
			t.Errorf("bytesText(%d): got %q, want %q", n, got, want)
		}
	}
}

func TestFormatBytes(t *testing.T) {
	t.Parallel()
	for n, want := range map[int64]string{0: "0 B", 900: "900 B", 1536: "1.5 KiB", 3 << 20: "3.0 MiB", 5 << 40: "5.0 TiB"} {
		if got := formatBytes(n); got != want {
			t.Errorf("formatBytes(%d): got %q, want %q", n, got, want)
		}
	}
}

func TestExpiresText(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	at := func(d time.Duration) string { return apijson.FormatTime(now.Add(d)) }
	revokedAt := at(-5 * time.Minute)
	for _, tc := range []struct {
		f    Forward
		want string
	}{
		{Forward{ExpiresAt: at(2*time.Hour - 5*time.Second)}, "in 1h59m"},
		{Forward{ExpiresAt: at(2 * time.Hour)}, "in 2h"},
		{Forward{ExpiresAt: at(30 * time.Second)}, "in 30s"},
		{Forward{ExpiresAt: at(26*time.Hour + 3*time.Minute)}, "in 1d2h3m"},
		{Forward{ExpiresAt: at(-3 * time.Minute), Expired: true}, "expired 3m ago"},
		{Forward{ExpiresAt: at(time.Hour), RevokedEarly: true, RevokedAt: &revokedAt}, "revoked 5m ago"},
	} {
		if got := expiresText(tc.f, now); got != tc.want {
			t.Errorf("expiresText(expires %s): got %q, want %q", tc.f.ExpiresAt, got, tc.want)
		}
	}
}

func TestWholeMinutesSuggests(t *testing.T) {
	for text, want := range map[string]string{
		"2h30s": "try 2h or 2h1m",
		"30s":   "try 1m",
		"90m1s": "try 1h30m or 1h31m",
	} {
		_, err := wholeMinutes(text)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("--for %s: got %v, want it to suggest %q", text, err, want)
		}
	}
}
