// Package install renders the RouterOS scripts that install the tpf agent on
// a router and remove it again: ready to paste into a RouterOS terminal,
// with the controller's URL, the router's agent token and the password of a
// least-privilege RouterOS user filled in.
//
// Two variants: the agent as a RouterOS container (arm, arm64, x86), and the
// agent off the router on a Linux host, for routers that cannot run
// containers (MIPS), where the script sets up only the router's side.
//
// It is pure: it neither issues tokens nor reads the clock; the caller
// passes both in. It imports only the standard library.
package install

import (
	"bytes"
	"crypto/rand"
	_ "embed"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"regexp"
	"strings"
	"text/template"
	"time"
)

// Defaults for Params' zero values.
const (
	// DefaultUser is the RouterOS user the agent logs in as (the agent's own
	// default for TPF_ROUTEROS_USER).
	DefaultUser = "tpf"
)

// DefaultSubnet is the container network: the router takes its first
// address (172.31.254.1) on the tpf-agent bridge, the container the second.
var DefaultSubnet = netip.MustParsePrefix("172.31.254.0/30")

// Policy is the RouterOS user group's policy: read (print rules and the
// router's identity), write (add, change and remove NAT rules, firewall
// rules, the tunnel and connection-tracking entries), api (log in through
// the API) and policy (manage the users of transient accesses; RouterOS
// lets only policy with write do that). The group also holds every policy a
// transient access's full group grants (ssh, winbox, reboot…), since a
// user may not be able to grant rights its own group lacks; it never holds
// sensitive (secrets) or romon. Its user may log in only from the agent's
// address. Denied policies are spelled out, so that the group's rights are
// plain to read on the router.
const Policy = "read,write,api,policy,local,telnet,ssh,ftp,reboot,test,winbox,password,web,sniff,!sensitive,!romon"

// archives maps RouterOS's architecture names (/system/resource
// architecture-name) to the image archives make container writes.
var archives = map[string]string{
	"arm":   "tpf-agent-linux-armv7.tar",
	"arm64": "tpf-agent-linux-arm64.tar",
	"x86":   "tpf-agent-linux-amd64.tar",
}

// ArchiveName is the image archive the install script expects for a router
// whose architecture-name is arch (arm, arm64 or x86); false for
// architectures that cannot run containers.
func ArchiveName(arch string) (string, bool) {
	n, ok := archives[arch]
	return n, ok
}

// Params are what a script is made of. ControllerURL, AgentToken and
// Password are required; the zero value of every other field means its
// default.
type Params struct {
	// ControllerURL is where the agent dials: http(s)://host[:port][/path].
	ControllerURL string
	// AgentToken is the router's agent token, fresh for this script.
	AgentToken string
	// RouterID and RouterName identify the router in the script's comments.
	RouterID   string
	RouterName string
	// User is the RouterOS user the script creates for the agent; empty
	// means DefaultUser.
	User string
	// Password is that user's password; see NewPassword.
	Password string
	// Subnet is the container network (IPv4, /30 or larger); the zero
	// value means DefaultSubnet. Unused off the router.
	Subnet netip.Prefix
	// Disk is where the image archive and the container's files go, e.g.
	// usb1; empty means the router's own storage.
	Disk string
	// ImageURL, when set, is the http(s) directory the router downloads the
	// archive from (ImageURL/tpf-agent-linux-<arch>.tar); empty means the
	// archive is uploaded by hand.
	ImageURL string
	// Arch pins the router's architecture (arm, arm64, x86); empty means the
	// script reads it from the router.
	Arch string
	// Host, when valid, makes the off-router variant: the agent runs on this
	// Linux host and the script only prepares the router for it.
	Host netip.Addr
	// Generated is when the script was made, for its header.
	Generated time.Time
	// TunnelEndpoint is the region's edge's WireGuard endpoint, HOST:PORT
	// (UDP), that the agent's tunnel dials; empty in a region whose tunnel
	// is the operator's own. The script only names it: the agent builds the
	// tunnel.
	TunnelEndpoint string
}

// FieldError is a parameter that cannot go into a script. Field is the name
// the controller's API uses for it (a query parameter).
type FieldError struct {
	Field   string
	Message string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Message }

// Checks on values that end up inside RouterOS string literals and
// commands: none of them may hold a quote, a dollar sign, a backslash, a
// question mark, whitespace or a brace.
var (
	safeToken = regexp.MustCompile(`^[A-Za-z0-9_-]{8,200}$`)
	// safePassword is passwordAlphabet's characters; checkPassword also
	// wants one of each of its four categories.
	safePassword = regexp.MustCompile(`^[A-Za-z0-9._-]{12,64}$`)
	safeUser     = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$`)
	safeDisk     = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9._-]+)*$`)
	safeURL      = regexp.MustCompile(`^[A-Za-z0-9._~:/%@+,;=\[\]-]+$`)
	unsafeText   = regexp.MustCompile(`[^A-Za-z0-9 ._:/@+,()-]`)
	unsafeFile   = regexp.MustCompile(`[^A-Za-z0-9._-]+`)
)

// data is what the template sees: Params checked and with defaults filled.
type data struct {
	ControllerURL, AgentToken, RouterID, Name, File string
	// PlainHTTP: the controller URL is http, which the script warns about.
	PlainHTTP                           bool
	User, Password, Policy              string
	RouterAddr, ContainerAddr           netip.Addr
	Bits                                int
	Disk, Dir, ImageURL, Arch, Platform string
	Host                                netip.Addr
	// AgentAddr is where the agent reaches the router's API from: Host off
	// the router, else ContainerAddr.
	AgentAddr      netip.Addr
	Generated      string
	TunnelEndpoint string
}

func (p Params) check() (data, error) {
	d := data{
		RouterID: text(p.RouterID), Name: text(p.RouterName), Policy: Policy,
		Generated: p.Generated.UTC().Format(time.RFC3339), Host: p.Host,
		TunnelEndpoint: text(p.TunnelEndpoint),
	}
	if d.Name == "" {
		d.Name = "unnamed"
	}
	d.File = strings.Trim(unsafeFile.ReplaceAllString(p.RouterName, "-"), ".-")
	if d.File == "" {
		d.File = "router"
	}

	u, err := checkURL(p.ControllerURL)
	if err != nil {
		return d, &FieldError{"controller_url", err.Error()}
	}
	d.ControllerURL = u
	d.PlainHTTP = strings.HasPrefix(u, "http:")
	if !safeToken.MatchString(p.AgentToken) {
		return d, &FieldError{"agent_token", "must be a tpf agent token"}
	}
	d.AgentToken = p.AgentToken
	d.User = p.User
	if d.User == "" {
		d.User = DefaultUser
	}
	if !safeUser.MatchString(d.User) || strings.EqualFold(d.User, "admin") {
		return d, &FieldError{"routeros_user", "must be 1 to 32 letters, digits, '.', '_' or '-', starting with a letter or digit, and not admin"}
	}
	if !checkPassword(p.Password) {
		return d, &FieldError{"password", "must be 12 to 64 characters with at least one upper-case letter, lower-case letter, digit and one of " + passwordSymbols + "; use NewPassword"}
	}
	d.Password = p.Password

	if p.Host.IsValid() {
		if !p.Host.Is4() || !p.Host.IsGlobalUnicast() {
			return d, &FieldError{"host", "must be the IPv4 unicast address the agent's host reaches the router from"}
		}
		d.AgentAddr = p.Host
		return d, nil
	}

	sub := p.Subnet
	if !sub.IsValid() {
		sub = DefaultSubnet
	}
	if !sub.Addr().Is4() || sub.Bits() < 8 || sub.Bits() > 30 || sub.Masked() != sub {
		return d, &FieldError{"subnet", "must be an IPv4 network from /8 to /30, written with its network address, e.g. 172.31.254.0/30"}
	}
	d.RouterAddr = sub.Addr().Next()
	d.ContainerAddr = d.RouterAddr.Next()
	d.AgentAddr = d.ContainerAddr
	d.Bits = sub.Bits()
	if !d.RouterAddr.IsGlobalUnicast() && !d.RouterAddr.IsPrivate() {
		return d, &FieldError{"subnet", "must be a unicast network, e.g. 172.31.254.0/30"}
	}

	if disk := strings.Trim(p.Disk, "/"); disk != "" {
		if !safeDisk.MatchString(disk) || strings.Contains(disk, "..") {
			return d, &FieldError{"disk", "must be a RouterOS disk or directory name such as usb1 or nvme1/containers"}
		}
		d.Disk, d.Dir = disk, disk+"/"
	}
	if p.ImageURL != "" {
		u, err := checkURL(p.ImageURL)
		if err != nil {
			return d, &FieldError{"image_url", err.Error()}
		}
		d.ImageURL = strings.TrimSuffix(u, "/")
	}
	if p.Arch != "" {
		name, ok := archives[p.Arch]
		if !ok {
			return d, &FieldError{"arch", "must be arm, arm64 or x86: RouterOS runs containers on nothing else (for MIPS, set host instead)"}
		}
		d.Arch = p.Arch
		d.Platform = strings.TrimSuffix(strings.TrimPrefix(name, "tpf-agent-linux-"), ".tar")
	}
	return d, nil
}

func checkURL(s string) (string, error) {
	u, err := url.Parse(s)
	switch {
	case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
		return "", fmt.Errorf("must be an http(s) URL such as https://tpf.example.net")
	case u.User != nil || u.RawQuery != "" || u.ForceQuery || u.Fragment != "":
		return "", fmt.Errorf("must have no user, query or fragment")
	case !safeURL.MatchString(s):
		return "", fmt.Errorf("holds characters a RouterOS script cannot carry safely")
	}
	if err := reachable(u.Hostname()); err != nil {
		return "", err
	}
	return s, nil
}

// errUnreachable: to an agent (in a router's container, or on a host beside
// it) and to the router's /tool/fetch, these hosts are its own machine, or
// no machine at all, never the controller.
var errUnreachable = errors.New("must name a host that routers and agents can reach, not localhost or a loopback, unspecified, link-local or multicast address (to an agent, those are its own machine or none)")

// reachable refuses hosts that cannot be another machine: localhost (and
// *.localhost, RFC 6761), and loopback, unspecified, link-local and
// multicast IP addresses, IPv4-mapped ones included.
func reachable(host string) error {
	h := strings.ToLower(strings.TrimSuffix(host, "."))
	if h == "localhost" || strings.HasSuffix(h, ".localhost") {
		return errUnreachable
	}
	a, err := netip.ParseAddr(h)
	if err != nil {
		return nil // a name: whether it resolves is the operator's business
	}
	a = a.Unmap()
	if a.IsLoopback() || a.IsUnspecified() || a.IsLinkLocalUnicast() || a.IsMulticast() {
		return errUnreachable
	}
	return nil
}

// text makes free text (a router's name) safe for a comment line.
func text(s string) string {
	s = unsafeText.ReplaceAllString(s, "_")
	if len(s) > 100 {
		s = s[:100]
	}
	return s
}

//go:embed script.rsc.tmpl
var scriptSource string

var scripts = template.Must(template.New("install").Funcs(template.FuncMap{
	"q": func(v any) string { return quote(fmt.Sprint(v)) },
	"archive": func(arch string) string {
		n, _ := ArchiveName(arch)
		return n
	},
}).Parse(scriptSource))

// Script renders the install script for p: the container variant, or the
// off-router one when p.Host is set. A parameter that cannot go into a
// script is a *FieldError.
func Script(p Params) (string, error) {
	d, err := p.check()
	if err != nil {
		return "", err
	}
	name := "install-container"
	if d.Host.IsValid() {
		name = "install-host"
	}
	return render(name, d)
}

// Variant says where the agent runs, for RemovalScript.
type Variant int

const (
	// Container is the agent in a RouterOS container.
	Container Variant = iota
	// Host is the agent on a Linux host beside the router.
	Host
)

// RemovalScript is the script that removes the agent's RouterOS side
// (container, environment, network, firewall rules, user and group) and then
// every rule tagged tpf:, so that nothing tpf made is left on the router. It
// is the same for every router.
func RemovalScript(v Variant) string {
	name := "uninstall-container"
	if v == Host {
		name = "uninstall-host"
	}
	s, err := render(name, data{})
	if err != nil {
		panic(err) // the templates are fixed; tests render them
	}
	return s
}

func render(name string, d data) (string, error) {
	var b bytes.Buffer
	if err := scripts.ExecuteTemplate(&b, name, d); err != nil {
		return "", fmt.Errorf("install script %s: %w", name, err)
	}
	return b.String(), nil
}

// quote writes s as a RouterOS string literal.
func quote(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch r {
		case '"', '\\', '$', '?':
			b.WriteByte('\\')
			b.WriteRune(r)
		case '\n':
			b.WriteString(`\n`)
		case '\r':
			b.WriteString(`\r`)
		case '\t':
			b.WriteString(`\t`)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// passwordSymbols are the password's fourth category. RouterOS's
// /user/settings minimum-categories=4 wants a symbol besides upper-case,
// lower-case and digit. These three are plain characters inside a RouterOS
// double-quoted string (where only the double quote, the backslash, which
// starts an escape such as \_ for a space, the dollar sign and, typed
// into a terminal, the question mark are special), in a systemd
// EnvironmentFile and in a shell word, so no copy of the password ever
// needs escaping.
const passwordSymbols = "-_."

// passwordAlphabet is what passwords are made of: letters, digits and
// passwordSymbols, nothing that needs quoting or escaping where a script
// carries a password.
const passwordAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789" + passwordSymbols

// checkPassword: passwordAlphabet only, 12 to 64 long, and each of the four
// categories at least once (what RouterOS's strictest policy wants).
func checkPassword(pw string) bool {
	if !safePassword.MatchString(pw) {
		return false
	}
	var upper, lower, digit, symbol bool
	for _, c := range pw {
		switch {
		case c >= 'A' && c <= 'Z':
			upper = true
		case c >= 'a' && c <= 'z':
			lower = true
		case c >= '0' && c <= '9':
			digit = true
		default:
			symbol = true
		}
	}
	return upper && lower && digit && symbol
}

// NewPassword returns a random password for the agent's RouterOS user: 24
// characters of passwordAlphabet (65), about 144 bits, with at least one
// upper-case letter, lower-case letter, digit and symbol, so that routers
// with /user/settings minimum-categories=4 take it. It draws whole
// passwords until one has all four, which keeps every such password equally
// likely.
func NewPassword() string {
	const n = 24
	// 195 = 3*65: reject the top bytes so every character is equally likely.
	const limit = 256 - 256%len(passwordAlphabet)
	b := make([]byte, n)
	out := make([]byte, n)
	for {
		for i := 0; i < n; {
			if _, err := rand.Read(b); err != nil {
				panic("crypto/rand: " + err.Error()) // never fails on supported platforms
			}
			for _, c := range b {
				if int(c) < limit && i < n {
					out[i] = passwordAlphabet[int(c)%len(passwordAlphabet)]
					i++
				}
			}
		}
		if pw := string(out); checkPassword(pw) {
			return pw
		}
	}
}

// PublicURL is the controller's URL as agents reach it: configured
// (TPF_PUBLIC_URL) when set, else the scheme and host r came in with (https
// behind a proxy that says X-Forwarded-Proto: https). Script refuses a URL
// agents could not reach.
func PublicURL(r *http.Request, configured string) string {
	if configured != "" {
		return strings.TrimSuffix(configured, "/")
	}
	scheme := "http"
	if r.TLS != nil || strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https") {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

// StandInToken has the shape of an agent token: Script accepts parameters
// with it exactly when it accepts them with a real one, so that callers
// check a script before they rotate the router's token for it (a refused
// script must leave the token as it was).
const StandInToken = "tpfa_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
