package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tpf-dev/tpf/controller/api"
	"github.com/tpf-dev/tpf/controller/edge"
	"github.com/tpf-dev/tpf/controller/expiry"
	"github.com/tpf-dev/tpf/controller/forwards"
	"github.com/tpf-dev/tpf/controller/hub"
	"github.com/tpf-dev/tpf/controller/metrics"
	"github.com/tpf-dev/tpf/controller/store"
	"github.com/tpf-dev/tpf/controller/web"
	"github.com/tpf-dev/tpf/shared/peerlink"
)

func runServe(ctx context.Context, args []string, getenv Env, stderr io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	migrate := fs.Bool("migrate", false, "apply pending migrations before serving")
	rest, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if err := wantArgs("serve", rest); err != nil {
		return err
	}
	set, err := readSettings(getenv)
	if err != nil {
		return err
	}
	pool, err := openPool(ctx, set.databaseURL, set.pool)
	if err != nil {
		return err
	}
	defer pool.Close()
	return serve(ctx, pool, set, *migrate, set.logger(stderr), nil)
}

// openPool connects to PostgreSQL and checks that it answers.
func openPool(ctx context.Context, url string, cfg store.PoolConfig) (*pgxpool.Pool, error) {
	pool, err := store.OpenPool(ctx, url, cfg)
	if err != nil {
		return nil, fmt.Errorf("DATABASE_URL: %w", err)
	}
	return pool, nil
}

// serve runs the API and the expiry clock until ctx ends. ready, when not
// nil, receives the listening address once requests are accepted.
func serve(ctx context.Context, pool *pgxpool.Pool, set settings, migrate bool, log *slog.Logger, ready chan<- string) error {
	if migrate {
		applied, err := store.Migrate(ctx, pool)
		if err != nil {
			return err
		}
		for _, v := range applied {
			log.Info("applied migration", "version", v)
		}
	}
	pending, err := store.PendingMigrations(ctx, pool)
	if err != nil {
		return err
	}
	if len(pending) > 0 {
		return fmt.Errorf("the database schema is behind (pending: %s): run tpf-controller migrate, or serve --migrate", strings.Join(pending, ", "))
	}

	st := store.New(pool)
	svc := forwards.New(st)
	set.api.Logger = log
	set.expiry.Logger = log
	clock := expiry.New(svc, set.expiry)
	clock.Start(ctx)
	defer clock.Stop()
	m := metrics.New(metrics.Config{
		Forwards:  func(ctx context.Context) ([]store.ForwardCount, error) { return st.CountForwards(ctx, time.Now()) },
		Accesses:  func(ctx context.Context) ([]store.AccessCount, error) { return st.CountAccesses(ctx, time.Now()) },
		ClockOff:  st.CountRoutersClockOff,
		Tunnels:   func(ctx context.Context) (map[string]int64, error) { return st.CountTunnels(ctx, time.Now()) },
		DBRetries: st.Retries,
		Logger:    log,
	})
	set.api.Metrics = m
	peers := hub.New(svc, hub.Config{Logger: log, EdgeLimits: set.edgeLimits, Observer: m})
	peers.Start(ctx)
	defer peers.Stop()
	set.api.Agents = peers
	set.api.Edges = peers.Edges()
	if set.edgeRegion != "" {
		stop, err := startEmbeddedEdge(ctx, st, peers, set, log)
		if err != nil {
			return err
		}
		defer stop()
	}

	set.api.Web = web.New(st, web.Config{Forwards: set.api.ForwardRules(), PublicURL: set.api.PublicURL, Logger: log})

	ln, err := net.Listen("tcp", set.listen)
	if err != nil {
		return fmt.Errorf("TPF_LISTEN: %w", err)
	}
	srv := &http.Server{
		Handler:           api.NewServer(st, set.api),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 1)
	scheme := "http"
	if set.tlsCert != "" {
		scheme = "https"
		go func() { errc <- srv.ServeTLS(ln, set.tlsCert, set.tlsKey) }()
	} else {
		go func() { errc <- srv.Serve(ln) }()
	}
	log.Info("serving", "addr", scheme+"://"+ln.Addr().String())
	if ready != nil {
		ready <- ln.Addr().String()
	}

	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	log.Info("shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("shutdown: %w", err)
	}
	return nil
}

// startEmbeddedEdge runs the edge of set.edgeRegion inside serve, linked to
// the hub in-process, and returns how to stop it.
func startEmbeddedEdge(ctx context.Context, st *store.Store, peers *hub.Hub, set settings, log *slog.Logger) (func(), error) {
	if _, err := st.Region(ctx, set.edgeRegion); err != nil {
		return nil, fmt.Errorf("TPF_EDGE_REGION=%q: %w (add it with `tpf-controller region add`)", set.edgeRegion, err)
	}
	if err := st.SetEdgeManaged(ctx, set.edgeRegion); err != nil {
		return nil, err
	}
	cfg := set.edge
	cfg.Logger = log.With("edge", set.edgeRegion)
	e, err := edge.New(cfg)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		runEmbeddedEdge(ctx, e, func(ctx context.Context, c peerlink.Conn) { peers.ServeEdge(ctx, set.edgeRegion, c) }, cfg.Logger)
	}()
	log.Info("edge embedded", "region", set.edgeRegion, "bind", cfg.Bind)
	return func() { cancel(); <-done; e.Close() }, nil
}
