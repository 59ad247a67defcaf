package fleet_test

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tpf-dev/tpf/controller/fleet"
)

func TestValidateNewAccess(t *testing.T) {
	t.Parallel()
	na, problems := fleet.ValidateNewAccess(fleet.NewAccessInput{Type: "winbox", ExpireAfterMinutes: "60", AllowFrom: "81.2.69.7/24", ReadOnly: true}, fleet.ForwardRules{})
	want := fleet.NewAccess{Service: fleet.ServiceWinbox, AllowFrom: netip.MustParsePrefix("81.2.69.0/24"), ReadOnly: true, Duration: time.Hour}
	if problems.Len() != 0 || na != want {
		t.Fatalf("valid input: got %+v with %v, want %+v", na, problems.Fields(), want)
	}

	tests := []struct {
		name string
		in   fleet.NewAccessInput
		want [][2]string
	}{
		{"empty", fleet.NewAccessInput{}, [][2]string{
			{"type", "The type field is required."},
			{"expire_after_minutes", "The expire after minutes field is required."},
			{"allow_from", "The allow from field is required."},
		}},
		{"every rule broken", fleet.NewAccessInput{Type: "telnet", ExpireAfterMinutes: "1441", AllowFrom: "10.0.0.0/24"}, [][2]string{
			{"type", "The selected type is invalid."},
			{"expire_after_minutes", "The expire after minutes field must be between 10 and 1440."},
			{"allow_from", "The allow from field must be a publicly routed IPv4 address or range; 10.0.0.0/24 is private."},
		}},
		{"wrong types", fleet.NewAccessInput{Type: "ssh", ExpireAfterMinutes: "60", AllowFrom: "81.2.69.7", WrongType: []string{"type", "read_only"}}, [][2]string{
			{"type", "The type field must be a string."},
			{"read_only", "The read only field must be true or false."},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, problems := fleet.ValidateNewAccess(tt.in, fleet.ForwardRules{})
			var got [][2]string
			for _, f := range problems.Fields() {
				for _, m := range problems.Messages(f) {
					got = append(got, [2]string{f, m})
				}
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("got %q\nwant %q", got, tt.want)
			}
		})
	}
}

func TestAccessCredentials(t *testing.T) {
	t.Parallel()
	seen := map[string]bool{}
	for range 200 {
		u, pw := fleet.NewAccessUsername(), fleet.NewAccessPassword()
		if !strings.HasPrefix(u, fleet.AccessUserPrefix) || len(u) != len(fleet.AccessUserPrefix)+10 {
			t.Fatalf("username %q", u)
		}
		if len(pw) != 24 || !strings.ContainsAny(pw, "0123456789") || strings.ToLower(pw) == pw || strings.ToUpper(pw) == pw || !strings.ContainsAny(pw, "-_.+") {
			t.Fatalf("password %q lacks a category", pw)
		}
		if seen[u] || seen[pw] {
			t.Fatalf("%q or %q drawn twice", u, pw)
		}
		seen[u], seen[pw] = true, true
	}
}
