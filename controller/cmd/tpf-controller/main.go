// Command tpf-controller serves tpf's REST API and administers its database.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/tpf-dev/tpf/controller/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := cli.Run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "tpf-controller:", err)
		if cli.ErrUsage(err) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}
