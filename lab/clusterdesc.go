package lab

import (
	"fmt"
	"path/filepath"

	"github.com/piseduce/piseduce/pkg/clusterdesc"
)

// ClusterDesc describes this lab in the original PiSeduce's terms: its switch, its nodes and
// the test environment.
func (d *Desc) ClusterDesc() *clusterdesc.Desc {
	cd := &clusterdesc.Desc{}
	cd.Main.Pimaster.IP, cd.Main.Pimaster.User = d.PimasterIP, "root"
	cd.Main.EmailFilters = []string{}
	cd.Main.ImgDir = filepath.Dir(d.Image.Img) + "/"
	if len(d.Nodes) > 0 {
		cd.Main.FirstNodeIP = d.Nodes[0].IP
	}
	s := d.Switch
	cd.Switches = []clusterdesc.Switch{{Name: s.Name, IP: s.IP, Community: s.Community, PortNb: s.PortNb,
		MasterPort: s.MasterPort, OID: s.OID, OIDOffset: s.Offset, SNMPPort: s.Port}}
	for _, n := range d.Nodes {
		cd.Nodes = append(cd.Nodes, clusterdesc.Node{Name: n.Name, PortNumber: n.Port, IP: n.IP, Switch: s.Name,
			Model: n.Model, ID: n.Serial, MAC: n.MAC, CardDevice: n.CardDevice})
	}
	cd.Environments = []clusterdesc.Environment{{Type: "default", Name: "pilab-test",
		Desc:    []string{"PiSeduce lab test OS: a tiny 2-partition image", "(FAT boot + ext4 root, user pi)"},
		ImgName: filepath.Base(d.Image.Gz), ImgSize: d.Image.Size, SectorStart: int64(d.Image.SectorStart),
		SSHUser: d.Image.SSHUser, Shell: "bash"}}
	return cd
}

// WriteClusterDesc writes the original PiSeduce's cluster_desc/ folder for this lab into out:
// main.json, switches/<name>.json, nodes/<name>.json and environments/<name>.json.
func (d *Desc) WriteClusterDesc(out string) error {
	out, err := filepath.Abs(out)
	if err != nil {
		return err
	}
	cd := d.ClusterDesc()
	cd.Main.EnvCfgDir = filepath.Join(out, "environments") + "/"
	return cd.Write(out)
}

// SeduceppConf is a seducepp.conf for PiSeduce's daemons to manage this lab: the database at
// dbURL, the web interface on 127.0.0.1:port.
func (d *Desc) SeduceppConf(dbURL string, port int) string {
	first := ""
	if len(d.Nodes) > 0 {
		first = d.Nodes[0].IP
	}
	return fmt.Sprintf(`# seducepp.conf for the virtual Pi lab in %s (written by pilab seducepp)
[frontend]
listen = 127.0.0.1
port = %d
public_address = http://localhost:%d

[db]
connection_url = %s

[tasks]
tick = @every 1s

[cluster]
tftp_root = %s
nfs_boot_dir = %s
img_dir = %s
ssh_key = %s
nfs_host_key = %s
pimaster_ip = %s
dhcp_hosts_file = %s
dnsmasq_pid_file = %s
dnsmasq_log = %s
first_node_ip = %s
`, d.Dir, port, port, dbURL, d.TFTPRoot, d.NFSBootDir, filepath.Dir(d.Image.Img), d.PimasterKey, d.NFSHostPubKey,
		d.PimasterIP, d.DHCPHostsFile, filepath.Join(d.Dir, "dnsmasq.pid"), d.DnsmasqLog, first)
}
