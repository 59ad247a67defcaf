package install_test

import (
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/tpf-dev/tpf/controller/install"
	"github.com/tpf-dev/tpf/shared/rosschema"
)

// The scripts are checked against the command trees of real RouterOS
// versions (shared/rosschema): every command path they run, every name=
// parameter they pass, and every property they read with get, in every
// version the scripts claim (7.12 and later: all the trees).
//
// RouterOS parses a whole script, checking each command and parameter name,
// before it runs any of it, so a name that some version lacks breaks the
// script there even in a branch that never runs. The scripts therefore keep
// such names in [:parse "..."] strings, compiled only when reached, inside a
// version guard: :if ($ros720) do={ 7.20 and later } else={ before 7.20 }.
// checkScript knows that convention: code outside :parse strings must hold
// in every version; code inside them, in the versions where the guards
// around it let it run.

// TestScriptsMatchRouterOS renders every variant and checks it.
func TestScriptsMatchRouterOS(t *testing.T) {
	t.Parallel()
	variants := map[string]install.Params{}
	for _, image := range []bool{false, true} {
		for _, managed := range []bool{false, true} {
			for _, host := range []bool{false, true} {
				p := params()
				name := "container"
				if host {
					p.Host = netip.MustParseAddr("192.168.88.10")
					name = "host"
				}
				if image {
					p.ImageURL = "https://downloads.example.net/tpf"
					p.Disk, p.Arch = "usb1", "arm64"
					name += "+image_url"
				}
				if managed {
					p.TunnelEndpoint = "eu1.example.net:51820"
					name += "+managed"
				}
				variants[name] = p
			}
		}
	}
	plain := params()
	plain.ControllerURL = "http://tpf.internal:8080"
	variants["container+http"] = plain

	for name, p := range variants {
		s := script(t, p)
		uses, errs := checkScript(s)
		for _, err := range errs {
			t.Errorf("%s: %v", name, err)
		}
		if len(uses) < 25 {
			t.Errorf("%s: checked only %d commands; is the tokenizer still finding them", name, len(uses))
		}
		if p.Host.IsValid() {
			for _, u := range uses {
				if strings.HasPrefix(u.path, "/container") || strings.HasPrefix(u.path, "/interface/veth") {
					t.Errorf("%s: uses %s, which a router without the container package lacks", name, u.path)
				}
			}
			continue
		}
		// The version-dependent commands were seen, each on its versions.
		wantOn(t, name, uses, "/container/envs/add", "list", from720)
		wantOn(t, name, uses, "/container/envs/add", "name", before720)
		wantOn(t, name, uses, "/container/add", "envlists", from720)
		wantOn(t, name, uses, "/container/add", "envlist", before720)
		wantOn(t, name, uses, "/container/add", "dns", all)
		wantOn(t, name, uses, "/container/get", "", all)
		wantOn(t, name, uses, "/container/start", "", all)
		if p.ImageURL != "" {
			wantOn(t, name, uses, "/tool/fetch", "url", all)
		}
	}
	for _, v := range []install.Variant{install.Container, install.Host} {
		uses, errs := checkScript(install.RemovalScript(v))
		for _, err := range errs {
			t.Errorf("removal script %d: %v", v, err)
		}
		if len(uses) < 7 {
			t.Errorf("removal script %d: checked only %d commands", v, len(uses))
		}
	}
}

// TestCheckScript: the checker finds what it is there to find.
func TestCheckScript(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		script string
		bad    []string // versions that must be refused; nil: none
	}{
		{`/container/envs/add name=tpf key=A value=1`, versionsWhere(from720)},
		{`/container/envs/add list=tpf key=A value=1`, versionsWhere(before720)},
		// guarded, but outside :parse: RouterOS parses it everywhere
		{`:if ($ros720) do={ /container/envs/add list=tpf key=A value=1 }`, versionsWhere(before720)},
		{`:if ($ros720) do={ :local f [:parse "/container/envs/add list=tpf key=\$k value=1"] } else={ :local f [:parse "/container/envs/add name=tpf key=A value=1"] }`, nil},
		{`:if ($ros720) do={ :local f [:parse "/container/envs/add name=tpf"] }`, versionsWhere(from720)},
		{`:if ($ros720) do={} else={ :local f [:parse ":return [/container/get [find] running]"] }`, versionsWhere(before720)},
		{`:local f [:parse ":return [/container/get [find] status]"]`, versionsWhere(from720)},
		{`/container/remove [find where comment="tpf-agent"]`, nil},
		{`/container/envs/remove [find where bogus~"^TPF_"]`, nil}, // queries are not parameters
		{`/container/envs/remove [find wher key="x"]`, rosschema.Versions()},
		{`/ip/service/get api adress`, rosschema.Versions()},
		{`:local a [/ip/service/get api address]`, nil},
		{`:local a [/system/device-mode/get fetch]`, nil},
		{`/ip/firewall/filter/add chain=input bogus=1`, rosschema.Versions()},
		{`/ip/firewall/filter/bogus chain=input`, rosschema.Versions()},
		{`{ :do { /file/remove [find where name=$root] } on-error={ /file/remve } }`, rosschema.Versions()},
	} {
		_, errs := checkScript(c.script)
		var got []string
		for _, err := range errs {
			v, ok := err.(versionError)
			if !ok {
				t.Errorf("%s: %v", c.script, err)
				continue
			}
			got = append(got, v.version)
		}
		slices.Sort(got)
		got = slices.Compact(got)
		if !slices.Equal(got, c.bad) {
			t.Errorf("%s: refused on %v (%v), want %v", c.script, got, errs, c.bad)
		}
	}
	for _, s := range []string{
		`:local f [:parse ("/container/add " . $x)]`, // the checker could not read it
		`:pust "x"`,
		`/ip/firewal/filter/add chain=input`, // outside the trees' menus: unknown, so refused
		`/log/print`,
		`find where name=x`, // relative, but to what
		`:put "unterminated`,
		`:put ([:len "x"]`,
	} {
		if _, errs := checkScript(s); len(errs) == 0 {
			t.Errorf("%s: accepted", s)
		}
	}
}

// use is one command the checker checked: its path, the parameters it was
// given by name, and the versions it was checked on.
type use struct {
	path     string
	params   []string
	versions []string
}

// versionError is a command, parameter or property that one version lacks.
type versionError struct {
	version, msg string
}

func (e versionError) Error() string { return "RouterOS " + e.version + ": " + e.msg }

func all(string) bool { return true }
func from720(v string) bool {
	major, minor := majorMinor(v)
	return major > 7 || (major == 7 && minor >= 20)
}
func before720(v string) bool { return !from720(v) }

func majorMinor(v string) (int, int) {
	f := strings.SplitN(v, ".", 3)
	major, _ := strconv.Atoi(f[0])
	minor, _ := strconv.Atoi(f[1])
	return major, minor
}

func versionsWhere(pred func(string) bool) []string {
	var out []string
	for _, v := range rosschema.Versions() {
		if pred(v) {
			out = append(out, v)
		}
	}
	return out
}

// wantOn: path was checked with param (or at all, for "") on exactly the
// versions pred picks.
func wantOn(t *testing.T, name string, uses []use, path, param string, pred func(string) bool) {
	t.Helper()
	var got []string
	for _, u := range uses {
		if u.path == path && (param == "" || slices.Contains(u.params, param)) {
			got = append(got, u.versions...)
		}
	}
	slices.Sort(got)
	got = slices.Compact(got)
	if want := versionsWhere(pred); !slices.Equal(got, want) {
		t.Errorf("%s: %s %s= checked on %v, want %v", name, path, param, got, want)
	}
}

// readOnly are properties that get may read but the trees cannot confirm:
// the dumps list the parameters commands take, and these are set by RouterOS
// alone. Where a version has them is from MikroTik's documentation and
// changelogs, not from the trees.
var readOnly = map[string]map[string]func(string) bool{
	"/system/resource": {"version": all, "architecture-name": all},
	"/ip/dns":          {"dynamic-servers": all},
	// 7.20 replaced the status property with the running and stopped flags.
	"/container": {"status": before720, "running": from720, "stopped": from720},
}

// scripting are the RouterOS scripting commands the scripts may use.
var scripting = map[string]bool{
	":put": true, ":local": true, ":set": true, ":if": true, ":do": true, ":for": true,
	":foreach": true, ":while": true, ":delay": true, ":error": true, ":len": true,
	":pick": true, ":find": true, ":toarray": true, ":tonum": true, ":toip": true,
	":tostr": true, ":typeof": true, ":parse": true, ":return": true,
}

// guards maps a version guard, the condition word of an :if, to the
// versions its do= block runs on (else= runs on the rest).
var guards = map[string]func(string) bool{"($ros720)": from720}

var (
	paramWord = regexp.MustCompile(`^([a-z][a-z0-9-]*)=`)
	bareName  = regexp.MustCompile(`^[a-z][a-z0-9-]*$`)
)

// checker walks a script.
type checker struct {
	uses []use
	errs []error
}

// context is where a piece of code sits.
type context struct {
	menu   string            // the menu relative commands ([find …]) belong to
	runs   func(string) bool // the versions this code runs on
	parsed bool              // compiled at run time by :parse, not with the script
}

// checkScript checks a RouterOS script against the trees.
func checkScript(src string) ([]use, []error) {
	c := &checker{}
	c.block(src, context{runs: all})
	return c.uses, c.errs
}

func (c *checker) fail(format string, args ...any) {
	c.errs = append(c.errs, fmt.Errorf(format, args...))
}

// block checks a sequence of statements.
func (c *checker) block(src string, ctx context) {
	stmts, err := statements(src)
	if err != nil {
		c.fail("%v", err)
		return
	}
	for _, words := range stmts {
		c.statement(words, ctx)
	}
}

func (c *checker) statement(w []string, ctx context) {
	first := w[0]
	switch {
	case strings.HasPrefix(first, "{"):
		for _, word := range w {
			c.nested(word, ctx, "")
		}
	case strings.HasPrefix(first, ":"):
		if !scripting[first] {
			c.fail("unknown scripting command %s", first)
		}
		switch first {
		case ":parse":
			if len(w) != 2 || !isString(w[1]) {
				c.fail(":parse of something other than one string literal (the checker could not read it): %q", strings.Join(w, " "))
				return
			}
			inner := ctx
			inner.menu, inner.parsed = "", true
			c.block(unquote(w[1]), inner)
			return
		case ":if":
			if len(w) > 1 {
				if pred, ok := guards[w[1]]; ok {
					for _, word := range w[2:] {
						inner := ctx
						switch {
						case strings.HasPrefix(word, "do="):
							inner.runs = and(ctx.runs, pred)
						case strings.HasPrefix(word, "else="):
							inner.runs = and(ctx.runs, not(pred))
						}
						c.nested(word, inner, "")
					}
					return
				}
			}
		}
		for _, word := range w[1:] {
			c.nested(word, ctx, "")
		}
	case strings.HasPrefix(first, "$"): // a function call: its arguments are the function's
		for _, word := range w[1:] {
			c.nested(word, ctx, "")
		}
	case strings.HasPrefix(first, "/"):
		c.command(first, w[1:], ctx)
	case ctx.menu != "" && bareName.MatchString(first):
		c.command(ctx.menu+"/"+first, w[1:], ctx)
	default:
		c.fail("cannot tell what the statement %q runs", strings.Join(w, " "))
	}
}

func (c *checker) command(path string, args []string, ctx context) {
	var versions []string
	for _, v := range rosschema.Versions() {
		// Outside :parse, RouterOS checks the names when it parses the
		// script, on every version; inside, only where the code runs.
		if !ctx.parsed || ctx.runs(v) {
			versions = append(versions, v)
		}
	}
	u := use{path: path, versions: versions}
	menu := path[:strings.LastIndex(path, "/")]
	for _, v := range versions {
		tree := rosschema.For(v)
		if !tree.Covers(path) {
			c.fail("%s is outside the menus the command trees cover: extend shared/rosschema or leave it out", path)
			return
		}
		params, ok := tree.Command(path)
		if !ok {
			c.errs = append(c.errs, versionError{v, "no command " + path})
			continue
		}
		var positional []string
		for _, a := range args {
			if a == "where" {
				if !params.Has("where") {
					c.errs = append(c.errs, versionError{v, path + " takes no where"})
				}
				break // the rest is a query, not parameters
			}
			if m := paramWord.FindStringSubmatch(a); m != nil {
				if !params.Has(m[1]) {
					c.errs = append(c.errs, versionError{v, fmt.Sprintf("%s has no parameter %s", path, m[1])})
				}
				if v == versions[0] {
					u.params = append(u.params, m[1])
				}
				continue
			}
			positional = append(positional, a)
		}
		if strings.HasSuffix(path, "/get") {
			i := 0
			if params.Has("number") {
				i = 1
			}
			if i < len(positional) && bareName.MatchString(positional[i]) {
				c.property(tree, menu, positional[i])
			}
		}
	}
	c.uses = append(c.uses, u)
	for _, a := range args {
		c.nested(a, ctx, menu)
	}
}

// property checks that get may read name in menu: a property the menu's set
// (or update) takes, or a known read-only one.
func (c *checker) property(tree *rosschema.Tree, menu, name string) {
	for _, cmd := range []string{"/set", "/update"} {
		if p, ok := tree.Command(menu + cmd); ok && p.Has(name) {
			return
		}
	}
	if pred, ok := readOnly[menu][name]; ok && pred(tree.Version()) {
		return
	}
	c.errs = append(c.errs, versionError{tree.Version(), fmt.Sprintf("%s has no property %s", menu, name)})
}

// nested checks the code inside a word: [commands], {blocks} and the
// (expressions) that may hold either. menu is what [relative commands]
// belong to.
func (c *checker) nested(word string, ctx context, menu string) {
	for i := 0; i < len(word); i++ {
		switch word[i] {
		case '"':
			i = skipString(word, i)
		case '[', '{', '(':
			end, err := closing(word, i)
			if err != nil {
				c.fail("%v in %q", err, word)
				return
			}
			inner := word[i+1 : end]
			switch word[i] {
			case '[':
				sub := ctx
				sub.menu = menu
				c.block(inner, sub)
			case '{':
				sub := ctx
				sub.menu = ""
				c.block(inner, sub)
			case '(':
				c.nested(inner, ctx, "")
			}
			i = end
		}
	}
}

// statements splits RouterOS script text into statements of words; a word
// keeps its strings and bracketed groups whole. Statements end at a newline
// or ';' outside any group; '#' starts a comment line.
func statements(src string) ([][]string, error) {
	var out [][]string
	var words []string
	var cur strings.Builder
	endWord := func() {
		if cur.Len() > 0 {
			words = append(words, cur.String())
			cur.Reset()
		}
	}
	endStmt := func() {
		endWord()
		if len(words) > 0 {
			out = append(out, words)
			words = nil
		}
	}
	for i := 0; i < len(src); i++ {
		switch ch := src[i]; {
		case ch == '#' && len(words) == 0 && cur.Len() == 0:
			for i < len(src) && src[i] != '\n' {
				i++
			}
		case ch == '\n' || ch == ';':
			endStmt()
		case ch == ' ' || ch == '\t' || ch == '\r':
			endWord()
		case ch == '"':
			end := skipString(src, i)
			if end >= len(src) {
				return nil, fmt.Errorf("unterminated string at %q", src[i:])
			}
			cur.WriteString(src[i : end+1])
			i = end
		case ch == '[' || ch == '{' || ch == '(':
			end, err := closing(src, i)
			if err != nil {
				return nil, err
			}
			cur.WriteString(src[i : end+1])
			i = end
		case ch == ']' || ch == '}' || ch == ')':
			return nil, fmt.Errorf("unbalanced %c at %q", ch, src[i:])
		default:
			cur.WriteByte(ch)
		}
	}
	endStmt()
	return out, nil
}

// skipString returns the index of the quote that closes the string opening
// at s[i] (len(s) when none does).
func skipString(s string, i int) int {
	for i++; i < len(s); i++ {
		switch s[i] {
		case '\\':
			i++
		case '"':
			return i
		}
	}
	return len(s)
}

// closing returns the index of the bracket that closes the one at s[i].
func closing(s string, i int) (int, error) {
	pairs := map[byte]byte{'[': ']', '{': '}', '(': ')'}
	stack := []byte{pairs[s[i]]}
	for j := i + 1; j < len(s); j++ {
		switch ch := s[j]; ch {
		case '"':
			j = skipString(s, j)
		case '[', '{', '(':
			stack = append(stack, pairs[ch])
		case ']', '}', ')':
			if ch != stack[len(stack)-1] {
				return 0, fmt.Errorf("mismatched %c at %q", ch, s[j:])
			}
			stack = stack[:len(stack)-1]
			if len(stack) == 0 {
				return j, nil
			}
		}
	}
	return 0, fmt.Errorf("unclosed %c at %q", s[i], s[i:])
}

func isString(w string) bool {
	return len(w) >= 2 && w[0] == '"' && skipString(w, 0) == len(w)-1
}

// unquote reads a RouterOS string literal.
func unquote(w string) string {
	var b strings.Builder
	s := w[1 : len(w)-1]
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' || i+1 == len(s) {
			b.WriteByte(s[i])
			continue
		}
		i++
		switch s[i] {
		case 'n':
			b.WriteByte('\n')
		case 't':
			b.WriteByte('\t')
		case 'r':
			b.WriteByte('\r')
		case '_':
			b.WriteByte(' ')
		default:
			b.WriteByte(s[i])
		}
	}
	return b.String()
}

func and(a, b func(string) bool) func(string) bool {
	return func(v string) bool { return a(v) && b(v) }
}

func not(a func(string) bool) func(string) bool {
	return func(v string) bool { return !a(v) }
}
