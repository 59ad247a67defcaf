package tunnel

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

func TestKeyFileCreatedOnceAndReused(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "state", KeyFileName) // the directory is made too
	first, created, err := loadOrCreateKey(path)
	if err != nil || !created {
		t.Fatalf("first load: created %v, err %v; want a new key", created, err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode().Perm(); got != 0o600 {
		t.Errorf("key file mode %#o, want 0600", got)
	}
	if fi, err := os.Stat(filepath.Dir(path)); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("state directory: %v, %v; want mode 0700", fi.Mode(), err)
	}
	b, _ := os.ReadFile(path)
	if got, want := string(b), first.String()+"\n"; got != want {
		t.Errorf("key file holds %q, want the key as one base64 line", got)
	}
	second, created, err := loadOrCreateKey(path)
	if err != nil || created {
		t.Fatalf("second load: created %v, err %v; want the same key read back", created, err)
	}
	if second != first {
		t.Errorf("second load gave another key")
	}
	if left, _ := filepath.Glob(filepath.Join(filepath.Dir(path), ".tpf-wireguard-key-*")); len(left) != 0 {
		t.Errorf("temporary files left behind: %v", left)
	}
}

// Edges starting at once on one state directory end up with one key.
func TestKeyFileConcurrentCreation(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), KeyFileName)
	const n = 8
	keys := make([]wgtypes.Key, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { keys[i], _, errs[i] = loadOrCreateKey(path) })
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("load %d: %v", i, errs[i])
		}
		if keys[i] != keys[0] {
			t.Fatalf("load %d got another key than load 0", i)
		}
	}
}

func TestKeyFileRefused(t *testing.T) {
	t.Parallel()
	good, _ := wgtypes.GeneratePrivateKey()
	tests := []struct {
		name    string
		content string
		mode    os.FileMode
		want    string // in the error
	}{
		{"readable by group", good.String() + "\n", 0o640, "chmod 600"},
		{"readable by all", good.String() + "\n", 0o644, "mode 0644"},
		{"empty", "", 0o600, "does not hold a WireGuard private key"},
		{"garbage", "not a key\n", 0o600, "does not hold a WireGuard private key"},
		{"short", "AAAA\n", 0o600, "does not hold a WireGuard private key"},
		{"all zero", wgtypes.Key{}.String(), 0o600, "does not hold a WireGuard private key"},
		{"two keys", good.String() + "\n" + good.String() + "\n", 0o600, "does not hold a WireGuard private key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(t.TempDir(), KeyFileName)
			if err := os.WriteFile(path, []byte(tt.content), tt.mode); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(path, tt.mode); err != nil { // past the umask
				t.Fatal(err)
			}
			_, _, err := loadOrCreateKey(path)
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), path) {
				t.Fatalf("got %v, want an error naming %s and saying %q", err, path, tt.want)
			}
			if b, _ := os.ReadFile(path); string(b) != tt.content {
				t.Errorf("the refused file was changed")
			}
		})
	}
	t.Run("a directory", func(t *testing.T) {
		t.Parallel()
		path := t.TempDir()
		if _, _, err := loadOrCreateKey(path); err == nil || !strings.Contains(err.Error(), "not a regular file") {
			t.Fatalf("got %v, want a refusal of the directory", err)
		}
	})
}

func TestKeyFileAcceptsOwnerReadOnly(t *testing.T) {
	t.Parallel()
	key, _ := wgtypes.GeneratePrivateKey()
	path := filepath.Join(t.TempDir(), KeyFileName)
	if err := os.WriteFile(path, []byte("  "+key.String()+"\r\n"), 0o400); err != nil {
		t.Fatal(err)
	}
	got, created, err := loadOrCreateKey(path)
	if err != nil || created || got != key {
		t.Fatalf("got created %v, err %v, same key %v; want the operator's key read", created, err, got == key)
	}
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		cfg  Config
		want string
	}{
		{Config{}, "no key file"},
		{Config{KeyFile: "k", Device: "a-name-far-too-long"}, "not a valid interface name"},
		{Config{KeyFile: "k", Device: "a/b"}, "not a valid interface name"},
		{Config{KeyFile: "k", Device: "a b"}, "not a valid interface name"},
		{Config{KeyFile: "k", Device: ".."}, "not a valid interface name"},
	} {
		err := tt.cfg.withDefaults().validate()
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%+v: got %v, want %q", tt.cfg, err, tt.want)
		}
	}
	if err := (Config{KeyFile: "k"}).withDefaults().validate(); err != nil {
		t.Errorf("defaults: got %v, want nil", err)
	}
}
