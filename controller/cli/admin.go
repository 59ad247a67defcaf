package cli

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tpf-dev/tpf/controller/fleet"
	"github.com/tpf-dev/tpf/controller/forwards"
	"github.com/tpf-dev/tpf/controller/store"
	"github.com/tpf-dev/tpf/shared/forward"
)

// withStore opens the database named by DATABASE_URL for an admin command.
func withStore(ctx context.Context, getenv Env, fn func(*pgxpool.Pool, *store.Store) error) error {
	url := getenv("DATABASE_URL")
	if url == "" {
		return fmt.Errorf("DATABASE_URL is not set: point it at the PostgreSQL database")
	}
	pool, err := openPool(ctx, url, store.PoolConfig{MaxConns: 2})
	if err != nil {
		return err
	}
	defer pool.Close()
	return fn(pool, store.New(pool))
}

func runMigrate(ctx context.Context, args []string, getenv Env, stdout io.Writer) error {
	if err := wantArgs("migrate", args); err != nil {
		return err
	}
	return withStore(ctx, getenv, func(pool *pgxpool.Pool, _ *store.Store) error {
		applied, err := store.Migrate(ctx, pool)
		if err != nil {
			return err
		}
		if len(applied) == 0 {
			fmt.Fprintln(stdout, "The database schema is up to date.")
		}
		for _, v := range applied {
			fmt.Fprintln(stdout, "applied", v)
		}
		return nil
	})
}

func runAccount(ctx context.Context, args []string, getenv Env, stdout io.Writer) error {
	if len(args) == 0 {
		return usageError("account takes create NAME or list")
	}
	switch args[0] {
	case "create":
		if err := wantArgs("account create", args[1:], "NAME"); err != nil {
			return err
		}
		name := args[1]
		if strings.TrimSpace(name) == "" || len(name) > 100 {
			return usageError("an account name is 1 to 100 characters")
		}
		return withStore(ctx, getenv, func(_ *pgxpool.Pool, st *store.Store) error {
			acc, secret, err := st.CreateAccount(ctx, name, now())
			if err != nil {
				return err
			}
			fmt.Fprintf(stdout, "Created account %s (%s). Its API token, shown only now:\n%s\n", acc.Name, acc.ID, secret)
			return nil
		})
	case "list":
		if err := wantArgs("account list", args[1:]); err != nil {
			return err
		}
		return withStore(ctx, getenv, func(_ *pgxpool.Pool, st *store.Store) error {
			list, err := st.Accounts(ctx)
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tID\tCREATED")
			for _, a := range list {
				fmt.Fprintf(tw, "%s\t%s\t%s\n", a.Name, a.ID, a.CreatedAt.Format(time.RFC3339))
			}
			return tw.Flush()
		})
	default:
		return usageError("unknown account command %q", args[0])
	}
}

func runToken(ctx context.Context, args []string, getenv Env, stdout io.Writer) error {
	if len(args) == 0 {
		return usageError("token takes create ACCOUNT [--name NAME], list ACCOUNT or revoke ACCOUNT NAME-OR-ID")
	}
	switch args[0] {
	case "create":
		return runTokenCreate(ctx, args[1:], getenv, stdout)
	case "list":
		if err := wantArgs("token list", args[1:], "ACCOUNT"); err != nil {
			return err
		}
		return withStore(ctx, getenv, func(_ *pgxpool.Pool, st *store.Store) error {
			acc, err := st.Account(ctx, args[1])
			if err != nil {
				return err
			}
			list, err := st.Tokens(ctx, acc.ID)
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tID\tCREATED\tREVOKED")
			for _, t := range list {
				revoked := "-"
				if t.RevokedAt != nil {
					revoked = t.RevokedAt.Format(time.RFC3339)
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", t.Name, t.ID, t.CreatedAt.Format(time.RFC3339), revoked)
			}
			return tw.Flush()
		})
	case "revoke":
		if err := wantArgs("token revoke", args[1:], "ACCOUNT", "NAME-OR-ID"); err != nil {
			return err
		}
		return withStore(ctx, getenv, func(_ *pgxpool.Pool, st *store.Store) error {
			return revokeToken(ctx, st, args[1], args[2], stdout)
		})
	default:
		return usageError("unknown token command %q", args[0])
	}
}

func runTokenCreate(ctx context.Context, args []string, getenv Env, stdout io.Writer) error {
	fs := flag.NewFlagSet("token create", flag.ContinueOnError)
	name := fs.String("name", "", "a name for the token (default: token-<date>)")
	rest, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if err := wantArgs("token create", rest, "ACCOUNT"); err != nil {
		return err
	}
	t := now()
	if *name == "" {
		*name = "token-" + t.Format("20060102-150405")
	}
	if err := checkTokenName(*name); err != nil {
		return err
	}
	return withStore(ctx, getenv, func(_ *pgxpool.Pool, st *store.Store) error {
		acc, err := st.Account(ctx, rest[0])
		if err != nil {
			return err
		}
		tok, secret, err := st.IssueToken(ctx, acc.ID, fleet.ActorAdmin, *name, t)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "Created token %s (%s) for account %s, shown only now:\n%s\n", tok.Name, tok.ID, acc.Name, secret)
		return nil
	})
}

// checkTokenName applies the API's rules for token names.
func checkTokenName(name string) error {
	switch {
	case strings.TrimSpace(name) == "":
		return usageError("--name: a token name must not be blank")
	case len(name) > fleet.MaxTokenName:
		return usageError("--name: a token name is at most %d bytes", fleet.MaxTokenName)
	case !utf8.ValidString(name) || strings.ContainsFunc(name, unicode.IsControl):
		return usageError("--name: a token name must not contain control characters")
	}
	return nil
}

// revokeToken revokes the account's token with the id or name ref. A name
// must pick out one token that is not revoked yet; a token already revoked
// is reported, not an error, like the API's repeated DELETE.
func revokeToken(ctx context.Context, st *store.Store, account, ref string, stdout io.Writer) error {
	acc, err := st.Account(ctx, account)
	if err != nil {
		return err
	}
	id, err := uuid.Parse(ref)
	if err != nil {
		list, err := st.Tokens(ctx, acc.ID)
		if err != nil {
			return err
		}
		var live, revoked []fleet.APIToken
		for _, t := range list {
			switch {
			case t.Name != ref:
			case t.RevokedAt == nil:
				live = append(live, t)
			default:
				revoked = append(revoked, t)
			}
		}
		switch {
		case len(live) > 1:
			return usageError("account %s has %d live tokens named %q: revoke one by its id (tpf-controller token list %s)", acc.Name, len(live), ref, acc.Name)
		case len(live) == 1:
			id = live[0].ID
		case len(revoked) > 0:
			id = revoked[len(revoked)-1].ID
		default:
			return fmt.Errorf("token %q of account %s: %w", ref, acc.Name, fleet.ErrNotFound)
		}
	}
	tok, revoked, err := st.RevokeToken(ctx, acc.ID, fleet.ActorAdmin, id, now())
	if err != nil {
		return err
	}
	if !revoked {
		fmt.Fprintf(stdout, "Token %s (%s) of account %s was already revoked at %s.\n", tok.Name, tok.ID, acc.Name, tok.RevokedAt.Format(time.RFC3339))
		return nil
	}
	fmt.Fprintf(stdout, "Revoked token %s (%s) of account %s; its web sessions are over.\n", tok.Name, tok.ID, acc.Name)
	return nil
}

var regionID = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)

func runRegion(ctx context.Context, args []string, getenv Env, stdout io.Writer) error {
	if len(args) == 0 {
		return usageError("region takes add, list or token")
	}
	switch args[0] {
	case "add":
		r, err := parseRegion(args[1:])
		if err != nil {
			return err
		}
		return withStore(ctx, getenv, func(_ *pgxpool.Pool, st *store.Store) error {
			r, err := st.CreateRegion(ctx, r)
			if err != nil {
				return err
			}
			fmt.Fprintf(stdout, "Added region %s: entry point %s, ports %d-%d, edge tunnel address %s\n",
				r.ID, r.EntryPoint, r.Ports.Min, r.Ports.Max, r.EdgeTunnelAddress)
			if r.Tunnel.Managed {
				fmt.Fprintf(stdout, "Managed tunnel: routers get addresses from %s and dial the edge at %s (UDP): let it through to the edge host.\n",
					r.Tunnel.Prefix, r.Tunnel.Endpoint)
			}
			return nil
		})
	case "token":
		if err := wantArgs("region token", args[1:], "ID"); err != nil {
			return err
		}
		return withStore(ctx, getenv, func(_ *pgxpool.Pool, st *store.Store) error {
			secret, err := forwards.New(st).IssueEdgeToken(ctx, args[1])
			if err != nil {
				return err
			}
			fmt.Fprintf(stdout, "Issued the edge token of region %s (any earlier one stops working), shown only now:\n%s\n", args[1], secret)
			return nil
		})
	case "list":
		if err := wantArgs("region list", args[1:]); err != nil {
			return err
		}
		return withStore(ctx, getenv, func(_ *pgxpool.Pool, st *store.Store) error {
			list, err := st.Regions(ctx)
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tENTRY POINT\tPORTS\tEDGE TUNNEL ADDRESS\tTUNNEL")
			for _, r := range list {
				tunnel := "manual"
				if r.Tunnel.Managed {
					tunnel = r.Tunnel.Prefix.String() + " via " + r.Tunnel.Endpoint
				}
				fmt.Fprintf(tw, "%s\t%s\t%d-%d\t%s\t%s\n", r.ID, r.EntryPoint, r.Ports.Min, r.Ports.Max, r.EdgeTunnelAddress, tunnel)
			}
			return tw.Flush()
		})
	default:
		return usageError("unknown region command %q", args[0])
	}
}

// parseRegion reads `region add`'s arguments.
func parseRegion(args []string) (fleet.Region, error) {
	fs := flag.NewFlagSet("region add", flag.ContinueOnError)
	entry := fs.String("entry-point", "", "host name users connect to")
	ports := fs.String("ports", "49152-65535", "entry-point port range MIN-MAX")
	prefix := fs.String("tunnel-prefix", "", "managed tunnel: the prefix routers get addresses from (default: a free /16 of 100.64.0.0/10)")
	endpoint := fs.String("tunnel-endpoint", "", "managed tunnel: the edge's WireGuard UDP endpoint HOST:PORT routers dial (default: the entry point, port 51820)")
	manual := fs.Bool("manual", false, "the operator brings the VPN between edge and routers (RouterOS 6, or an existing VPN); needs --edge-tunnel-address")
	edge := fs.String("edge-tunnel-address", "", "manual tunnel: the edge's address inside the operator's VPN")
	rest, err := parseArgs(fs, args)
	if err != nil {
		return fleet.Region{}, err
	}
	if err := wantArgs("region add", rest, "ID"); err != nil {
		return fleet.Region{}, err
	}
	r := fleet.Region{ID: rest[0], EntryPoint: *entry, CreatedAt: now()}
	if !regionID.MatchString(r.ID) {
		return r, usageError("region id %q: use lower-case letters, digits and dashes, e.g. us-east1", r.ID)
	}
	if r.EntryPoint == "" || strings.ContainsAny(r.EntryPoint, " /:") {
		return r, usageError("--entry-point: give the host name (or address) users connect to, e.g. us-east1.example.net")
	}
	if r.Ports, err = parsePortRange(*ports); err != nil {
		return r, err
	}
	if *manual || *edge != "" {
		// The operator's own VPN, as before tpf managed tunnels.
		if *prefix != "" || *endpoint != "" {
			return r, usageError("--tunnel-prefix and --tunnel-endpoint are for a managed tunnel; a manual one takes --edge-tunnel-address only")
		}
		if r.EdgeTunnelAddress, err = forward.ParseIPv4(*edge); err != nil {
			return r, usageError("--edge-tunnel-address: give the edge's IPv4 address inside your VPN (a manual region needs it)")
		}
		return r, nil
	}
	r.Tunnel.Managed = true
	if *prefix != "" {
		p, err := netip.ParsePrefix(*prefix)
		if err != nil || !p.Addr().Is4() || p.Bits() < 8 || p.Bits() > 29 {
			return r, usageError("--tunnel-prefix %q: want an IPv4 prefix from /8 to /29, e.g. 100.64.0.0/16", *prefix)
		}
		r.Tunnel.Prefix = p.Masked()
	}
	r.Tunnel.Endpoint = net.JoinHostPort(r.EntryPoint, strconv.Itoa(fleet.DefaultTunnelPort))
	if *endpoint != "" {
		host, port, err := net.SplitHostPort(*endpoint)
		if n, perr := strconv.ParseUint(port, 10, 16); err != nil || host == "" || perr != nil || n == 0 {
			return r, usageError("--tunnel-endpoint %q: want HOST:PORT, e.g. us-east1.example.net:51820", *endpoint)
		}
		r.Tunnel.Endpoint = *endpoint
	}
	return r, nil
}

func parsePortRange(s string) (fleet.PortRange, error) {
	lo, hi, ok := strings.Cut(s, "-")
	a, errA := strconv.ParseUint(lo, 10, 16)
	b, errB := strconv.ParseUint(hi, 10, 16)
	if !ok || errA != nil || errB != nil || a < 1 || b < a {
		return fleet.PortRange{}, usageError("--ports %q: want MIN-MAX within 1-65535, e.g. 49152-65535", s)
	}
	return fleet.PortRange{Min: uint16(a), Max: uint16(b)}, nil
}

// now is the admin commands' clock: whole UTC seconds, like the API's.
func now() time.Time { return time.Now().UTC().Truncate(time.Second) }
