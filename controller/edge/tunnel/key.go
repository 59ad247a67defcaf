package tunnel

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

// loadOrCreateKey reads the private key in path, or, when there is no such
// file, generates one and creates the file (mode 0600) atomically: the key
// is written to a temporary file beside it, synced, and linked into place,
// so a crash leaves either no key file or a whole one, and two processes
// starting at once end up with the same key.
func loadOrCreateKey(path string) (key wgtypes.Key, created bool, err error) {
	key, err = readKey(path)
	if !errors.Is(err, fs.ErrNotExist) {
		return key, false, err
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return wgtypes.Key{}, false, fmt.Errorf("key file %s: %w", path, err)
	}
	key, err = wgtypes.GeneratePrivateKey()
	if err != nil {
		return wgtypes.Key{}, false, fmt.Errorf("generate WireGuard key: %w", err)
	}
	f, err := os.CreateTemp(dir, ".tpf-wireguard-key-*") // mode 0600
	if err != nil {
		return wgtypes.Key{}, false, fmt.Errorf("key file %s: %w", path, err)
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	_, err = f.WriteString(key.String() + "\n")
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return wgtypes.Key{}, false, fmt.Errorf("key file %s: write: %w", path, err)
	}
	// Link, unlike rename, never replaces a key another process created
	// in the meantime; that one wins.
	if err := os.Link(tmp, path); errors.Is(err, fs.ErrExist) {
		key, err = readKey(path)
		return key, false, err
	} else if err != nil {
		return wgtypes.Key{}, false, fmt.Errorf("key file %s: %w", path, err)
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync() // make the new name durable; best effort
		d.Close()
	}
	return key, true, nil
}

// readKey reads a private key file: one base64 key (as `wg genkey` writes
// it), readable by its owner only.
func readKey(path string) (wgtypes.Key, error) {
	f, err := os.Open(path)
	if err != nil {
		return wgtypes.Key{}, fmt.Errorf("key file: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return wgtypes.Key{}, fmt.Errorf("key file: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return wgtypes.Key{}, fmt.Errorf("key file %s is not a regular file", path)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return wgtypes.Key{}, fmt.Errorf("key file %s has mode %#o, so others may read the private key; "+
			"refusing it: make it readable by its owner only (chmod 600 %s)", path, perm, path)
	}
	b, err := io.ReadAll(io.LimitReader(f, 1024))
	if err != nil {
		return wgtypes.Key{}, fmt.Errorf("key file %s: %w", path, err)
	}
	key, err := wgtypes.ParseKey(strings.TrimSpace(string(b)))
	if err != nil || key == (wgtypes.Key{}) {
		return wgtypes.Key{}, fmt.Errorf("key file %s does not hold a WireGuard private key "+
			"(one base64 line, as `wg genkey` writes); fix it, or remove it to have a new key made", path)
	}
	return key, nil
}
