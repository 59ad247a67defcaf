package routeros_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"log/slog"
	"math/big"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/tpf-dev/tpf/agent/routeros"
	"github.com/tpf-dev/tpf/agent/routerostest"
	"github.com/tpf-dev/tpf/shared/syncproto"
)

// Both dialects the agent meets: v6 (no !empty) and 7.18+ (!empty).
var versions = []string{"6.49.10", "7.18.2"}

const (
	user     = "tpf"
	password = "s3cret"

	tunnel = "10.99.0.1"
	edge   = "10.99.0.254"

	id1 = "9c56202d-c388-484d-ac9a-7677f24f1f18"
	id2 = "1b4e28ba-2fa1-11d2-883f-0016d3cca427"
	id3 = "6ba7b810-9dad-11d1-80b4-00c04fd430c8"
)

// forVersions runs test once per RouterOS version, in parallel.
func forVersions(t *testing.T, test func(t *testing.T, version string)) {
	t.Helper()
	for _, v := range versions {
		t.Run(v, func(t *testing.T) {
			t.Parallel()
			test(t, v)
		})
	}
}

// startRouter runs an emulator with the tpf user on a free port until the
// test ends.
func startRouter(t testing.TB, version string) *routerostest.Server {
	t.Helper()
	srv := routerostest.New(routerostest.Config{
		Version:   version,
		Users:     map[string]string{user: password},
		Identity:  "edge-router-7",
		BoardName: "RB5009UG+S+",
		Logger:    slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	if err := srv.Start("127.0.0.1:0"); err != nil {
		t.Fatalf("start emulator: %v", err)
	}
	t.Cleanup(func() {
		if err := srv.Close(); err != nil {
			t.Errorf("close emulator: %v", err)
		}
	})
	return srv
}

// config is the Config for srv with a test-sized timeout.
func config(srv *routerostest.Server) routeros.Config {
	return routeros.Config{Address: srv.Addr(), User: user, Password: password, Timeout: 5 * time.Second}
}

// dial logs in to srv with cfg and closes the Client when the test ends.
func dial(t testing.TB, cfg routeros.Config) *routeros.Client {
	t.Helper()
	c, err := routeros.Dial(context.Background(), cfg)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func set(fs ...syncproto.Forward) *syncproto.Desired {
	return &syncproto.Desired{
		Revision:      1,
		TunnelAddress: netip.MustParseAddr(tunnel),
		EdgeAddress:   netip.MustParseAddr(edge),
		Forwards:      fs,
	}
}

func fwd(id string, port uint16, dst string, dstPort uint16, expires time.Time, masquerade bool) syncproto.Forward {
	return syncproto.Forward{ID: id, Port: port, DstAddress: netip.MustParseAddr(dst), DstPort: dstPort,
		ExpiresAt: expires, Masquerade: masquerade}
}

// Foreign rules as an administrator would have them.
var (
	defconfMasq = map[string]string{"chain": "srcnat", "action": "masquerade", "out-interface-list": "WAN",
		"comment": "defconf: masquerade"}
	webServer = map[string]string{"chain": "dstnat", "action": "dst-nat", "protocol": "tcp", "dst-port": "80",
		"in-interface-list": "WAN", "to-addresses": "192.168.88.10"}
	camera = map[string]string{"chain": "dstnat", "action": "dst-nat", "protocol": "tcp", "dst-port": "8080",
		"to-addresses": "192.168.88.20", "comment": "camera"}
)

// foreignRows returns the rows whose comment does not start with "tpf:",
// in order.
func foreignRows(rows []map[string]string) []map[string]string {
	var out []map[string]string
	for _, r := range rows {
		if len(r["comment"]) < 4 || r["comment"][:4] != "tpf:" {
			out = append(out, r)
		}
	}
	return out
}

// selfSigned returns a server certificate for 127.0.0.1 and a client
// config that trusts only it.
func selfSigned(t testing.TB) (server, client *tls.Config) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "router"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	server = &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}
	return server, &tls.Config{RootCAs: pool}
}

// within fails the test if f takes longer than limit; it returns f's error.
func within(t testing.TB, limit time.Duration, f func() error) error {
	t.Helper()
	start := time.Now()
	err := f()
	if took := time.Since(start); took > limit {
		t.Errorf("took %v, want at most %v", took, limit)
	}
	return err
}
