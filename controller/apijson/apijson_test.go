package apijson_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/tpf-dev/tpf/controller/apijson"
)

// The contract's sample creation answer, with tpf's additions after it.
func TestForwardKeepsTheContractsFieldsFirst(t *testing.T) {
	t.Parallel()
	now := time.Date(2024, 6, 22, 2, 33, 29, 0, time.UTC)
	expires := now.Add(2 * time.Hour)
	f := apijson.Forward{
		ID: "9c56202d-c388-484d-ac9a-7677f24f1f18", Port: 49159, AllowOnlyCIDR: "198.51.100.0/24",
		ExpiresAt: apijson.FormatTime(expires), EntryPoint: "us-east1.mkcld.io", DstAddress: "192.168.88.43", DstPort: 22,
		TimeToExpire: apijson.RelativeTime(expires, now), Status: "pending",
	}
	b, err := json.Marshal(f)
	if err != nil {
		t.Fatal(err)
	}
	const contract = `{"id":"9c56202d-c388-484d-ac9a-7677f24f1f18","port":49159,"revoked_early":false,` +
		`"allow_only_cidr":"198.51.100.0/24","authorized_at":null,"expires_at":"2024-06-22T04:33:29+00:00",` +
		`"expired":false,"entry_point":"us-east1.mkcld.io","dst_address":"192.168.88.43","dst_port":22,` +
		`"time_to_expire":"2 hours from now",`
	if !strings.HasPrefix(string(b), contract) {
		t.Errorf("got  %s\nwant %s…", b, contract)
	}
}

func TestRelativeTime(t *testing.T) {
	t.Parallel()
	now := time.Date(2024, 6, 22, 2, 33, 29, 0, time.UTC)
	day := 24 * time.Hour
	tests := []struct {
		d    time.Duration
		want string
	}{
		{2 * time.Hour, "2 hours from now"},
		{2*time.Hour - time.Second, "1 hour from now"},
		{59 * time.Minute, "59 minutes from now"},
		{time.Second, "1 second from now"},
		{0, "0 seconds ago"},
		{-time.Second, "1 second ago"},
		{-3*time.Minute - 59*time.Second, "3 minutes ago"},
		{-25 * time.Hour, "1 day ago"},
		{8 * day, "1 week from now"},
		{45 * day, "1 month from now"},
		{-800 * day, "2 years ago"},
	}
	for _, tt := range tests {
		if got := apijson.RelativeTime(now.Add(tt.d), now); got != tt.want {
			t.Errorf("RelativeTime(now%+v): got %q, want %q", tt.d, got, tt.want)
		}
	}
}

func TestTimes(t *testing.T) {
	t.Parallel()
	at := time.Date(2024, 6, 22, 6, 33, 29, 500, time.FixedZone("CEST", 2*3600))
	if got, want := apijson.FormatTime(at), "2024-06-22T04:33:29+00:00"; got != want {
		t.Errorf("FormatTime: got %q, want %q", got, want)
	}
	if got := apijson.FormatTimePtr(nil); got != nil {
		t.Errorf("FormatTimePtr(nil): got %q, want nil", *got)
	}
	for _, s := range []string{"2024-06-22T04:33:29+00:00", "2024-06-22T04:33:29Z", "2024-06-22T06:33:29+02:00"} {
		got, err := apijson.ParseTime(s)
		if err != nil || !got.Equal(at.Truncate(time.Second)) {
			t.Errorf("ParseTime(%q): got %v, %v, want %v", s, got, err, at.Truncate(time.Second))
		}
	}
	if _, err := apijson.ParseTime("yesterday"); err == nil {
		t.Error(`ParseTime("yesterday"): got no error`)
	}
	if got, err := apijson.ParseTimePtr(nil); got != nil || err != nil {
		t.Errorf("ParseTimePtr(nil): got %v, %v, want nil, nil", got, err)
	}
}

func TestValidationError(t *testing.T) {
	t.Parallel()
	one := apijson.NewValidationError([]apijson.FieldErrors{{Field: "dst_port", Messages: []string{"The dst port field is required."}}})
	three := apijson.NewValidationError([]apijson.FieldErrors{
		{Field: "expire_after_minutes", Messages: []string{"The expire after minutes field must be between 10 and 1440."}},
		{Field: "dst_address", Messages: []string{"The dst address field is required."}},
		{Field: "allow_from", Messages: []string{"The allow from field is required."}},
	})
	tests := []struct {
		v    apijson.ValidationError
		want string
	}{
		{one, `{"message":"The dst port field is required.","errors":{"dst_port":["The dst port field is required."]}}`},
		{three, `{"message":"The expire after minutes field must be between 10 and 1440. (and 2 more errors)","errors":{` +
			`"expire_after_minutes":["The expire after minutes field must be between 10 and 1440."],` +
			`"dst_address":["The dst address field is required."],"allow_from":["The allow from field is required."]}}`},
	}
	for _, tt := range tests {
		b, err := json.Marshal(tt.v)
		if err != nil || string(b) != tt.want {
			t.Errorf("got  %s, %v\nwant %s", b, err, tt.want)
		}
		var back apijson.ValidationError
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatal(err)
		}
		if again, _ := json.Marshal(back); string(again) != tt.want {
			t.Errorf("decoded and encoded again: got %s, want the same order", again)
		}
	}
	if two := apijson.NewValidationError(three.Errors[:2]); !strings.HasSuffix(two.Message, " (and 1 more error)") {
		t.Errorf("two messages: got %q, want … (and 1 more error)", two.Message)
	}

	var other apijson.ValidationError
	if err := json.Unmarshal([]byte(`{"message":"Not found."}`), &other); err != nil || other.Message != "Not found." || other.Errors != nil {
		t.Errorf("a 404's body: got %+v, %v, want its message without errors", other, err)
	}
	if err := json.Unmarshal([]byte(`{"message":"x","errors":[1]}`), &other); err == nil {
		t.Error("errors that are not an object: got no error")
	}
}
