package forward

import (
	"errors"
	"net/netip"
	"testing"
)

func TestParseIPv4(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in string
		ok bool
	}{
		{"1.2.3.4", true},
		{"0.0.0.0", true},
		{"255.255.255.255", true},
		{"", false},
		{"1.2.3", false},
		{"10.1", false},
		{"01.2.3.4", false},
		{"010.1.1.1", false},
		{"1.2.3.04", false},
		{"1.2.3.4 ", false},
		{" 1.2.3.4", false},
		{"::ffff:1.2.3.4", false},
		{"::1", false},
		{"1.2.3.4%eth0", false},
		{"256.1.1.1", false},
		{"0x7f.0.0.1", false},
		{"1.2.3.4/32", false},
		{"1.2.3.4.", false},
		{"1..3.4", false},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			t.Parallel()
			a, err := ParseIPv4(tt.in)
			if !tt.ok {
				if !errors.Is(err, ErrSyntax) {
					t.Fatalf("ParseIPv4(%q) = %v, %v; want ErrSyntax", tt.in, a, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseIPv4(%q): got error %v, want nil", tt.in, err)
			}
			if a.String() != tt.in {
				t.Errorf("ParseIPv4(%q): got %v, want %s", tt.in, a, tt.in)
			}
		})
	}
}

// classTests probe every special-purpose block at its first and last address
// and just outside it.
var classTests = []struct {
	addr  string
	class string
}{
	{"0.0.0.0", "this network"},
	{"0.255.255.255", "this network"},
	{"1.0.0.0", "global"},
	{"9.255.255.255", "global"},
	{"10.0.0.0", "private"},
	{"10.255.255.255", "private"},
	{"11.0.0.0", "global"},
	{"100.63.255.255", "global"},
	{"100.64.0.0", "shared address space"},
	{"100.127.255.255", "shared address space"},
	{"100.128.0.0", "global"},
	{"126.255.255.255", "global"},
	{"127.0.0.0", "loopback"},
	{"127.0.0.1", "loopback"},
	{"127.255.255.255", "loopback"},
	{"128.0.0.0", "global"},
	{"169.253.255.255", "global"},
	{"169.254.0.0", "link-local"},
	{"169.254.169.254", "link-local"},
	{"169.254.255.255", "link-local"},
	{"169.255.0.0", "global"},
	{"172.15.255.255", "global"},
	{"172.16.0.0", "private"},
	{"172.31.255.255", "private"},
	{"172.32.0.0", "global"},
	{"191.255.255.255", "global"},
	{"192.0.0.0", "IETF protocol assignments"},
	{"192.0.0.8", "IETF protocol assignments"},
	{"192.0.0.9", "global"},
	{"192.0.0.10", "global"},
	{"192.0.0.11", "IETF protocol assignments"},
	{"192.0.0.255", "IETF protocol assignments"},
	{"192.0.1.0", "global"},
	{"192.0.1.255", "global"},
	{"192.0.2.0", "documentation"},
	{"192.0.2.255", "documentation"},
	{"192.0.3.0", "global"},
	{"192.31.196.0", "global"},
	{"192.31.196.255", "global"},
	{"192.52.193.0", "global"},
	{"192.52.193.255", "global"},
	{"192.88.98.255", "global"},
	{"192.88.99.0", "6to4 relay anycast"},
	{"192.88.99.255", "6to4 relay anycast"},
	{"192.88.100.0", "global"},
	{"192.167.255.255", "global"},
	{"192.168.0.0", "private"},
	{"192.168.255.255", "private"},
	{"192.169.0.0", "global"},
	{"192.175.48.0", "global"},
	{"192.175.48.255", "global"},
	{"198.17.255.255", "global"},
	{"198.18.0.0", "benchmarking"},
	{"198.19.255.255", "benchmarking"},
	{"198.20.0.0", "global"},
	{"198.51.99.255", "global"},
	{"198.51.100.0", "documentation"},
	{"198.51.100.255", "documentation"},
	{"198.51.101.0", "global"},
	{"203.0.112.255", "global"},
	{"203.0.113.0", "documentation"},
	{"203.0.113.255", "documentation"},
	{"203.0.114.0", "global"},
	{"223.255.255.255", "global"},
	{"224.0.0.0", "multicast"},
	{"239.255.255.255", "multicast"},
	{"240.0.0.0", "reserved"},
	{"255.255.255.254", "reserved"},
	{"255.255.255.255", "broadcast"},
}

func TestClass(t *testing.T) {
	t.Parallel()
	for _, tt := range classTests {
		if got := Class(netip.MustParseAddr(tt.addr)); got != tt.class {
			t.Errorf("Class(%s): got %q, want %q", tt.addr, got, tt.class)
		}
	}
	if got, want := Class(netip.MustParseAddr("::ffff:10.0.0.1")), "not IPv4"; got != want {
		t.Errorf("Class(::ffff:10.0.0.1): got %q, want %q", got, want)
	}
}

func TestDestination(t *testing.T) {
	t.Parallel()
	for _, tt := range classTests {
		t.Run(tt.addr, func(t *testing.T) {
			t.Parallel()
			a, err := Destination(tt.addr)
			if tt.class == "global" || tt.class == "private" {
				if err != nil || a.String() != tt.addr {
					t.Fatalf("Destination(%q): got %v, %v; want %s, nil", tt.addr, a, err, tt.addr)
				}
				return
			}
			if !errors.Is(err, ErrNotRoutable) {
				t.Fatalf("Destination(%q): got %v, %v; want ErrNotRoutable", tt.addr, a, err)
			}
		})
	}
}

func TestDestinationErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want error
		msg  string
	}{
		{"169.254.169.254", ErrNotRoutable, `"169.254.169.254" is link-local: not a private or globally reachable address`},
		{"127.0.0.1", ErrNotRoutable, `"127.0.0.1" is loopback: not a private or globally reachable address`},
		{"010.0.0.1", ErrSyntax, `"010.0.0.1": not a canonical IPv4 address or CIDR`},
		{"10.0.0.0/8", ErrSyntax, `"10.0.0.0/8": not a canonical IPv4 address or CIDR`},
		{"", ErrSyntax, `"": not a canonical IPv4 address or CIDR`},
	}
	for _, tt := range tests {
		_, err := Destination(tt.in)
		if !errors.Is(err, tt.want) {
			t.Errorf("Destination(%q): got error %v, want %v", tt.in, err, tt.want)
			continue
		}
		if err.Error() != tt.msg {
			t.Errorf("Destination(%q): got message %q, want %q", tt.in, err, tt.msg)
		}
	}
}

func TestSource(t *testing.T) {
	t.Parallel()
	lab := []netip.Prefix{
		netip.MustParsePrefix("10.0.0.0/8"),
		netip.MustParsePrefix("127.0.0.0/8"),
	}
	tests := []struct {
		in    string
		extra []netip.Prefix
		want  string // normalised prefix when accepted
		err   error  // sentinel when refused
	}{
		// Prefix lengths and normalisation.
		{in: "1.2.3.4", want: "1.2.3.4/32"},
		{in: "1.2.3.4/32", want: "1.2.3.4/32"},
		{in: "1.2.3.4/24", want: "1.2.3.0/24"},
		{in: "1.2.3.0/24", want: "1.2.3.0/24"},
		{in: "1.2.3.4/28", want: "1.2.3.0/28"},
		{in: "1.2.2.0/23", err: ErrPrefixLength},
		{in: "1.2.3.4/16", err: ErrPrefixLength},
		{in: "0.0.0.0/0", err: ErrPrefixLength},
		{in: "1.2.3.4/33", err: ErrSyntax},

		// Odd notations.
		{in: "", err: ErrSyntax},
		{in: "1.2.3", err: ErrSyntax},
		{in: "01.2.3.4", err: ErrSyntax},
		{in: "1.2.3.4 ", err: ErrSyntax},
		{in: "1.2.3.4/24 ", err: ErrSyntax},
		{in: "1.2.3.4 /24", err: ErrSyntax},
		{in: "::ffff:1.2.3.4", err: ErrSyntax},
		{in: "::ffff:1.2.3.4/128", err: ErrSyntax},
		{in: "1.2.3.4%eth0", err: ErrSyntax},
		{in: "256.1.1.1", err: ErrSyntax},
		{in: "0x7f.0.0.1", err: ErrSyntax},
		{in: "1.2.3.0/024", err: ErrSyntax},
		{in: "1.2.3.0/+24", err: ErrSyntax},
		{in: "1.2.3.0/", err: ErrSyntax},
		{in: "1.2.3.0/24/24", err: ErrSyntax},

		// Address classes: private is not a valid source.
		{in: "10.1.2.3", err: ErrNotRoutable},
		{in: "192.168.1.0/24", err: ErrNotRoutable},
		{in: "172.31.255.255", err: ErrNotRoutable},
		{in: "172.32.0.0/24", want: "172.32.0.0/24"},
		{in: "100.64.0.0/24", err: ErrNotRoutable},
		{in: "100.128.0.0/24", want: "100.128.0.0/24"},
		{in: "169.254.169.254", err: ErrNotRoutable},
		{in: "198.51.100.7/24", err: ErrNotRoutable},
		{in: "224.0.0.1", err: ErrNotRoutable},
		{in: "255.255.255.0/24", err: ErrNotRoutable},
		{in: "255.255.255.255", err: ErrNotRoutable},
		{in: "192.31.196.0/24", want: "192.31.196.0/24"},

		// The global exceptions inside 192.0.0.0/24: only the exact /32s.
		{in: "192.0.0.9", want: "192.0.0.9/32"},
		{in: "192.0.0.10/32", want: "192.0.0.10/32"},
		{in: "192.0.0.10/31", err: ErrNotRoutable},
		{in: "192.0.0.8/30", err: ErrNotRoutable},
		{in: "192.0.0.0/24", err: ErrNotRoutable},

		// A /24 that only touches a special block is refused.
		{in: "192.0.2.200/24", err: ErrNotRoutable},
		{in: "192.88.99.1/24", err: ErrNotRoutable},

		// Operator ranges.
		{in: "10.1.2.0/24", extra: lab, want: "10.1.2.0/24"},
		{in: "10.1.2.3", extra: lab, want: "10.1.2.3/32"},
		{in: "127.0.0.1", extra: lab, want: "127.0.0.1/32"},
		{in: "192.168.1.0/24", extra: lab, err: ErrNotRoutable},
		{in: "10.1.2.0/23", extra: lab, err: ErrPrefixLength},
		{in: "192.0.2.0/25", extra: []netip.Prefix{netip.MustParsePrefix("192.0.2.0/26")}, err: ErrNotRoutable},
		{in: "192.0.2.0/26", extra: []netip.Prefix{netip.MustParsePrefix("192.0.2.0/26")}, want: "192.0.2.0/26"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			t.Parallel()
			p, err := Source(tt.in, tt.extra)
			if tt.err != nil {
				if !errors.Is(err, tt.err) {
					t.Fatalf("Source(%q, %v): got %v, %v; want error %v", tt.in, tt.extra, p, err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Source(%q, %v): got error %v, want %s", tt.in, tt.extra, err, tt.want)
			}
			if p.String() != tt.want {
				t.Errorf("Source(%q, %v): got %v, want %s", tt.in, tt.extra, p, tt.want)
			}
		})
	}
}

func TestSourceErrorMessage(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, msg string }{
		{"10.1.2.0/24", `"10.1.2.0/24" is private: neither globally reachable nor in an allowed source range`},
		{"192.0.0.10/31", `"192.0.0.10/31" is IETF protocol assignments: neither globally reachable nor in an allowed source range`},
		{"255.255.255.0/24", `"255.255.255.0/24" is reserved: neither globally reachable nor in an allowed source range`},
		{"1.2.2.0/23", `"1.2.2.0/23": prefix length must be between /24 and /32`},
	}
	for _, tt := range tests {
		_, err := Source(tt.in, nil)
		if err == nil || err.Error() != tt.msg {
			t.Errorf("Source(%q): got error %v, want %q", tt.in, err, tt.msg)
		}
	}
}

func TestIsGlobal(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   netip.Prefix
		want bool
	}{
		{netip.MustParsePrefix("1.2.3.0/24"), true},
		{netip.MustParsePrefix("8.0.0.0/8"), true},
		{netip.MustParsePrefix("0.0.0.0/0"), false},
		{netip.MustParsePrefix("100.0.0.0/8"), false}, // contains 100.64/10
		{netip.MustParsePrefix("192.0.0.9/32"), true},
		{netip.MustParsePrefix("192.0.0.10/32"), true},
		{netip.MustParsePrefix("192.0.0.9/31"), false}, // masks to 192.0.0.8/31
		{netip.MustParsePrefix("192.0.0.0/24"), false},
		{netip.MustParsePrefix("192.175.48.0/24"), true},
		{netip.MustParsePrefix("223.255.255.0/24"), true},
		{netip.MustParsePrefix("255.255.255.255/32"), false},
		{netip.MustParsePrefix("::/0"), false},
		{netip.MustParsePrefix("::ffff:1.2.3.0/120"), false},
		{netip.Prefix{}, false},
	}
	for _, tt := range tests {
		if got := IsGlobal(tt.in); got != tt.want {
			t.Errorf("IsGlobal(%v): got %v, want %v", tt.in, got, tt.want)
		}
	}
}

func TestParsePrefixes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want []string
		err  string // error message when refused, naming the bad item
	}{
		{in: "", want: nil},
		{in: "   ", want: nil},
		{in: "10.0.0.0/8", want: []string{"10.0.0.0/8"}},
		{in: "10.0.0.0/8,127.0.0.0/8", want: []string{"10.0.0.0/8", "127.0.0.0/8"}},
		{in: " 10.0.0.0/8 , 192.168.1.5/32 ", want: []string{"10.0.0.0/8", "192.168.1.5/32"}},
		{in: "0.0.0.0/0", want: []string{"0.0.0.0/0"}},
		{in: "10.0.0.0/8,10.0.0.1", err: `"10.0.0.1": not a canonical IPv4 address or CIDR`},
		{in: "10.0.0.0/8,,127.0.0.0/8", err: `"": not a canonical IPv4 address or CIDR`},
		{in: "10.0.0.0/8,", err: `"": not a canonical IPv4 address or CIDR`},
		{in: "10.0.0.0/8;127.0.0.0/8", err: `"10.0.0.0/8;127.0.0.0/8": not a canonical IPv4 address or CIDR`},
		{in: "010.0.0.0/8", err: `"010.0.0.0/8": not a canonical IPv4 address or CIDR`},
		{in: "10.0.0.0/08", err: `"10.0.0.0/08": not a canonical IPv4 address or CIDR`},
		{in: "10.0.0.0/33", err: `"10.0.0.0/33": not a canonical IPv4 address or CIDR`},
		{in: "fd00::/8", err: `"fd00::/8": not a canonical IPv4 address or CIDR`},
		{in: "10.0.0.1/8", err: `"10.0.0.1/8": not a canonical IPv4 address or CIDR: host bits set (network is 10.0.0.0/8)`},
	}
	for _, tt := range tests {
		got, err := ParsePrefixes(tt.in)
		if tt.err != "" {
			if !errors.Is(err, ErrSyntax) || err.Error() != tt.err {
				t.Errorf("ParsePrefixes(%q): got %v, %v; want error %q", tt.in, got, err, tt.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParsePrefixes(%q): got error %v, want %v", tt.in, err, tt.want)
			continue
		}
		if len(got) != len(tt.want) || (got == nil) != (tt.want == nil) {
			t.Errorf("ParsePrefixes(%q): got %v, want %v", tt.in, got, tt.want)
			continue
		}
		for i := range got {
			if got[i].String() != tt.want[i] {
				t.Errorf("ParsePrefixes(%q)[%d]: got %v, want %s", tt.in, i, got[i], tt.want[i])
			}
		}
	}
}

func FuzzSource(f *testing.F) {
	for _, seed := range []struct{ s, extra string }{
		{"1.2.3.4", ""},
		{"1.2.3.4/24", ""},
		{"1.2.2.0/23", ""},
		{"1.2.3.4/33", ""},
		{"10.1.2.0/24", "10.0.0.0/8"},
		{"127.0.0.1", "10.0.0.0/8,127.0.0.0/8"},
		{"192.0.0.9", ""},
		{"192.0.0.10/31", ""},
		{"255.255.255.255", "0.0.0.0/0"},
		{"::ffff:1.2.3.4", ""},
		{"1.2.3.0/024", ""},
	} {
		f.Add(seed.s, seed.extra)
	}
	f.Fuzz(func(t *testing.T, s, extraText string) {
		extra, err := ParsePrefixes(extraText)
		if err != nil {
			extra = nil
		}
		p, err := Source(s, extra)
		if err != nil {
			if !errors.Is(err, ErrSyntax) && !errors.Is(err, ErrPrefixLength) && !errors.Is(err, ErrNotRoutable) {
				t.Fatalf("Source(%q, %v): got error %v, want one of the sentinels", s, extra, err)
			}
			return
		}
		if !p.Addr().Is4() || p.Bits() < 24 || p.Bits() > 32 {
			t.Fatalf("Source(%q, %v): got %v, want an IPv4 prefix of /24 to /32", s, extra, p)
		}
		if p != p.Masked() {
			t.Fatalf("Source(%q, %v): got %v, want masked %v", s, extra, p, p.Masked())
		}
		if IsGlobal(p) {
			return
		}
		for _, e := range extra {
			if e.Contains(p.Addr()) && e.Bits() <= p.Bits() {
				return
			}
		}
		t.Fatalf("Source(%q, %v): got %v, want it global or inside extra", s, extra, p)
	})
}
