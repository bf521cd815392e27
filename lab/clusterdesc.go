package lab

import (
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
			Model: n.Model, ID: n.Serial, MAC: n.MAC})
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
