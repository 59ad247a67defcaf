// Command tpf-router-host plays a whole MikroTik router in a network
// namespace for the end-to-end tests: the RouterOS API emulator
// (agent/routerostest) whose NAT table is applied to the kernel as nftables
// and whose WireGuard interfaces, peers and addresses are real userspace
// WireGuard devices (e2e/internal/routerwg), their handshakes and traffic
// read back into the emulator. With -ssh it also serves the router's SSH
// service (the emulator's stand-in, routerostest.Server.StartSSH) on that
// address at the port /ip/service ssh gives, 22 unless changed, so that a
// test can log in through a transient access as the router's users allow.
// Run it as root inside the router's namespace (`ip netns exec NS
// tpf-router-host …`); it runs until SIGINT or SIGTERM and then removes
// its WireGuard devices (its nftables table goes with the namespace).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/tpf-dev/tpf/agent/routerostest"
	"github.com/tpf-dev/tpf/e2e/internal/routerwg"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "tpf-router-host:", err)
		os.Exit(1)
	}
}

// run serves until ctx ends. Once listening it prints one line with the
// API's address to stdout.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("tpf-router-host", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:8728", "`address` to serve the RouterOS API on")
	user := fs.String("user", "admin", "API user `name`")
	password := fs.String("password", "", "API user `password`")
	version := fs.String("version", "7.18.2", "RouterOS `version` to mimic")
	nftTable := fs.String("nft-table", "tpf_router", "the nftables `table` (ip NAME) the NAT table is applied as")
	sshHost := fs.String("ssh", "", "also serve the router's SSH service on this `address` (e.g. 0.0.0.0) at the /ip/service ssh port; empty: no SSH")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q; see -help", fs.Args())
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	if err := routerostest.ApplyNFT(*nftTable, nil); err != nil {
		return err
	}
	wg := routerwg.New(routerwg.Config{Logger: log})
	defer wg.Close()
	srv := routerostest.New(routerostest.Config{
		Users:   map[string]string{*user: *password},
		Version: *version,
		Logger:  log.With("part", "routeros"),
		OnNATChange: func(rules []map[string]string) {
			if err := routerostest.ApplyNFT(*nftTable, rules); err != nil {
				log.Error("apply NAT to the kernel", "err", err)
			}
		},
		OnWireGuardChange: wg.Apply,
	})
	wg.Start(srv)
	if err := srv.Start(*listen); err != nil {
		return err
	}
	if *sshHost != "" {
		if err := srv.StartSSH(*sshHost); err != nil {
			srv.Close()
			return err
		}
	}
	fmt.Fprintf(stdout, "RouterOS %s API emulator with real WireGuard listening on %s\n", *version, srv.Addr())
	<-ctx.Done()
	err := srv.Close() // delivers the last changes to wg first
	wg.Close()
	return err
}
