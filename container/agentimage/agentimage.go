// Package agentimage assembles the tpf-agent's container images for RouterOS:
// one single-platform image per architecture, written in the docker-archive
// ("docker save") format that RouterOS's /container/add file= loads.
//
// An image is one uncompressed layer holding the static agent at /tpf-agent,
// the CA certificates at /etc/ssl/certs/ca-certificates.crt, an /etc/passwd
// and /etc/group naming the non-root user it runs as (65532, "tpf") and an
// empty /tmp. There is no shell: the entrypoint is the agent itself. Every
// timestamp is fixed, so the same inputs give the same bytes.
//
// It uses github.com/google/go-containerregistry for the image and archive
// formats, needs no container engine, and is imported only by the build
// command (container/cmd/tpf-image) and tests, never by the agent or the
// controller.
package agentimage

import (
	"archive/tar"
	"bytes"
	"debug/elf"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Platform is one architecture RouterOS runs containers on.
type Platform struct {
	// Name is the file-name suffix: tpf-agent-linux-<Name>[.tar].
	Name string
	// GOARCH and GOARM are how the agent is cross-built for it.
	GOARCH, GOARM string
	// Architecture and Variant are the OCI platform fields.
	Architecture, Variant string
	// RouterOS is what /system/resource architecture-name says on such a router.
	RouterOS string
	// Machine is the ELF machine of its binaries.
	Machine elf.Machine
}

// String is the platform as Docker writes it: linux/arm/v7.
func (p Platform) String() string {
	s := "linux/" + p.Architecture
	if p.Variant != "" {
		s += "/" + p.Variant
	}
	return s
}

// Platforms are the architectures RouterOS runs containers on. (MIPS
// routers cannot; their agent runs beside them as a plain binary.)
var Platforms = []Platform{
	{Name: "armv7", GOARCH: "arm", GOARM: "7", Architecture: "arm", Variant: "v7", RouterOS: "arm", Machine: elf.EM_ARM},
	{Name: "arm64", GOARCH: "arm64", Architecture: "arm64", RouterOS: "arm64", Machine: elf.EM_AARCH64},
	{Name: "amd64", GOARCH: "amd64", Architecture: "amd64", RouterOS: "x86", Machine: elf.EM_X86_64},
}

// PlatformByName returns the platform called name (armv7, arm64, amd64).
func PlatformByName(name string) (Platform, bool) {
	for _, p := range Platforms {
		if p.Name == name {
			return p, true
		}
	}
	return Platform{}, false
}

// BinaryName is the agent binary's file name in dist/ for p.
func BinaryName(p Platform) string { return "tpf-agent-linux-" + p.Name }

// ArchiveName is the image archive's file name in dist/ for p, the name the
// controller's install script looks for on the router.
func ArchiveName(p Platform) string { return BinaryName(p) + ".tar" }

// Image content and configuration.
const (
	// AgentPath is where the agent sits in the image; it is the entrypoint.
	AgentPath = "/tpf-agent"
	// CACertsPath is where the CA bundle sits, where Go looks first on Linux.
	CACertsPath = "/etc/ssl/certs/ca-certificates.crt"
	// DefaultCACerts is the build host's bundle (Debian's ca-certificates).
	DefaultCACerts = "/etc/ssl/certs/ca-certificates.crt"
	// UID and GID the agent runs as: an unprivileged user, "tpf".
	UID = 65532
	GID = 65532
	// Repository is the image name in the archive's RepoTags.
	Repository = "tpf-agent"
)

// User is the image config's user, as numbers so that no lookup is needed.
var User = fmt.Sprintf("%d:%d", UID, GID)

// Config says what to build. Agent, Platform and Version are required.
type Config struct {
	// Platform is the image's architecture; Agent must be built for it.
	Platform Platform
	// Agent is the path of the static (CGO_ENABLED=0) agent binary.
	Agent string
	// Version is the agent's version: it goes into the tag and a label.
	Version string
	// CACerts is the PEM CA bundle to include; empty means DefaultCACerts.
	CACerts string
	// Created stamps the image and every file in it; the zero value means
	// the Unix epoch (builds are then reproducible without further input).
	Created time.Time
}

// Build assembles the image described by cfg. It refuses an agent binary
// that is not a static ELF executable for cfg.Platform, and a CA bundle
// that is missing or holds no certificate.
func Build(cfg Config) (v1.Image, error) {
	if cfg.Platform.Architecture == "" {
		return nil, errors.New("agentimage: no platform given")
	}
	if cfg.Version == "" {
		return nil, errors.New("agentimage: no version given")
	}
	created := cfg.Created
	if created.IsZero() {
		created = time.Unix(0, 0)
	}
	created = created.UTC().Truncate(time.Second)

	agent, err := os.ReadFile(cfg.Agent)
	if err != nil {
		return nil, fmt.Errorf("agent binary: %w", err)
	}
	if err := checkBinary(agent, cfg.Platform); err != nil {
		return nil, fmt.Errorf("agent binary %s: %w", cfg.Agent, err)
	}
	caFile := cfg.CACerts
	if caFile == "" {
		caFile = DefaultCACerts
	}
	certs, err := os.ReadFile(caFile)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("CA certificates: %s is missing: install Debian's ca-certificates package (apt-get install ca-certificates) or give another PEM bundle", caFile)
	}
	if err != nil {
		return nil, fmt.Errorf("CA certificates: %w", err)
	}
	if !bytes.Contains(certs, []byte("-----BEGIN CERTIFICATE-----")) {
		return nil, fmt.Errorf("CA certificates: %s holds no PEM certificate", caFile)
	}

	layer, err := rootfs(agent, certs, created)
	if err != nil {
		return nil, err
	}
	img, err := mutate.Append(empty.Image, mutate.Addendum{
		Layer: static.NewLayer(layer, types.DockerUncompressedLayer),
		History: v1.History{
			Created:   v1.Time{Time: created},
			CreatedBy: "tpf-image: tpf-agent " + cfg.Version + " for " + cfg.Platform.String(),
		},
	})
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.Architecture = cfg.Platform.Architecture
	cf.Variant = cfg.Platform.Variant
	cf.OS = "linux"
	cf.Created = v1.Time{Time: created}
	cf.Config = v1.Config{
		Entrypoint: []string{AgentPath},
		User:       User,
		WorkingDir: "/",
		Env: []string{
			"TPF_LOG_LEVEL=info",
			"SSL_CERT_FILE=" + CACertsPath,
		},
		Labels: map[string]string{
			"org.opencontainers.image.title":       "tpf-agent",
			"org.opencontainers.image.description": "tpf agent: keeps a MikroTik router's transient port forwards in line with the tpf controller",
			"org.opencontainers.image.version":     cfg.Version,
			"org.opencontainers.image.created":     created.Format(time.RFC3339),
		},
	}
	return mutate.ConfigFile(img, cf)
}

// Tag is the image's name in the archive: tpf-agent:<version>-<platform>,
// with characters a tag cannot hold replaced by '-'.
func Tag(version string, p Platform) (name.Tag, error) {
	v := badTagChars.ReplaceAllString(version, "-")
	v = strings.TrimLeft(v, ".-")
	if v == "" {
		v = "dev"
	}
	t := v + "-" + p.Name
	if len(t) > 128 {
		t = t[len(t)-128:]
	}
	return name.NewTag(Repository + ":" + t)
}

var badTagChars = regexp.MustCompile(`[^A-Za-z0-9_.-]`)

// WriteArchive writes img as a docker-archive holding exactly one image,
// tagged tag, to path (through a temporary file, so path is never half
// written).
func WriteArchive(path string, tag name.Tag, img v1.Image) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tarball.Write(tag, img, tmp); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// checkBinary insists on a statically linked ELF executable for p: a
// dynamically linked one would not start in an image without a libc.
func checkBinary(b []byte, p Platform) error {
	f, err := elf.NewFile(bytes.NewReader(b))
	if err != nil {
		return fmt.Errorf("not an ELF executable: %w", err)
	}
	defer f.Close()
	if f.Machine != p.Machine {
		return fmt.Errorf("built for %s, want %s (%s)", f.Machine, p.Machine, p)
	}
	if f.Type != elf.ET_EXEC && f.Type != elf.ET_DYN {
		return fmt.Errorf("ELF type %s is not an executable", f.Type)
	}
	for _, prog := range f.Progs {
		if prog.Type == elf.PT_INTERP {
			return errors.New("dynamically linked: build it with CGO_ENABLED=0")
		}
	}
	return nil
}

// rootfs is the image's one layer: an uncompressed tar with fixed owners,
// modes and times, in a fixed order.
func rootfs(agent, certs []byte, mtime time.Time) ([]byte, error) {
	passwd := fmt.Sprintf("root:x:0:0:root:/root:/sbin/nologin\ntpf:x:%d:%d:tpf agent:/:/sbin/nologin\n", UID, GID)
	group := fmt.Sprintf("root:x:0:\ntpf:x:%d:\n", GID)
	entries := []struct {
		name string
		mode int64
		body []byte // nil for a directory
	}{
		{"etc/", 0o755, nil},
		{"etc/group", 0o644, []byte(group)},
		{"etc/nsswitch.conf", 0o644, []byte("hosts: files dns\n")},
		{"etc/passwd", 0o644, []byte(passwd)},
		{"etc/ssl/", 0o755, nil},
		{"etc/ssl/certs/", 0o755, nil},
		{strings.TrimPrefix(CACertsPath, "/"), 0o644, certs},
		{"tmp/", 0o1777, nil},
		{strings.TrimPrefix(AgentPath, "/"), 0o755, agent},
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := &tar.Header{
			Name: e.name, Mode: e.mode, ModTime: mtime,
			Uname: "root", Gname: "root",
		}
		if e.body == nil {
			h.Typeflag = tar.TypeDir
		} else {
			h.Typeflag = tar.TypeReg
			h.Size = int64(len(e.body))
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if _, err := tw.Write(e.body); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
