package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/tpf-dev/tpf/controller/api"
	"github.com/tpf-dev/tpf/controller/store/storetest"
	"github.com/tpf-dev/tpf/controller/tpfctl"
)

// TestRun checks main's wiring against a running controller; package
// tpfctl's tests cover the commands themselves.
func TestRun(t *testing.T) {
	t.Parallel()
	f := storetest.NewFleet(t, time.Now())
	srv := httptest.NewServer(api.NewServer(f.Store, api.Config{}))
	t.Cleanup(srv.Close)
	env := map[string]string{"TPF_URL": srv.URL, "TPF_TOKEN": f.APIToken, "HOME": t.TempDir()}
	getenv := func(k string) string { return env[k] }

	tests := []struct {
		args   []string
		code   int
		stdout string
		stderr string
	}{
		{[]string{"--help"}, tpfctl.ExitOK, "Exit codes:", ""},
		{[]string{"routers", "list", "-o", "json"}, tpfctl.ExitOK, `"name":"r1"`, ""},
		{[]string{"routers", "get", "r1"}, tpfctl.ExitOK, f.Router.ID.String(), ""},
		{[]string{"routers", "get", "nosuch"}, tpfctl.ExitNotFound, "", `tpfctl: no router is named "nosuch"`},
		{[]string{"status", "--token", "tpf_wrong"}, tpfctl.ExitUnauthenticated, "", "tpfctl: list routers: Unauthenticated."},
		{[]string{"bogus"}, tpfctl.ExitUsage, "", `tpfctl: unknown command "bogus"`},
	}
	for _, tt := range tests {
		var stdout, stderr bytes.Buffer
		err := run(context.Background(), tt.args, getenv, &stdout, &stderr)
		if got := tpfctl.ExitCode(err); got != tt.code {
			t.Errorf("tpfctl %s: got exit %d, want %d; stderr:\n%s", strings.Join(tt.args, " "), got, tt.code, stderr.String())
		}
		if !strings.Contains(stdout.String(), tt.stdout) {
			t.Errorf("tpfctl %s: got stdout %q, want it to hold %q", strings.Join(tt.args, " "), stdout.String(), tt.stdout)
		}
		if !strings.Contains(stderr.String(), tt.stderr) || (tt.stderr == "" && stderr.Len() > 0) {
			t.Errorf("tpfctl %s: got stderr %q, want %q", strings.Join(tt.args, " "), stderr.String(), tt.stderr)
		}
	}

	var stdout bytes.Buffer
	if err := run(context.Background(), []string{"routers", "list", "-o", "json"}, getenv, &stdout, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	var routers []tpfctl.Router
	if err := json.Unmarshal(stdout.Bytes(), &routers); err != nil || len(routers) != 1 || routers[0].ID != f.Router.ID.String() {
		t.Errorf("got %s (%v), want the one router %s", stdout.String(), err, f.Router.ID)
	}
}
