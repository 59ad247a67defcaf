// Command tpf-agent runs beside a MikroTik router (in a RouterOS container or
// on any Linux host that reaches the router's API) and keeps the router's
// tpf-tagged NAT rules equal to the desired set the controller sends.
package main

import (
	"bufio"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	"github.com/tpf-dev/tpf/agent/daemon"
)

// version is stamped at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "tpf-agent:", err)
		os.Exit(1)
	}
}

const usage = `tpf-agent: keeps a MikroTik router's tpf port-forwarding rules in line with the controller.

Usage: tpf-agent [--version | --help]

Settings (environment):
  TPF_CONTROLLER_URL       the controller, http(s)://host[:port] (required)
  TPF_AGENT_TOKEN          the router's agent token (required)
  TPF_CA_FILE              PEM CA bundle to verify the controller (default: system roots)
  TPF_ROUTEROS_ADDRESS     the router's API, host:port (default: the default gateway, port 8728, or 8729 with TLS)
  TPF_ROUTEROS_USER        RouterOS user (default tpf)
  TPF_ROUTEROS_PASSWORD    its password
  TPF_ROUTEROS_TLS         1 to use api-ssl
  TPF_ROUTEROS_CA_FILE     PEM CA bundle that signed the router's certificate
  TPF_ROUTEROS_FINGERPRINT SHA-256 of the router's certificate (hex), for a self-signed one
  TPF_LOG_LEVEL            debug, info, warn or error (default info)
`

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	switch {
	case len(args) == 1 && args[0] == "--version":
		fmt.Fprintln(stdout, "tpf-agent", version)
		return nil
	case len(args) == 1 && (args[0] == "--help" || args[0] == "-h"):
		fmt.Fprint(stdout, usage)
		return nil
	case len(args) > 0:
		return fmt.Errorf("unknown arguments %q (settings come from the environment; see --help)", args)
	}
	cfg, level, err := readConfig(getenv)
	if err != nil {
		return err
	}
	cfg.Version = version
	cfg.Logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	d, err := daemon.New(cfg)
	if err != nil {
		return err
	}
	cfg.Logger.Info("tpf-agent starting", "version", version, "controller", cfg.ControllerURL, "router", cfg.Router.Address)
	return d.Run(ctx)
}

func readConfig(getenv func(string) string) (daemon.Config, slog.Level, error) {
	var cfg daemon.Config
	cfg.ControllerURL = getenv("TPF_CONTROLLER_URL")
	if cfg.ControllerURL == "" {
		return cfg, 0, errors.New("TPF_CONTROLLER_URL is not set: give the controller's URL, e.g. https://tpf.example.net")
	}
	if _, err := daemon.AgentURL(cfg.ControllerURL); err != nil {
		return cfg, 0, fmt.Errorf("TPF_CONTROLLER_URL: %w", err)
	}
	cfg.Token = getenv("TPF_AGENT_TOKEN")
	if cfg.Token == "" {
		return cfg, 0, errors.New("TPF_AGENT_TOKEN is not set: give the agent token shown when the router was created")
	}
	if f := getenv("TPF_CA_FILE"); f != "" {
		pool, err := loadCAs(f)
		if err != nil {
			return cfg, 0, fmt.Errorf("TPF_CA_FILE: %w", err)
		}
		cfg.ControllerTLS = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}

	useTLS := false
	if v := getenv("TPF_ROUTEROS_TLS"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return cfg, 0, fmt.Errorf("TPF_ROUTEROS_TLS=%q: use 1 or 0", v)
		}
		useTLS = b
	}
	cfg.Router.Address = getenv("TPF_ROUTEROS_ADDRESS")
	if cfg.Router.Address == "" {
		gw, err := defaultGateway("/proc/net/route")
		if err != nil {
			return cfg, 0, fmt.Errorf("TPF_ROUTEROS_ADDRESS is not set and the default gateway is unknown (%v): give the router's API address, e.g. 192.168.88.1:8728", err)
		}
		port := "8728"
		if useTLS {
			port = "8729"
		}
		cfg.Router.Address = net.JoinHostPort(gw.String(), port)
	} else if _, _, err := net.SplitHostPort(cfg.Router.Address); err != nil {
		return cfg, 0, fmt.Errorf("TPF_ROUTEROS_ADDRESS=%q: want host:port, e.g. 192.168.88.1:8728", cfg.Router.Address)
	}
	cfg.Router.User = getenv("TPF_ROUTEROS_USER")
	if cfg.Router.User == "" {
		cfg.Router.User = "tpf"
	}
	cfg.Router.Password = getenv("TPF_ROUTEROS_PASSWORD")
	if useTLS {
		t, err := routerTLS(getenv)
		if err != nil {
			return cfg, 0, err
		}
		cfg.Router.TLS = t
	}

	var level slog.Level
	switch v := strings.ToLower(getenv("TPF_LOG_LEVEL")); v {
	case "", "info":
	case "debug":
		level = slog.LevelDebug
	case "warn":
		level = slog.LevelWarn
	case "error":
		level = slog.LevelError
	default:
		return cfg, 0, fmt.Errorf("TPF_LOG_LEVEL=%q: use debug, info, warn or error", v)
	}
	return cfg, level, nil
}

// routerTLS verifies the router's api-ssl certificate by a CA bundle or, for
// the self-signed certificates routers usually have, by its fingerprint.
func routerTLS(getenv func(string) string) (*tls.Config, error) {
	ca, fp := getenv("TPF_ROUTEROS_CA_FILE"), getenv("TPF_ROUTEROS_FINGERPRINT")
	switch {
	case ca != "" && fp != "":
		return nil, errors.New("set TPF_ROUTEROS_CA_FILE or TPF_ROUTEROS_FINGERPRINT, not both")
	case ca != "":
		pool, err := loadCAs(ca)
		if err != nil {
			return nil, fmt.Errorf("TPF_ROUTEROS_CA_FILE: %w", err)
		}
		return &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}, nil
	case fp != "":
		want, err := hex.DecodeString(strings.ReplaceAll(strings.ToLower(fp), ":", ""))
		if err != nil || len(want) != sha256.Size {
			return nil, fmt.Errorf("TPF_ROUTEROS_FINGERPRINT: want the certificate's SHA-256 as 64 hex digits")
		}
		return &tls.Config{
			MinVersion:         tls.VersionTLS12,
			InsecureSkipVerify: true, // replaced by the pin below
			VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
				if len(raw) == 0 {
					return errors.New("router sent no certificate")
				}
				got := sha256.Sum256(raw[0])
				if hex.EncodeToString(got[:]) != hex.EncodeToString(want) {
					return fmt.Errorf("router certificate fingerprint %x does not match TPF_ROUTEROS_FINGERPRINT", got)
				}
				return nil
			},
		}, nil
	default:
		return nil, errors.New("TPF_ROUTEROS_TLS is on: set TPF_ROUTEROS_CA_FILE or TPF_ROUTEROS_FINGERPRINT so the router's certificate can be checked")
	}
}

func loadCAs(file string) (*x509.CertPool, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("%s holds no PEM certificate", file)
	}
	return pool, nil
}

// defaultGateway reads the IPv4 default route's gateway from a
// /proc/net/route table (in a RouterOS container, the router itself).
func defaultGateway(file string) (net.IP, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 3 || fields[1] != "00000000" {
			continue
		}
		gw, err := strconv.ParseUint(fields[2], 16, 32)
		if err != nil || gw == 0 {
			continue
		}
		// The kernel prints the address in host (little-endian) order.
		return net.IPv4(byte(gw), byte(gw>>8), byte(gw>>16), byte(gw>>24)), nil
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return nil, errors.New("no default route")
}
