// Command tpf-devdb starts and stops a private PostgreSQL cluster for
// development and tests (see package devdb). It is meant for the `make run`
// and `make test` scripts, not for production.
//
// Usage:
//
//	tpf-devdb start [-ephemeral] DIR [DBNAME]
//	tpf-devdb stop DIR
//
// start makes sure the cluster in DIR is running, creates DBNAME if given and
// prints only the connection URL for DBNAME (default postgres) on stdout;
// progress goes to stderr. -ephemeral trades durability for speed, for
// throwaway test clusters. stop stops the cluster; it does nothing if the
// cluster is not running.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/tpf-dev/tpf/controller/devdb"
)

const usage = `usage:
  tpf-devdb start [-ephemeral] DIR [DBNAME]   start the cluster in DIR, print the URL of DBNAME (default postgres)
  tpf-devdb stop DIR                          stop the cluster in DIR`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "tpf-devdb:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return errors.New(usage)
	}
	fs := flag.NewFlagSet("tpf-devdb "+args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprintln(stderr, usage) }
	switch args[0] {
	case "start":
		ephemeral := fs.Bool("ephemeral", false, "throwaway cluster: fsync and synchronous_commit off")
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		if fs.NArg() < 1 || fs.NArg() > 2 {
			return errors.New(usage)
		}
		db := fs.Arg(1)
		c, err := devdb.Start(ctx, devdb.Config{Dir: fs.Arg(0), Log: stderr, Ephemeral: *ephemeral})
		if err != nil {
			return err
		}
		if db != "" {
			if err := c.CreateDatabase(ctx, db, ""); err != nil {
				return err
			}
		}
		_, err = fmt.Fprintln(stdout, c.URL(db))
		return err
	case "stop":
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		if fs.NArg() != 1 {
			return errors.New(usage)
		}
		c, err := devdb.Open(devdb.Config{Dir: fs.Arg(0), Log: stderr})
		if err != nil {
			return err
		}
		return c.Stop()
	default:
		return fmt.Errorf("unknown command %q\n%s", args[0], usage)
	}
}
