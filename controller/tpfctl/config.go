package tpfctl

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
)

// DefaultURL is the API tpfctl talks to when nothing says otherwise: the
// controller of `make run`.
const DefaultURL = "http://127.0.0.1:8080"

// fileConfig is the config file's content.
type fileConfig struct {
	URL   string `json:"url"`
	Token string `json:"token"`
}

// configPath is $XDG_CONFIG_HOME/tpf/config.json, else
// $HOME/.config/tpf/config.json; empty when neither variable is set.
func configPath(getenv func(string) string) string {
	if dir := getenv("XDG_CONFIG_HOME"); dir != "" && filepath.IsAbs(dir) {
		return filepath.Join(dir, "tpf", "config.json")
	}
	if home := getenv("HOME"); home != "" {
		return filepath.Join(home, ".config", "tpf", "config.json")
	}
	return ""
}

// connection is where the API is and how to sign in.
type connection struct {
	url   string
	token string
}

// resolveConnection picks the URL and token: flags over the environment
// (TPF_URL, TPF_TOKEN) over the config file over the default URL. The file
// is read only when flags and environment leave something open.
func resolveConnection(getenv func(string) string, flagURL, flagToken string) (connection, error) {
	c := connection{url: first(flagURL, getenv("TPF_URL")), token: first(flagToken, getenv("TPF_TOKEN"))}
	if c.url == "" || c.token == "" {
		path := configPath(getenv)
		fc, err := readConfigFile(path)
		if err != nil {
			return connection{}, err
		}
		c.url = first(c.url, fc.URL)
		c.token = first(c.token, fc.Token)
	}
	c.url = first(c.url, DefaultURL)
	u, err := url.Parse(c.url)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return connection{}, usageErrorf("", "the API URL %q is not an http:// or https:// URL such as %s", c.url, DefaultURL)
	}
	c.url = strings.TrimRight(c.url, "/")
	if c.token == "" {
		return connection{}, &codedError{code: ExitUnauthenticated,
			msg:  "no API token: set TPF_TOKEN, pass --token, or put \"token\" in " + displayPath(configPath(getenv)),
			hint: "tpf-controller account create NAME, or token create ACCOUNT --name NAME, prints one."}
	}
	return c, nil
}

// readConfigFile reads the config file at path; a missing file (or no path)
// is an empty configuration. A file holding a token that everyone may read
// is refused: the token would not be a secret.
func readConfigFile(path string) (fileConfig, error) {
	var fc fileConfig
	if path == "" {
		return fc, nil
	}
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return fc, nil
	}
	if err != nil {
		return fc, &codedError{code: ExitUsage, msg: fmt.Sprintf("config file: %v", err)}
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return fc, &codedError{code: ExitUsage, msg: fmt.Sprintf("config file: %v", err)}
	}
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(f); err != nil {
		return fc, &codedError{code: ExitUsage, msg: fmt.Sprintf("config file: %v", err)}
	}
	dec := json.NewDecoder(&buf)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&fc); err != nil {
		return fc, &codedError{code: ExitUsage,
			msg: fmt.Sprintf("config file %s: %v; it holds one JSON object such as {\"url\": %q, \"token\": \"tpf_…\"}", path, err, DefaultURL)}
	}
	if fc.Token != "" && runtime.GOOS != "windows" && info.Mode().Perm()&0o004 != 0 {
		return fileConfig{}, &codedError{code: ExitUsage,
			msg:  fmt.Sprintf("config file %s holds an API token but anyone on this machine may read it (mode %04o); refusing to use it", path, info.Mode().Perm()),
			hint: "Make it private with: chmod 600 " + path}
	}
	return fc, nil
}

func displayPath(p string) string {
	if p == "" {
		return "~/.config/tpf/config.json"
	}
	return p
}

func first(vals ...string) string {
	for _, v := range vals {
		if v != "" {
			return v
		}
	}
	return ""
}
