// Command tpf-agent runs beside a MikroTik router and keeps the router's
// tpf-tagged NAT rules equal to the desired set the controller sends.
//
// This build knows its version only; the reconciler is not part of it yet.
package main

import (
	"fmt"
	"io"
	"os"
)

// version is stamped at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "tpf-agent:", err)
		os.Exit(2)
	}
}

func run(args []string, stdout io.Writer) error {
	if len(args) == 1 && args[0] == "--version" {
		fmt.Fprintln(stdout, "tpf-agent", version)
		return nil
	}
	return fmt.Errorf("this build has no reconciler yet; only --version is supported")
}
