package routerostest

import (
	"cmp"
	"fmt"
	"strconv"
	"strings"
)

// query is a parsed list of ?words, evaluated per item with the stack
// machine of ROUTEROS.md §1.10.
type query []queryOp

type queryOp struct {
	kind  byte // 'h' has, 'a' absent, '=', '<', '>', or '#' for stack operations
	name  string
	value string // the compared value, or the operations of a '#' word
}

// parseQuery parses query words given without their leading '?'.
func parseQuery(words []string) (query, error) {
	q := make(query, 0, len(words))
	for _, w := range words {
		var op queryOp
		switch {
		case strings.HasPrefix(w, "#"):
			op = queryOp{kind: '#', value: w[1:]}
			if err := checkStackOps(op.value); err != nil {
				return nil, err
			}
		case strings.HasPrefix(w, "-"):
			op = queryOp{kind: 'a', name: w[1:]}
		case strings.HasPrefix(w, "="), strings.HasPrefix(w, "<"), strings.HasPrefix(w, ">"):
			name, value, _ := strings.Cut(w[1:], "=")
			op = queryOp{kind: w[0], name: name, value: value}
		default:
			name, value, hasValue := strings.Cut(w, "=")
			op = queryOp{kind: 'h', name: name}
			if hasValue {
				op = queryOp{kind: '=', name: name, value: value}
			}
		}
		q = append(q, op)
	}
	return q, nil
}

// checkStackOps rejects characters the manual does not define, so a typo in
// a test's query fails loudly instead of matching everything.
func checkStackOps(ops string) error {
	for _, c := range ops {
		if !strings.ContainsRune("0123456789!&|.", c) {
			return fmt.Errorf("unknown query operation %q in ?#%s", c, ops)
		}
	}
	return nil
}

// match reports whether row passes the query: the stack starts as
// infinitely many true values and the row matches iff no false is left.
func (q query) match(row map[string]string) bool {
	var st boolStack
	for _, op := range q {
		v, present := row[op.name]
		switch op.kind {
		case 'h':
			st.push(present)
		case 'a':
			st.push(!present)
		case '=':
			st.push(v == op.value)
		case '<':
			st.push(compareValues(v, op.value) < 0)
		case '>':
			st.push(compareValues(v, op.value) > 0)
		case '#':
			st.run(op.value)
		}
	}
	for _, b := range st.s {
		if !b {
			return false
		}
	}
	return true
}

// boolStack is the finite top of a stack that holds infinitely many true
// values underneath; s[len(s)-1] is the top.
type boolStack struct{ s []bool }

func (st *boolStack) push(b bool) { st.s = append(st.s, b) }

func (st *boolStack) pop() bool {
	if len(st.s) == 0 {
		return true
	}
	b := st.s[len(st.s)-1]
	st.s = st.s[:len(st.s)-1]
	return b
}

// at returns the element i places below the top (top = 0).
func (st *boolStack) at(i int) bool {
	if i < 0 || i >= len(st.s) {
		return true
	}
	return st.s[len(st.s)-1-i]
}

// run applies a ?# operation string, left to right: a run of digits is a
// stack index; followed by another character it pushes a copy of that
// element (and a '.' right after it is a no-op), at the end of the word it
// replaces the whole stack with that element. '!' negates the top, '&' and
// '|' pop two and push the result, a lone '.' duplicates the top.
func (st *boolStack) run(ops string) {
	for i := 0; i < len(ops); {
		c := ops[i]
		if c >= '0' && c <= '9' {
			j := i
			for j < len(ops) && ops[j] >= '0' && ops[j] <= '9' {
				j++
			}
			n, err := strconv.Atoi(ops[i:j])
			if err != nil {
				n = -1 // beyond any real stack: one of the implicit trues
			}
			v := st.at(n)
			if j == len(ops) {
				st.s = []bool{v}
				return
			}
			st.push(v)
			if ops[j] == '.' {
				j++
			}
			i = j
			continue
		}
		switch c {
		case '!':
			st.push(!st.pop())
		case '&':
			a, b := st.pop(), st.pop()
			st.push(a && b)
		case '|':
			a, b := st.pop(), st.pop()
			st.push(a || b)
		case '.':
			st.push(st.at(0))
		}
		i++
	}
}

// compareValues orders two property values: numerically when both are
// integers or both are "*hex" ids, bytewise otherwise. RouterOS compares by
// property type, which the emulator does not model (ROUTEROS.md [inf]).
func compareValues(a, b string) int {
	if x, err := strconv.ParseInt(a, 10, 64); err == nil {
		if y, err := strconv.ParseInt(b, 10, 64); err == nil {
			return cmp.Compare(x, y)
		}
	}
	if x, ok := parseID(a); ok {
		if y, ok := parseID(b); ok {
			return cmp.Compare(x, y)
		}
	}
	return strings.Compare(a, b)
}
