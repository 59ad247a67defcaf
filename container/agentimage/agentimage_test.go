package agentimage_test

import (
	"archive/tar"
	"bytes"
	"context"
	"debug/elf"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/tpf-dev/tpf/container/agentimage"
	"github.com/tpf-dev/tpf/controller/install"
)

// testVersion is stamped into the agents the tests build.
const testVersion = "v0.0.0-test+image"

// budgetARMv7 is the agent binary's size budget on linux/arm/v7.
const budgetARMv7 = 8 << 20

// inCI is true under CI, where a missing prerequisite fails instead of skipping.
var inCI = os.Getenv("CI") == "true"

// need stops the test when a prerequisite is missing: a failure in CI, a
// skip elsewhere.
func need(t testing.TB, what string, err error) {
	t.Helper()
	if err == nil {
		return
	}
	if inCI {
		t.Fatalf("%s is missing (%v); CI installs it (.ci/run)", what, err)
	}
	t.Skipf("%s is missing (%v); install it to run this test (CI fails without it)", what, err)
}

// agents builds the agent once per target for the whole test binary.
var agents struct {
	once sync.Once
	dir  string
	err  error
	mu   sync.Mutex
	bins map[string]*agentBuild
}

type agentBuild struct {
	once sync.Once
	path string
	err  error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if agents.dir != "" {
		os.RemoveAll(agents.dir)
	}
	os.Exit(code)
}

// buildAgent cross-builds the agent exactly as make dist does (static,
// stripped, version stamped) and returns the binary's path.
func buildAgent(t testing.TB, goarch, goarm, gomips string) string {
	t.Helper()
	agents.once.Do(func() {
		agents.dir, agents.err = os.MkdirTemp("", "tpf-agentimage-test-")
		agents.bins = map[string]*agentBuild{}
	})
	if agents.err != nil {
		t.Fatal(agents.err)
	}
	key := goarch + goarm + gomips
	agents.mu.Lock()
	b := agents.bins[key]
	if b == nil {
		b = &agentBuild{}
		agents.bins[key] = b
	}
	agents.mu.Unlock()
	b.once.Do(func() {
		b.path = filepath.Join(agents.dir, "tpf-agent-"+key)
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "go", "build", "-trimpath",
			"-ldflags", "-s -w -X main.version="+testVersion,
			"-o", b.path, "github.com/tpf-dev/tpf/agent/cmd/tpf-agent")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+goarch, "GOARM="+goarm, "GOMIPS="+gomips)
		if out, err := cmd.CombinedOutput(); err != nil {
			b.err = errors.New("go build for " + goarch + ": " + err.Error() + "\n" + string(out))
		}
	})
	if b.err != nil {
		t.Fatal(b.err)
	}
	return b.path
}

// hostPlatform is the image platform this machine runs natively, if any.
func hostPlatform() (agentimage.Platform, bool) {
	for _, p := range agentimage.Platforms {
		if p.GOARCH == runtime.GOARCH && runtime.GOOS == "linux" {
			return p, true
		}
	}
	return agentimage.Platform{}, false
}

// TestArchives builds each platform's archive from a freshly built agent and
// reads it back with the library and, independently, with skopeo.
func TestArchives(t *testing.T) {
	t.Parallel()
	_, err := os.Stat(agentimage.DefaultCACerts)
	need(t, "the host's CA bundle "+agentimage.DefaultCACerts+" (Debian package ca-certificates)", err)
	skopeo, err := exec.LookPath("skopeo")
	need(t, "skopeo (Debian package skopeo)", err)
	dir := t.TempDir()

	for _, p := range agentimage.Platforms {
		t.Run(p.Name, func(t *testing.T) {
			t.Parallel()
			bin := buildAgent(t, p.GOARCH, p.GOARM, "")
			if st, err := os.Stat(bin); err != nil {
				t.Fatal(err)
			} else if p.Name == "armv7" && st.Size() >= budgetARMv7 {
				t.Errorf("agent binary for %s: got %d bytes, want under the 8 MiB budget (README, Performance)", p, st.Size())
			}
			img, err := agentimage.Build(agentimage.Config{Platform: p, Agent: bin, Version: testVersion})
			if err != nil {
				t.Fatal(err)
			}
			layers, err := img.Layers()
			if err != nil || len(layers) != 1 {
				t.Fatalf("layers: got %d, %v; want 1", len(layers), err)
			}
			if mt, _ := layers[0].MediaType(); mt != types.DockerUncompressedLayer {
				t.Errorf("layer media type: got %s, want %s (RouterOS wants plain tar)", mt, types.DockerUncompressedLayer)
			}
			tag, err := agentimage.Tag(testVersion, p)
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(dir, agentimage.ArchiveName(p))
			if err := agentimage.WriteArchive(path, tag, img); err != nil {
				t.Fatal(err)
			}

			checkArchiveLayout(t, path, tag.String())
			files := checkWithLibrary(t, path, p)
			checkWithSkopeo(t, skopeo, path, p)
			checkAgent(t, files[strings.TrimPrefix(agentimage.AgentPath, "/")], p)

			host, err := os.ReadFile(agentimage.DefaultCACerts)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(files["etc/ssl/certs/ca-certificates.crt"], host) {
				t.Errorf("CA bundle in the image differs from the host's %s", agentimage.DefaultCACerts)
			}
			if !strings.Contains(string(files["etc/passwd"]), "tpf:x:65532:65532:") || !strings.Contains(string(files["etc/group"]), "tpf:x:65532:") {
				t.Errorf("passwd/group: got %q / %q, want a tpf user and group 65532", files["etc/passwd"], files["etc/group"])
			}
		})
	}
}

// checkArchiveLayout reads the archive as plain tar: a docker-archive with
// one manifest entry (one image, one platform), its tag, one uncompressed
// layer, and the config and layer files the manifest names.
func checkArchiveLayout(t *testing.T, path, tag string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	entries := map[string][]byte{}
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		entries[h.Name] = b
	}
	var manifest []struct {
		Config   string
		RepoTags []string
		Layers   []string
	}
	if err := json.Unmarshal(entries["manifest.json"], &manifest); err != nil {
		t.Fatalf("manifest.json: %v (entries %d)", err, len(entries))
	}
	if len(manifest) != 1 {
		t.Fatalf("manifest.json: got %d images, want exactly 1 (RouterOS loads single-platform archives only)", len(manifest))
	}
	m := manifest[0]
	if len(m.RepoTags) != 1 || m.RepoTags[0] != tag {
		t.Errorf("RepoTags: got %q, want [%q]", m.RepoTags, tag)
	}
	if _, ok := entries[m.Config]; !ok {
		t.Errorf("config %q named by manifest.json is not in the archive", m.Config)
	}
	if len(m.Layers) != 1 {
		t.Fatalf("layers: got %d, want 1", len(m.Layers))
	}
	layer, ok := entries[m.Layers[0]]
	if !ok {
		t.Fatalf("layer %q named by manifest.json is not in the archive", m.Layers[0])
	}
	if !strings.HasSuffix(m.Layers[0], ".tar") || bytes.HasPrefix(layer, []byte{0x1f, 0x8b}) {
		t.Errorf("layer %q: want an uncompressed tar", m.Layers[0])
	}
	if len(entries) != 3 {
		t.Errorf("archive entries: got %d, want 3 (manifest.json, config, layer)", len(entries))
	}
}

// checkWithLibrary loads the archive with go-containerregistry and returns
// the files of its layer.
func checkWithLibrary(t *testing.T, path string, p agentimage.Platform) map[string][]byte {
	t.Helper()
	img, err := tarball.ImageFromPath(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if cf.OS != "linux" || cf.Architecture != p.Architecture || cf.Variant != p.Variant {
		t.Errorf("platform: got %s/%s/%s, want %s", cf.OS, cf.Architecture, cf.Variant, p)
	}
	if got := cf.Config.Entrypoint; len(got) != 1 || got[0] != agentimage.AgentPath {
		t.Errorf("entrypoint: got %q, want [%q]", got, agentimage.AgentPath)
	}
	if len(cf.Config.Cmd) != 0 {
		t.Errorf("cmd: got %q, want none", cf.Config.Cmd)
	}
	if cf.Config.User != "65532:65532" {
		t.Errorf("user: got %q, want 65532:65532", cf.Config.User)
	}
	if !contains(cf.Config.Env, "TPF_LOG_LEVEL=info") {
		t.Errorf("env: got %q, want TPF_LOG_LEVEL=info among it", cf.Config.Env)
	}
	if got := cf.Config.Labels["org.opencontainers.image.version"]; got != testVersion {
		t.Errorf("version label: got %q, want %q", got, testVersion)
	}
	if !cf.Created.Time.Equal(time.Unix(0, 0)) {
		t.Errorf("created: got %s, want the Unix epoch", cf.Created.Time)
	}
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	if len(layers) != 1 {
		t.Fatalf("layers: got %d, want 1", len(layers))
	}
	rc, err := layers[0].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	files := map[string][]byte{}
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Uid != 0 || h.Gid != 0 || !h.ModTime.Equal(time.Unix(0, 0)) {
			t.Errorf("%s: got owner %d:%d, time %s; want 0:0 at the epoch", h.Name, h.Uid, h.Gid, h.ModTime)
		}
		if h.Typeflag == tar.TypeReg {
			b, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			files[h.Name] = b
			if h.Name == "tpf-agent" && h.Mode&0o111 != 0o111 {
				t.Errorf("tpf-agent mode: got %o, want executable by all", h.Mode)
			}
		}
	}
	for _, want := range []string{"tpf-agent", "etc/ssl/certs/ca-certificates.crt", "etc/passwd", "etc/group"} {
		if _, ok := files[want]; !ok {
			t.Errorf("layer lacks %s", want)
		}
	}
	for name := range files {
		if strings.HasPrefix(name, "bin/") || strings.HasSuffix(name, "/sh") {
			t.Errorf("layer holds %s: the image must need no shell and hold none", name)
		}
	}
	return files
}

// checkWithSkopeo has skopeo, an independent implementation, read the
// archive: image and config.
func checkWithSkopeo(t *testing.T, skopeo, path string, p agentimage.Platform) {
	t.Helper()
	run := func(args ...string) []byte {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		var stderr bytes.Buffer
		cmd := exec.CommandContext(ctx, skopeo, args...)
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("skopeo %s: %v\n%s", strings.Join(args, " "), err, stderr.Bytes())
		}
		return out
	}
	var info struct {
		Architecture string
		Os           string
		Layers       []string
	}
	if err := json.Unmarshal(run("inspect", "docker-archive:"+path), &info); err != nil {
		t.Fatal(err)
	}
	if info.Os != "linux" || info.Architecture != p.Architecture || len(info.Layers) != 1 {
		t.Errorf("skopeo inspect: got %s/%s with %d layers, want %s with 1", info.Os, info.Architecture, len(info.Layers), p)
	}
	var cf v1.ConfigFile
	if err := json.Unmarshal(run("inspect", "--config", "docker-archive:"+path), &cf); err != nil {
		t.Fatal(err)
	}
	if cf.Architecture != p.Architecture || cf.Variant != p.Variant || cf.OS != "linux" {
		t.Errorf("skopeo inspect --config: got %s/%s/%s, want %s", cf.OS, cf.Architecture, cf.Variant, p)
	}
	if len(cf.Config.Entrypoint) != 1 || cf.Config.Entrypoint[0] != agentimage.AgentPath || cf.Config.User != agentimage.User {
		t.Errorf("skopeo inspect --config: got entrypoint %q user %q, want [%q] %q", cf.Config.Entrypoint, cf.Config.User, agentimage.AgentPath, agentimage.User)
	}
}

// checkAgent runs the image's agent when this machine can (--version), and
// otherwise checks its ELF header.
func checkAgent(t *testing.T, bin []byte, p agentimage.Platform) {
	t.Helper()
	f, err := elf.NewFile(bytes.NewReader(bin))
	if err != nil {
		t.Fatalf("tpf-agent in the image: %v", err)
	}
	if f.Machine != p.Machine || f.Class != elfClass(p.GOARCH) {
		t.Errorf("tpf-agent in the image: got %s %s, want %s %s", f.Class, f.Machine, elfClass(p.GOARCH), p.Machine)
	}
	if host, ok := hostPlatform(); !ok || host.Name != p.Name {
		return
	}
	path := filepath.Join(t.TempDir(), "tpf-agent")
	if err := os.WriteFile(path, bin, 0o755); err != nil {
		t.Fatal(err)
	}
	// A child forked by a parallel test may still hold the file open for
	// writing for a moment ("text file busy"): retry until a deadline.
	var out []byte
	for deadline := time.Now().Add(10 * time.Second); ; {
		out, err = exec.Command(path, "--version").CombinedOutput()
		if !errors.Is(err, syscall.ETXTBSY) || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("tpf-agent --version: %v: %s", err, out)
	}
	if got, want := strings.TrimSpace(string(out)), "tpf-agent "+testVersion; got != want {
		t.Errorf("tpf-agent --version: got %q, want %q", got, want)
	}
}

func elfClass(goarch string) elf.Class {
	if strings.HasSuffix(goarch, "64") {
		return elf.ELFCLASS64
	}
	return elf.ELFCLASS32
}

// TestDistBinaries checks what make dist wrote (CI runs it before the
// tests): every binary static, for the right machine, byte order and word
// size, MIPS soft-float builds included; the one this machine can run
// answers --version. Without dist/ it fails in CI and skips elsewhere.
func TestDistBinaries(t *testing.T) {
	t.Parallel()
	dist := filepath.Join("..", "..", "dist")
	_, err := os.Stat(filepath.Join(dist, "SHA256SUMS"))
	need(t, "dist/ (make dist)", err)
	for _, c := range []struct {
		name    string
		machine elf.Machine
		order   elf.Data
		class   elf.Class
	}{
		{"armv7", elf.EM_ARM, elf.ELFDATA2LSB, elf.ELFCLASS32},
		{"arm64", elf.EM_AARCH64, elf.ELFDATA2LSB, elf.ELFCLASS64},
		{"amd64", elf.EM_X86_64, elf.ELFDATA2LSB, elf.ELFCLASS64},
		{"mips", elf.EM_MIPS, elf.ELFDATA2MSB, elf.ELFCLASS32},
		{"mipsle", elf.EM_MIPS, elf.ELFDATA2LSB, elf.ELFCLASS32},
	} {
		path := filepath.Join(dist, "tpf-agent-linux-"+c.name)
		f, err := elf.Open(path)
		if err != nil {
			t.Errorf("%s: %v (make dist writes it)", path, err)
			continue
		}
		if f.Machine != c.machine || f.Data != c.order || f.Class != c.class {
			t.Errorf("%s: got %s %s %s, want %s %s %s", path, f.Machine, f.Data, f.Class, c.machine, c.order, c.class)
		}
		for _, prog := range f.Progs {
			if prog.Type == elf.PT_INTERP {
				t.Errorf("%s: dynamically linked; want static", path)
			}
		}
		if f.Section(".symtab") != nil {
			t.Errorf("%s: has a symbol table; want it stripped (-s -w)", path)
		}
		f.Close()
		if host, ok := hostPlatform(); ok && host.Name == c.name {
			out, err := exec.Command(path, "--version").CombinedOutput()
			if err != nil || !strings.HasPrefix(string(out), "tpf-agent ") {
				t.Errorf("%s --version: got %q, %v; want tpf-agent <version>", path, out, err)
			}
		}
	}
}

// TestReproducible: the same inputs give the same image, byte for byte.
func TestReproducible(t *testing.T) {
	t.Parallel()
	_, err := os.Stat(agentimage.DefaultCACerts)
	need(t, "the host's CA bundle "+agentimage.DefaultCACerts, err)
	p := agentimage.Platforms[1]
	bin := buildAgent(t, p.GOARCH, p.GOARM, "")
	digest := func() string {
		img, err := agentimage.Build(agentimage.Config{Platform: p, Agent: bin, Version: testVersion})
		if err != nil {
			t.Fatal(err)
		}
		d, err := img.Digest()
		if err != nil {
			t.Fatal(err)
		}
		return d.String()
	}
	if a, b := digest(), digest(); a != b {
		t.Errorf("two builds: got digests %s and %s, want equal", a, b)
	}
	stamped, err := agentimage.Build(agentimage.Config{Platform: p, Agent: bin, Version: testVersion, Created: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)})
	if err != nil {
		t.Fatal(err)
	}
	cf, err := stamped.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if want := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC); !cf.Created.Time.Equal(want) {
		t.Errorf("created: got %s, want %s", cf.Created.Time, want)
	}
}

// TestBuildRefuses: wrong binaries and a missing CA bundle fail with a
// message that says what to do.
func TestBuildRefuses(t *testing.T) {
	t.Parallel()
	arm64, _ := agentimage.PlatformByName("arm64")
	armv7, _ := agentimage.PlatformByName("armv7")
	bin := buildAgent(t, arm64.GOARCH, "", "")
	junk := filepath.Join(t.TempDir(), "junk")
	if err := os.WriteFile(junk, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		cfg  agentimage.Config
		want string
	}{
		{"wrong architecture", agentimage.Config{Platform: armv7, Agent: bin, Version: "v1"}, "want EM_ARM"},
		{"not ELF", agentimage.Config{Platform: arm64, Agent: junk, Version: "v1"}, "not an ELF executable"},
		{"no binary", agentimage.Config{Platform: arm64, Agent: junk + ".missing", Version: "v1"}, "no such file"},
		{"no CA bundle", agentimage.Config{Platform: arm64, Agent: bin, Version: "v1", CACerts: junk + ".missing"}, "ca-certificates"},
		{"CA bundle without certificates", agentimage.Config{Platform: arm64, Agent: bin, Version: "v1", CACerts: junk}, "holds no PEM certificate"},
		{"no version", agentimage.Config{Platform: arm64, Agent: bin}, "no version"},
	}
	if dyn, err := exec.LookPath("true"); err == nil && runtime.GOARCH == "amd64" {
		if f, err := elf.Open(dyn); err == nil {
			interp := false
			for _, p := range f.Progs {
				interp = interp || p.Type == elf.PT_INTERP
			}
			f.Close()
			amd64, _ := agentimage.PlatformByName("amd64")
			if interp {
				cases = append(cases, struct {
					name string
					cfg  agentimage.Config
					want string
				}{"dynamically linked", agentimage.Config{Platform: amd64, Agent: dyn, Version: "v1"}, "CGO_ENABLED=0"})
			}
		}
	}
	for _, c := range cases {
		_, err := agentimage.Build(c.cfg)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want an error containing %q", c.name, err, c.want)
		}
	}
}

func TestTag(t *testing.T) {
	t.Parallel()
	armv7, _ := agentimage.PlatformByName("armv7")
	for _, c := range []struct{ version, want string }{
		{"v1.2.3", "tpf-agent:v1.2.3-armv7"},
		{"v1.2.3-4-gabcdef0-dirty", "tpf-agent:v1.2.3-4-gabcdef0-dirty-armv7"},
		{"v1.2.3+build/5", "tpf-agent:v1.2.3-build-5-armv7"},
		{"", "tpf-agent:dev-armv7"},
	} {
		tag, err := agentimage.Tag(c.version, armv7)
		if err != nil || tag.String() != c.want {
			t.Errorf("Tag(%q): got %v, %v; want %s", c.version, tag, err, c.want)
		}
	}
}

// TestInstallScriptNames: the controller's install script looks for the
// archives under the names make container writes, and maps RouterOS's
// architecture names the same way.
func TestInstallScriptNames(t *testing.T) {
	t.Parallel()
	for _, p := range agentimage.Platforms {
		name, ok := install.ArchiveName(p.RouterOS)
		if !ok || name != agentimage.ArchiveName(p) {
			t.Errorf("install.ArchiveName(%q): got %q, %v; want %q", p.RouterOS, name, ok, agentimage.ArchiveName(p))
		}
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
