package config

import (
	"fmt"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/piseduce/piseduce/pkg/process"
)

func TestShippedConfigLoads(t *testing.T) {
	c, err := Load("../../seducepp.conf")
	if err != nil {
		t.Fatal(err)
	}
	if c.Frontend.Port != 9000 || c.Tasks.Tick != "@every 2s" || c.Cluster.NFSHostname != "nfspi" {
		t.Fatalf("unexpected defaults: %+v", c)
	}
	if got := c.DB.ConnectionURL.Value(); !strings.HasPrefix(got, "sqlite://") {
		t.Fatalf("shipped config must use the embedded SQLite default, got %q", got)
	}
	if c.Mail.SMTPAddress != "" {
		t.Fatal("shipped config must name no SMTP host")
	}
}

func TestParseValues(t *testing.T) {
	in := `
; comment
[frontend]
Port = 9100
session_secret = s3cr3t
[db]
connection_url = mysql://pipi:p@ss=word@localhost/piseduce
[tasks]
tick = */3 * * * * *
lease = 2m
workers = 4
node_silent = 20s
switch_silent = 10m
power_off_wait = 4s
power_off_wait.RPI3Bplus = 2500ms
[timeouts]
deploy.turn_on = 60/90
save_env.ssh_system = 150s/180
`
	c, err := Parse("t.conf", strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	if c.Frontend.Port != 9100 || c.Tasks.Lease != 2*time.Minute || c.Tasks.Workers != 4 || c.Tasks.NodeSilent != 20*time.Second || c.Tasks.SwitchSilent != 10*time.Minute {
		t.Fatalf("got %+v", c)
	}
	if c.Tasks.PowerOffWait != 4*time.Second || !maps.Equal(c.Tasks.ModelOffWait, map[string]time.Duration{"rpi3bplus": 2500 * time.Millisecond}) {
		t.Fatalf("power_off_wait %s, by model %v", c.Tasks.PowerOffWait, c.Tasks.ModelOffWait)
	}
	if c.DB.ConnectionURL.Value() != "mysql://pipi:p@ss=word@localhost/piseduce" {
		t.Fatalf("connection_url = %q", c.DB.ConnectionURL.Value())
	}
	want := map[process.Key]Timeout{
		{Process: process.Deploy, State: process.TurnOn}:     {BeforeReboot: 60 * time.Second, Lost: 90 * time.Second},
		{Process: process.SaveEnv, State: process.SSHSystem}: {BeforeReboot: 150 * time.Second, Lost: 180 * time.Second},
	}
	if !maps.Equal(c.Timeouts, want) || len(c.Warnings) > 0 {
		t.Fatalf("timeouts %v, warnings %q; want %v and no warning", c.Timeouts, c.Warnings, want)
	}
}

// TestBareTimeoutKey: the old form, a state's name alone, sets that state in every process
// that has it, with a warning that names the file, the line and the new form; a process's own
// key wins over it, whatever their order.
func TestBareTimeoutKey(t *testing.T) {
	c, err := Parse("t.conf", strings.NewReader("[timeouts]\nreboot.turn_on = 5/10\n\nturn_on = 60/90\n"))
	if err != nil {
		t.Fatal(err)
	}
	old := Timeout{BeforeReboot: 60 * time.Second, Lost: 90 * time.Second}
	want := map[process.Key]Timeout{
		{Process: process.Deploy, State: process.TurnOn}:   old,
		{Process: process.BootTest, State: process.TurnOn}: old,
		{Process: process.Reboot, State: process.TurnOn}:   {BeforeReboot: 5 * time.Second, Lost: 10 * time.Second},
	}
	if !maps.Equal(c.Timeouts, want) {
		t.Errorf("timeouts %v, want %v", c.Timeouts, want)
	}
	if len(c.Warnings) != 1 || !strings.Contains(c.Warnings[0], "t.conf:4: [timeouts] turn_on = 60/90") ||
		!strings.Contains(c.Warnings[0], "boot_test.turn_on, deploy.turn_on, reboot.turn_on") ||
		!strings.Contains(c.Warnings[0], "as in boot_test.turn_on = 60/90") {
		t.Errorf("warnings %q: want one naming the line, the processes it sets and the new form", c.Warnings)
	}
	// The engine takes what the file gives: every process's timeouts are replaced there only.
	procs, err := process.WithTimeouts(c.Timeouts)
	if err != nil {
		t.Fatal(err)
	}
	for name, p := range procs {
		def, _ := process.Get(name)
		for i, st := range p.States {
			k := process.Key{Process: name, State: st.Name}
			exp, set := want[k]
			if !set {
				exp = def.States[i].Timeout
			}
			if st.Timeout != exp {
				t.Errorf("%s: %+v, want %+v", k, st.Timeout, exp)
			}
		}
	}
}

func TestTrustedProxies(t *testing.T) {
	c, err := Parse("t.conf", strings.NewReader("[frontend]\ntrusted_proxies = 127.0.0.1, 10.1.2.0/24 ::1\n"))
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(c.Frontend.TrustedProxies) != "[127.0.0.1/32 10.1.2.0/24 ::1/128]" {
		t.Fatalf("trusted_proxies = %v", c.Frontend.TrustedProxies)
	}
	if c, err := Parse("t.conf", strings.NewReader("[frontend]\ntrusted_proxies =\n")); err != nil || len(c.Frontend.TrustedProxies) != 0 {
		t.Fatalf("empty: %v %v", c, err)
	}
	_, err = Parse("t.conf", strings.NewReader("[frontend]\ntrusted_proxies = 127.0.0.1, proxy.example\n"))
	if err == nil || !strings.Contains(err.Error(), "t.conf:2: [frontend] trusted_proxies") || !strings.Contains(err.Error(), "proxy.example") {
		t.Fatalf("a host name: %v", err)
	}
}

func TestSecretsNeverPrint(t *testing.T) {
	c, err := Parse("t.conf", strings.NewReader("[mail]\npassword = hunter2\n[frontend]\nsession_secret = abc123\n[db]\nconnection_url = mysql://u:dbpass@h/d\n"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"%v", "%+v", "%#v", "%s"} {
		out := fmt.Sprintf(f, c)
		for _, secret := range []string{"hunter2", "abc123", "dbpass"} {
			if strings.Contains(out, secret) {
				t.Fatalf("format %s leaks %q: %s", f, secret, out)
			}
		}
	}
}

func TestErrorsNameTheLine(t *testing.T) {
	cases := []struct{ in, want string }{
		{"port = 1\n", "t.conf:1: key \"port\" is outside any [section]"},
		{"[frontend]\nport = 99999\n", "t.conf:2: [frontend] port: want a whole number from 1 to 65535"},
		{"[frontend]\nprot = 9000\n", "t.conf:2: [frontend] prot: unknown key"},
		{"[nope]\nx = 1\n", "unknown section [nope]"},
		{"[frontend\n", "t.conf:1: section header"},
		{"[frontend]\njust words\n", "t.conf:2: want key = value"},
		{"[frontend]\nport = 1\nport = 2\n", "t.conf:3: frontend.port given twice (first on line 2)"},
		{"[tasks]\ntick = every now and then\n", "[tasks] tick: not a cron spec"},
		{"[timeouts]\nturn_on = 90/60\n", "must be shorter than lost"},
		{"[timeouts]\nturn_on = 60\n", "want before_reboot/lost"},
		{"[timeouts]\ndeploy.turn_on = 1/2\nredeploy.turn_on = 60/90\n", "t.conf:3: [timeouts] redeploy.turn_on: process: unknown process \"redeploy\" (processes: boot_test, deploy, destroy, reboot, save_env)"},
		{"[timeouts]\nreboot.env_copy = 60/90\n", "t.conf:2: [timeouts] reboot.env_copy: process: reboot has no state \"env_copy\" (its states: turn_off, turn_on, coming_back)"},
		{"[timeouts]\nturn_onn = 60/90\n", "t.conf:2: [timeouts] turn_onn: no process has a state \"turn_onn\": want process.state, like deploy.turn_on"},
		{"[cluster]\ntftp_root = tftpboot\n", "tftp_root must be an absolute path"},
		{"[tasks]\nlease = 1\n", "lease 1s is too short"},
		{"[cluster]\nfirst_node_ip = 10.10.0\n", "t.conf:2: [cluster] first_node_ip: want an IPv4 address"},
		{"[cluster]\nfirst_node_ip = fe80::1\n", "first_node_ip: want an IPv4 address"},
		{"[cluster]\nnodes_network = *\n", "t.conf:2: [cluster] nodes_network: want an IPv4 network"},
		{"[cluster]\nnodes_network = 10.10.0.2\n", "nodes_network: want an IPv4 network"},
		{"[cluster]\nnodes_interface = eth0; reboot\n", "nodes_interface: want a network interface name"},
		{"[cluster]\ndhcp_hosts_file = dhcp-hosts\n", "dhcp_hosts_file must be an absolute path"},
		{"[cluster]\ndnsmasq_pid_file = x.pid\n", "dnsmasq_pid_file must be an absolute path"},
		{"[cluster]\ndnsmasq_log = \n", "dnsmasq_log must be an absolute path"},
		{"[nginx]\nstream_conf = nodes.conf\n", "[nginx] stream_conf must be an absolute path"},
		{"[nginx]\nhttp_conf = /etc/nginx/conf.d/nodes.conf\n", "http_conf needs http_domain"},
		{"[nginx]\nhttp_domain = *.example.org\n", "t.conf:2: [nginx] http_domain: want a domain"},
		{"[nginx]\npublic_address = pi master\n", "[nginx] public_address: want a host name or an IP address"},
		{"[nginx]\nlisten = localhost\n", "[nginx] listen: want an IP address"},
		{"[nginx]\nhttp_port = 0\n", "[nginx] http_port: want a whole number from 1 to 65535"},
		{"[tasks]\npower_off_wait = 0\n", "t.conf:2: [tasks] power_off_wait: want a duration from 1ms to 1m"},
		{"[tasks]\npower_off_wait.RPI4B = 2m\n", "[tasks] power_off_wait.rpi4b: want a duration from 1ms to 1m"},
		{"[tasks]\npower_off_wait.RPI 4 = 3s\n", "\"rpi 4\" is not a node model"},
		{"[tasks]\npower_off_waits = 3s\n", "[tasks] power_off_waits: unknown key"},
	}
	for _, tc := range cases {
		_, err := Parse("t.conf", strings.NewReader(tc.in))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Parse(%q) error = %v, want it to contain %q", tc.in, err, tc.want)
		}
	}
}

func TestDnsmasqKeys(t *testing.T) {
	c, err := Parse("t.conf", strings.NewReader(""))
	if err != nil {
		t.Fatal(err)
	}
	if c.Cluster.DHCPHostsFile != "/var/lib/piseduce/dhcp-hosts" || c.Cluster.DnsmasqPIDFile != "/run/dnsmasq/dnsmasq.pid" ||
		c.Cluster.DnsmasqLog != "/var/log/piseduce/dnsmasq.log" || c.Cluster.FirstNodeIP != "" {
		t.Fatalf("defaults: %+v", c.Cluster)
	}
	c, err = Parse("t.conf", strings.NewReader("[cluster]\ndhcp_hosts_file = /etc/piseduce/hosts\n"+
		"dnsmasq_pid_file = /run/dnsmasq.pid\ndnsmasq_log = /var/log/dnsmasq.log\nfirst_node_ip = 10.10.0.11\n"+
		"nodes_network = 10.10.0.2/24\nnodes_interface = eth1\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Cluster.DHCPHostsFile != "/etc/piseduce/hosts" || c.Cluster.DnsmasqPIDFile != "/run/dnsmasq.pid" ||
		c.Cluster.DnsmasqLog != "/var/log/dnsmasq.log" || c.Cluster.FirstNodeIP != "10.10.0.11" ||
		c.Cluster.NodesNetwork != "10.10.0.0/24" || c.Cluster.NodesInterface != "eth1" {
		t.Fatalf("got %+v", c.Cluster)
	}
}

func TestNginxKeys(t *testing.T) {
	c, err := Load("../../seducepp.conf")
	if err != nil {
		t.Fatal(err)
	}
	if c.Publishing() || c.Nginx.PublicAddress != "" || len(c.Nginx.Reload) != 0 {
		t.Fatalf("the shipped config publishes nodes: %+v", c.Nginx)
	}
	c, err = Parse("t.conf", strings.NewReader("[nginx]\nstream_conf = /etc/nginx/piseduce/stream.conf\n"+
		"http_conf = /etc/nginx/conf.d/piseduce-nodes.conf\nreload = /usr/sbin/nginx  -s reload\npublic_address = Pimaster.example.org\n"+
		"listen = 192.0.2.1\nhttp_port = 8080\nhttp_domain = Nodes.Example.org\n"))
	if err != nil {
		t.Fatal(err)
	}
	n := c.Nginx
	if !c.Publishing() || n.StreamConf != "/etc/nginx/piseduce/stream.conf" || n.HTTPConf != "/etc/nginx/conf.d/piseduce-nodes.conf" ||
		strings.Join(n.Reload, "|") != "/usr/sbin/nginx|-s|reload" || n.PublicAddress != "Pimaster.example.org" ||
		n.Listen != "192.0.2.1" || n.HTTPPort != 8080 || n.HTTPDomain != "nodes.example.org" {
		t.Fatalf("got %+v", n)
	}
}

func FuzzParse(f *testing.F) {
	f.Add("[frontend]\nport = 9000\n")
	f.Add("[timeouts]\nturn_on = 60/90\n[tasks]\ntick = @every 2s\n")
	f.Add("[db]\nconnection_url = mysql://a:b@c/d\n")
	f.Add("\ufeff[mail]\npassword: x\n")
	f.Fuzz(func(t *testing.T, in string) {
		c, err := Parse("fuzz.conf", strings.NewReader(in))
		if err != nil {
			if !strings.HasPrefix(err.Error(), "config: ") {
				t.Fatalf("error without context: %v", err)
			}
			return
		}
		if c.Frontend.Port < 1 || c.Frontend.Port > 65535 || c.Tasks.Workers < 1 {
			t.Fatalf("invalid config accepted: %+v", c)
		}
	})
}
