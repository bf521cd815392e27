// Package config reads seducepp.conf, the INI file both daemons share, into one typed,
// validated Config.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/piseduce/piseduce/pkg/names"
	"github.com/piseduce/piseduce/pkg/process"
)

// SearchPath is where the config is looked up when no -config flag is given, in the original's order.
var SearchPath = []string{"/etc/seducepp.conf", "./seducepp.conf"}

// Secret is a string that never prints: logs and error messages show <secret>.
type Secret string

func (Secret) String() string   { return "<secret>" }
func (Secret) GoString() string { return "<secret>" }

// MarshalText keeps secrets out of JSON and text encodings too.
func (Secret) MarshalText() ([]byte, error) { return []byte("<secret>"), nil }

// Value returns the secret itself, for the one place that needs it.
func (s Secret) Value() string { return string(s) }

// Timeout is a state's pair of timeouts: hard-reboot the node after BeforeReboot, give up
// (state lost) after Lost. Zero means no such timeout.
type Timeout = process.Timeout

// Config is everything seducepp.conf says.
type Config struct {
	Path string

	Frontend struct {
		Listen        string // address to bind, default 127.0.0.1 (a reverse proxy or an explicit 0.0.0.0 opens it)
		Port          int
		PublicAddress string // base URL used in e-mails
		SessionSecret Secret // generated and stored in the database when empty
		SecureCookies bool   // set behind TLS
		MetricsListen string // separate listen address for /metrics; empty = served behind admin auth
		// TrustedProxies are the reverse proxies in front of pifrontend: from them, the client's
		// address is read from X-Forwarded-For (empty: the peer's address is the client's).
		TrustedProxies []netip.Prefix
	}
	Mail struct {
		SMTPAddress string
		SMTPPort    int
		Account     string
		Password    Secret
		From        string
	}
	DB struct {
		ConnectionURL Secret
	}
	Tasks struct {
		Tick          string        // cron spec
		Workers       int           // deployments worked on at once
		Lease         time.Duration // how long a claimed deployment stays ours without renewal
		StepDeadline  time.Duration // the longest any single remote call may take
		MaxBooting    int           // nodes powered on at once
		MaxCopying    int           // images copied at once (env_copy, img_copy)
		StopGrace     time.Duration // how long a clean stop waits for running steps
		NodeSilent    time.Duration // how long a node may not answer a state that needs it before it is power-cycled
		SwitchSilent  time.Duration // how long a state may wait for a switch that does not answer before the node is lost
		MetricsListen string
		// PowerOffWait is how long a node is left without power before it is powered on again
		// (turn_off, a hard reboot), for its capacitors to drain: 0 is pitasks' safe default
		// (power.OffWait, 3 s); ModelOffWait sets it by node model (power_off_wait.RPI4B).
		PowerOffWait time.Duration
		ModelOffWait map[string]time.Duration
	}
	Cluster struct {
		TFTPRoot    string
		NFSBootDir  string // boot files that make a node boot the NFS system
		ImgDir      string
		NFSHostname string // /etc/hostname of the NFS system
		SSHKey      string // pimaster's private key for the nodes
		// NFSHostKey is the NFS system's SSH host public key file (admin/install.sh makes the
		// key): pitasks pins it, and reaches no NFS system without it (nothing is trusted on
		// first use).
		NFSHostKey string
		PimasterIP string
		// NodesNetwork (CIDR) and NodesInterface are the nodes' network and the pimaster's
		// interface on it: dnsmasq serves them, admin/install.sh exports the NFS root to that
		// network only and firewalls that interface.
		NodesNetwork   string
		NodesInterface string
		// dnsmasq: the DHCP hosts file pitasks generates from the database, the pid file of the
		// dnsmasq to reload (SIGHUP) and its log (log-dhcp), which node discovery watches.
		DHCPHostsFile  string
		DnsmasqPIDFile string
		DnsmasqLog     string
		FirstNodeIP    string // node discovery gives new nodes the free addresses from here on
	}
	// Nginx: the pimaster's nginx publishes deployed nodes that have a public port (SSH, and
	// HTTP for web environments). pitasks writes StreamConf and HTTPConf from the database and
	// runs Reload when they change; all off while both paths are empty.
	Nginx struct {
		StreamConf string   // included in nginx.conf's stream {} block
		HTTPConf   string   // included in its http {} block
		Reload     []string // a program and its arguments (no shell), e.g. nginx -s reload
		// PublicAddress is the pimaster's host name or address as users outside reach it: the
		// deployment page's ssh command names it.
		PublicAddress string
		Listen        string // the address nginx listens on for the nodes' ports; empty: all
		// A web node is http://NODE.HTTPDomain:HTTPPort/ (HTTPDomain's wildcard DNS record
		// names the pimaster); no HTTP publishing while HTTPDomain is empty.
		HTTPPort   int
		HTTPDomain string
	}
	// Timeouts overrides the per-state timeouts of the engine, by process and state: the
	// key deploy.turn_on of [timeouts]. A bare state name (turn_on), the old form, sets that
	// state in every process that has it, unless the process's own key is given too.
	Timeouts map[process.Key]Timeout
	// Warnings are what the file says that still works but should be written otherwise.
	Warnings []string

	bareTimeouts []bareTimeout
}

// bareTimeout is a [timeouts] key of the old form, applied once every key is read.
type bareTimeout struct {
	e    entry
	keys []process.Key
	t    Timeout
}

// Default returns the configuration used for every key the file does not set.
func Default() *Config {
	c := &Config{Timeouts: map[process.Key]Timeout{}}
	c.Frontend.Listen = "127.0.0.1"
	c.Frontend.Port = 9000
	c.Frontend.PublicAddress = "http://localhost:9000"
	c.Mail.SMTPPort = 587
	c.DB.ConnectionURL = "sqlite://./data/piseduce.db"
	c.Tasks.Tick = "@every 2s"
	c.Tasks.Workers = 64
	c.Tasks.Lease = 60 * time.Second
	c.Tasks.StepDeadline = 30 * time.Minute
	c.Tasks.MaxBooting = 8
	// 48 copies never bind with 8 boot slots on the sites of BENCHMARKS' scale model (a
	// copy takes minutes, a node starts one every ~5 s), and leave 16 of the 64 workers to
	// the other states; their memory is pitasks' bound whatever the number of nodes.
	c.Tasks.MaxCopying = 48
	c.Tasks.StopGrace = 20 * time.Second
	c.Tasks.NodeSilent = 45 * time.Second  // three SSH connection timeouts
	c.Tasks.SwitchSilent = 5 * time.Minute // a switch rebooting takes one or two
	c.Cluster.TFTPRoot = "/tftpboot"
	c.Cluster.NFSBootDir = "/tftpboot/rpiboot_uboot"
	c.Cluster.ImgDir = "/var/lib/piseduce/img"
	c.Cluster.NFSHostname = "nfspi"
	c.Cluster.SSHKey = "/var/lib/piseduce/id_ed25519"
	c.Cluster.DHCPHostsFile = "/var/lib/piseduce/dhcp-hosts"
	c.Cluster.DnsmasqPIDFile = "/run/dnsmasq/dnsmasq.pid"
	c.Cluster.DnsmasqLog = "/var/log/piseduce/dnsmasq.log"
	c.Nginx.HTTPPort = 80
	return c
}

// Find returns the config file to read: explicit when given, else the first of SearchPath that exists.
func Find(explicit string) (string, error) {
	if explicit != "" {
		return explicit, nil
	}
	for _, p := range SearchPath {
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("config: no seducepp.conf found (looked in %s); use -config", strings.Join(SearchPath, ", "))
}

// Load reads and validates the file at path.
func Load(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	c, err := Parse(path, bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	c.Path = path
	return c, nil
}

// Parse reads a config from r; name is used in error messages.
func Parse(name string, r io.Reader) (*Config, error) {
	entries, err := parseINI(name, r)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	c := Default()
	for _, e := range entries {
		if err := c.set(e); err != nil {
			return nil, fmt.Errorf("config: %s:%d: [%s] %s: %w", name, e.line, e.section, e.key, err)
		}
	}
	for _, b := range c.bareTimeouts {
		c.Warnings = append(c.Warnings, fmt.Sprintf("%s:%d: [timeouts] %s = %s sets %s in every process that has it (%s): "+
			"name the process, as in %s = %s (one line per process)", name, b.e.line, b.e.key, b.e.value, b.e.key,
			keyList(b.keys), b.keys[0], b.e.value))
		for _, k := range b.keys {
			if _, set := c.Timeouts[k]; !set {
				c.Timeouts[k] = b.t
			}
		}
	}
	c.bareTimeouts = nil
	if err := c.validate(); err != nil {
		return nil, fmt.Errorf("config: %s: %w", name, err)
	}
	return c, nil
}

var errUnknownKey = errors.New("unknown key")

var (
	ifaceRE = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,15}$`)
	modelRE = regexp.MustCompile(`^[A-Za-z0-9+._-]{1,64}$`) // as a node's model (pkg/store)
)

// TickParser parses [tasks] tick: standard cron with optional seconds, or @every 2s.
func TickParser() cron.Parser {
	return cron.NewParser(cron.SecondOptional | cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)
}

func (c *Config) set(e entry) error {
	v := e.value
	switch e.section {
	case "frontend":
		switch e.key {
		case "listen":
			c.Frontend.Listen = v
		case "port":
			return setPort(&c.Frontend.Port, v)
		case "public_address":
			c.Frontend.PublicAddress = strings.TrimRight(v, "/")
		case "session_secret", "secret_key":
			c.Frontend.SessionSecret = Secret(v)
		case "secure_cookies":
			return setBool(&c.Frontend.SecureCookies, v)
		case "metrics_listen":
			c.Frontend.MetricsListen = v
		case "trusted_proxies":
			return setPrefixes(&c.Frontend.TrustedProxies, v)
		default:
			return errUnknownKey
		}
	case "mail":
		switch e.key {
		case "smtp_address":
			c.Mail.SMTPAddress = v
		case "smtp_port":
			return setPort(&c.Mail.SMTPPort, v)
		case "account":
			c.Mail.Account = v
		case "password":
			c.Mail.Password = Secret(v)
		case "from":
			c.Mail.From = v
		default:
			return errUnknownKey
		}
	case "db":
		switch e.key {
		case "connection_url":
			c.DB.ConnectionURL = Secret(v)
		default:
			return errUnknownKey
		}
	case "tasks":
		switch e.key {
		case "tick":
			if _, err := TickParser().Parse(v); err != nil {
				return fmt.Errorf("not a cron spec: %v", err)
			}
			c.Tasks.Tick = v
		case "workers":
			return setInt(&c.Tasks.Workers, v, 1, 4096)
		case "max_booting":
			return setInt(&c.Tasks.MaxBooting, v, 1, 4096)
		case "max_copying":
			return setInt(&c.Tasks.MaxCopying, v, 1, 4096)
		case "lease":
			return setDuration(&c.Tasks.Lease, v)
		case "step_deadline":
			return setDuration(&c.Tasks.StepDeadline, v)
		case "stop_grace":
			return setDuration(&c.Tasks.StopGrace, v)
		case "node_silent":
			return setDuration(&c.Tasks.NodeSilent, v)
		case "switch_silent":
			return setDuration(&c.Tasks.SwitchSilent, v)
		case "metrics_listen":
			c.Tasks.MetricsListen = v
		case "power_off_wait":
			return setOffWait(&c.Tasks.PowerOffWait, v)
		default:
			model, ok := strings.CutPrefix(e.key, "power_off_wait.")
			if !ok {
				return errUnknownKey
			}
			if !modelRE.MatchString(model) {
				return fmt.Errorf("%q is not a node model: letters, digits and + . _ - (like RPI4B or RPI3Bplus)", model)
			}
			var w time.Duration
			if err := setOffWait(&w, v); err != nil {
				return err
			}
			if c.Tasks.ModelOffWait == nil {
				c.Tasks.ModelOffWait = map[string]time.Duration{}
			}
			c.Tasks.ModelOffWait[model] = w
		}
	case "cluster":
		switch e.key {
		case "tftp_root":
			c.Cluster.TFTPRoot = v
		case "nfs_boot_dir":
			c.Cluster.NFSBootDir = v
		case "img_dir":
			c.Cluster.ImgDir = v
		case "nfs_hostname":
			c.Cluster.NFSHostname = v
		case "ssh_key":
			c.Cluster.SSHKey = v
		case "nfs_host_key":
			c.Cluster.NFSHostKey = v
		case "pimaster_ip":
			c.Cluster.PimasterIP = v
		case "dhcp_hosts_file":
			c.Cluster.DHCPHostsFile = v
		case "dnsmasq_pid_file":
			c.Cluster.DnsmasqPIDFile = v
		case "dnsmasq_log":
			c.Cluster.DnsmasqLog = v
		case "nodes_network":
			p, err := netip.ParsePrefix(v)
			if err != nil || !p.Addr().Is4() {
				return fmt.Errorf("want an IPv4 network like 10.10.0.0/24, got %q", v)
			}
			c.Cluster.NodesNetwork = p.Masked().String()
		case "nodes_interface":
			if !ifaceRE.MatchString(v) {
				return fmt.Errorf("want a network interface name like eth0, got %q", v)
			}
			c.Cluster.NodesInterface = v
		case "first_node_ip":
			if a, err := netip.ParseAddr(v); err != nil || !a.Is4() {
				return fmt.Errorf("want an IPv4 address, got %q", v)
			}
			c.Cluster.FirstNodeIP = v
		default:
			return errUnknownKey
		}
	case "nginx":
		return c.setNginx(e.key, v)
	case "timeouts":
		t, err := parseTimeout(v)
		if err != nil {
			return err
		}
		if !strings.Contains(e.key, ".") {
			keys := process.KeysOf(process.StateName(e.key))
			if len(keys) == 0 {
				return fmt.Errorf("no process has a state %q: want process.state, like deploy.turn_on", e.key)
			}
			c.bareTimeouts = append(c.bareTimeouts, bareTimeout{e: e, keys: keys, t: t})
			return nil
		}
		k, err := process.ParseKey(e.key)
		if err != nil {
			return err
		}
		c.Timeouts[k] = t
	default:
		return fmt.Errorf("unknown section [%s]", e.section)
	}
	return nil
}

func (c *Config) validate() error {
	for name, p := range map[string]string{"tftp_root": c.Cluster.TFTPRoot, "img_dir": c.Cluster.ImgDir, "nfs_boot_dir": c.Cluster.NFSBootDir,
		"dhcp_hosts_file": c.Cluster.DHCPHostsFile, "dnsmasq_pid_file": c.Cluster.DnsmasqPIDFile, "dnsmasq_log": c.Cluster.DnsmasqLog} {
		if !strings.HasPrefix(p, "/") {
			return fmt.Errorf("[cluster] %s must be an absolute path, got %q", name, p)
		}
	}
	if c.Cluster.NFSHostname == "" {
		return errors.New("[cluster] nfs_hostname must not be empty")
	}
	if string(c.DB.ConnectionURL) == "" {
		return errors.New("[db] connection_url must not be empty")
	}
	for name, p := range map[string]string{"stream_conf": c.Nginx.StreamConf, "http_conf": c.Nginx.HTTPConf} {
		if p != "" && !strings.HasPrefix(p, "/") {
			return fmt.Errorf("[nginx] %s must be an absolute path, got %q", name, p)
		}
	}
	if c.Nginx.HTTPConf != "" && c.Nginx.HTTPDomain == "" {
		return errors.New("[nginx] http_conf needs http_domain: web nodes are published as http://NODE.HTTP_DOMAIN/")
	}
	if c.Tasks.Lease < 5*time.Second {
		return fmt.Errorf("[tasks] lease %s is too short (at least 5s)", c.Tasks.Lease)
	}
	return nil
}

// Publishing reports whether pitasks keeps an nginx configuration ([nginx] stream_conf or
// http_conf set).
func (c *Config) Publishing() bool { return c.Nginx.StreamConf != "" || c.Nginx.HTTPConf != "" }

func (c *Config) setNginx(key, v string) error {
	host := func(dst *string) error {
		if v == "" {
			*dst = ""
			return nil
		}
		if _, err := netip.ParseAddr(v); err != nil && !names.ValidDomain(strings.ToLower(v)) {
			return fmt.Errorf("want a host name or an IP address, got %q", v)
		}
		*dst = v
		return nil
	}
	switch key {
	case "stream_conf":
		c.Nginx.StreamConf = v
	case "http_conf":
		c.Nginx.HTTPConf = v
	case "reload":
		// Split on blanks and run as is: nothing here goes through a shell.
		c.Nginx.Reload = strings.Fields(v)
	case "public_address":
		return host(&c.Nginx.PublicAddress)
	case "listen":
		if v == "" {
			c.Nginx.Listen = ""
			return nil
		}
		a, err := netip.ParseAddr(v)
		if err != nil {
			return fmt.Errorf("want an IP address (empty: all), got %q", v)
		}
		c.Nginx.Listen = a.String()
	case "http_port":
		return setPort(&c.Nginx.HTTPPort, v)
	case "http_domain":
		if v != "" && !names.ValidDomain(strings.ToLower(v)) {
			return fmt.Errorf("want a domain like nodes.example.org, got %q", v)
		}
		c.Nginx.HTTPDomain = strings.ToLower(v)
	default:
		return errUnknownKey
	}
	return nil
}

// setPrefixes reads addresses and networks (10.0.0.0/8) separated by commas or spaces.
func setPrefixes(dst *[]netip.Prefix, v string) error {
	var out []netip.Prefix
	for _, f := range strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' }) {
		p, err := netip.ParsePrefix(f)
		if err != nil {
			a, aerr := netip.ParseAddr(f)
			if aerr != nil {
				return fmt.Errorf("want addresses or networks like 127.0.0.1 or 10.0.0.0/8, got %q", f)
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		out = append(out, p.Masked())
	}
	*dst = out
	return nil
}

// setOffWait reads a power-off wait: more than nothing (a Pi switched off and on at once may
// not reset), at most a minute.
func setOffWait(dst *time.Duration, v string) error {
	d, err := parseSeconds(v)
	if err != nil {
		return err
	}
	if d <= 0 || d > time.Minute {
		return fmt.Errorf("want a duration from 1ms to 1m, like 3s, got %q", v)
	}
	*dst = d
	return nil
}

func setPort(dst *int, v string) error { return setInt(dst, v, 1, 65535) }

func setInt(dst *int, v string, lo, hi int) error {
	n, err := strconv.Atoi(v)
	if err != nil || n < lo || n > hi {
		return fmt.Errorf("want a whole number from %d to %d, got %q", lo, hi, v)
	}
	*dst = n
	return nil
}

func setBool(dst *bool, v string) error {
	switch strings.ToLower(v) {
	case "1", "yes", "true", "on":
		*dst = true
	case "0", "no", "false", "off":
		*dst = false
	default:
		return fmt.Errorf("want yes or no, got %q", v)
	}
	return nil
}

// setDuration accepts Go durations (90s, 2m) and plain seconds (90).
func setDuration(dst *time.Duration, v string) error {
	d, err := parseSeconds(v)
	if err != nil {
		return err
	}
	*dst = d
	return nil
}

func parseSeconds(v string) (time.Duration, error) {
	v = strings.TrimSpace(v)
	if n, err := strconv.Atoi(v); err == nil && n >= 0 && n <= 7*24*3600 {
		return time.Duration(n) * time.Second, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 || d > 7*24*time.Hour {
		return 0, fmt.Errorf("want a duration like 90 or 90s (at most a week), got %q", v)
	}
	return d, nil
}

// keyList is keys as "deploy.turn_on, reboot.turn_on".
func keyList(keys []process.Key) string {
	out := make([]string, len(keys))
	for i, k := range keys {
		out[i] = k.String()
	}
	return strings.Join(out, ", ")
}

// parseTimeout reads "before_reboot/lost", e.g. "60/90" or "0/30s".
func parseTimeout(v string) (Timeout, error) {
	a, b, ok := strings.Cut(v, "/")
	if !ok {
		return Timeout{}, fmt.Errorf("want before_reboot/lost in seconds, like 60/90, got %q", v)
	}
	br, err := parseSeconds(a)
	if err != nil {
		return Timeout{}, err
	}
	lost, err := parseSeconds(b)
	if err != nil {
		return Timeout{}, err
	}
	if lost != 0 && br >= lost {
		return Timeout{}, fmt.Errorf("before_reboot (%s) must be shorter than lost (%s)", br, lost)
	}
	return Timeout{BeforeReboot: br, Lost: lost}, nil
}
