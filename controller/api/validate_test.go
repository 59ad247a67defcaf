package api_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/netip"
	"strings"
	"testing"

	"github.com/tpf-dev/tpf/controller/api"
)

// absent, as an override value, removes the field from the request.
var absent = &struct{}{}

// forwardBody is seedRequest with fields overridden (absent removes one).
// Values that must reach the server verbatim (12.5, 1e30, huge numbers) are
// given as json.RawMessage.
func forwardBody(overrides map[string]any) map[string]any {
	b := seedRequest()
	for k, v := range overrides {
		if v == absent {
			delete(b, k)
			continue
		}
		b[k] = v
	}
	return b
}

// unprocessable is the exact 422 body for one failed rule of one field.
func unprocessable(field, msg string) string {
	m, _ := json.Marshal(msg)
	f, _ := json.Marshal(field)
	return fmt.Sprintf(`{"message":%s,"errors":{%s:[%s]}}`, m, f, m)
}

// createCase is one POST to the transient-forwarding endpoint.
type createCase struct {
	name   string
	body   any            // passed to env.do: a map, a string, []byte or nil
	status int            // wanted status
	want   string         // exact body wanted (without the final newline); "" skips
	echo   map[string]any // for a 201: fields of the answer, as decoded into any
}

// subEnv is e reporting to t, so a subtest's failures stay its own.
func subEnv(e *env, t testing.TB) *env {
	c := *e
	c.t = t
	return &c
}

// runCreateCases posts every case, in parallel, to one API built with cfg.
func runCreateCases(t *testing.T, cfg api.Config, cases []createCase) {
	t.Helper()
	e := newEnv(t, cfg)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			se := subEnv(e, t)
			res := se.do("POST", se.forwardsPath(se.router), se.token, tc.body)
			if res.status >= 500 {
				t.Fatalf("got %d %s, want %d (never a 5xx)", res.status, res.body, tc.status)
			}
			if res.status != tc.status {
				t.Fatalf("got %d %s, want %d %s", res.status, res.body, tc.status, tc.want)
			}
			if ct := res.header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type: got %q, want application/json", ct)
			}
			if tc.want != "" && string(res.body) != tc.want+"\n" {
				t.Errorf("body:\ngot  %s\nwant %s", strings.TrimSuffix(string(res.body), "\n"), tc.want)
			}
			if len(tc.echo) == 0 {
				return
			}
			got := decode[map[string]any](t, res.body)
			for k, want := range tc.echo {
				if v, ok := got[k]; !ok || v != want {
					t.Errorf("answer %s: got %v (present %v), want %v", k, v, ok, want)
				}
			}
		})
	}
}

func TestValidateExpireAfterMinutes(t *testing.T) {
	t.Parallel()
	const between = "The expire after minutes field must be between 10 and 1440."
	const integer = "The expire after minutes field must be an integer."
	const required = "The expire after minutes field is required."
	field := "expire_after_minutes"
	ok := func(name string, v any, expires, toExpire string) createCase {
		return createCase{name: name, body: forwardBody(map[string]any{field: v}), status: http.StatusCreated,
			echo: map[string]any{"expires_at": expires, "time_to_expire": toExpire}}
	}
	bad := func(name string, v any, msg string) createCase {
		return createCase{name: name, body: forwardBody(map[string]any{field: v}),
			status: http.StatusUnprocessableEntity, want: unprocessable(field, msg)}
	}
	runCreateCases(t, api.Config{}, []createCase{
		bad("9", 9, between),
		ok("10", 10, "2024-06-22T02:43:29+00:00", "10 minutes from now"),
		ok("120", 120, "2024-06-22T04:33:29+00:00", "2 hours from now"),
		ok("1440", 1440, "2024-06-23T02:33:29+00:00", "1 day from now"),
		bad("1441", 1441, between),
		bad("0", 0, between),
		bad("-1", -1, between),
		bad("-0", json.RawMessage("-0"), between),
		bad("-10", -10, between),

		// Strings holding an integer are accepted, as Laravel does.
		ok(`"120"`, "120", "2024-06-22T04:33:29+00:00", "2 hours from now"),
		ok(`"10"`, "10", "2024-06-22T02:43:29+00:00", "10 minutes from now"),
		bad(`"9"`, "9", between),
		bad(`"1441"`, "1441", between),

		// Wrong types.
		bad("12.5", json.RawMessage("12.5"), integer),
		bad(`"12.5"`, "12.5", integer),
		bad(`"abc"`, "abc", integer),
		bad(`" "`, " ", integer),
		bad(`"0x10"`, "0x10", integer),
		bad(`"012"`, "012", integer),
		bad("true", true, integer),
		bad("false", false, integer),
		bad("[]", []any{}, integer),
		bad("[120]", []any{120}, integer),
		bad("{}", map[string]any{}, integer),

		// Missing.
		bad("missing", absent, required),
		bad("null", nil, required),
		bad(`""`, "", required),

		// Huge numbers are refused, never a 500. 1e30 is written with an
		// exponent, so it is not read as an integer at all.
		bad("1e30", json.RawMessage("1e30"), integer),
		bad("99999999999999999999", json.RawMessage("99999999999999999999"), between),
		bad("-99999999999999999999", json.RawMessage("-99999999999999999999"), between),
		bad(`"99999999999999999999"`, "99999999999999999999", between),
		bad("MaxInt64", json.RawMessage("9223372036854775807"), between),
		bad("MaxInt64+1", json.RawMessage("9223372036854775808"), between),
		bad("MinInt64", json.RawMessage("-9223372036854775808"), between),
	})
}

func TestValidateExpireAfterMinutesConfigured(t *testing.T) {
	t.Parallel()
	const between = "The expire after minutes field must be between 5 and 60."
	field := "expire_after_minutes"
	runCreateCases(t, api.Config{MinExpireMinutes: 5, MaxExpireMinutes: 60}, []createCase{
		{name: "4", body: forwardBody(map[string]any{field: 4}), status: 422, want: unprocessable(field, between)},
		{name: "5", body: forwardBody(map[string]any{field: 5}), status: 201,
			echo: map[string]any{"expires_at": "2024-06-22T02:38:29+00:00", "time_to_expire": "5 minutes from now"}},
		{name: "60", body: forwardBody(map[string]any{field: 60}), status: 201,
			echo: map[string]any{"expires_at": "2024-06-22T03:33:29+00:00", "time_to_expire": "1 hour from now"}},
		{name: "61", body: forwardBody(map[string]any{field: 61}), status: 422, want: unprocessable(field, between)},
		{name: "120", body: forwardBody(map[string]any{field: 120}), status: 422, want: unprocessable(field, between)},
	})
}

func TestValidateDstPort(t *testing.T) {
	t.Parallel()
	const between = "The dst port field must be between 1 and 65535."
	const integer = "The dst port field must be an integer."
	const required = "The dst port field is required."
	field := "dst_port"
	ok := func(name string, v any, want float64) createCase {
		return createCase{name: name, body: forwardBody(map[string]any{field: v}), status: http.StatusCreated,
			echo: map[string]any{"dst_port": want}}
	}
	bad := func(name string, v any, msg string) createCase {
		return createCase{name: name, body: forwardBody(map[string]any{field: v}),
			status: http.StatusUnprocessableEntity, want: unprocessable(field, msg)}
	}
	runCreateCases(t, api.Config{}, []createCase{
		bad("0", 0, between),
		ok("1", 1, 1),
		ok("22", 22, 22),
		ok("65535", 65535, 65535),
		bad("65536", 65536, between),
		bad("-1", -1, between),
		bad("-65535", -65535, between),
		bad("huge", json.RawMessage("99999999999999999999"), between),
		ok(`"443"`, "443", 443),
		bad(`"65536"`, "65536", between),
		bad("22.5", json.RawMessage("22.5"), integer),
		bad("22.0", json.RawMessage("22.0"), integer),
		bad("2e1", json.RawMessage("2e1"), integer),
		bad(`"ssh"`, "ssh", integer),
		bad(`"22 "`, "22 ", integer),
		bad("true", true, integer),
		bad("[22]", []any{22}, integer),
		bad(`{"port":22}`, map[string]any{"port": 22}, integer),
		bad("missing", absent, required),
		bad("null", nil, required),
		bad(`""`, "", required),
	})
}

func TestValidateDstAddress(t *testing.T) {
	t.Parallel()
	const invalid = "The dst address field must be a valid IPv4 address."
	field := "dst_address"
	ok := func(addr string) createCase {
		return createCase{name: addr, body: forwardBody(map[string]any{field: addr}), status: http.StatusCreated,
			echo: map[string]any{"dst_address": addr}}
	}
	class := func(addr, class string) createCase {
		return createCase{name: addr, body: forwardBody(map[string]any{field: addr}),
			status: http.StatusUnprocessableEntity,
			want: unprocessable(field, "The dst address field must be a private (RFC 1918) or publicly routed IPv4 address; "+
				addr+" is "+class+".")}
	}
	bad := func(name string, v any, msg string) createCase {
		return createCase{name: name, body: forwardBody(map[string]any{field: v}),
			status: http.StatusUnprocessableEntity, want: unprocessable(field, msg)}
	}
	runCreateCases(t, api.Config{}, []createCase{
		// RFC 1918 at its edges, and globally reachable.
		ok("10.0.0.1"),
		ok("10.255.255.255"),
		ok("172.16.0.1"),
		ok("172.31.255.254"),
		ok("192.168.88.43"),
		ok("8.8.8.8"),
		ok("1.1.1.1"),
		ok("100.63.255.255"),
		ok("100.128.0.0"),
		ok("169.253.255.255"),
		ok("172.32.0.0"),
		ok("192.0.0.9"),
		ok("223.255.255.255"),

		// Special-purpose blocks, named in the message.
		class("127.0.0.1", "loopback"),
		class("127.255.255.255", "loopback"),
		class("169.254.169.254", "link-local"),
		class("169.254.0.1", "link-local"),
		class("100.64.0.1", "shared address space"),
		class("100.127.255.255", "shared address space"),
		class("224.0.0.1", "multicast"),
		class("239.255.255.255", "multicast"),
		class("240.0.0.1", "reserved"),
		class("255.255.255.254", "reserved"),
		class("255.255.255.255", "broadcast"),
		class("0.0.0.0", "this network"),
		class("0.1.2.3", "this network"),
		class("192.0.2.1", "documentation"),
		class("198.51.100.1", "documentation"),
		class("203.0.113.1", "documentation"),
		class("198.18.0.1", "benchmarking"),
		class("198.19.255.255", "benchmarking"),
		class("192.88.99.1", "6to4 relay anycast"),
		class("192.0.0.1", "IETF protocol assignments"),

		// Not canonical dotted-quad IPv4.
		bad("leading zero", "010.0.0.1", invalid),
		bad("shorthand", "10.1", invalid),
		bad("three octets", "10.0.0", invalid),
		bad("octet 256", "10.0.0.256", invalid),
		bad("IPv6 loopback", "::1", invalid),
		bad("IPv4-mapped", "::ffff:10.0.0.1", invalid),
		bad("trailing space", "10.0.0.1 ", invalid),
		bad("leading space", " 10.0.0.1", invalid),
		bad("CIDR", "10.0.0.1/32", invalid),
		bad("zone", "10.0.0.1%eth0", invalid),
		bad("hex", "0x0a.0.0.1", invalid),
		bad("host name", "host.example", invalid),
		bad("too long", strings.Repeat("1", 65), "The dst address field must not be greater than 64 characters."),
		bad("number", 12345, "The dst address field must be a string."),
		bad("boolean", true, "The dst address field must be a string."),
		bad("array", []any{"10.0.0.1"}, "The dst address field must be a string."),
		bad("missing", absent, "The dst address field is required."),
		bad("null", nil, "The dst address field is required."),
		bad(`""`, "", "The dst address field is required."),
	})
}

func TestValidateAllowFrom(t *testing.T) {
	t.Parallel()
	const length = "The allow from field must be a CIDR range between /24 and /32."
	const invalid = "The allow from field must be a valid IPv4 address or CIDR range."
	field := "allow_from"
	ok := func(in, cidr string) createCase {
		return createCase{name: in, body: forwardBody(map[string]any{field: in}), status: http.StatusCreated,
			echo: map[string]any{"allow_only_cidr": cidr}}
	}
	class := func(in, prefix, class string) createCase {
		return createCase{name: in, body: forwardBody(map[string]any{field: in}),
			status: http.StatusUnprocessableEntity,
			want: unprocessable(field, "The allow from field must be a publicly routed IPv4 address or range; "+
				prefix+" is "+class+".")}
	}
	bad := func(name string, v any, msg string) createCase {
		return createCase{name: name, body: forwardBody(map[string]any{field: v}),
			status: http.StatusUnprocessableEntity, want: unprocessable(field, msg)}
	}
	t.Run("default", func(t *testing.T) {
		t.Parallel()
		runCreateCases(t, api.Config{}, []createCase{
			ok("81.2.69.0/24", "81.2.69.0/24"),
			ok("81.2.69.7", "81.2.69.7/32"),
			ok("81.2.69.7/32", "81.2.69.7/32"),
			ok("81.2.69.7/24", "81.2.69.0/24"),
			ok("81.2.69.7/31", "81.2.69.6/31"),
			ok("8.8.8.8", "8.8.8.8/32"),
			ok("192.0.0.9", "192.0.0.9/32"),

			bad("/23", "81.2.69.0/23", length),
			bad("/16", "81.2.0.0/16", length),
			bad("/0", "0.0.0.0/0", length),
			bad("/33", "81.2.69.0/33", invalid),
			bad("no bits", "81.2.69.0/", invalid),
			bad("leading zero bits", "81.2.69.0/024", invalid),
			bad("leading zero octet", "081.2.69.7", invalid),
			bad("trailing space", "81.2.69.0/24 ", invalid),
			bad("IPv4-mapped", "::ffff:81.2.69.7", invalid),
			bad("IPv6 CIDR", "2001:db8::/64", invalid),
			bad("host name", "example.com", invalid),
			bad("number", 12345, "The allow from field must be a string."),
			bad("missing", absent, "The allow from field is required."),
			bad("null", nil, "The allow from field is required."),
			bad(`""`, "", "The allow from field is required."),

			// The contract's own sample is a documentation range.
			class("198.51.100.0/24", "198.51.100.0/24", "documentation"),
			class("198.51.100.7/24", "198.51.100.0/24", "documentation"),
			class("10.0.0.0/24", "10.0.0.0/24", "private"),
			class("192.168.1.1", "192.168.1.1/32", "private"),
			class("127.0.0.1", "127.0.0.1/32", "loopback"),
			class("100.64.0.0/24", "100.64.0.0/24", "shared address space"),
			class("169.254.169.254", "169.254.169.254/32", "link-local"),
			class("224.0.0.0/24", "224.0.0.0/24", "multicast"),
			// Only part of the range is the globally reachable TURN anycast.
			class("192.0.0.10/31", "192.0.0.10/31", "IETF protocol assignments"),
		})
	})
	t.Run("AllowSources 10.0.0.0/8", func(t *testing.T) {
		t.Parallel()
		runCreateCases(t, api.Config{AllowSources: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}, []createCase{
			ok("10.0.0.0/24", "10.0.0.0/24"),
			ok("10.255.255.255", "10.255.255.255/32"),
			ok("81.2.69.0/24", "81.2.69.0/24"),
			bad("/23 still too wide", "10.0.0.0/23", length),
			class("172.16.0.0/24", "172.16.0.0/24", "private"),
			class("127.0.0.1", "127.0.0.1/32", "loopback"),
		})
	})
	t.Run("AllowSources 10.0.0.0/25", func(t *testing.T) {
		t.Parallel()
		// The whole range must lie within an allowed source range.
		runCreateCases(t, api.Config{AllowSources: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/25")}}, []createCase{
			ok("10.0.0.0/25", "10.0.0.0/25"),
			ok("10.0.0.127", "10.0.0.127/32"),
			class("10.0.0.0/24", "10.0.0.0/24", "private"),
			class("10.0.0.128", "10.0.0.128/32", "private"),
		})
	})
	t.Run("AllowSources 127.0.0.0/8", func(t *testing.T) {
		t.Parallel()
		runCreateCases(t, api.Config{AllowSources: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}, []createCase{
			ok("127.0.0.1", "127.0.0.1/32"),
			class("10.0.0.0/24", "10.0.0.0/24", "private"),
		})
	})
}

func TestValidateMasquerade(t *testing.T) {
	t.Parallel()
	const boolean = "The masquerade field must be true or false."
	field := "masquerade"
	ok := func(name string, v any, want bool) createCase {
		return createCase{name: name, body: forwardBody(map[string]any{field: v}), status: http.StatusCreated,
			echo: map[string]any{"masquerade": want}}
	}
	bad := func(name string, v any) createCase {
		return createCase{name: name, body: forwardBody(map[string]any{field: v}),
			status: http.StatusUnprocessableEntity, want: unprocessable(field, boolean)}
	}
	runCreateCases(t, api.Config{}, []createCase{
		ok("true", true, true),
		ok("false", false, false),
		ok("missing", absent, false),
		ok("null", nil, false),
		bad(`"yes"`, "yes"),
		bad(`"true"`, "true"),
		bad("[]", []any{}),
		bad("{}", map[string]any{}),
	})
}

func TestValidateSeveralErrors(t *testing.T) {
	t.Parallel()
	runCreateCases(t, api.Config{}, []createCase{
		{
			name: "empty object", body: `{}`, status: 422,
			want: `{"message":"The expire after minutes field is required. (and 3 more errors)","errors":{` +
				`"expire_after_minutes":["The expire after minutes field is required."],` +
				`"dst_port":["The dst port field is required."],` +
				`"dst_address":["The dst address field is required."],` +
				`"allow_from":["The allow from field is required."]}}`,
		},
		{
			name: "two", body: forwardBody(map[string]any{"expire_after_minutes": 9, "dst_port": 0}), status: 422,
			want: `{"message":"The expire after minutes field must be between 10 and 1440. (and 1 more error)","errors":{` +
				`"expire_after_minutes":["The expire after minutes field must be between 10 and 1440."],` +
				`"dst_port":["The dst port field must be between 1 and 65535."]}}`,
		},
		{
			name: "three", body: forwardBody(map[string]any{"expire_after_minutes": 9, "dst_port": 0, "dst_address": "127.0.0.1"}), status: 422,
			want: `{"message":"The expire after minutes field must be between 10 and 1440. (and 2 more errors)","errors":{` +
				`"expire_after_minutes":["The expire after minutes field must be between 10 and 1440."],` +
				`"dst_port":["The dst port field must be between 1 and 65535."],` +
				`"dst_address":["The dst address field must be a private (RFC 1918) or publicly routed IPv4 address; 127.0.0.1 is loopback."]}}`,
		},
		{
			// Fields are reported in check order, whatever the body's order.
			name:   "all five",
			body:   `{"masquerade":"yes","allow_from":"81.2.69.0/23","dst_address":"::1","dst_port":"x","expire_after_minutes":null}`,
			status: 422,
			want: `{"message":"The expire after minutes field is required. (and 4 more errors)","errors":{` +
				`"expire_after_minutes":["The expire after minutes field is required."],` +
				`"dst_port":["The dst port field must be an integer."],` +
				`"dst_address":["The dst address field must be a valid IPv4 address."],` +
				`"allow_from":["The allow from field must be a CIDR range between /24 and /32."],` +
				`"masquerade":["The masquerade field must be true or false."]}}`,
		},
		{
			name: "first is not the first field", body: forwardBody(map[string]any{"masquerade": "yes", "allow_from": "10.0.0.0/24"}), status: 422,
			want: `{"message":"The allow from field must be a publicly routed IPv4 address or range; 10.0.0.0/24 is private. (and 1 more error)","errors":{` +
				`"allow_from":["The allow from field must be a publicly routed IPv4 address or range; 10.0.0.0/24 is private."],` +
				`"masquerade":["The masquerade field must be true or false."]}}`,
		},
	})
}

func TestValidateBody(t *testing.T) {
	t.Parallel()
	const notObject = `{"message":"The request body must be a JSON object."}`
	const tooLarge = `{"message":"The request body is larger than 65536 bytes."}`

	// padded is a valid creation object of exactly n bytes, padded with an
	// unknown field.
	padded := func(n int) []byte {
		base := `{"expire_after_minutes":120,"dst_port":22,"dst_address":"192.168.88.43","allow_from":"81.2.69.0/24","pad":""}`
		b := []byte(base[:len(base)-2] + strings.Repeat("x", n-len(base)) + `"}`)
		if len(b) != n {
			panic(fmt.Sprintf("padded: got %d bytes, want %d", len(b), n))
		}
		return b
	}
	bad := func(name string, body any) createCase {
		return createCase{name: name, body: body, status: http.StatusBadRequest, want: notObject}
	}
	runCreateCases(t, api.Config{}, []createCase{
		bad("truncated", `{"expire_after_minutes":`),
		bad("array", `[{"expire_after_minutes":120,"dst_port":22,"dst_address":"192.168.88.43","allow_from":"81.2.69.0/24"}]`),
		bad("empty array", `[]`),
		bad("empty", ``),
		bad("no body", nil),
		bad("whitespace", "  \n"),
		bad("null", `null`),
		bad("string", `"hello"`),
		bad("number", `120`),
		bad("true", `true`),
		bad("two objects", `{}{}`),
		bad("trailing garbage", `{"expire_after_minutes":120} x`),
		bad("single quotes", `{'dst_port':22}`),
		bad("trailing comma", `{"dst_port":22,}`),
		bad("form encoded", `expire_after_minutes=120&dst_port=22`),
		bad("too deep", strings.Repeat(`{"a":`, 10001)+"1"+strings.Repeat("}", 10001)),
		{name: "64 KiB exactly", body: padded(64 << 10), status: http.StatusCreated,
			echo: map[string]any{"allow_only_cidr": "81.2.69.0/24"}},
		{name: "64 KiB + 1", body: padded(64<<10 + 1), status: http.StatusRequestEntityTooLarge, want: tooLarge},
		{name: "70 KB", body: padded(70 << 10), status: http.StatusRequestEntityTooLarge, want: tooLarge},
		{name: "70 KB not JSON", body: strings.Repeat("x", 70<<10), status: http.StatusRequestEntityTooLarge, want: tooLarge},
	})
}

func TestValidateUnknownFieldsIgnored(t *testing.T) {
	t.Parallel()
	runCreateCases(t, api.Config{}, []createCase{
		{
			name: "answer fields",
			body: forwardBody(map[string]any{
				"id": "12345678-1234-1234-1234-123456789012", "port": 1, "allow_only_cidr": "8.8.8.0/24",
				"revoked_early": true, "expired": true, "status": "active", "router_id": "x",
			}),
			status: http.StatusCreated,
			echo: map[string]any{
				"allow_only_cidr": "81.2.69.0/24", "revoked_early": false, "expired": false, "status": "pending",
			},
		},
		{
			name:   "anything",
			body:   forwardBody(map[string]any{"foo": []any{1, "two", nil}, "Expire_After_Minutes": "bogus", "": 1}),
			status: http.StatusCreated,
			echo:   map[string]any{"expires_at": "2024-06-22T04:33:29+00:00"},
		},
	})
}

// TestValidateRouterCreate checks POST /api/routers' rules.
func TestValidateRouterCreate(t *testing.T) {
	t.Parallel()
	e := newEnv(t, api.Config{})
	router := func(overrides map[string]any) map[string]any {
		b := map[string]any{"name": "edge-1", "region": "us-east1", "tunnel_address": "10.99.0.9"}
		for k, v := range overrides {
			if v == absent {
				delete(b, k)
				continue
			}
			b[k] = v
		}
		return b
	}
	const unicast = "The tunnel address field must be a unicast IPv4 address."
	const invalidAddr = "The tunnel address field must be a valid IPv4 address."
	cases := []struct {
		name   string
		body   any
		status int
		want   string
	}{
		{"empty object", `{}`, 422, `{"message":"The name field is required. (and 1 more error)","errors":{` +
			`"name":["The name field is required."],"region":["The region field is required."]}}`},
		{"name missing", router(map[string]any{"name": absent}), 422, unprocessable("name", "The name field is required.")},
		{"name empty", router(map[string]any{"name": ""}), 422, unprocessable("name", "The name field is required.")},
		{"name number", router(map[string]any{"name": 7}), 422, unprocessable("name", "The name field must be a string.")},
		{"name too long", router(map[string]any{"name": strings.Repeat("n", 101)}), 422,
			unprocessable("name", "The name field must not be greater than 100 characters.")},
		{"region missing", router(map[string]any{"region": absent}), 422, unprocessable("region", "The region field is required.")},
		{"region null", router(map[string]any{"region": nil}), 422, unprocessable("region", "The region field is required.")},
		{"region unknown", router(map[string]any{"region": "eu-west9"}), 422, unprocessable("region", "The selected region is invalid.")},
		{"region not an id", router(map[string]any{"region": "US East 1"}), 422, unprocessable("region", "The selected region is invalid.")},
		{"tunnel missing", router(map[string]any{"tunnel_address": absent}), 422,
			unprocessable("tunnel_address", "The tunnel address field is required.")},
		{"tunnel multicast", router(map[string]any{"tunnel_address": "224.0.0.1"}), 422, unprocessable("tunnel_address", unicast)},
		{"tunnel unspecified", router(map[string]any{"tunnel_address": "0.0.0.0"}), 422, unprocessable("tunnel_address", unicast)},
		{"tunnel broadcast", router(map[string]any{"tunnel_address": "255.255.255.255"}), 422, unprocessable("tunnel_address", unicast)},
		{"tunnel IPv6", router(map[string]any{"tunnel_address": "fd00::1"}), 422, unprocessable("tunnel_address", invalidAddr)},
		{"tunnel leading zero", router(map[string]any{"tunnel_address": "10.99.0.09"}), 422, unprocessable("tunnel_address", invalidAddr)},
		{"tunnel CIDR", router(map[string]any{"tunnel_address": "10.99.0.9/24"}), 422, unprocessable("tunnel_address", invalidAddr)},
		{"two errors", router(map[string]any{"name": absent, "tunnel_address": "224.0.0.1"}), 422,
			`{"message":"The name field is required. (and 1 more error)","errors":{` +
				`"name":["The name field is required."],"tunnel_address":["` + unicast + `"]}}`},
		{"malformed", `{"name":`, 400, `{"message":"The request body must be a JSON object."}`},
		{"array", `[]`, 400, `{"message":"The request body must be a JSON object."}`},
		{"null", `null`, 400, `{"message":"The request body must be a JSON object."}`},
		{"too large", `{"name":"` + strings.Repeat("x", 70<<10) + `"}`, 413,
			`{"message":"The request body is larger than 65536 bytes."}`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			se := subEnv(e, t)
			res := se.do("POST", "/api/routers", se.token, tc.body)
			if res.status != tc.status || string(res.body) != tc.want+"\n" {
				t.Errorf("got %d %s, want %d %s", res.status, strings.TrimSuffix(string(res.body), "\n"), tc.status, tc.want)
			}
		})
	}
}

// TestRouterCreateAgentToken checks that the agent token is shown once: in
// the create's answer, never again.
func TestRouterCreateAgentToken(t *testing.T) {
	t.Parallel()
	e := newEnv(t, api.Config{})
	body := map[string]any{"name": "edge-1", "region": "us-east1", "tunnel_address": "10.99.0.9", "agent_token": "tpfa_mine"}
	res := e.do("POST", "/api/routers", e.token, body)
	if res.status != http.StatusCreated {
		t.Fatalf("create: got %d %s, want 201", res.status, res.body)
	}
	created := decode[map[string]any](t, res.body)
	token, _ := created["agent_token"].(string)
	if !strings.HasPrefix(token, "tpfa_") || len(token) < len("tpfa_")+32 || token == "tpfa_mine" {
		t.Errorf("agent_token: got %q, want a fresh secret starting with tpfa_", token)
	}
	id, _ := created["id"].(string)
	if !uuidText.MatchString(id) {
		t.Fatalf("id: got %q, want a lower-case UUID", id)
	}
	for k, want := range map[string]any{"name": "edge-1", "region": "us-east1", "tunnel_address": "10.99.0.9",
		"created_at": "2024-06-22T02:33:29+00:00"} {
		if got := created[k]; got != want {
			t.Errorf("create %s: got %v, want %v", k, got, want)
		}
	}

	get := e.do("GET", "/api/routers/"+id, e.token, nil)
	if get.status != http.StatusOK {
		t.Fatalf("get: got %d %s, want 200", get.status, get.body)
	}
	if strings.Contains(string(get.body), "agent_token") || strings.Contains(string(get.body), token) {
		t.Errorf("get: got %s, want no agent_token", get.body)
	}
	got := decode[map[string]any](t, get.body)
	for k, want := range created {
		if k == "agent_token" || k == "agent" {
			continue
		}
		if got[k] != want {
			t.Errorf("get %s: got %v, want %v", k, got[k], want)
		}
	}

	list := e.do("GET", "/api/routers", e.token, nil)
	if list.status != http.StatusOK || strings.Contains(string(list.body), "agent_token") || !strings.Contains(string(list.body), id) {
		t.Errorf("list: got %d %s, want 200 with the router and no agent_token", list.status, list.body)
	}

	// A second router gets a different token.
	body["name"] = "edge-2"
	res2 := e.do("POST", "/api/routers", e.token, body)
	if res2.status != http.StatusCreated {
		t.Fatalf("second create: got %d %s, want 201", res2.status, res2.body)
	}
	if token2, _ := decode[map[string]any](t, res2.body)["agent_token"].(string); token2 == token || !strings.HasPrefix(token2, "tpfa_") {
		t.Errorf("second agent_token: got %q, want a new tpfa_ secret (first %q)", token2, token)
	}
}

// TestValidateRouterNameNUL: a name PostgreSQL cannot store (text refuses
// NUL) must be refused as input, not answered with a 500.
func TestValidateRouterNameNUL(t *testing.T) {
	t.Parallel()
	e := newEnv(t, api.Config{})
	res := e.do("POST", "/api/routers", e.token, `{"name":"edge\u00001","region":"us-east1","tunnel_address":"10.99.0.9"}`)
	want := `{"message":"The name field must not contain control characters.","errors":{"name":["The name field must not contain control characters."]}}` + "\n"
	if res.status != http.StatusUnprocessableEntity || string(res.body) != want {
		t.Errorf("got %d %s, want 422 %s", res.status, res.body, want)
	}
}
