package e2e

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// The module's import rules: which part of the tree may import which. The
// "Architecture" section of README.md states them; TestImportRules holds
// the tree to them, tests included.

// importRules are the rules TestImportRules checks. Packages are named by
// their path in the module ("controller/store"); imports from outside the
// module do not count.
var importRules = []importRule{
	{
		rule:  "agent/… does not depend on controller/…",
		binds: under("agent"), tests: true,
		check: forbid(func(_, dep string) bool { return under("controller")(dep) }),
	},
	{
		rule:  "controller/… does not depend on agent/…",
		binds: under("controller"), tests: true,
		check: forbid(func(_, dep string) bool { return under("agent")(dep) }),
	},
	{
		rule:  "shared/… depends on neither agent/… nor controller/…",
		binds: under("shared"), tests: true,
		check: forbid(func(_, dep string) bool { return under("agent", "controller")(dep) }),
	},
	{
		rule:  "only e2e/… depends on both agent/… and controller/…",
		binds: not(under("e2e")), tests: true,
		check: bothTrees,
	},
	{
		rule:  "nothing outside e2e/… imports e2e/…",
		binds: not(under("e2e")), tests: true,
		check: forbid(func(_, dep string) bool { return under("e2e")(dep) }),
	},
	{
		rule:  "controller/web does not depend on controller/api (the web views call the forwards service, not the REST API)",
		binds: under("controller/web"), tests: true,
		check: forbid(func(_, dep string) bool { return under("controller/api")(dep) }),
	},
	{
		rule: "only controller/store (and its tests) and controller/store/storetest import controller/store/db, the sqlc output",
		binds: func(pkg string) bool {
			return pkg != "controller/store" && !under("controller/store/storetest", "controller/store/db")(pkg)
		},
		tests: true, direct: true,
		check: forbid(func(_, dep string) bool { return under("controller/store/db")(dep) }),
	},
	{
		rule:  "controller/fleet and controller/apijson, the vocabulary, import nothing of tpf but shared/…",
		binds: under(vocabulary...), tests: true,
		check: forbid(func(pkg, dep string) bool {
			return !under("shared")(dep) && !under(vocabularyRoot(pkg))(dep)
		}),
	},
	{
		rule: "controller/store does not depend on shared/syncproto (the store holds no protocol types)",
		// The store's code and the sqlc output; its tests, and storetest (a
		// test helper on the forwards service), may.
		binds: func(pkg string) bool { return pkg == "controller/store" || under("controller/store/db")(pkg) },
		check: forbid(func(_, dep string) bool { return under("shared/syncproto")(dep) }),
	},
}

// vocabulary are the packages of the controller's vocabulary.
var vocabulary = []string{"controller/fleet", "controller/apijson"}

// vocabularyRoot returns the vocabulary package pkg is in, or pkg.
func vocabularyRoot(pkg string) string {
	for _, v := range vocabulary {
		if under(v)(pkg) {
			return v
		}
	}
	return pkg
}

// importRule is one rule about the packages it binds.
type importRule struct {
	rule  string                // what it says, as README.md says it
	binds func(pkg string) bool // the packages it is about
	tests bool                  // whether their tests' imports count too
	// direct counts only the packages' own imports; otherwise everything
	// they depend on counts.
	direct bool
	// check returns the dependencies of pkg (deps, sorted; pkg not among
	// them) that break the rule.
	check func(pkg string, deps []string) []string
}

// forbid makes a check that refuses each dependency forbidden says.
func forbid(forbidden func(pkg, dep string) bool) func(string, []string) []string {
	return func(pkg string, deps []string) []string {
		var out []string
		for _, d := range deps {
			if forbidden(pkg, d) {
				out = append(out, d)
			}
		}
		return out
	}
}

// bothTrees refuses a package that, with its dependencies, reaches into
// both agent/… and controller/…: it returns the first dependency in each.
func bothTrees(pkg string, deps []string) []string {
	var out []string
	for _, tree := range []string{"agent", "controller"} {
		if under(tree)(pkg) {
			continue // a package of one tree reaching into the other is its tree's rule
		}
		i := slices.IndexFunc(deps, under(tree))
		if i < 0 {
			return nil
		}
		out = append(out, deps[i])
	}
	if len(out) < 2 {
		return nil
	}
	return out
}

// under reports whether a package is one of roots or below one.
func under(roots ...string) func(pkg string) bool {
	return func(pkg string) bool {
		for _, r := range roots {
			if pkg == r || strings.HasPrefix(pkg, r+"/") {
				return true
			}
		}
		return false
	}
}

func not(f func(string) bool) func(string) bool { return func(s string) bool { return !f(s) } }

// listedPackage is one of the module's packages as `go list -json`
// describes it, every path relative to the module.
type listedPackage struct {
	ImportPath   string
	Imports      []string
	TestImports  []string
	XTestImports []string
}

// violations returns every breach of rules in pkgs, one line each: the
// import chain that breaks a rule, then the rule.
func violations(pkgs []listedPackage, rules []importRule) []string {
	byPath := map[string]listedPackage{}
	for _, p := range pkgs {
		byPath[p.ImportPath] = p
	}
	var out []string
	for _, p := range pkgs {
		for _, r := range rules {
			if !r.binds(p.ImportPath) {
				continue
			}
			chains := dependencies(byPath, p, r.tests, r.direct)
			deps := make([]string, 0, len(chains))
			for d := range chains {
				deps = append(deps, d)
			}
			slices.Sort(deps)
			for _, d := range r.check(p.ImportPath, deps) {
				out = append(out, chains[d]+": "+r.rule)
			}
		}
	}
	return out
}

// dependencies returns what p imports (with tests, its tests' imports
// too) and, unless direct, everything those depend on in turn (their own
// code, not their tests), each with the chain of imports that leads to it:
// "agent/x (tests) → container/y → controller/z".
func dependencies(byPath map[string]listedPackage, p listedPackage, tests, direct bool) map[string]string {
	chains := map[string]string{}
	var queue []string
	add := func(dep, chain string) {
		if _, seen := chains[dep]; seen || dep == p.ImportPath {
			return
		}
		chains[dep] = chain
		queue = append(queue, dep)
	}
	for _, d := range p.Imports {
		add(d, p.ImportPath+" → "+d)
	}
	if tests {
		for _, d := range slices.Concat(p.TestImports, p.XTestImports) {
			add(d, p.ImportPath+" (tests) → "+d)
		}
	}
	for !direct && len(queue) > 0 {
		d := queue[0]
		queue = queue[1:]
		for _, next := range byPath[d].Imports {
			add(next, chains[d]+" → "+next)
		}
	}
	return chains
}

// modulePackages lists the module's packages with `go list`, every path
// relative to the module and imports from outside it left out.
func modulePackages(t *testing.T) []listedPackage {
	t.Helper()
	var mod struct{ Path, Dir string }
	if err := json.Unmarshal(goList(t, "", "-m", "-json"), &mod); err != nil {
		t.Fatalf("go list -m: %v", err)
	}
	rel := func(paths []string) []string {
		var out []string
		for _, p := range paths {
			if p == mod.Path {
				out = append(out, ".")
			} else if r, ok := strings.CutPrefix(p, mod.Path+"/"); ok {
				out = append(out, r)
			}
		}
		return out
	}
	var pkgs []listedPackage
	dec := json.NewDecoder(bytes.NewReader(goList(t, mod.Dir, "-json=ImportPath,Imports,TestImports,XTestImports", "./...")))
	for {
		var p listedPackage
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("go list: %v", err)
		}
		p.ImportPath = rel([]string{p.ImportPath})[0]
		p.Imports, p.TestImports, p.XTestImports = rel(p.Imports), rel(p.TestImports), rel(p.XTestImports)
		pkgs = append(pkgs, p)
	}
	return pkgs
}

func goList(t *testing.T, dir string, args ...string) []byte {
	t.Helper()
	cmd := exec.Command("go", append([]string{"list"}, args...)...)
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list %s: %v\n%s", strings.Join(args, " "), err, stderr.Bytes())
	}
	return out
}

// TestImportRules holds the module to importRules.
func TestImportRules(t *testing.T) {
	t.Parallel()
	pkgs := modulePackages(t)
	for _, want := range []string{"agent/daemon", "controller/store", "controller/store/db", "shared/syncproto", "e2e"} {
		if !slices.ContainsFunc(pkgs, func(p listedPackage) bool { return p.ImportPath == want }) {
			t.Fatalf("go list did not list %s; got %d packages", want, len(pkgs))
		}
	}
	for _, v := range violations(pkgs, importRules) {
		t.Error(v)
	}
}

// TestImportRulesRefusePlantedImports plants forbidden imports in a small
// copy of the tree: each must be reported under its rule, and the copy
// without them must pass.
func TestImportRulesRefusePlantedImports(t *testing.T) {
	t.Parallel()
	tree := func() []listedPackage {
		return []listedPackage{
			{ImportPath: "shared/forward"},
			{ImportPath: "shared/syncproto", XTestImports: []string{"shared/syncproto"}},
			{ImportPath: "agent/routeros", Imports: []string{"shared/forward", "shared/syncproto"}, XTestImports: []string{"agent/routeros", "agent/routerostest"}},
			{ImportPath: "agent/routerostest"},
			{ImportPath: "agent/daemon", Imports: []string{"agent/routeros", "shared/syncproto"}, XTestImports: []string{"agent/daemon", "agent/routerostest"}},
			{ImportPath: "controller/fleet", Imports: []string{"shared/forward"}, XTestImports: []string{"controller/fleet"}},
			{ImportPath: "controller/apijson", XTestImports: []string{"controller/apijson"}},
			{ImportPath: "controller/store/db"},
			{ImportPath: "controller/store", Imports: []string{"controller/fleet", "controller/store/db"},
				XTestImports: []string{"controller/forwards", "controller/store", "controller/store/storetest", "shared/syncproto"}},
			{ImportPath: "controller/store/storetest", Imports: []string{"controller/forwards", "controller/store"}},
			{ImportPath: "controller/forwards", Imports: []string{"controller/fleet", "controller/store", "shared/syncproto"}},
			{ImportPath: "controller/web", Imports: []string{"controller/fleet", "controller/forwards"}},
			{ImportPath: "controller/api", Imports: []string{"controller/apijson", "controller/forwards"}, XTestImports: []string{"controller/store/storetest", "controller/web"}},
			{ImportPath: "controller/cli", Imports: []string{"controller/api", "controller/web"}},
			{ImportPath: "controller/install"},
			{ImportPath: "container/agentimage", XTestImports: []string{"controller/install"}},
			{ImportPath: "e2e", XTestImports: []string{"agent/daemon", "controller/api", "controller/store/storetest"}},
			{ImportPath: "e2e/cmd/tpf-demo", Imports: []string{"agent/daemon", "controller/cli"}},
		}
	}
	if got := violations(tree(), importRules); len(got) > 0 {
		t.Fatalf("the tree without planted imports: got %q, want no violation", got)
	}

	type imp struct {
		pkg, dep string
		test     bool
	}
	for _, tc := range []struct {
		plant []imp
		want  string // in one violation's line
	}{
		{[]imp{{"agent/daemon", "controller/api", true}}, "agent/daemon (tests) → controller/api: agent/… does not depend on controller/…"},
		{[]imp{{"agent/routeros", "container/agentimage", false}, {"container/agentimage", "controller/install", false}},
			"agent/routeros → container/agentimage → controller/install: agent/… does not depend on controller/…"},
		{[]imp{{"controller/api", "agent/routerostest", true}}, "controller/api (tests) → agent/routerostest: controller/… does not depend on agent/…"},
		{[]imp{{"shared/syncproto", "agent/routeros", false}}, "shared/syncproto → agent/routeros: shared/…"},
		{[]imp{{"shared/forward", "controller/fleet", true}}, "shared/forward (tests) → controller/fleet: shared/…"},
		{[]imp{{"container/agentimage", "agent/routerostest", true}}, "only e2e/… depends on both"},
		{[]imp{{"controller/install", "e2e", true}}, "controller/install (tests) → e2e: nothing outside e2e/…"},
		{[]imp{{"controller/web", "controller/api", false}}, "controller/web → controller/api: controller/web does not depend on controller/api"},
		{[]imp{{"controller/web", "controller/cli", true}}, "controller/web (tests) → controller/cli → controller/api: controller/web"},
		{[]imp{{"controller/api", "controller/store/db", false}}, "controller/api → controller/store/db: only controller/store"},
		{[]imp{{"controller/forwards", "controller/store/db", true}}, "controller/forwards (tests) → controller/store/db: only controller/store"},
		{[]imp{{"controller/fleet", "controller/store", false}}, "controller/fleet → controller/store: controller/fleet and controller/apijson"},
		{[]imp{{"controller/apijson", "controller/fleet", true}}, "controller/apijson (tests) → controller/fleet: controller/fleet and controller/apijson"},
		{[]imp{{"controller/store", "shared/syncproto", false}}, "controller/store → shared/syncproto: controller/store does not depend on shared/syncproto"},
		{[]imp{{"controller/store/db", "controller/forwards", false}}, "controller/store/db → controller/forwards → shared/syncproto: controller/store does not"},
	} {
		pkgs := tree()
		for _, p := range tc.plant {
			i := slices.IndexFunc(pkgs, func(l listedPackage) bool { return l.ImportPath == p.pkg })
			if p.test {
				pkgs[i].XTestImports = append(pkgs[i].XTestImports, p.dep)
			} else {
				pkgs[i].Imports = append(pkgs[i].Imports, p.dep)
			}
		}
		got := violations(pkgs, importRules)
		if !slices.ContainsFunc(got, func(v string) bool { return strings.Contains(v, tc.want) }) {
			t.Errorf("planted %v: got %q, want a violation containing %q", tc.plant, got, tc.want)
		}
	}
}
