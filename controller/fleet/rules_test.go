package fleet_test

import (
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/tpf-dev/tpf/controller/fleet"
)

func TestValidateNewForward(t *testing.T) {
	t.Parallel()
	valid := fleet.NewForwardInput{ExpireAfterMinutes: "120", DstPort: "22", DstAddress: "192.168.88.43", AllowFrom: "81.2.69.7/24", Masquerade: true}
	nf, problems := fleet.ValidateNewForward(valid, fleet.ForwardRules{})
	want := fleet.NewForward{DstAddress: netip.MustParseAddr("192.168.88.43"), DstPort: 22,
		AllowFrom: netip.MustParsePrefix("81.2.69.0/24"), Masquerade: true, Duration: 2 * time.Hour}
	if problems.Len() != 0 || nf != want {
		t.Fatalf("valid input: got %+v with %v, want %+v", nf, problems.Fields(), want)
	}

	lab := fleet.ForwardRules{MinExpireMinutes: 5, MaxExpireMinutes: 60, AllowSources: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}
	tests := []struct {
		name  string
		in    fleet.NewForwardInput
		rules fleet.ForwardRules
		want  [][2]string // field, message, in check order
	}{
		{"empty", fleet.NewForwardInput{}, fleet.ForwardRules{}, [][2]string{
			{"expire_after_minutes", "The expire after minutes field is required."},
			{"dst_port", "The dst port field is required."},
			{"dst_address", "The dst address field is required."},
			{"allow_from", "The allow from field is required."},
		}},
		{"every rule broken", fleet.NewForwardInput{ExpireAfterMinutes: "5", DstPort: "ssh", DstAddress: "169.254.169.254", AllowFrom: "198.51.100.0/24"}, fleet.ForwardRules{}, [][2]string{
			{"expire_after_minutes", "The expire after minutes field must be between 10 and 1440."},
			{"dst_port", "The dst port field must be an integer."},
			{"dst_address", "The dst address field must be a private (RFC 1918) or publicly routed IPv4 address; 169.254.169.254 is link-local."},
			{"allow_from", "The allow from field must be a publicly routed IPv4 address or range; 198.51.100.0/24 is documentation."},
		}},
		{"syntax", fleet.NewForwardInput{ExpireAfterMinutes: "12.5", DstPort: "70000", DstAddress: "192.168.088.43", AllowFrom: "81.2.69.0/16"}, fleet.ForwardRules{}, [][2]string{
			{"expire_after_minutes", "The expire after minutes field must be an integer."},
			{"dst_port", "The dst port field must be between 1 and 65535."},
			{"dst_address", "The dst address field must be a valid IPv4 address."},
			{"allow_from", "The allow from field must be a CIDR range between /24 and /32."},
		}},
		{"blank and long", fleet.NewForwardInput{ExpireAfterMinutes: "-0", DstPort: "22", DstAddress: "   ", AllowFrom: string(make([]byte, 65))}, fleet.ForwardRules{}, [][2]string{
			{"expire_after_minutes", "The expire after minutes field must be between 10 and 1440."},
			{"dst_address", "The dst address field is required."},
			{"allow_from", "The allow from field must not be greater than 64 characters."},
		}},
		{"wrong types in check order", fleet.NewForwardInput{ExpireAfterMinutes: "120", DstAddress: "192.168.88.43", AllowFrom: "81.2.69.7",
			WrongType: []string{"masquerade", "dst_port", "allow_from"}}, fleet.ForwardRules{}, [][2]string{
			{"dst_port", "The dst port field must be an integer."},
			{"allow_from", "The allow from field must be a string."},
			{"masquerade", "The masquerade field must be true or false."},
		}},
		{"operator's rules", fleet.NewForwardInput{ExpireAfterMinutes: "90", DstPort: "22", DstAddress: "192.168.88.43", AllowFrom: "10.1.2.3"}, lab, [][2]string{
			{"expire_after_minutes", "The expire after minutes field must be between 5 and 60."},
		}},
		{"control characters", fleet.NewForwardInput{ExpireAfterMinutes: "60", DstPort: "22", DstAddress: "192.168.88.43\n", AllowFrom: "\xff"}, fleet.ForwardRules{}, [][2]string{
			{"dst_address", "The dst address field must not contain control characters."},
			{"allow_from", "The allow from field must not contain control characters."},
		}},
	}
	for _, tt := range tests {
		_, problems := fleet.ValidateNewForward(tt.in, tt.rules)
		var got [][2]string
		for _, f := range problems.Fields() {
			for _, m := range problems.Messages(f) {
				got = append(got, [2]string{f, m})
			}
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("%s:\ngot  %q\nwant %q", tt.name, got, tt.want)
		}
	}
}

func TestForwardRulesDefaults(t *testing.T) {
	t.Parallel()
	got := fleet.ForwardRules{MaxExpireMinutes: 60}.WithDefaults()
	if got.MinExpireMinutes != fleet.DefaultMinExpireMinutes || got.MaxExpireMinutes != 60 {
		t.Errorf("got %+v, want the default minimum and the maximum given", got)
	}
}
