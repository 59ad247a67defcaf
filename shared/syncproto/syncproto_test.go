package syncproto_test

import (
	"errors"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/tpf-dev/tpf/shared/syncproto"
)

func TestRoundTrip(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 5, 6, 7, 8, 9, 0, time.UTC)
	offset := int64(-10_800_250)
	bodies := []any{
		&syncproto.Hello{AgentVersion: "v1", Router: syncproto.Router{RouterOSVersion: "7.18.2", Board: "RB5009", Identity: "hq"}},
		&syncproto.Desired{Revision: 7, TunnelAddress: netip.MustParseAddr("10.99.0.2"), EdgeAddress: netip.MustParseAddr("10.99.0.1"),
			Forwards: []syncproto.Forward{{ID: "9c56202d-c388-484d-ac9a-7677f24f1f18", Port: 49159, DstAddress: netip.MustParseAddr("192.168.88.43"), DstPort: 22, ExpiresAt: at, Masquerade: true}},
			SentAt:   at},
		&syncproto.Report{Revision: 7, AgentVersion: "v1", Results: []syncproto.Result{{ID: "x", State: syncproto.StateRefused, Error: "loopback"}}, Present: []string{"y"}, Error: "e", ClockOffsetMillis: &offset},
		&syncproto.Error{Message: "bad"},
		&syncproto.Listeners{Revision: 3, Region: "eu1", SentAt: at, Listeners: []syncproto.Listener{{ID: "x", Port: 49159,
			Allow: netip.MustParsePrefix("81.2.69.0/24"), Target: netip.MustParseAddrPort("10.99.0.2:49159"), ExpiresAt: at,
			Limits: syncproto.Limits{MaxConnections: 8, IdleSeconds: 600, BytesPerSecond: 1 << 20}}}},
		&syncproto.Connections{Records: []syncproto.Connection{{ID: "c", ForwardID: "x", Source: netip.MustParseAddrPort("81.2.69.7:50000"),
			Start: at, End: at.Add(time.Minute), BytesUp: 10, BytesDown: 20, Reason: "client closed"}}},
	}
	for _, body := range bodies {
		b, err := syncproto.Encode(body)
		if err != nil {
			t.Fatal(err)
		}
		msg, err := syncproto.Decode(b)
		if err != nil {
			t.Fatalf("decode %s: %v", b, err)
		}
		var got any
		switch msg.Type {
		case syncproto.TypeHello:
			got = msg.Hello
		case syncproto.TypeDesired:
			got = msg.Desired
		case syncproto.TypeReport:
			got = msg.Report
		case syncproto.TypeError:
			got = msg.Error
		case syncproto.TypeListeners:
			got = msg.Listeners
		case syncproto.TypeConnections:
			got = msg.Connections
		}
		if !reflect.DeepEqual(got, body) {
			t.Errorf("round trip of %T:\ngot  %+v\nwant %+v", body, got, body)
		}
	}
	if _, err := syncproto.Encode("nope"); err == nil {
		t.Error("encoding a string: got no error")
	}
}

func TestDecodeRefuses(t *testing.T) {
	t.Parallel()
	cases := map[string]string{
		"not json":          `{"type":`,
		"newer version":     `{"type":"hello","v":2,"hello":{}}`,
		"no version":        `{"type":"hello","hello":{}}`,
		"unknown type":      `{"type":"bye","v":1}`,
		"missing body":      `{"type":"desired","v":1}`,
		"bad address":       `{"type":"desired","v":1,"desired":{"tunnel_address":"10.1"}}`,
		"port out of range": `{"type":"desired","v":1,"desired":{"forwards":[{"port":70000}]}}`,
	}
	for name, in := range cases {
		if _, err := syncproto.Decode([]byte(in)); err == nil {
			t.Errorf("%s: got no error", name)
		}
	}
	_, err := syncproto.Decode([]byte(`{"type":"hello","v":2,"hello":{}}`))
	if !errors.Is(err, syncproto.ErrVersion) {
		t.Errorf("newer version: got %v, want ErrVersion", err)
	}
	// Unknown fields are ignored.
	if _, err := syncproto.Decode([]byte(`{"type":"error","v":1,"error":{"message":"m","later":1},"extra":true}`)); err != nil {
		t.Errorf("unknown fields: %v", err)
	}
}

// TestDecodeRefusesNUL: a NUL character in any string is refused; an
// escaped backslash followed by "u0000" is plain text and passes.
func TestDecodeRefusesNUL(t *testing.T) {
	t.Parallel()
	refused := map[string]string{
		"in an error message": `{"type":"report","v":1,"report":{"revision":1,"results":[{"id":"a","state":"failed","error":"bad\u0000"}],"present":[]}}`,
		"in an id":            `{"type":"report","v":1,"report":{"revision":1,"results":[],"present":["a\u0000b"]}}`,
		"in a version":        `{"type":"hello","v":1,"hello":{"agent_version":"\u0000","router":{}}}`,
		"in an unknown field": `{"type":"error","v":1,"error":{"message":"m"},"extra":"\u0000"}`,
		"in a key":            `{"type":"error","v":1,"error":{"message":"m","\u0000":1}}`,
		"after an escape":     `{"type":"error","v":1,"error":{"message":"\"\u0000"}}`,
		"after a backslash":   `{"type":"error","v":1,"error":{"message":"\\\u0000"}}`,
		"at the start":        `{"type":"error","v":1,"error":{"message":"\u0000x"}}`,
		"after a literal":     `{"type":"error","v":1,"error":{"message":"\\u0000\u0000"}}`,
		"raw NUL byte":        "{\"type\":\"error\",\"v\":1,\"error\":{\"message\":\"a\x00b\"}}",
		"raw NUL outside":     "{\"type\":\"error\",\"v\":1,\"error\":{\"message\":\"ab\"}}\x00",
	}
	for name, in := range refused {
		_, err := syncproto.Decode([]byte(in))
		if err == nil {
			t.Errorf("%s: %s: got no error", name, in)
		}
		if strings.Contains(in, `\u0000`) && (err == nil || !strings.Contains(err.Error(), "NUL")) {
			t.Errorf("%s: got %v, want an error naming NUL", name, err)
		}
	}
	passed := map[string]string{
		`\u0000`:     `{"type":"error","v":1,"error":{"message":"\\u0000"}}`,
		`a\\u0000`:   `{"type":"error","v":1,"error":{"message":"a\\\\u0000"}}`,
		"\x01":       `{"type":"error","v":1,"error":{"message":"\u0001"}}`,
		`u0000`:      `{"type":"error","v":1,"error":{"message":"u0000"}}`,
		"\u2400 (␀)": `{"type":"error","v":1,"error":{"message":"\u2400 (␀)"}}`,
	}
	for want, in := range passed {
		msg, err := syncproto.Decode([]byte(in))
		if err != nil {
			t.Errorf("%s: %v", in, err)
			continue
		}
		if msg.Error.Message != want {
			t.Errorf("%s: got message %q, want %q", in, msg.Error.Message, want)
		}
	}
}

// FuzzDecode: decoding never panics, and whatever decodes encodes again to
// something that decodes to the same message (so holds no NUL).
func FuzzDecode(f *testing.F) {
	for _, seed := range []string{
		`{"type":"hello","v":1,"hello":{"agent_version":"v","router":{"board":"b"}}}`,
		`{"type":"desired","v":1,"desired":{"revision":3,"tunnel_address":"10.0.0.2","edge_address":"10.0.0.1","forwards":[{"id":"a","port":1,"dst_address":"192.168.1.1","dst_port":22,"expires_at":"2026-01-01T00:00:00Z"}],"sent_at":"2026-01-01T00:00:00Z"}}`,
		`{"type":"report","v":1,"report":{"revision":3,"results":[{"id":"a","state":"applied"}],"present":["a"]}}`,
		`{"type":"error","v":1,"error":{"message":"x"}}`,
		`{"type":"desired","v":1,"desired":null}`,
		`[]`, `null`, `{}`,
		`{"type":"error","v":1,"error":{"message":"\u0000"}}`,
		`{"type":"error","v":1,"error":{"message":"\\u0000"}}`,
		`{"type":"report","v":1,"report":{"revision":1,"results":[],"present":[],"clock_offset_ms":-5000}}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		msg, err := syncproto.Decode(data)
		if err != nil {
			return
		}
		var body any
		switch msg.Type {
		case syncproto.TypeHello:
			body = msg.Hello
		case syncproto.TypeDesired:
			body = msg.Desired
		case syncproto.TypeReport:
			body = msg.Report
		case syncproto.TypeError:
			body = msg.Error
		case syncproto.TypeListeners:
			body = msg.Listeners
		case syncproto.TypeConnections:
			body = msg.Connections
		}
		b, err := syncproto.Encode(body)
		if err != nil {
			if strings.Contains(err.Error(), "year outside of range") {
				return // a time json cannot write back; never sent by us
			}
			t.Fatalf("re-encode %+v: %v", body, err)
		}
		// A NUL that got through Decode is written back as \u0000 and
		// fails here.
		again, err := syncproto.Decode(b)
		if err != nil || again.Type != msg.Type {
			t.Fatalf("re-decode %s: %v", b, err)
		}
	})
}
