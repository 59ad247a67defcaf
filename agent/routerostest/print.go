package routerostest

import (
	"slices"
	"strconv"
	"strings"
)

// printArgs are the print/getall attributes the emulator understands;
// detail, without-paging and terse change nothing in API replies here.
var printArgs = []string{".proplist", "count-only", "detail", "without-paging", "terse"}

// printLocked answers print/getall over rows: queries filter, .proplist
// picks properties (and only then decides whether .id is shown),
// count-only counts, and on 7.18+ a print with no rows says !empty.
func (s *Server) printLocked(req *request, t *table, rows []map[string]string) []sentence {
	if name, bad := req.unknownAttr(printArgs...); bad {
		return unknownParameter(name)
	}
	q, err := parseQuery(req.queries)
	if err != nil {
		return trapDone(-1, err.Error())
	}
	proplist, hasProplist := req.attrs[".proplist"]
	var props []string
	if hasProplist {
		props = splitList(proplist)
	}

	var out []sentence
	count := 0
	for _, row := range rows {
		if !q.match(row) {
			continue
		}
		count++
		re := sentence{"!re"}
		keys := props
		if !hasProplist {
			keys = t.keys(row)
		}
		for _, k := range keys {
			if v, ok := row[k]; ok {
				re = append(re, "="+k+"="+v)
			}
		}
		out = append(out, re)
	}
	if _, countOnly := req.attrs["count-only"]; countOnly {
		return []sentence{done("=ret=" + strconv.Itoa(count))}
	}
	if len(out) == 0 && s.emitsEmpty {
		out = append(out, sentence{"!empty"})
	}
	return append(out, done())
}

// splitList splits a comma-separated list, dropping empty entries and
// duplicates (RouterOS leaves duplicates undefined; once is the sane answer).
func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p != "" && !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	return out
}
