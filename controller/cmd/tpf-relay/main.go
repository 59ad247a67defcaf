// Command tpf-relay runs the edge's data plane alone: it listens on one
// address, admits only sources inside -allow (a BPF socket filter drops
// everyone else's SYN), dials -target for every admitted connection and
// relays both ways with zero-copy splice — the same listen.Set and
// relay.Engine the edge uses. It serves ../shared/bench and manual tests;
// it stays in the foreground and exits on SIGINT/SIGTERM.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/tpf-dev/tpf/controller/edge/listen"
	"github.com/tpf-dev/tpf/controller/edge/relay"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "tpf-relay:", err)
		if errors.Is(err, errUsage) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}

var errUsage = errors.New("usage")

// run relays until ctx is done, then closes the listener, cuts the live
// connections and returns nil. It writes one "listening on" line to stdout
// once the listener is open, and logs to stderr.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("tpf-relay", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: tpf-relay -listen ADDR:PORT -target HOST:PORT [flags]")
		fs.PrintDefaults()
	}
	listenAddr := fs.String("listen", "", "address and port to listen on, e.g. 127.0.0.1:25100 or [::]:25100 (required)")
	target := fs.String("target", "", "host:port to relay every admitted connection to (required)")
	allow := fs.String("allow", "127.0.0.0/8", "IPv4 CIDR of admitted sources; others get no SYN-ACK (0.0.0.0/0: any IPv4)")
	idle := fs.Duration("idle", 0, "cut a connection after this long without traffic (0: never)")
	rate := fs.Int64("rate", 0, "bandwidth cap per connection and direction, bytes/s (0: none)")
	dialTimeout := fs.Duration("dial-timeout", 10*time.Second, "give up dialling the target after this long")
	verbose := fs.Bool("v", false, "log every connection")
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	if fs.NArg() > 0 || *listenAddr == "" || *target == "" {
		fs.Usage()
		return fmt.Errorf("%w: -listen and -target are required, and nothing else", errUsage)
	}
	ap, err := netip.ParseAddrPort(*listenAddr)
	if err != nil {
		return fmt.Errorf("%w: -listen %q: %v", errUsage, *listenAddr, err)
	}
	prefix, err := netip.ParsePrefix(*allow)
	if err != nil {
		return fmt.Errorf("%w: -allow %q: %v", errUsage, *allow, err)
	}
	if *idle < 0 || *rate < 0 {
		return fmt.Errorf("%w: -idle and -rate must not be negative", errUsage)
	}
	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	lim := relay.Limits{IdleTimeout: *idle, BytesPerSecond: *rate}

	// The target is resolved once, here: the edge's targets are addresses.
	ta, err := net.ResolveTCPAddr("tcp", *target)
	if err != nil {
		return fmt.Errorf("%w: -target %q: %v", errUsage, *target, err)
	}
	targetAP := ta.AddrPort()

	eng, err := relay.New(relay.Config{DialTimeout: *dialTimeout, Logger: log})
	if err != nil {
		return err
	}
	defer eng.Close()
	debug := log.Enabled(ctx, slog.LevelDebug)
	// The handler runs on the listener's event loop and does not block:
	// Connect dials the target on the relay's event loop.
	handle := func(c *listen.Conn) {
		if !debug {
			eng.Connect(ctx, c, targetAP, lim, nil)
			return
		}
		from := c.RemoteAddr()
		eng.Connect(ctx, c, targetAP, lim, func(st relay.Stats) {
			log.Debug("connection ended", "from", from, "up", st.Up, "down", st.Down,
				"duration", st.End.Sub(st.Start), "reason", st.Reason, "err", st.Err)
		})
	}
	// The listeners run on the relay's event loops (Poller), so that a
	// connection is accepted, dialled and relayed on one goroutine.
	set, err := listen.New(listen.Config{Bind: ap.Addr(), Handler: handle, Logger: log, Poller: eng})
	if err != nil {
		return err
	}
	defer set.Shutdown()
	if err := set.Open(ap.Port(), prefix); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "tpf-relay: listening on %s, admitting %s, relaying to %s\n", ap, prefix, *target)
	<-ctx.Done()
	return errors.Join(set.Shutdown(), eng.Close())
}
