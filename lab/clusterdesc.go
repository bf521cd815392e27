package lab

import (
	"encoding/json"
	"os"
	"path/filepath"
)

// WriteClusterDesc writes the original PiSeduce's cluster_desc/ folder for this lab into out:
// main.json, switches/<name>.json, nodes/<name>.json and environments/<name>.json.
func (d *Desc) WriteClusterDesc(out string) error {
	out, err := filepath.Abs(out)
	if err != nil {
		return err
	}
	for _, sub := range []string{"switches", "nodes", "environments"} {
		if err := os.MkdirAll(filepath.Join(out, sub), 0o755); err != nil {
			return err
		}
	}
	write := func(rel string, v any) error {
		b, err := json.MarshalIndent(v, "", "    ")
		if err != nil {
			return err
		}
		return writeAtomic(filepath.Join(out, rel), append(b, '\n'), 0o644)
	}
	first := ""
	if len(d.Nodes) > 0 {
		first = d.Nodes[0].IP
	}
	if err := write("main.json", map[string]any{
		"pimaster":      map[string]string{"ip": d.PimasterIP, "user": "root"},
		"first_node_ip": first,
		"email_signup":  false,
		"email_filters": []string{},
		"env_cfg_dir":   filepath.Join(out, "environments") + "/",
		"img_dir":       filepath.Dir(d.Image.Img) + "/",
	}); err != nil {
		return err
	}
	s := d.Switch
	if err := write("switches/"+s.Name+".json", map[string]any{
		"name": s.Name, "ip": s.IP, "community": s.Community, "port_nb": s.PortNb, "master_port": s.MasterPort,
		"oid": s.OID, "oid_offset": s.Offset, "snmp_port": s.Port,
	}); err != nil {
		return err
	}
	for _, n := range d.Nodes {
		if err := write("nodes/"+n.Name+".json", map[string]any{
			"name": n.Name, "port_number": n.Port, "ip": n.IP, "switch": s.Name, "model": n.Model, "id": n.Serial,
		}); err != nil {
			return err
		}
	}
	return write("environments/pilab-test.json", map[string]any{
		"type": "default", "name": "pilab-test",
		"desc":         []string{"PiSeduce lab test OS: a tiny 2-partition image", "(FAT boot + ext4 root, user pi)"},
		"img_name":     filepath.Base(d.Image.Gz),
		"img_size":     d.Image.Size,
		"sector_start": d.Image.SectorStart,
		"ssh_user":     "root",
		"shell":        "bash",
		"web":          false,
		"script_test":  "",
	})
}
