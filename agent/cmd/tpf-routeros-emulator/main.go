// Command tpf-routeros-emulator runs the RouterOS API emulator of package
// routerostest on a TCP port, for demos and for trying the tpf agent
// without a router. It logs every command to stderr and runs until
// SIGINT or SIGTERM. State lives in memory only.
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
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "tpf-routeros-emulator:", err)
		os.Exit(2)
	}
}

// run serves until ctx is done. Once listening it prints one line with
// the address to stdout, so scripts (and tests) using port 0 can find it.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("tpf-routeros-emulator", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:8728", "`address` to serve the RouterOS API on (port 0 picks a free one)")
	user := fs.String("user", "admin", "API user `name`")
	password := fs.String("password", "", "API user `password`")
	version := fs.String("version", "7.18.2", "RouterOS `version` to mimic; 7.18 and later answer !empty to prints that find nothing")
	legacy := fs.Bool("legacy-login", false, "mimic RouterOS before 6.43: log in with the MD5 challenge only")
	nftTable := fs.String("nft-table", "", "also apply the NAT table to this host's kernel as nftables `table` ip NAME (needs root; use in a network namespace)")
	userNAT := fs.Bool("user-nat", false, "carry TCP traffic through the dst-nat rules in user space (no root needed)")
	sshHost := fs.String("ssh", "", "also serve a stand-in for the router's SSH service on this `address` at the /ip/service ssh port (22 unless changed through the API); empty: no SSH")
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
	cfg := routerostest.Config{
		Users:       map[string]string{*user: *password},
		Version:     *version,
		LegacyLogin: *legacy,
		Logger:      log,
	}
	if *userNAT {
		cfg.UserNAT = &routerostest.UserNAT{}
	}
	if *nftTable != "" {
		if err := routerostest.ApplyNFT(*nftTable, nil); err != nil {
			return err
		}
		cfg.OnNATChange = func(rules []map[string]string) {
			if err := routerostest.ApplyNFT(*nftTable, rules); err != nil {
				log.Error("apply NAT to the kernel", "err", err)
			}
		}
	}
	srv := routerostest.New(cfg)
	if err := srv.Start(*listen); err != nil {
		return err
	}
	if *sshHost != "" {
		if err := srv.StartSSH(*sshHost); err != nil {
			srv.Close()
			return err
		}
	}
	fmt.Fprintf(stdout, "RouterOS %s API emulator listening on %s (user %q)\n", *version, srv.Addr(), *user)
	<-ctx.Done()
	return srv.Close()
}
