// Package clusterdesc reads and writes the original PiSeduce's cluster description folder
// (cluster_desc/: main.json, switches/*.json, nodes/*.json, environments/*.json) and imports
// it into the store, all or nothing.
//
// Every file the original accepts is read with its meaning. Keys the original never reads
// (main.json's "comments", the "switches" object it writes into main.json when an admin
// changes the sign-up settings, an environment's "kernel"…) are listed as ignored; a key that
// looks like a misspelt one of ours is an error naming the file and the key. The records are
// validated by the store's one validator (store.Switch.Validate…), errors naming the file and
// the key.
package clusterdesc

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"strings"

	"github.com/piseduce/piseduce/pkg/image"
	"github.com/piseduce/piseduce/pkg/names"
	"github.com/piseduce/piseduce/pkg/power/powerconf"
	"github.com/piseduce/piseduce/pkg/store"
)

// source is where a description was read from and which keys its file had; a description
// built in Go has every key.
type source struct {
	file string
	keys map[string]bool
}

// has reports whether the file gave key.
func (s *source) has(key string) bool { return s.keys == nil || s.keys[key] }

// set runs f, which copies the value of key, if the file gave key.
func (s *source) set(key string, f func()) {
	if s.has(key) {
		f()
	}
}

func (s *source) setSource(file string, keys map[string]bool) { s.file, s.keys = file, keys }

// Pimaster is main.json's pimaster object.
type Pimaster struct {
	IP   string `json:"ip"`
	User string `json:"user"`
}

// Main is main.json. Only the sign-up rules are imported: this project takes the pimaster's
// address, the first node's address and the image folder from seducepp.conf ([cluster]).
type Main struct {
	Pimaster     Pimaster `json:"pimaster"`
	FirstNodeIP  string   `json:"first_node_ip,omitempty"`
	EmailSignup  bool     `json:"email_signup"`
	EmailFilters []string `json:"email_filters"`
	EnvCfgDir    string   `json:"env_cfg_dir,omitempty"`
	ImgDir       string   `json:"img_dir,omitempty"`

	source
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
	// Driver and the powerconf.Settings keys are extensions of ours: the power driver's kind
	// ("snmp" when omitted, as in the original's files) and the other kinds' settings, e.g.
	// "command": {"on": ["/usr/sbin/uhubctl", "-l", "1-1", "-p", "{port}", "-a", "on"], …}.
	Driver string `json:"driver,omitempty"`
	powerconf.Settings

	source
}

// Node is nodes/<name>.json. ID is the Pi's serial (the name of its TFTP folder); the
// original's discovery left out ID and Model when it could not log into the node.
type Node struct {
	Name       string `json:"name"`
	PortNumber int    `json:"port_number"`
	IP         string `json:"ip"`
	Switch     string `json:"switch"`
	Model      string `json:"model"`
	ID         string `json:"id"`
	// MAC is an extension of ours.
	MAC string `json:"mac,omitempty"`
	// PublicIP and PublicPort: how the node is reached from outside (spring 2020 versions
	// of the original wrote the port as a string).
	PublicIP   string     `json:"public_ip,omitempty"`
	PublicPort PortNumber `json:"public_port,omitempty"`
	// CardDevice: the disk its system is deployed on (an extension of ours; default the SD card).
	CardDevice string `json:"card_device,omitempty"`

	source
}

// PortNumber is a TCP port given as a JSON number or a string of digits.
type PortNumber int

// UnmarshalJSON accepts 22001 or "22001".
func (p *PortNumber) UnmarshalJSON(b []byte) error {
	digits := string(b)
	var s string
	if json.Unmarshal(b, &s) == nil {
		if digits = strings.TrimSpace(s); digits == "" {
			*p = 0
			return nil
		}
	}
	n, err := strconv.Atoi(digits)
	if err != nil {
		return fmt.Errorf("public_port: %s is not a port number", b)
	}
	*p = PortNumber(n)
	return nil
}

// Environment is environments/<name>.json. Desc is a list of lines in the original; a plain
// string is accepted too. An empty ImgName is the original's boot_test environment: it only
// serves boot tests.
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
	// OSFamily is PiSeduce's own key (not in the original's files): plain, raspios-firstboot
	// or cloud-init; without it, the environment keeps its family (plain when new).
	OSFamily string `json:"os_family,omitempty"`

	source
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
		return errors.New("desc: want a string or a list of strings")
	}
	*l = list
	return nil
}

// Ignored is a key of a file that the original never reads either.
type Ignored struct {
	File, Key string
}

// Desc is a whole cluster description.
type Desc struct {
	Main         Main
	Switches     []Switch
	Nodes        []Node
	Environments []Environment
	// Ignored lists the keys that are read by nobody, by file.
	Ignored []Ignored
}

// Read parses the cluster_desc folder at dir.
func Read(dir string) (*Desc, error) {
	return ReadFS(os.DirFS(dir), dir)
}

// ReadFS parses a cluster description from fsys; label names it in errors.
func ReadFS(fsys fs.FS, label string) (*Desc, error) {
	d := &Desc{}
	if err := d.decodeFile(fsys, label, "main.json", &d.Main); err != nil {
		return nil, err
	}
	for _, sub := range []string{"switches", "nodes", "environments"} {
		files, err := fs.Glob(fsys, sub+"/*.json")
		if err != nil {
			return nil, err
		}
		sort.SliceStable(files, func(i, j int) bool {
			return store.NameLess(strings.TrimSuffix(files[i], ".json"), strings.TrimSuffix(files[j], ".json"))
		})
		for _, file := range files {
			var err error
			switch sub {
			case "switches":
				var v Switch
				if err = d.decodeFile(fsys, label, file, &v); err == nil {
					d.Switches = append(d.Switches, v)
				}
			case "nodes":
				var v Node
				if err = d.decodeFile(fsys, label, file, &v); err == nil {
					d.Nodes = append(d.Nodes, v)
				}
			case "environments":
				var v Environment
				if err = d.decodeFile(fsys, label, file, &v); err == nil {
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

// decodeFile reads the file name of fsys into v and notes its ignored keys.
func (d *Desc) decodeFile(fsys fs.FS, label, name string, v interface {
	setSource(string, map[string]bool)
}) error {
	b, err := fs.ReadFile(fsys, name)
	if err != nil {
		return fmt.Errorf("clusterdesc: %w", err)
	}
	keys, ignored, err := Decode(path.Join(label, name), b, v)
	if err != nil {
		return err
	}
	v.setSource(name, keys)
	for _, k := range ignored {
		d.Ignored = append(d.Ignored, Ignored{File: name, Key: k})
	}
	return nil
}

// Decode parses one description file's bytes into v (a *Main, *Switch, *Node or
// *Environment); name is used in errors. It returns the keys the file has, and those of them
// nobody reads (sorted). A key near one of v's (a misspelling) is an error, as are a value of
// the wrong type and data after the object.
func Decode(name string, b []byte, v any) (keys map[string]bool, ignored []string, err error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	var obj map[string]json.RawMessage
	if err := dec.Decode(&obj); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return nil, nil, fmt.Errorf("clusterdesc: %s: want a JSON object, got JSON %s", name, te.Value)
		}
		return nil, nil, fmt.Errorf("clusterdesc: %s: %v", name, err)
	}
	if obj == nil {
		return nil, nil, fmt.Errorf("clusterdesc: %s: want a JSON object, got null", name)
	}
	if dec.More() {
		return nil, nil, fmt.Errorf("clusterdesc: %s: unexpected data after the JSON object", name)
	}
	known := jsonKeys(v)
	keys = map[string]bool{}
	for k := range obj {
		keys[k] = true
		if known[k] {
			continue
		}
		if like := misspelt(k, known); like != "" {
			return nil, nil, fmt.Errorf("clusterdesc: %s: unknown key %q (did you mean %q?)", name, k, like)
		}
		ignored = append(ignored, k)
		delete(obj, k)
	}
	sort.Strings(ignored)
	clean, err := json.Marshal(obj)
	if err != nil {
		return nil, nil, fmt.Errorf("clusterdesc: %s: %v", name, err)
	}
	strict := json.NewDecoder(bytes.NewReader(clean))
	strict.DisallowUnknownFields()
	if err := strict.Decode(v); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return nil, nil, fmt.Errorf("clusterdesc: %s: field %q: want %s, got JSON %s", name, te.Field, te.Type, te.Value)
		}
		return nil, nil, fmt.Errorf("clusterdesc: %s: %v", name, err)
	}
	return keys, ignored, nil
}

// jsonKeys returns the JSON keys of the struct v points to, those of its embedded structs
// included.
func jsonKeys(v any) map[string]bool {
	out := map[string]bool{}
	var add func(t reflect.Type)
	add = func(t reflect.Type) {
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			if k := jsonKey(f); k != "" && k != "-" {
				out[k] = true
			} else if f.Anonymous && f.Type.Kind() == reflect.Struct {
				add(f.Type)
			}
		}
	}
	add(reflect.TypeOf(v).Elem())
	return out
}

// jsonKey is the key of a struct field in JSON, "" when its tag gives none.
func jsonKey(f reflect.StructField) string {
	k, _, _ := strings.Cut(f.Tag.Get("json"), ",")
	return k
}

// misspelt returns the key of known that k looks like a misspelling of, or "".
func misspelt(k string, known map[string]bool) string {
	norm := func(s string) string {
		return strings.Map(func(r rune) rune {
			if r == '_' || r == '-' || r == ' ' {
				return -1
			}
			return r
		}, strings.ToLower(s))
	}
	nk := norm(k)
	var cands []string
	for c := range known {
		cands = append(cands, c)
	}
	sort.Strings(cands)
	for _, c := range cands {
		nc := norm(c)
		if d := distance(nk, nc); d == 0 || d == 1 || d == 2 && len(nc) > 4 {
			return c
		}
	}
	return ""
}

// distance is the Levenshtein distance between a and b, in bytes, stopping early past 2.
func distance(a, b string) int {
	if d := len(a) - len(b); d > 2 || d < -2 {
		return 3
	}
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}

// apply writes what the file of s gives over sw.
func (s *Switch) apply(sw *store.Switch) {
	sw.Name = s.Name
	s.set("ip", func() { sw.IP = s.IP })
	s.set("community", func() { sw.Community = s.Community })
	s.set("port_nb", func() { sw.PortCount = s.PortNb })
	s.set("master_port", func() { sw.MasterPort = s.MasterPort })
	s.set("oid", func() { sw.OID = s.OID })
	s.set("oid_offset", func() { sw.OIDOffset = s.OIDOffset })
	s.set("snmp_port", func() { sw.SNMPPort = s.SNMPPort })
	s.set("driver", func() { sw.Driver = s.Driver })
	// Each driver kind's settings the file gives replace that kind's.
	have, give := reflect.ValueOf(&sw.Power).Elem(), reflect.ValueOf(s.Settings)
	for i := 0; i < have.NumField(); i++ {
		s.set(jsonKey(have.Type().Field(i)), func() { have.Field(i).Set(give.Field(i)) })
	}
}

// apply writes what the file of n gives over node, on switch switchID.
func (n *Node) apply(node *store.Node, switchID uint) {
	node.Name, node.SwitchID = n.Name, switchID
	n.set("port_number", func() { node.Port = n.PortNumber })
	n.set("ip", func() { node.IP = n.IP })
	n.set("model", func() { node.Model = n.Model })
	n.set("id", func() { node.Serial = n.ID })
	n.set("mac", func() { node.MAC = n.MAC })
	n.set("public_ip", func() { node.PublicIP = n.PublicIP })
	n.set("public_port", func() { node.PublicPort = int(n.PublicPort) })
	n.set("card_device", func() { node.CardDevice = n.CardDevice })
}

// apply writes what the file of e gives over env. A new image file name or size makes the
// measures of the old one (format, sha256) go.
func (e *Environment) apply(env *store.Environment) {
	env.Name = e.Name
	if (e.has("img_name") && e.ImgName != env.ImageName) || (e.has("img_size") && e.ImgSize != env.ImageSize) {
		env.ImageSHA256 = ""
		env.ImageFormat = ""
	}
	e.set("type", func() { env.Type = e.Type })
	e.set("desc", func() { env.Description = strings.Join(e.Desc, "\n") })
	e.set("img_name", func() { env.ImageName = e.ImgName })
	e.set("img_size", func() { env.ImageSize = e.ImgSize })
	e.set("sector_start", func() { env.SectorStart = e.SectorStart })
	e.set("ssh_user", func() { env.SSHUser = e.SSHUser })
	e.set("shell", func() { env.Shell = e.Shell })
	e.set("web", func() { env.Web = e.Web })
	e.set("script_test", func() { env.ScriptTest = e.ScriptTest })
	e.set("os_family", func() { env.OSFamily = e.OSFamily })
	if env.ImageFormat == "" && env.ImageName != "" {
		env.ImageFormat = image.FormatOf(env.ImageName)
	}
}

// fileKeys maps the store's field names to the keys of the original's files.
func fileKeys() map[string]string {
	return map[string]string{"port_count": "port_nb", "port": "port_number", "serial": "id", "switch_id": "switch",
		"description": "desc", "image_name": "img_name", "image_size": "img_size"}
}

// fieldError says which key of file is wrong, from the store's validation error err.
func fieldError(label, file string, err error) error {
	var ie *store.InvalidError
	if !errors.As(err, &ie) {
		return fmt.Errorf("clusterdesc: %s: %w", path.Join(label, file), err)
	}
	key := ie.Field
	if k, ok := fileKeys()[key]; ok {
		key = k
	}
	return fmt.Errorf("clusterdesc: %s: field %q: %s", path.Join(label, file), key, ie.Reason)
}

// Validate checks every record with the store's validation and the references between
// files; errors name the file and the key.
func (d *Desc) Validate(label string) error {
	f := func(file, key, format string, a ...any) error {
		return fmt.Errorf("clusterdesc: %s: field %q: %s", path.Join(label, file), key, fmt.Sprintf(format, a...))
	}
	for _, dom := range d.Main.EmailFilters {
		if !names.ValidDomain(strings.TrimLeft(strings.ToLower(strings.TrimSpace(dom)), "@.")) {
			return f(fileOr(d.Main.file, "", "main"), "email_filters", "%q is not a domain", dom)
		}
	}
	switches := map[string]store.Switch{}
	for _, s := range d.Switches {
		file := fileOr(s.file, "switches", s.Name)
		sw := store.Switch{}
		s.apply(&sw)
		if err := sw.Validate(); err != nil {
			return fieldError(label, file, err)
		}
		if _, dup := switches[s.Name]; dup {
			return f(file, "name", "switch %s is described twice", s.Name)
		}
		switches[s.Name] = sw
	}
	seen := map[string]bool{}
	for _, n := range d.Nodes {
		file := fileOr(n.file, "nodes", n.Name)
		if !n.has("switch") || n.Switch == "" {
			return f(file, "switch", "missing: the name of the switch the node is plugged into (the original cannot power it without one either)")
		}
		sw, ok := switches[n.Switch]
		if !ok {
			return f(file, "switch", "no switch %q in switches/", n.Switch)
		}
		node := store.Node{}
		n.apply(&node, 0)
		if err := node.Validate(&sw); err != nil {
			return fieldError(label, file, err)
		}
		if seen[strings.ToLower(n.Name)] {
			return f(file, "name", "node %s is described twice", n.Name)
		}
		seen[strings.ToLower(n.Name)] = true
	}
	seen = map[string]bool{}
	for _, e := range d.Environments {
		file := fileOr(e.file, "environments", e.Name)
		if !e.has("img_name") {
			return f(file, "img_name", "missing (empty for an environment that only serves boot tests)")
		}
		env := store.Environment{}
		e.apply(&env)
		if err := env.Validate(); err != nil {
			return fieldError(label, file, err)
		}
		if seen[strings.ToLower(e.Name)] {
			return f(file, "name", "environment %s is described twice", e.Name)
		}
		seen[strings.ToLower(e.Name)] = true
	}
	return nil
}

// fileOr names the file a description came from, or the one it would be written to.
func fileOr(file, dir, name string) string {
	if file != "" {
		return file
	}
	return path.Join(dir, name+".json")
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
