package rosschema

import (
	"bufio"
	"bytes"
	"compress/gzip"
	_ "embed"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
)

//go:embed schema.txt.gz
var schemaGz []byte

// Tree is the command tree of one RouterOS version. Trees are built once
// and shared; they are safe for concurrent use. Methods take API paths
// such as "/interface/wireguard/peers/add" (CLI spacing,
// "/interface wireguard peers add", is accepted too).
type Tree struct {
	version string
	nodes   map[string]node // by clean path; the root "/" is a menu
	covers  []string
}

type node struct {
	dir    bool
	params Params // commands only
}

// Params is the set of parameter names a command accepts, as the console
// knows them: "numbers" where the API sends =.id=, "proplist" where it
// sends =.proplist=. API syntax words (.id, .proplist, .tag, ?queries) are
// never in it. The zero value is the empty set.
type Params struct {
	names []string // sorted, shared between trees: never modified
}

// Has reports whether the command accepts the parameter name.
func (p Params) Has(name string) bool {
	_, ok := slices.BinarySearch(p.names, name)
	return ok
}

// Names returns the parameter names, sorted; the caller owns the slice.
func (p Params) Names() []string { return slices.Clone(p.names) }

// Len is the number of parameters.
func (p Params) Len() int { return len(p.names) }

// Version is the RouterOS version the tree was dumped from, e.g. "7.15.3".
func (t *Tree) Version() string { return t.version }

// Command returns the parameters of the command at path, and whether the
// version has that command. A menu is not a command.
func (t *Tree) Command(path string) (Params, bool) {
	n, ok := t.nodes[clean(path)]
	if !ok || n.dir {
		return Params{}, false
	}
	return n.params, true
}

// IsDir reports whether path is a menu (a directory of commands and
// menus) in this version. "/" is one.
func (t *Tree) IsDir(path string) bool {
	n, ok := t.nodes[clean(path)]
	return ok && n.dir
}

// Covers reports whether path lies in a menu the dumps were taken of
// (e.g. /ip/address, /container). Outside them the tree knows only the
// menus leading to covered ones, so a path it lacks there may still exist
// on a real router: treat it as unknown, not as missing.
func (t *Tree) Covers(path string) bool {
	p := clean(path)
	for _, m := range t.covers {
		if m == "/" || p == m || strings.HasPrefix(p, m+"/") {
			return true
		}
	}
	return false
}

// Versions lists the RouterOS versions with a tree, oldest first.
func Versions() []string {
	s := load()
	out := make([]string, len(s.trees))
	for i, t := range s.trees {
		out[i] = t.version
	}
	return out
}

// For returns the tree of the newest known version that is not newer than
// version, which may be written the way RouterOS reports it ("7.16.1",
// "7.18.2 (stable)", "7.19beta2" which counts as 7.19.0). So 7.16.1 gets
// the 7.15.3 tree and anything after the newest dump gets the newest one
// (which then refuses whatever the later version added).
//
// For returns nil, meaning "unknown: do not check", for versions older
// than the oldest dump (7.11, 7.12.1), for any major version but 7 (6.x
// has no dump, and RouterOS 8 would need its own), and for strings that
// do not start with a version number.
func For(version string) *Tree {
	v, ok := parseVersion(version)
	if !ok || v[0] != 7 {
		return nil
	}
	s := load()
	var best *Tree
	for i, t := range s.trees {
		if compare(s.parsed[i], v) <= 0 {
			best = t
		}
	}
	return best
}

// schema is the parsed embedded data.
type schema struct {
	trees  []*Tree // oldest first
	parsed [][3]int
}

var load = sync.OnceValue(func() *schema {
	s, err := parse(schemaGz)
	if err != nil {
		panic("rosschema: embedded schema.txt.gz: " + err.Error()) // generated data; the tests catch this
	}
	return s
})

// parse reads the format written by ./internal/gen (see README.md).
func parse(gz []byte) (*schema, error) {
	zr, err := gzip.NewReader(bytes.NewReader(gz))
	if err != nil {
		return nil, err
	}
	s := &schema{}
	var covers []string
	sc := bufio.NewScanner(zr)
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	line := 0
	for sc.Scan() {
		line++
		text := sc.Text()
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		f := strings.Split(text, " ")
		switch f[0] {
		case "versions":
			for _, v := range f[1:] {
				p, ok := parseVersion(v)
				if !ok {
					return nil, fmt.Errorf("line %d: bad version %q", line, v)
				}
				s.trees = append(s.trees, &Tree{version: v, nodes: map[string]node{"/": {dir: true}}})
				s.parsed = append(s.parsed, p)
			}
		case "covers":
			covers = f[1:]
		case "d", "c":
			if len(f) < 3 || (f[0] == "c") != (len(f) == 4) {
				return nil, fmt.Errorf("line %d: want KIND MASK PATH [PARAMS]", line)
			}
			mask, err := strconv.ParseUint(f[1], 16, 64)
			if err != nil || mask == 0 || mask>>len(s.trees) != 0 {
				return nil, fmt.Errorf("line %d: bad version mask %q", line, f[1])
			}
			n := node{dir: f[0] == "d"}
			if !n.dir && f[3] != "" {
				n.params = Params{names: strings.Split(f[3], ",")}
				if !slices.IsSorted(n.params.names) {
					return nil, fmt.Errorf("line %d: parameters not sorted", line)
				}
			}
			for i, t := range s.trees {
				if mask&(1<<i) == 0 {
					continue
				}
				if _, dup := t.nodes[f[2]]; dup {
					return nil, fmt.Errorf("line %d: %s twice in %s", line, f[2], t.version)
				}
				t.nodes[f[2]] = n
			}
		default:
			return nil, fmt.Errorf("line %d: unknown line kind %q", line, f[0])
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(s.trees) == 0 {
		return nil, fmt.Errorf("no versions line")
	}
	for i, t := range s.trees {
		t.covers = covers
		if i > 0 && compare(s.parsed[i-1], s.parsed[i]) >= 0 {
			return nil, fmt.Errorf("versions not in order: %s before %s", s.trees[i-1].version, t.version)
		}
	}
	return s, nil
}

// clean turns an API or CLI path into the tree's key: a leading "/",
// words separated by single "/", no trailing "/".
func clean(path string) string {
	var words []string
	for _, part := range strings.Split(path, "/") {
		words = append(words, strings.Fields(part)...)
	}
	return "/" + strings.Join(words, "/")
}

// parseVersion reads the leading numbers of a RouterOS version string:
// "7.18.2", "7.24", "7.18.2 (stable)", "7.19beta2" (7.19.0). The major and
// minor numbers are required.
func parseVersion(s string) ([3]int, bool) {
	var v [3]int
	i := 0
	for part := range 3 {
		start := i
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		if i == start {
			return v, part >= 2
		}
		n, err := strconv.Atoi(s[start:i])
		if err != nil {
			return v, false
		}
		v[part] = n
		if part == 2 || i >= len(s) || s[i] != '.' {
			return v, part >= 1
		}
		i++ // the dot
	}
	return v, true
}

func compare(a, b [3]int) int { return slices.Compare(a[:], b[:]) }
