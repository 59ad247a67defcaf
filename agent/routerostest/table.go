package routerostest

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
)

// table is one menu's items in list order. Each row holds its ".id".
// Tables are guarded by Server.mu.
type table struct {
	rows   []map[string]string
	lastID uint64 // ids come from a per-table counter and are never reused
	order  []string
	named  bool // rows have unique names, which stand in for ids ("=.id=wg-tpf")
}

// newTable returns an empty table whose rows print their properties in
// order (RouterOS prints in a fixed per-menu order; unknown properties
// follow, sorted).
func newTable(order ...string) *table {
	return &table{order: order}
}

// insert gives row the next id and places it before index before, or at
// the end when before is -1. It returns the id.
func (t *table) insert(row map[string]string, before int) string {
	t.lastID++
	id := fmt.Sprintf("*%X", t.lastID)
	row[".id"] = id
	if before < 0 {
		t.rows = append(t.rows, row)
	} else {
		t.rows = slices.Insert(t.rows, before, row)
	}
	return id
}

// index returns the position of the row with the given id, or -1.
// Ids compare as numbers, so "*1a" finds "*1A". Bare numbers are console
// item numbers on a real router, which the emulator has no notion of.
// In a named table anything else is looked up as a name, as RouterOS does
// for interfaces.
func (t *table) index(id string) int {
	want, ok := parseID(id)
	if !ok {
		if t.named && id != "" {
			return slices.IndexFunc(t.rows, func(row map[string]string) bool { return row["name"] == id })
		}
		return -1
	}
	for i, row := range t.rows {
		if got, _ := parseID(row[".id"]); got == want {
			return i
		}
	}
	return -1
}

// lookup resolves a comma-separated id list to row positions, without
// duplicates. ok is false if any id is unknown, so callers can refuse the
// whole command and change nothing.
func (t *table) lookup(ids string) (idx []int, ok bool) {
	for _, id := range strings.Split(ids, ",") {
		i := t.index(id)
		if i < 0 {
			return nil, false
		}
		if !slices.Contains(idx, i) {
			idx = append(idx, i)
		}
	}
	return idx, true
}

// removeAt deletes the rows at the given positions.
func (t *table) removeAt(idx []int) {
	gone := make(map[string]bool, len(idx))
	for _, i := range idx {
		gone[t.rows[i][".id"]] = true
	}
	t.rows = slices.DeleteFunc(t.rows, func(row map[string]string) bool { return gone[row[".id"]] })
}

// remove deletes the rows named by a comma-separated id list, all or
// nothing.
func (t *table) remove(ids string) bool {
	idx, ok := t.lookup(ids)
	if !ok {
		return false
	}
	t.removeAt(idx)
	return true
}

// snapshot returns deep copies of the rows, in list order.
func (t *table) snapshot() []map[string]string {
	out := make([]map[string]string, len(t.rows))
	for i, row := range t.rows {
		out[i] = maps.Clone(row)
	}
	return out
}

// keys lists row's properties in print order: .id, the menu's fixed
// order, then anything else sorted.
func (t *table) keys(row map[string]string) []string {
	var out []string
	if _, ok := row[".id"]; ok {
		out = append(out, ".id")
	}
	for _, k := range t.order {
		if _, ok := row[k]; ok {
			out = append(out, k)
		}
	}
	var rest []string
	for k := range row {
		if k != ".id" && !slices.Contains(t.order, k) {
			rest = append(rest, k)
		}
	}
	slices.Sort(rest)
	return append(out, rest...)
}

// parseID reads "*<hex>" ids.
func parseID(s string) (uint64, bool) {
	hex, ok := strings.CutPrefix(s, "*")
	if !ok || hex == "" || len(hex) > 16 {
		return 0, false
	}
	n, err := strconv.ParseUint(hex, 16, 64)
	return n, err == nil
}
