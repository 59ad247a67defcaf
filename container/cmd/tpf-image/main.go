// Command tpf-image writes the tpf-agent's RouterOS container images: for
// each architecture RouterOS runs containers on (linux/arm/v7, linux/arm64,
// linux/amd64) it reads the agent binary dist/tpf-agent-linux-<arch> that
// `make dist` built and writes dist/tpf-agent-linux-<arch>.tar, a
// single-platform docker-archive for /container/add file=. No container
// engine is needed. `make container` runs it.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"time"

	"github.com/tpf-dev/tpf/container/agentimage"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "tpf-image:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("tpf-image", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dist := fs.String("dist", "dist", "directory holding the agent binaries; the archives are written there too")
	version := fs.String("version", "", "the agent's version, for the tag and label (default $VERSION, else dev)")
	caCerts := fs.String("ca-certs", agentimage.DefaultCACerts, "PEM CA bundle to put into the images")
	fs.Usage = func() {
		fmt.Fprint(stderr, `Usage: tpf-image [-dist dir] [-version v] [-ca-certs file]

Writes dist/tpf-agent-linux-{armv7,arm64,amd64}.tar, RouterOS-loadable
docker-archives, from the agent binaries of the same names (make dist).
SOURCE_DATE_EPOCH, when set, stamps the images; otherwise the Unix epoch does.

`)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if *version == "" {
		*version = getenv("VERSION")
	}
	if *version == "" {
		*version = "dev"
	}
	var created time.Time
	if v := getenv("SOURCE_DATE_EPOCH"); v != "" {
		sec, err := strconv.ParseInt(v, 10, 64)
		if err != nil || sec < 0 {
			return fmt.Errorf("SOURCE_DATE_EPOCH=%q: want seconds since 1970", v)
		}
		created = time.Unix(sec, 0)
	}

	for _, p := range agentimage.Platforms {
		if err := ctx.Err(); err != nil {
			return err
		}
		img, err := agentimage.Build(agentimage.Config{
			Platform: p,
			Agent:    filepath.Join(*dist, agentimage.BinaryName(p)),
			Version:  *version,
			CACerts:  *caCerts,
			Created:  created,
		})
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				err = fmt.Errorf("%w (run make dist first)", err)
			}
			return fmt.Errorf("%s: %w", p, err)
		}
		tag, err := agentimage.Tag(*version, p)
		if err != nil {
			return err
		}
		out := filepath.Join(*dist, agentimage.ArchiveName(p))
		if err := agentimage.WriteArchive(out, tag, img); err != nil {
			return err
		}
		st, err := os.Stat(out)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s  %s  %s  %.2f MiB\n", out, p, tag, float64(st.Size())/(1<<20))
	}
	return nil
}
