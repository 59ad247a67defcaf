package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestReadConfig(t *testing.T) {
	t.Parallel()
	base := map[string]string{"TPF_CONTROLLER_URL": "https://tpf.example.net", "TPF_AGENT_TOKEN": "tpfa_x", "TPF_ROUTEROS_ADDRESS": "192.168.88.1:8728"}
	cfg, _, err := readConfig(env(base))
	if err != nil || cfg.Router.User != "tpf" || cfg.Router.Address != "192.168.88.1:8728" || cfg.Router.TLS != nil {
		t.Fatalf("good config: got %+v, %v", cfg, err)
	}
	bad := []struct {
		change map[string]string
		want   string
	}{
		{map[string]string{"TPF_CONTROLLER_URL": ""}, "TPF_CONTROLLER_URL is not set"},
		{map[string]string{"TPF_CONTROLLER_URL": "tpf.example.net"}, "TPF_CONTROLLER_URL"},
		{map[string]string{"TPF_AGENT_TOKEN": ""}, "TPF_AGENT_TOKEN is not set"},
		{map[string]string{"TPF_ROUTEROS_ADDRESS": "192.168.88.1"}, "want host:port"},
		{map[string]string{"TPF_ROUTEROS_TLS": "maybe"}, "TPF_ROUTEROS_TLS"},
		{map[string]string{"TPF_ROUTEROS_TLS": "1"}, "TPF_ROUTEROS_CA_FILE or TPF_ROUTEROS_FINGERPRINT"},
		{map[string]string{"TPF_ROUTEROS_TLS": "1", "TPF_ROUTEROS_FINGERPRINT": "abc"}, "64 hex digits"},
		{map[string]string{"TPF_ROUTEROS_TLS": "1", "TPF_ROUTEROS_CA_FILE": "/nonexistent"}, "TPF_ROUTEROS_CA_FILE"},
		{map[string]string{"TPF_CA_FILE": "/nonexistent"}, "TPF_CA_FILE"},
		{map[string]string{"TPF_LOG_LEVEL": "loud"}, "TPF_LOG_LEVEL"},
	}
	for _, c := range bad {
		m := map[string]string{}
		for k, v := range base {
			m[k] = v
		}
		for k, v := range c.change {
			m[k] = v
		}
		if _, _, err := readConfig(env(m)); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: got %v, want an error mentioning %q", c.change, err, c.want)
		}
	}
	m := map[string]string{"TPF_ROUTEROS_TLS": "1", "TPF_ROUTEROS_FINGERPRINT": strings.Repeat("ab", 32)}
	for k, v := range base {
		if _, ok := m[k]; !ok {
			m[k] = v
		}
	}
	if cfg, _, err := readConfig(env(m)); err != nil || cfg.Router.TLS == nil {
		t.Errorf("pinned TLS: got %+v, %v", cfg.Router.TLS, err)
	}
}

func TestDefaultGateway(t *testing.T) {
	t.Parallel()
	table := "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n" +
		"eth0\t0058A8C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n" +
		"eth0\t00000000\t0158A8C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n"
	file := filepath.Join(t.TempDir(), "route")
	if err := os.WriteFile(file, []byte(table), 0o644); err != nil {
		t.Fatal(err)
	}
	gw, err := defaultGateway(file)
	if err != nil || gw.String() != "192.168.88.1" {
		t.Errorf("got %v, %v, want 192.168.88.1", gw, err)
	}
	if err := os.WriteFile(file, []byte(table[:strings.LastIndex(table[:len(table)-1], "\n")+1]), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := defaultGateway(file); err == nil {
		t.Error("no default route: got no error")
	}
}

func TestVersionAndHelp(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	if err := run(context.Background(), []string{"--version"}, env(nil), &out, &out); err != nil || !strings.HasPrefix(out.String(), "tpf-agent ") {
		t.Errorf("--version: got %q, %v", out.String(), err)
	}
	out.Reset()
	if err := run(context.Background(), []string{"--help"}, env(nil), &out, &out); err != nil || !strings.Contains(out.String(), "TPF_ROUTEROS_FINGERPRINT") {
		t.Errorf("--help: got %q, %v", out.String(), err)
	}
	if err := run(context.Background(), []string{"serve"}, env(nil), &out, &out); err == nil {
		t.Error("unknown argument: got no error")
	}
}
