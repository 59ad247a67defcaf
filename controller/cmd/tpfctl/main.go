// Command tpfctl is the command line of tpf's REST API: forwards, WinBox and
// SSH logins to routers (access), routers and the fleet's status, as tables
// or as the API's JSON. See `tpfctl --help`; the program itself is package
// tpfctl.
package main

import (
	"context"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/tpf-dev/tpf/controller/tpfctl"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	os.Exit(tpfctl.ExitCode(err))
}

// run is the program; it reports its own errors on stderr, and the error it
// returns only carries the exit code.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	return tpfctl.Run(ctx, args, getenv, stdout, stderr)
}
