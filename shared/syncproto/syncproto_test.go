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
	bodies := []any{
		&syncproto.Hello{AgentVersion: "v1", Router: syncproto.Router{RouterOSVersion: "7.18.2", Board: "RB5009", Identity: "hq"}},
		&syncproto.Desired{Revision: 7, TunnelAddress: netip.MustParseAddr("10.99.0.2"), EdgeAddress: netip.MustParseAddr("10.99.0.1"),
			Forwards: []syncproto.Forward{{ID: "9c56202d-c388-484d-ac9a-7677f24f1f18", Port: 49159, DstAddress: netip.MustParseAddr("192.168.88.43"), DstPort: 22, ExpiresAt: at, Masquerade: true}},
			SentAt:   at},
		&syncproto.Report{Revision: 7, AgentVersion: "v1", Results: []syncproto.Result{{ID: "x", State: syncproto.StateRefused, Error: "loopback"}}, Present: []string{"y"}, Error: "e"},
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

// FuzzDecode: decoding never panics, and whatever decodes encodes again to
// something that decodes to the same message.
func FuzzDecode(f *testing.F) {
	for _, seed := range []string{
		`{"type":"hello","v":1,"hello":{"agent_version":"v","router":{"board":"b"}}}`,
		`{"type":"desired","v":1,"desired":{"revision":3,"tunnel_address":"10.0.0.2","edge_address":"10.0.0.1","forwards":[{"id":"a","port":1,"dst_address":"192.168.1.1","dst_port":22,"expires_at":"2026-01-01T00:00:00Z"}],"sent_at":"2026-01-01T00:00:00Z"}}`,
		`{"type":"report","v":1,"report":{"revision":3,"results":[{"id":"a","state":"applied"}],"present":["a"]}}`,
		`{"type":"error","v":1,"error":{"message":"x"}}`,
		`{"type":"desired","v":1,"desired":null}`,
		`[]`, `null`, `{}`,
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
		again, err := syncproto.Decode(b)
		if err != nil || again.Type != msg.Type {
			t.Fatalf("re-decode %s: %v", b, err)
		}
	})
}
