package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

func TestRunRefuses(t *testing.T) {
	t.Parallel()
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	cases := []struct {
		args []string
		env  map[string]string
		want string
	}{
		{[]string{"-dist", t.TempDir()}, nil, "run make dist first"},
		{[]string{"-dist", t.TempDir()}, map[string]string{"SOURCE_DATE_EPOCH": "yesterday"}, "SOURCE_DATE_EPOCH"},
		{[]string{"extra"}, nil, "unexpected arguments"},
	}
	for _, c := range cases {
		var stdout, stderr bytes.Buffer
		err := run(context.Background(), c.args, env(c.env), &stdout, &stderr)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: got %v, want an error containing %q", c.args, err, c.want)
		}
	}
	var stdout, stderr bytes.Buffer
	if err := run(context.Background(), []string{"-h"}, env(nil), &stdout, &stderr); err != nil || !strings.Contains(stderr.String(), "Usage: tpf-image") {
		t.Errorf("-h: got %v and %q, want usage", err, stderr.String())
	}
}
