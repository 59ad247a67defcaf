// Package tpfctl is tpf's command-line client: a Client for the REST API
// and the commands of bin/tpfctl (forwards, access, routers, status) that print it
// as tables for people or as the API's own JSON for scripts.
//
// Run is the whole program; cmd/tpfctl only wires it to the process. The
// package talks to the controller over HTTP alone: it must not import the
// controller's store or API packages (its tests do, to run a real one).
package tpfctl

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// Program is tpfctl with its replaceable parts. The zero value is the real
// program.
type Program struct {
	// HTTPClient makes the API requests; nil means a client with a
	// 30-second timeout per request.
	HTTPClient *http.Client
	// PollInterval is how often --wait reads the forward's status; zero
	// means one second.
	PollInterval time.Duration
	// Now reads the clock for "3 minutes ago"; nil means time.Now.
	Now func() time.Time
}

// Run runs tpfctl with the zero Program.
func Run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	return Program{}.Run(ctx, args, getenv, stdout, stderr)
}

// Run runs one command line (args without the program name). Errors are
// reported on stderr by Run itself (the API's message, a 422's fields one
// per line); the returned error says the exit code through ExitCode.
func (p Program) Run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if p.PollInterval <= 0 {
		p.PollInterval = time.Second
	}
	if p.Now == nil {
		p.Now = time.Now
	}
	x := &invocation{prog: p, getenv: getenv, stdout: stdout, stderr: stderr}
	err := x.dispatch(ctx, args)
	if errors.Is(err, errHelpShown) {
		return nil
	}
	if err != nil {
		printError(stderr, err)
	}
	return err
}

// errHelpShown ends a run that printed help for -h.
var errHelpShown = errors.New("help shown")

// globals are the flags every command accepts, before or after its name.
type globals struct {
	url    string
	token  string
	output string
}

func (g *globals) register(fs *flag.FlagSet) {
	fs.StringVar(&g.url, "url", g.url, "the API's URL")
	fs.StringVar(&g.token, "token", g.token, "the API token")
	fs.StringVar(&g.output, "o", g.output, "output format: table or json")
	fs.StringVar(&g.output, "output", g.output, "output format: table or json")
}

var globalFlags = map[string]bool{"url": true, "token": true, "o": true, "output": true}

// invocation is one run: the program, its environment and global flags.
type invocation struct {
	prog           Program
	getenv         func(string) string
	stdout, stderr io.Writer
	g              globals
}

// command is one leaf of the command tree.
type command struct {
	path     string // "forwards create"
	synopsis string // what follows the path in a usage line
	summary  string // one line for the command list
	about    string // the command's help, after the usage line
	run      func(ctx context.Context, x *invocation, cmd *command, args []string) error
}

// commands lists every command, in the order --help shows them.
var commands = []*command{
	forwardsCreate, forwardsList, forwardsGet, forwardsRevoke, forwardsConnections,
	accessCreate, accessList, accessGet, accessRevoke, accessConnections,
	routersList, routersGet, statusCommand,
}

func (x *invocation) dispatch(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("tpfctl", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	x.g.register(fs)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(x.stdout, mainHelp())
			return errHelpShown
		}
		return usageErrorf(seeHelp(""), "%v", err)
	}
	rest := fs.Args()
	if len(rest) == 0 {
		fmt.Fprint(x.stderr, mainHelp())
		return usageErrorf("", "no command given")
	}
	if rest[0] == "help" {
		return x.help(rest[1:])
	}
	cmd, args, err := findCommand(rest)
	if err != nil {
		return err
	}
	return cmd.run(ctx, x, cmd, args)
}

// findCommand finds the command named by the first words of args and
// answers it with the arguments after its name.
func findCommand(args []string) (*command, []string, error) {
	group := args[0]
	var subs []string
	for _, c := range commands {
		if c.path == group {
			return c, args[1:], nil
		}
		if g, sub, ok := strings.Cut(c.path, " "); ok && g == group {
			subs = append(subs, sub)
			if len(args) > 1 && args[1] == sub {
				return c, args[2:], nil
			}
		}
	}
	if len(subs) == 0 {
		return nil, nil, usageErrorf(seeHelp(""), "unknown command %q", group)
	}
	if len(args) > 1 && (args[1] == "-h" || args[1] == "--help" || args[1] == "-help") {
		return &command{path: group, run: func(_ context.Context, x *invocation, _ *command, _ []string) error {
			fmt.Fprint(x.stdout, groupHelp(group))
			return errHelpShown
		}}, nil, nil
	}
	if len(args) == 1 {
		return nil, nil, usageErrorf(seeHelp(group), "%s needs a subcommand: %s", group, strings.Join(subs, ", "))
	}
	return nil, nil, usageErrorf(seeHelp(group), "unknown command %q; %s has %s", group+" "+args[1], group, strings.Join(subs, ", "))
}

func (x *invocation) help(args []string) error {
	if len(args) == 0 {
		fmt.Fprint(x.stdout, mainHelp())
		return nil
	}
	if len(args) == 1 && isGroup(args[0]) {
		fmt.Fprint(x.stdout, groupHelp(args[0]))
		return nil
	}
	cmd, rest, err := findCommand(args)
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return usageErrorf(seeHelp(""), "help takes a command name, not %q", strings.Join(rest, " "))
	}
	// The command prints its own help, flags included.
	return cmd.run(context.Background(), x, cmd, []string{"--help"})
}

func isGroup(name string) bool {
	for _, c := range commands {
		if g, _, ok := strings.Cut(c.path, " "); ok && g == name {
			return true
		}
	}
	return false
}

func seeHelp(path string) string {
	if path == "" {
		return "Run 'tpfctl --help' for usage."
	}
	return "Run 'tpfctl " + path + " --help' for usage."
}

// flagSet is a command's flag set: the global flags plus the command's own,
// which define registers.
func (x *invocation) flagSet(cmd *command, define func(fs *flag.FlagSet)) *flag.FlagSet {
	fs := flag.NewFlagSet("tpfctl "+cmd.path, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	x.g.register(fs)
	if define != nil {
		define(fs)
	}
	return fs
}

// parse parses a command's arguments, flags and operands in any order, and
// checks that there are want operands (named in names for the message).
func (x *invocation) parse(cmd *command, fs *flag.FlagSet, args []string, names ...string) ([]string, error) {
	var operands []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				fmt.Fprint(x.stdout, commandHelp(cmd, fs))
				return nil, errHelpShown
			}
			return nil, usageErrorf(seeHelp(cmd.path), "%s: %v", cmd.path, err)
		}
		rest := fs.Args()
		if len(rest) == 0 {
			break
		}
		if n := len(args) - len(rest); n > 0 && args[n-1] == "--" {
			operands = append(operands, rest...)
			break
		}
		operands, args = append(operands, rest[0]), rest[1:]
	}
	switch {
	case len(operands) < len(names):
		return nil, usageErrorf(seeHelp(cmd.path), "%s: missing %s", cmd.path, strings.Join(names[len(operands):], " "))
	case len(operands) > len(names):
		return nil, usageErrorf(seeHelp(cmd.path), "%s: unexpected argument %q", cmd.path, operands[len(names)])
	}
	switch x.g.output {
	case "", "table", "json":
	default:
		return nil, usageErrorf(seeHelp(cmd.path), "-o %s: the output format is table or json", x.g.output)
	}
	return operands, nil
}

func (x *invocation) json() bool { return x.g.output == "json" }

// client resolves the connection settings into a Client.
func (x *invocation) client() (*Client, error) {
	conn, err := resolveConnection(x.getenv, x.g.url, x.g.token)
	if err != nil {
		return nil, err
	}
	return &Client{BaseURL: conn.url, Token: conn.token, HTTP: x.prog.HTTPClient}, nil
}

// writeRaw prints an API answer as it came, ending in a newline.
func (x *invocation) writeRaw(raw []byte) {
	x.stdout.Write(raw)
	if len(raw) == 0 || raw[len(raw)-1] != '\n' {
		io.WriteString(x.stdout, "\n")
	}
}

func mainHelp() string {
	var b strings.Builder
	b.WriteString(`tpfctl is the command line of tpf's REST API: temporary port forwards to
devices behind MikroTik routers, and temporary WinBox and SSH logins to the
routers themselves.

Usage:
  tpfctl [flags] COMMAND [flags] [ARGS]

Commands:
`)
	for _, c := range commands {
		fmt.Fprintf(&b, "  %-22s %s\n", c.path, c.summary)
	}
	b.WriteString(`  help [COMMAND]         this text, or a command's own

R is a router's id or its name. 'tpfctl COMMAND --help' shows a command's flags.

Flags (before or after the command):
  --url URL         the API (default ` + DefaultURL + `)
  --token TOKEN     the API token; prefer TPF_TOKEN or the config file, which
                    other users cannot see in the process list
  -o, --output F    table (default), or json: the API's JSON, for scripts

Configuration:
  Flags override the environment (TPF_URL, TPF_TOKEN), which overrides the
  config file $XDG_CONFIG_HOME/tpf/config.json (~/.config/tpf/config.json):
      {"url": "https://tpf.example.net", "token": "tpf_…"}
  A config file holding a token must not be readable by others: chmod 600.
  tpfctl never prints the token.

Exit codes:
  0  success
  1  error talking to the API, a server error (5xx, 429, …), or a forward that
     failed or ended while --wait waited for it
  2  usage error: bad flags or arguments, an unusable config file
  3  not found: no such router, forward or access (404), or no router of
     that name
  4  validation error (422): each field's messages are printed on stderr
  5  unauthenticated: no token, or the API refused it (401)
  6  timed out waiting (--wait)
`)
	return b.String()
}

func groupHelp(group string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Usage: tpfctl %s COMMAND [flags]\n\nCommands:\n", group)
	for _, c := range commands {
		if g, _, ok := strings.Cut(c.path, " "); ok && g == group {
			fmt.Fprintf(&b, "  %-22s %s\n", c.path, c.summary)
		}
	}
	b.WriteString("\nRun 'tpfctl " + group + " COMMAND --help' for a command's flags, 'tpfctl --help' for exit codes.\n")
	return b.String()
}

// commandHelp is a command's usage, description and own flags.
func commandHelp(cmd *command, fs *flag.FlagSet) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Usage: tpfctl %s %s\n\n%s\n", cmd.path, cmd.synopsis, strings.TrimSpace(cmd.about))
	var own []*flag.Flag
	fs.VisitAll(func(f *flag.Flag) {
		if !globalFlags[f.Name] {
			own = append(own, f)
		}
	})
	if len(own) > 0 {
		b.WriteString("\nFlags:\n")
		for _, f := range own {
			name, usage := flag.UnquoteUsage(f)
			line := "  --" + f.Name
			if name != "" {
				line += " " + name
			}
			if f.DefValue != "" && f.DefValue != "false" && f.DefValue != "0" {
				usage += " (default " + f.DefValue + ")"
			}
			if len(line) > 22 {
				line += "\n" + strings.Repeat(" ", 22)
			}
			fmt.Fprintf(&b, "%-22s  %s\n", line, usage)
		}
	}
	b.WriteString("\nGlobal flags --url, --token and -o json work here too; 'tpfctl --help' lists them and the exit codes.\n")
	return b.String()
}
