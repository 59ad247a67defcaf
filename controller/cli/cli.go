// Package cli is the tpf-controller program: its subcommands, settings and
// help. main only wires signals and calls Run.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
)

// Env reads an environment variable; os.Getenv in production, a map in tests.
type Env func(string) string

// Version is the controller's version, stamped at build time with
// -ldflags "-X github.com/tpf-dev/tpf/controller/cli.Version=...".
var Version = "dev"

// errUsage marks errors caused by a bad command line; main exits 2 on them.
var errUsage = errors.New("usage")

// ErrUsage reports whether err came from a bad command line.
func ErrUsage(err error) bool { return errors.Is(err, errUsage) }

func usageError(format string, args ...any) error {
	return fmt.Errorf("%w: %s", errUsage, fmt.Sprintf(format, args...))
}

const usage = `tpf-controller: transient port forwarding for MikroTik routers.

Usage:
  tpf-controller serve [--migrate]      run the REST API and the expiry clock
  tpf-controller quickstart [--state DIR]
                                        migrate, create a default account, region
                                        and demo router if missing, print the API
                                        token and a curl example, then serve
  tpf-controller edge                   run a standalone edge (entry point) on a regional server
  tpf-controller migrate                apply pending database migrations
  tpf-controller account create NAME    create an account; prints its API token last
  tpf-controller account list
  tpf-controller token create ACCOUNT [--name NAME]
                                        add an API token to an account (rotation)
  tpf-controller token list ACCOUNT     list the account's API tokens, revoked ones too
  tpf-controller token revoke ACCOUNT NAME-OR-ID
                                        revoke an API token; its web sessions end
  tpf-controller region add ID --entry-point HOST [--ports MIN-MAX] [--tunnel-prefix CIDR] [--tunnel-endpoint HOST:PORT]
                                        add a region whose routers reach its edge over a WireGuard
                                        tunnel tpf builds (addresses from 100.64.0.0/10 by default)
  tpf-controller region add ID --entry-point HOST [--ports MIN-MAX] --manual --edge-tunnel-address IP
                                        add a region whose routers reach its edge over your own VPN
  tpf-controller region list
  tpf-controller region token ID        issue the region's edge token (replaces the old one); prints it last

Settings (environment):
`

// Run runs the tpf-controller command line args (without the program name).
func Run(ctx context.Context, args []string, getenv Env, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		printUsage(stdout)
		return nil
	}
	cmd, rest := args[0], args[1:]
	if len(rest) > 0 && (rest[0] == "-h" || rest[0] == "--help") {
		printUsage(stdout)
		return nil
	}
	switch cmd {
	case "serve":
		return runServe(ctx, rest, getenv, stderr)
	case "quickstart":
		return runQuickstart(ctx, rest, getenv, stdout, stderr)
	case "edge":
		return runEdge(ctx, rest, getenv, stderr)
	case "migrate":
		return runMigrate(ctx, rest, getenv, stdout)
	case "account":
		return runAccount(ctx, rest, getenv, stdout)
	case "token":
		return runToken(ctx, rest, getenv, stdout)
	case "region":
		return runRegion(ctx, rest, getenv, stdout)
	default:
		return usageError("unknown command %q (see tpf-controller --help)", cmd)
	}
}

func printUsage(w io.Writer) {
	fmt.Fprint(w, usage)
	for _, s := range settingDocs {
		fmt.Fprintf(w, "  %-26s %s\n", s.name, s.doc)
	}
}

// parseArgs parses fs from args, allowing positional arguments before,
// between and after the flags, and returns the positional ones.
func parseArgs(fs *flag.FlagSet, args []string) ([]string, error) {
	fs.SetOutput(io.Discard)
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, usageError("%s: %v", fs.Name(), err)
		}
		args = fs.Args()
		if len(args) == 0 {
			return positional, nil
		}
		if args[0] == "--" {
			return append(positional, args[1:]...), nil
		}
		positional = append(positional, args[0])
		args = args[1:]
	}
}

// wantArgs checks the number of positional arguments.
func wantArgs(cmd string, got []string, names ...string) error {
	if len(got) != len(names) {
		return usageError("%s takes %s", cmd, strings.Join(names, " "))
	}
	return nil
}
