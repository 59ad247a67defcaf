package cli

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"

	"github.com/tpf-dev/tpf/controller/edge"
	"github.com/tpf-dev/tpf/controller/edge/tunnel"
	"github.com/tpf-dev/tpf/shared/peerlink"
)

// runEdge runs a standalone edge on a regional server: it dials the
// controller with the region's edge token and serves the region's entry
// point.
func runEdge(ctx context.Context, args []string, getenv Env, stderr io.Writer) error {
	fs := flag.NewFlagSet("edge", flag.ContinueOnError)
	rest, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if err := wantArgs("edge", rest); err != nil {
		return err
	}
	remote := edge.Remote{URL: getenv("TPF_CONTROLLER_URL"), Token: getenv("TPF_EDGE_TOKEN")}
	if remote.URL == "" {
		return errors.New("TPF_CONTROLLER_URL is not set: give the controller's URL, e.g. https://tpf.example.net")
	}
	if _, err := edge.EdgeURL(remote.URL); err != nil {
		return fmt.Errorf("TPF_CONTROLLER_URL: %w", err)
	}
	if remote.Token == "" {
		return errors.New("TPF_EDGE_TOKEN is not set: issue one with `tpf-controller region token REGION`")
	}
	if f := getenv("TPF_CA_FILE"); f != "" {
		b, err := os.ReadFile(f)
		if err != nil {
			return fmt.Errorf("TPF_CA_FILE: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(b) {
			return fmt.Errorf("TPF_CA_FILE: %s holds no PEM certificate", f)
		}
		remote.TLS = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	cfg, err := edgeConfig(getenv, "0.0.0.0")
	if err != nil {
		return err
	}
	if cfg.Strict, err = durationOrZero(getenv, "TPF_EDGE_STRICT", 0); err != nil {
		return err
	}
	level, logJSON, err := logSettings(getenv)
	if err != nil {
		return err
	}
	cfg.Logger = newLogger(stderr, level, logJSON)
	e, err := edge.New(cfg)
	if err != nil {
		return err
	}
	defer e.Close()
	cfg.Logger.Info("edge starting", "bind", cfg.Bind, "controller", remote.URL, "strict", cfg.Strict)
	return e.RunRemote(ctx, remote)
}

// edgeConfig reads the settings an edge shares between its standalone and
// embedded forms.
func edgeConfig(getenv Env, defaultBind string) (edge.Config, error) {
	bind := getenv("TPF_EDGE_BIND")
	if bind == "" {
		bind = defaultBind
	}
	a, err := netip.ParseAddr(bind)
	if err != nil {
		return edge.Config{}, fmt.Errorf("TPF_EDGE_BIND=%q: give the address the entry point listens on, e.g. 0.0.0.0 or 203.0.113.7", bind)
	}
	cfg := edge.Config{Bind: a, Version: Version}
	keyFile := getenv("TPF_EDGE_KEY_FILE")
	if keyFile == "" {
		keyFile = filepath.Join(defaultEdgeStateDir, tunnel.KeyFileName)
	}
	cfg.OpenTunnel = func(log *slog.Logger) (*tunnel.Tunnel, error) {
		return tunnel.New(tunnel.Config{KeyFile: keyFile, Logger: log})
	}
	return cfg, nil
}

// defaultEdgeStateDir keeps the edge's WireGuard private key unless
// TPF_EDGE_KEY_FILE says otherwise.
const defaultEdgeStateDir = "/var/lib/tpf-edge"

// runEmbeddedEdge serves region's entry point inside serve, over an
// in-process link to the hub, until ctx ends.
func runEmbeddedEdge(ctx context.Context, e *edge.Edge, serveEdge func(context.Context, peerlink.Conn), log *slog.Logger) {
	for ctx.Err() == nil {
		hubEnd, edgeEnd := peerlink.Pipe()
		go serveEdge(ctx, hubEnd)
		if err := e.Run(ctx, edgeEnd); err != nil && ctx.Err() == nil {
			log.Warn("embedded edge link ended; restarting", "err", err)
		}
	}
}
