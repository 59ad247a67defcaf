package install_test

import (
	"flag"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/tpf-dev/tpf/controller/install"
)

var update = flag.Bool("update", false, "rewrite the golden scripts in testdata/")

const (
	testToken    = "tpfa_Zm9vYmFyYmF6cXV4cXV1eHh5ejAxMjM0NTY3ODlhYmM"
	testPassword = "aEkUAFAd93v2_HTR26gCq.KZ4"
)

func params() install.Params {
	return install.Params{
		ControllerURL: "https://tpf.example.net",
		AgentToken:    testToken,
		RouterID:      "9c56202d-c388-484d-ac9a-7677f24f1f18",
		RouterName:    "branch-7 hAP ax3",
		Password:      testPassword,
		Generated:     time.Date(2026, 11, 27, 10, 58, 43, 0, time.UTC),
	}
}

func script(t *testing.T, p install.Params) string {
	t.Helper()
	s, err := install.Script(p)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestGolden keeps the two scripts reviewable as files: go test -update
// rewrites them.
func TestGolden(t *testing.T) {
	t.Parallel()
	host := params()
	host.Host = netip.MustParseAddr("192.168.88.10")
	managed := params()
	managed.TunnelEndpoint = "eu1.example.net:51820"
	image := params()
	image.ImageURL, image.Disk, image.Arch = "https://downloads.example.net/tpf", "usb1", "arm64"
	for name, got := range map[string]string{
		"container.rsc":           script(t, params()),
		"container-managed.rsc":   script(t, managed),
		"container-image.rsc":     script(t, image),
		"host.rsc":                script(t, host),
		"uninstall-container.rsc": install.RemovalScript(install.Container),
		"uninstall-host.rsc":      install.RemovalScript(install.Host),
	} {
		path := filepath.Join("testdata", name)
		if *update {
			if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		want, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if got != string(want) {
			t.Errorf("%s differs from testdata/%s (go test ./controller/install -update rewrites it):\n%s", name, name, got)
		}
	}
}

func TestContainerScript(t *testing.T) {
	t.Parallel()
	s := script(t, params())
	for _, want := range []string{
		// the prerequisites, in the header
		"/system/device-mode/update container=yes",
		"container package",
		"tpf-agent-linux-armv7.tar",
		// checks before anything changes
		`:local dm [/system/device-mode/get container]`,
		`/system/resource/get architecture-name`,
		// network: veth, bridge, router address, masquerade, API let in
		"/interface/veth/add name=veth-tpf-agent address=172.31.254.2/30 gateway=172.31.254.1 comment=tpf-agent",
		"/interface/bridge/add name=tpf-agent comment=tpf-agent",
		"/interface/bridge/port/add bridge=tpf-agent interface=veth-tpf-agent comment=tpf-agent",
		"/ip/address/add address=172.31.254.1/30 interface=tpf-agent comment=tpf-agent",
		"/ip/firewall/nat/add chain=srcnat action=masquerade src-address=172.31.254.2 ",
		"/ip/firewall/filter/add chain=input action=accept protocol=tcp in-interface=tpf-agent src-address=172.31.254.2 dst-address=172.31.254.1 dst-port=$apiPort ",
		// least privilege
		"/user/group/add name=tpf-agent policy=read,write,api,policy,local,telnet,ssh,ftp,reboot,test,winbox,password,web,sniff,!sensitive,!romon ",
		`/user/add name=tpf group=tpf-agent password="` + testPassword + `" address=172.31.254.2/32 `,
		// the environment
		`:set ($env->"TPF_CONTROLLER_URL") "https://tpf.example.net"`,
		`:set ($env->"TPF_AGENT_TOKEN") "` + testToken + `"`,
		`:set ($env->"TPF_ROUTEROS_ADDRESS") ("172.31.254.1" . ":" . $apiPort)`,
		`:set ($env->"TPF_ROUTEROS_USER") "tpf"`,
		`:set ($env->"TPF_ROUTEROS_PASSWORD") "` + testPassword + `"`,
		// names that changed in 7.20, chosen by the version
		":local ros720 ($major > 7 || ($major = 7 && $minor >= 20))",
		`:set addEnv [:parse "/container/envs/add list=tpf-agent key=\$k value=\$v"]`,
		`:set addEnv [:parse "/container/envs/add name=tpf-agent key=\$k value=\$v"]`,
		":foreach k,v in=$env do={ $addEnv k=$k v=$v }",
		// the container, with DNS
		"/container/add file=",
		"interface=veth-tpf-agent",
		" envlists=tpf-agent dns=\\$dns hostname=tpf-agent start-on-boot=yes logging=yes comment=tpf-agent",
		" envlist=tpf-agent dns=\\$dns hostname=tpf-agent start-on-boot=yes logging=yes comment=tpf-agent",
		"$addCtr file=$file root=$root dns=$dns",
		"/container/start $ctr",
		// an earlier install goes first
		`/container/stop $c`,
		`/user/remove [find where group="tpf-agent"]`,
		// how to tell it worked
		"/api/routers/9c56202d-c388-484d-ac9a-7677f24f1f18",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("script lacks %q", want)
		}
	}
	inOrder(t, s, "/system/device-mode/get container", "/container/stop $c", "/interface/veth/add", "/user/add", "/container/envs/add", "/container/add", "/container/start")
	if strings.Contains(s, `comment~"^tpf:"`) {
		t.Error("the install script removes tpf: rules; only removal may")
	}
}

func TestHostScript(t *testing.T) {
	t.Parallel()
	p := params()
	p.Host = netip.MustParseAddr("192.168.88.10")
	s := script(t, p)
	for _, want := range []string{
		"/ip/firewall/filter/add chain=input action=accept protocol=tcp src-address=192.168.88.10 dst-port=$apiPort ",
		"policy=read,write,api,policy,",
		`/user/add name=tpf group=tpf-agent password="` + testPassword + `" address=192.168.88.10/32 `,
		`:put "TPF_CONTROLLER_URL=https://tpf.example.net"`,
		`:put "TPF_AGENT_TOKEN=` + testToken + `"`,
		`:put "TPF_ROUTEROS_PASSWORD=` + testPassword + `"`,
		"/etc/tpf-agent/branch-7-hAP-ax3.env",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("script lacks %q", want)
		}
	}
	// A MIPS router has no container package: one /container command and
	// RouterOS refuses the whole script.
	if strings.Contains(s, "/container") || strings.Contains(s, "/interface/veth") {
		t.Error("the off-router script uses /container or /interface/veth, which a MIPS router lacks")
	}
}

func TestOptions(t *testing.T) {
	t.Parallel()
	p := params()
	p.Subnet = netip.MustParsePrefix("10.250.0.0/29")
	p.Disk = "/usb1/"
	p.ImageURL = "https://downloads.example.net/tpf/v1.2.0/"
	p.Arch = "arm64"
	p.User = "tpf-branch7"
	s := script(t, p)
	for _, want := range []string{
		"address=10.250.0.2/29 gateway=10.250.0.1",
		"/ip/address/add address=10.250.0.1/29",
		`:local dir "usb1/"`,
		`/tool/fetch url=("https://downloads.example.net/tpf/v1.2.0" . "/tpf-agent-linux-" . $plat . ".tar") dst-path=$file`,
		`:if ($plat != "arm64") do={`,
		"/user/add name=tpf-branch7 group=tpf-agent",
		`:set ($env->"TPF_ROUTEROS_USER") "tpf-branch7"`,
	} {
		if !strings.Contains(s, want) {
			t.Errorf("script lacks %q", want)
		}
	}
}

// TestPasteable: a RouterOS terminal takes pasted text as typed keys, so
// the scripts hold no '?' (help) or tab (completion), only ASCII, balanced
// brackets, one top-level block, comment lines without quotes or brackets,
// and no '$' inside string literals (values are never interpolated by
// accident).
func TestPasteable(t *testing.T) {
	t.Parallel()
	host := params()
	host.Host = netip.MustParseAddr("192.168.88.10")
	opts := params()
	opts.ImageURL, opts.Disk, opts.Arch = "https://downloads.example.net/tpf", "usb1", "x86"
	hostile := params()
	hostile.RouterName = "r1 \"}\n/system/reboot\n# {$x} ? \t ünïcode"
	plain := params()
	plain.ControllerURL = "http://[fd00::10]:8080/tpf"
	plainHost := host
	plainHost.ControllerURL = plain.ControllerURL
	for name, s := range map[string]string{
		"container":           script(t, params()),
		"host":                script(t, host),
		"options":             script(t, opts),
		"plain http":          script(t, plain),
		"plain http host":     script(t, plainHost),
		"hostile name":        script(t, hostile),
		"uninstall container": install.RemovalScript(install.Container),
		"uninstall host":      install.RemovalScript(install.Host),
	} {
		checkPasteable(t, name, s)
	}
}

func checkPasteable(t *testing.T, name, s string) {
	t.Helper()
	if strings.ContainsAny(s, "?\t\r") {
		t.Errorf("%s: holds '?', a tab or a carriage return", name)
	}
	blocks := 0
	depth := map[rune]int{}
	closing := map[rune]rune{'}': '{', ']': '[', ')': '('}
	for n, line := range strings.Split(s, "\n") {
		for _, r := range line {
			if r > 126 {
				t.Errorf("%s line %d: non-ASCII %q", name, n+1, line)
				break
			}
		}
		if strings.HasPrefix(strings.TrimSpace(line), "#") {
			if strings.ContainsAny(line, "\"{}[]$") {
				t.Errorf("%s line %d: comment holds a quote, bracket or $: %q", name, n+1, line)
			}
			continue
		}
		if line == "/system/reboot" {
			t.Errorf("%s line %d: a router name escaped its comment", name, n+1)
		}
		inString := false
		for i := 0; i < len(line); i++ {
			c := rune(line[i])
			switch {
			case inString && c == '\\':
				i++
			case c == '"':
				inString = !inString
			case inString && c == '$':
				t.Errorf("%s line %d: '$' inside a string literal: %q", name, n+1, line)
			case inString:
			case c == '{' || c == '[' || c == '(':
				if c == '{' && depth['{'] == 0 {
					blocks++
				}
				depth[c]++
			case closing[c] != 0:
				depth[closing[c]]--
				if depth[closing[c]] < 0 {
					t.Fatalf("%s line %d: unbalanced %c: %q", name, n+1, c, line)
				}
			}
		}
		if inString {
			t.Errorf("%s line %d: unterminated string: %q", name, n+1, line)
		}
		if depth['('] != 0 || depth['['] != 0 {
			t.Errorf("%s line %d: brackets open at the end of the line: %q", name, n+1, line)
			depth['('], depth['['] = 0, 0
		}
	}
	if depth['{'] != 0 || blocks != 1 {
		t.Errorf("%s: got %d top-level blocks and depth %d at the end, want one closed block", name, blocks, depth['{'])
	}
}

func TestRemovalScript(t *testing.T) {
	t.Parallel()
	c := install.RemovalScript(install.Container)
	inOrder(t, c, "/container/stop", "/container/remove", `/user/remove [find where group="tpf-agent"]`, `/ip/firewall/nat/remove [find where comment~"^tpf:"]`)
	h := install.RemovalScript(install.Host)
	inOrder(t, h, `/user/remove [find where group="tpf-agent"]`, `/ip/firewall/nat/remove [find where comment~"^tpf:"]`)
	if strings.Contains(h, "/container") {
		t.Error("the off-router removal uses /container, which a MIPS router lacks")
	}
}

// TestGuideHasRemovalScripts: container/README.md shows the removal
// scripts exactly as this package renders them.
func TestGuideHasRemovalScripts(t *testing.T) {
	t.Parallel()
	guide, err := os.ReadFile(filepath.Join("..", "..", "container", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []install.Variant{install.Container, install.Host} {
		if s := install.RemovalScript(v); !strings.Contains(string(guide), s) {
			t.Errorf("container/README.md lacks this removal script verbatim:\n%s", s)
		}
	}
}

func TestRefused(t *testing.T) {
	t.Parallel()
	cases := []struct {
		field  string
		change func(*install.Params)
	}{
		{"controller_url", func(p *install.Params) { p.ControllerURL = "" }},
		{"controller_url", func(p *install.Params) { p.ControllerURL = "ftp://tpf.example.net" }},
		{"controller_url", func(p *install.Params) { p.ControllerURL = "https://tpf.example.net/?x=1" }},
		{"controller_url", func(p *install.Params) { p.ControllerURL = `https://tpf.example.net/"$x` }},
		{"controller_url", func(p *install.Params) { p.ControllerURL = "https://user:pw@tpf.example.net" }},
		// to an agent, these are its own machine or no machine
		{"controller_url", func(p *install.Params) { p.ControllerURL = "http://127.0.0.1:8080" }},
		{"controller_url", func(p *install.Params) { p.ControllerURL = "http://127.8.9.10" }},
		{"controller_url", func(p *install.Params) { p.ControllerURL = "http://localhost:8080" }},
		{"controller_url", func(p *install.Params) { p.ControllerURL = "https://LocalHost./" }},
		{"controller_url", func(p *install.Params) { p.ControllerURL = "https://tpf.localhost" }},
		{"controller_url", func(p *install.Params) { p.ControllerURL = "http://[::1]:8080" }},
		{"controller_url", func(p *install.Params) { p.ControllerURL = "http://[::ffff:127.0.0.1]:8080" }},
		{"controller_url", func(p *install.Params) { p.ControllerURL = "http://0.0.0.0:8080" }},
		{"controller_url", func(p *install.Params) { p.ControllerURL = "http://[::]:8080" }},
		{"controller_url", func(p *install.Params) { p.ControllerURL = "http://169.254.10.1:8080" }},
		{"controller_url", func(p *install.Params) { p.ControllerURL = "http://[fe80::1]:8080" }},
		{"controller_url", func(p *install.Params) { p.ControllerURL = "http://224.0.0.1" }},
		{"image_url", func(p *install.Params) { p.ImageURL = "http://127.0.0.1/tpf" }},
		{"image_url", func(p *install.Params) { p.ImageURL = "http://localhost/tpf" }},
		{"agent_token", func(p *install.Params) { p.AgentToken = "" }},
		{"agent_token", func(p *install.Params) { p.AgentToken = `tpfa_"; /system/reboot` }},
		{"routeros_user", func(p *install.Params) { p.User = "admin" }},
		{"routeros_user", func(p *install.Params) { p.User = "tpf user" }},
		{"password", func(p *install.Params) { p.Password = "short" }},
		{"password", func(p *install.Params) { p.Password = `aaaaaaaaaaaaaa"$` }},
		// RouterOS minimum-categories=4: upper, lower, digit and symbol
		{"password", func(p *install.Params) { p.Password = "aEkUAFAd93v2HTR26gCqKZ4P" }},
		{"password", func(p *install.Params) { p.Password = "aekuafad93v2_htr26gcq.kz4" }},
		{"password", func(p *install.Params) { p.Password = "AEKUAFAD93V2_HTR26GCQ.KZ4" }},
		{"password", func(p *install.Params) { p.Password = "aEkUAFAdxvzHTR_gCq.KZ" }},
		{"password", func(p *install.Params) { p.Password = "aEkUAFAd93v2 HTR26gCq.KZ4" }},
		{"subnet", func(p *install.Params) { p.Subnet = netip.MustParsePrefix("172.31.254.0/31") }},
		{"subnet", func(p *install.Params) { p.Subnet = netip.MustParsePrefix("172.31.254.1/30") }},
		{"subnet", func(p *install.Params) { p.Subnet = netip.MustParsePrefix("fd00::/64") }},
		{"subnet", func(p *install.Params) { p.Subnet = netip.MustParsePrefix("127.0.0.0/30") }},
		{"disk", func(p *install.Params) { p.Disk = "usb1/../flash" }},
		{"disk", func(p *install.Params) { p.Disk = `usb1"` }},
		{"image_url", func(p *install.Params) { p.ImageURL = "file:///tmp" }},
		{"arch", func(p *install.Params) { p.Arch = "mipsbe" }},
		{"host", func(p *install.Params) { p.Host = netip.MustParseAddr("fd00::1") }},
		{"host", func(p *install.Params) { p.Host = netip.MustParseAddr("127.0.0.1") }},
	}
	for _, c := range cases {
		p := params()
		c.change(&p)
		_, err := install.Script(p)
		fe, ok := err.(*install.FieldError)
		if !ok || fe.Field != c.field {
			t.Errorf("%+v: got %v, want a FieldError on %s", p, err, c.field)
		}
	}
}

func TestArchiveName(t *testing.T) {
	t.Parallel()
	for arch, want := range map[string]string{"arm": "tpf-agent-linux-armv7.tar", "arm64": "tpf-agent-linux-arm64.tar", "x86": "tpf-agent-linux-amd64.tar"} {
		if got, ok := install.ArchiveName(arch); !ok || got != want {
			t.Errorf("ArchiveName(%q): got %q, %v; want %q", arch, got, ok, want)
		}
	}
	for _, arch := range []string{"mipsbe", "mmips", "smips", "tile", "ppc", ""} {
		if got, ok := install.ArchiveName(arch); ok {
			t.Errorf("ArchiveName(%q): got %q, want none: RouterOS runs no containers there", arch, got)
		}
	}
}

func TestNewPassword(t *testing.T) {
	t.Parallel()
	seen := map[string]bool{}
	shape := regexp.MustCompile(`^[A-Za-z0-9._-]{24}$`)
	categories := []*regexp.Regexp{regexp.MustCompile(`[A-Z]`), regexp.MustCompile(`[a-z]`), regexp.MustCompile(`[0-9]`), regexp.MustCompile(`[._-]`)}
	for range 200 {
		pw := install.NewPassword()
		if !shape.MatchString(pw) {
			t.Fatalf("NewPassword: got %q, want 24 letters, digits, '.', '_' or '-'", pw)
		}
		for _, c := range categories {
			if !c.MatchString(pw) {
				t.Fatalf("NewPassword: %q has no %s, which /user/settings minimum-categories=4 wants", pw, c)
			}
		}
		if seen[pw] {
			t.Fatalf("NewPassword repeated %q", pw)
		}
		seen[pw] = true
		p := params()
		p.Password = pw
		s, err := install.Script(p)
		if err != nil {
			t.Fatalf("a NewPassword password is refused: %v", err)
		}
		// carried verbatim, never escaped
		if !strings.Contains(s, `password="`+pw+`"`) || !strings.Contains(s, `"TPF_ROUTEROS_PASSWORD") "`+pw+`"`) {
			t.Fatalf("password %q is not in the script verbatim", pw)
		}
	}
}

// TestPlainHTTPWarning: an http controller URL is warned about in the
// header and when the script runs; an https one is not.
func TestPlainHTTPWarning(t *testing.T) {
	t.Parallel()
	const warning = "# WARNING: the controller URL in this script is plain http."
	for _, host := range []bool{false, true} {
		p := params()
		if host {
			p.Host = netip.MustParseAddr("192.168.88.10")
		}
		if s := script(t, p); strings.Contains(s, "plain http") {
			t.Errorf("host %v: https URL, but the script warns about plain http", host)
		}
		p.ControllerURL = "http://tpf.internal:8080"
		s := script(t, p)
		header := s[:strings.Index(s, "\n{\n")]
		if !strings.Contains(header, warning) || !strings.Contains(header, "TPF_PUBLIC_URL") {
			t.Errorf("host %v: the header lacks the plain-http warning:\n%s", host, header)
		}
		if !strings.Contains(s, `:put "tpf: warning: the controller URL is plain http`) {
			t.Errorf("host %v: the script does not warn when it runs", host)
		}
	}
}

// TestDeviceModeFetch: with image_url the script checks device-mode's
// fetch before it downloads, and the header says how to allow it.
func TestDeviceModeFetch(t *testing.T) {
	t.Parallel()
	p := params()
	p.ImageURL = "https://downloads.example.net/tpf"
	s := script(t, p)
	inOrder(t, s,
		"#       /system/device-mode/update container=yes fetch=yes",
		":local dm [/system/device-mode/get container]",
		"update container=yes fetch=yes and confirm it at the router",
		":local dmf [/system/device-mode/get fetch]",
		`:if ($dmf != true && $dmf != "yes") do={ :error "tpf: device-mode does not allow fetch`,
		"/system/device-mode/update fetch=yes and confirm it at the router",
		"/tool/fetch url=",
		"/container/stop",
	)
	if s := script(t, params()); strings.Contains(s, "fetch=yes") || strings.Contains(s, "device-mode/get fetch") || strings.Contains(s, "/tool/fetch") {
		t.Error("without image_url the script still needs fetch")
	}
}

// TestContainerStart: the start loop waits on the state each version has
// (status before 7.20, running and stopped after), starts a stopped
// container, and succeeds only once it runs.
func TestContainerStart(t *testing.T) {
	t.Parallel()
	s := script(t, params())
	for _, want := range []string{
		`:set ctrState [:parse ":local c [/container/find where comment=\"tpf-agent\"]; :if ([/container/get \$c running]) do={ :return \"running\" }; :if ([/container/get \$c stopped]) do={ :return \"stopped\" }; :return \"busy\""]`,
		`:set ctrState [:parse ":return [/container/get [/container/find where comment=\"tpf-agent\"] status]"]`,
		`:if ($st = "running") do={ :set running true }`,
		`:if ($st = "stopped") do={`,
		`:if (!$running) do={ :error`,
	} {
		if !strings.Contains(s, want) {
			t.Errorf("script lacks %q", want)
		}
	}
	inOrder(t, s, ":local ros720", ":if ($ros720) do={", "} else={", "$addCtr file=$file", "[$ctrState]", "/container/start $ctr")
	// an empty state (a property the version lacks) must not pass for unpacking
	if strings.Contains(s, `$st = ""`) || strings.Contains(s, "extracting") {
		t.Error("the start loop still guesses the state from status values")
	}
}

// TestAPIService: the agent's /32 is added to a restricted api service, and
// a service the script enables accepts only the agent.
func TestAPIService(t *testing.T) {
	t.Parallel()
	host := params()
	host.Host = netip.MustParseAddr("192.168.88.10")
	for addr, s := range map[string]string{"172.31.254.2": script(t, params()), "192.168.88.10": script(t, host)} {
		inOrder(t, s,
			`:local apiAllow "`+addr+`/32"`,
			":if ([/ip/service/get api disabled]) do={",
			"/ip/service/set api disabled=no address=$apiAllow",
			":local cur [/ip/service/get api address]",
			`:if ([:tostr $a] = $apiAllow || [:tostr $a] = "`+addr+`") do={ :set have true }`,
			"/ip/service/set api address=($list . $apiAllow)",
			":local apiPort [/ip/service/get api port]",
			"/user/add",
		)
		if strings.Contains(s, "warning: the api service accepts only some addresses") {
			t.Errorf("%s: the script still only warns about a restricted api service", addr)
		}
	}
}

// TestReinstallOrder: the old root-dir is waited for, bounded, before
// anything new is made, and bridge ports go before the veth.
func TestReinstallOrder(t *testing.T) {
	t.Parallel()
	s := script(t, params())
	inOrder(t, s,
		"/container/remove $c",
		`/interface/bridge/port/remove [find where interface="veth-tpf-agent"]`,
		`/interface/veth/remove [find where name="veth-tpf-agent"]`,
		`:if ([:len [/file/find where name=$root]] > 0) do={`,
		`:do { /file/remove [find where name=$root] } on-error={ :put`,
		`:while (([:len [/file/find where name=$root]] > 0) && ($left > 0)) do={`,
		`is still there after 3 minutes`,
		"/interface/veth/add",
		"$addCtr",
	)
	inOrder(t, install.RemovalScript(install.Container),
		`/interface/bridge/port/remove [find where interface="veth-tpf-agent"]`,
		`/interface/veth/remove [find where name="veth-tpf-agent"]`)
}

// TestContainerDNS: the container's DNS is the router, let in by the
// firewall, when the router answers DNS; else the router's servers.
func TestContainerDNS(t *testing.T) {
	t.Parallel()
	s := script(t, params())
	inOrder(t, s,
		"/ip/firewall/filter/add chain=input action=accept protocol=tcp in-interface=tpf-agent src-address=172.31.254.2 dst-address=172.31.254.1 dst-port=$apiPort ",
		`:local dns "172.31.254.1"`,
		":if ([/ip/dns/get allow-remote-requests]) do={",
		"/ip/firewall/filter/add chain=input action=accept protocol=udp in-interface=tpf-agent src-address=172.31.254.2 dst-address=172.31.254.1 dst-port=53 ",
		"/ip/firewall/filter/add chain=input action=accept protocol=tcp in-interface=tpf-agent src-address=172.31.254.2 dst-address=172.31.254.1 dst-port=53 ",
		"} else={",
		"[/ip/dns/get servers]",
		"[/ip/dns/get dynamic-servers]",
		// all of tpf-agent's input rules go first, ahead of the first other one
		`:local others [/ip/firewall/filter/find where chain="input" && !dynamic && !(comment~"^tpf-agent")]`,
		"/ip/firewall/filter/move $ours destination=[:pick $others 0]",
		"$addCtr file=$file root=$root dns=$dns",
	)
	h := params()
	h.Host = netip.MustParseAddr("192.168.88.10")
	if strings.Contains(script(t, h), "dst-port=53") {
		t.Error("the off-router script opens DNS; it has no container")
	}
}

// inOrder checks that the pieces appear in s in this order.
func inOrder(t *testing.T, s string, pieces ...string) {
	t.Helper()
	at := 0
	for _, p := range pieces {
		i := strings.Index(s[at:], p)
		if i < 0 {
			t.Errorf("%q missing, or not after the pieces before it (%q)", p, pieces)
			return
		}
		at += i + len(p)
	}
}
