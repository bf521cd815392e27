// Package clusterdesc reads and writes the original PiSeduce's cluster description folder
// (cluster_desc/: main.json, switches/*.json, nodes/*.json, environments/*.json) and imports
// it into the store, all or nothing.
package clusterdesc

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
)

// Main is main.json.
type Main struct {
	Pimaster struct {
		IP   string `json:"ip"`
		User string `json:"user"`
	} `json:"pimaster"`
	FirstNodeIP  string   `json:"first_node_ip,omitempty"`
	EmailSignup  bool     `json:"email_signup"`
	EmailFilters []string `json:"email_filters"`
	EnvCfgDir    string   `json:"env_cfg_dir,omitempty"`
	ImgDir       string   `json:"img_dir,omitempty"`
}

// Switch is switches/<name>.json.
type Switch struct {
	Name       string `json:"name"`
	IP         string `json:"ip"`
	Community  string `json:"community"`
	PortNb     int    `json:"port_nb"`
	MasterPort int    `json:"master_port"`
	OID        string `json:"oid"`
	OIDOffset  int    `json:"oid_offset"`
	// SNMPPort is an extension of ours (the original always used 161); omitted when 0.
	SNMPPort int `json:"snmp_port,omitempty"`

	file string // where it was read from, for errors
}

// Node is nodes/<name>.json. ID is the Pi's serial (the name of its TFTP folder).
type Node struct {
	Name       string `json:"name"`
	PortNumber int    `json:"port_number"`
	IP         string `json:"ip"`
	Switch     string `json:"switch"`
	Model      string `json:"model"`
	ID         string `json:"id"`
	MAC        string `json:"mac,omitempty"`

	file string
}

// Environment is environments/<name>.json. Desc is a list of lines in the original; a plain
// string is accepted too.
type Environment struct {
	Type        string `json:"type"`
	Name        string `json:"name"`
	Desc        Lines  `json:"desc"`
	ImgName     string `json:"img_name"`
	ImgSize     int64  `json:"img_size"`
	SectorStart int64  `json:"sector_start"`
	SSHUser     string `json:"ssh_user"`
	Shell       string `json:"shell"`
	Web         bool   `json:"web"`
	ScriptTest  string `json:"script_test"`

	file string
}

// Lines is a description: a JSON list of lines, or one string.
type Lines []string

// UnmarshalJSON accepts ["line", …] or "text".
func (l *Lines) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		*l = strings.Split(s, "\n")
		return nil
	}
	var list []string
	if err := json.Unmarshal(b, &list); err != nil {
		return errors.New("want a string or a list of strings")
	}
	*l = list
	return nil
}

// Desc is a whole cluster description.
type Desc struct {
	Main         Main
	Switches     []Switch
	Nodes        []Node
	Environments []Environment
}

var (
	nameRE   = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$`)
	serialRE = regexp.MustCompile(`^[0-9a-f]{8}$`)
	oidRE    = regexp.MustCompile(`^\.?[0-9]+(\.[0-9]+)+$`)
)

// Read parses the cluster_desc folder at dir.
func Read(dir string) (*Desc, error) {
	return ReadFS(os.DirFS(dir), dir)
}

// ReadFS parses a cluster description from fsys; label names it in errors.
func ReadFS(fsys fs.FS, label string) (*Desc, error) {
	d := &Desc{}
	if err := decodeFile(fsys, label, "main.json", &d.Main); err != nil {
		return nil, err
	}
	for _, sub := range []string{"switches", "nodes", "environments"} {
		names, err := fs.Glob(fsys, sub+"/*.json")
		if err != nil {
			return nil, err
		}
		sort.Strings(names)
		for _, name := range names {
			var err error
			switch sub {
			case "switches":
				var v Switch
				if err = decodeFile(fsys, label, name, &v); err == nil {
					v.file = name
					d.Switches = append(d.Switches, v)
				}
			case "nodes":
				var v Node
				if err = decodeFile(fsys, label, name, &v); err == nil {
					v.file = name
					d.Nodes = append(d.Nodes, v)
				}
			case "environments":
				var v Environment
				if err = decodeFile(fsys, label, name, &v); err == nil {
					v.file = name
					d.Environments = append(d.Environments, v)
				}
			}
			if err != nil {
				return nil, err
			}
		}
	}
	if err := d.Validate(label); err != nil {
		return nil, err
	}
	return d, nil
}

// decodeFile reads one JSON object strictly: unknown fields and trailing data are errors.
func decodeFile(fsys fs.FS, label, name string, v any) error {
	b, err := fs.ReadFile(fsys, name)
	if err != nil {
		return fmt.Errorf("clusterdesc: %w", err)
	}
	return Decode(path.Join(label, name), b, v)
}

// Decode parses one description file's bytes into v; name is used in errors.
func Decode(name string, b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return fmt.Errorf("clusterdesc: %s: field %q: want %s, got JSON %s", name, te.Field, te.Type, te.Value)
		}
		return fmt.Errorf("clusterdesc: %s: %v", name, err)
	}
	if dec.More() {
		return fmt.Errorf("clusterdesc: %s: unexpected data after the JSON object", name)
	}
	return nil
}

// Validate checks every field and the references between files; errors name the file and field.
func (d *Desc) Validate(label string) error {
	f := func(file, field, format string, a ...any) error {
		return fmt.Errorf("clusterdesc: %s: field %q: %s", filepath.Join(label, file), field, fmt.Sprintf(format, a...))
	}
	if ip := d.Main.Pimaster.IP; ip != "" && net.ParseIP(ip) == nil {
		return f("main.json", "pimaster.ip", "%q is not an IP address", ip)
	}
	for _, dom := range d.Main.EmailFilters {
		if dom == "" || strings.ContainsAny(dom, " \t,;") {
			return f("main.json", "email_filters", "%q is not a domain", dom)
		}
	}
	switches := map[string]Switch{}
	for _, s := range d.Switches {
		file := fileOr(s.file, "switches", s.Name)
		switch {
		case !nameRE.MatchString(s.Name):
			return f(file, "name", "%q is not a valid name (letters, digits, . _ -)", s.Name)
		case net.ParseIP(s.IP) == nil:
			return f(file, "ip", "%q is not an IP address", s.IP)
		case s.Community == "":
			return f(file, "community", "must not be empty")
		case s.PortNb < 1 || s.PortNb > 1024:
			return f(file, "port_nb", "%d is not a port count from 1 to 1024", s.PortNb)
		case s.MasterPort < 0 || s.MasterPort > s.PortNb:
			return f(file, "master_port", "%d is not a port of this switch (1 to %d, or 0 for none)", s.MasterPort, s.PortNb)
		case !oidRE.MatchString(s.OID):
			return f(file, "oid", "%q is not a numeric OID", s.OID)
		case s.OIDOffset < 0 || s.OIDOffset > 100000:
			return f(file, "oid_offset", "%d is out of range", s.OIDOffset)
		case s.SNMPPort < 0 || s.SNMPPort > 65535:
			return f(file, "snmp_port", "%d is not a UDP port", s.SNMPPort)
		}
		if _, dup := switches[s.Name]; dup {
			return f(file, "name", "switch %q is described twice", s.Name)
		}
		switches[s.Name] = s
	}
	names := map[string]bool{}
	ports := map[string]string{}
	for _, n := range d.Nodes {
		file := fileOr(n.file, "nodes", n.Name)
		sw, ok := switches[n.Switch]
		switch {
		case !nameRE.MatchString(n.Name):
			return f(file, "name", "%q is not a valid name (letters, digits, . _ -)", n.Name)
		case names[n.Name]:
			return f(file, "name", "node %q is described twice", n.Name)
		case !ok:
			return f(file, "switch", "no switch %q in switches/", n.Switch)
		case n.PortNumber < 1 || n.PortNumber > sw.PortNb:
			return f(file, "port_number", "%d is not a port of switch %s (1 to %d)", n.PortNumber, sw.Name, sw.PortNb)
		case n.PortNumber == sw.MasterPort:
			return f(file, "port_number", "%d is the pimaster's own port on %s", n.PortNumber, sw.Name)
		case n.IP != "" && net.ParseIP(n.IP) == nil:
			return f(file, "ip", "%q is not an IP address", n.IP)
		case !serialRE.MatchString(strings.ToLower(n.ID)):
			return f(file, "id", "%q is not an 8-hex-digit serial", n.ID)
		}
		if n.MAC != "" {
			if _, err := net.ParseMAC(n.MAC); err != nil {
				return f(file, "mac", "%q is not a MAC address", n.MAC)
			}
		}
		key := fmt.Sprintf("%s/%d", n.Switch, n.PortNumber)
		if other, taken := ports[key]; taken {
			return f(file, "port_number", "port %d of %s is already node %s", n.PortNumber, n.Switch, other)
		}
		ports[key], names[n.Name] = n.Name, true
	}
	envs := map[string]bool{}
	for _, e := range d.Environments {
		file := fileOr(e.file, "environments", e.Name)
		switch {
		case !nameRE.MatchString(e.Name):
			return f(file, "name", "%q is not a valid name (letters, digits, . _ -)", e.Name)
		case envs[e.Name]:
			return f(file, "name", "environment %q is described twice", e.Name)
		case e.Type != "default" && e.Type != "user" && e.Type != "hidden":
			return f(file, "type", "%q is not one of default, user, hidden", e.Type)
		case e.ImgName == "" || strings.ContainsAny(e.ImgName, "/\\") || strings.HasPrefix(e.ImgName, "."):
			return f(file, "img_name", "%q must be a plain file name inside img_dir", e.ImgName)
		case e.ImgSize < 0:
			return f(file, "img_size", "%d is negative", e.ImgSize)
		case e.SectorStart < 0:
			return f(file, "sector_start", "%d is negative", e.SectorStart)
		case !nameRE.MatchString(e.SSHUser):
			return f(file, "ssh_user", "%q is not a user name", e.SSHUser)
		case e.Shell == "" || strings.ContainsAny(e.Shell, " \t\n;|&$`'\""):
			return f(file, "shell", "%q must be a program name like bash or /bin/sh", e.Shell)
		}
		envs[e.Name] = true
	}
	return nil
}

// fileOr names the file a description came from, or the one it would be written to.
func fileOr(file, dir, name string) string {
	if file != "" {
		return file
	}
	return dir + "/" + name + ".json"
}

// Write writes d as a cluster_desc folder at dir, in the original's layout.
func (d *Desc) Write(dir string) error {
	if err := d.Validate(dir); err != nil {
		return err
	}
	files := map[string]any{"main.json": d.Main}
	for _, s := range d.Switches {
		files["switches/"+s.Name+".json"] = s
	}
	for _, n := range d.Nodes {
		files["nodes/"+n.Name+".json"] = n
	}
	for _, e := range d.Environments {
		files["environments/"+e.Name+".json"] = e
	}
	for name, v := range files {
		b, err := json.MarshalIndent(v, "", "  ")
		if err != nil {
			return err
		}
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, append(b, '\n'), 0o644); err != nil {
			return err
		}
	}
	return nil
}
