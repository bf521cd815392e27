package web

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path"
	"sort"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/piseduce/piseduce/pkg/auth"
	"github.com/piseduce/piseduce/pkg/store"
)

// The original PiSeduce described its cluster in a cluster_desc/ folder of JSON files:
// main.json, switches/<name>.json, nodes/<name>.json, environments/<name>.json. The admin
// uploads those files; each is recognized by its fields, and rows are created or updated by name.

type origSwitch struct {
	Name       string `json:"name"`
	IP         string `json:"ip"`
	Community  string `json:"community"`
	PortNb     int    `json:"port_nb"`
	MasterPort int    `json:"master_port"`
	OID        string `json:"oid"`
	OIDOffset  int    `json:"oid_offset"`
}

type origNode struct {
	Name       string `json:"name"`
	PortNumber int    `json:"port_number"`
	IP         string `json:"ip"`
	Switch     string `json:"switch"`
	Model      string `json:"model"`
	ID         string `json:"id"`
}

type origEnvironment struct {
	Type        string          `json:"type"`
	Name        string          `json:"name"`
	Desc        json.RawMessage `json:"desc"`
	ImgName     string          `json:"img_name"`
	ImgSize     int64           `json:"img_size"`
	SectorStart int64           `json:"sector_start"`
	SSHUser     string          `json:"ssh_user"`
	Shell       string          `json:"shell"`
	Web         bool            `json:"web"`
	ScriptTest  string          `json:"script_test"`
}

type origMain struct {
	EmailFilters []string `json:"email_filters"`
}

// importReport says what an import did, file by file.
type importReport struct {
	Created, Updated int
	Lines            []string
	Errors           []string
}

func (r *importReport) errorf(file, format string, args ...any) {
	r.Errors = append(r.Errors, file+": "+fmt.Sprintf(format, args...))
}

// descText reads the original's description: a string or a list of lines.
func descText(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var lines []string
	if json.Unmarshal(raw, &lines) == nil {
		return strings.Join(lines, "\n")
	}
	return ""
}

// importClusterDesc reads the files (by name) and writes switches first, then nodes, then
// environments; a file in error is reported and skipped.
func (s *Server) importClusterDesc(ctx context.Context, files map[string][]byte) (*importReport, error) {
	rep := &importReport{}
	var sws []origSwitch
	var nodes []origNode
	var envs []origEnvironment
	var names []string
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	kindOf := map[string]string{}
	for _, name := range names {
		var probe map[string]json.RawMessage
		if err := json.Unmarshal(files[name], &probe); err != nil {
			rep.errorf(name, "not a JSON object")
			continue
		}
		dec := func(v any) bool {
			d := json.NewDecoder(bytes.NewReader(files[name]))
			if err := d.Decode(v); err != nil {
				rep.errorf(name, "%v", err)
				return false
			}
			return true
		}
		switch {
		case probe["port_nb"] != nil:
			var v origSwitch
			if dec(&v) {
				sws = append(sws, v)
				kindOf["switch "+v.Name] = name
			}
		case probe["port_number"] != nil:
			var v origNode
			if dec(&v) {
				nodes = append(nodes, v)
				kindOf["node "+v.Name] = name
			}
		case probe["img_name"] != nil:
			var v origEnvironment
			if dec(&v) {
				envs = append(envs, v)
				kindOf["environment "+v.Name] = name
			}
		case probe["pimaster"] != nil || probe["email_filters"] != nil:
			var v origMain
			if dec(&v) && len(v.EmailFilters) > 0 {
				domains := auth.ParseDomains(strings.Join(v.EmailFilters, "\n"))
				if err := s.store.SetSettings(ctx, map[string]string{settingSignupDomains: strings.Join(domains, "\n")}); err != nil {
					return nil, err
				}
				rep.Lines = append(rep.Lines, "sign-up domains: "+strings.Join(domains, ", "))
			}
		default:
			rep.errorf(name, "not a switch, node, environment or main.json file")
		}
	}
	note := func(kind, name string, created bool, err error) {
		file := kindOf[kind+" "+name]
		if err != nil {
			msg, _, ok := userMessage(err)
			if !ok {
				msg = "could not be saved"
				s.log.Error("import", "file", file, "err", err)
			}
			rep.errorf(file, "%s", msg)
			return
		}
		if created {
			rep.Created++
			rep.Lines = append(rep.Lines, "added "+kind+" "+name)
		} else {
			rep.Updated++
			rep.Lines = append(rep.Lines, "updated "+kind+" "+name)
		}
	}
	existing, err := s.store.Switches(ctx)
	if err != nil {
		return nil, err
	}
	swByName := map[string]store.Switch{}
	for _, sw := range existing {
		swByName[sw.Name] = sw
	}
	for _, o := range sws {
		sw := swByName[o.Name]
		in := switchInput{Name: o.Name, IP: o.IP, SNMPVersion: "2c", Community: o.Community, PortCount: o.PortNb,
			MasterPort: o.MasterPort, OID: o.OID, OIDOffset: o.OIDOffset, SNMPPort: sw.SNMPPort}
		if in.OID == "" {
			in.OID = ".1.3.6.1.2.1.105.1.1.1.3.1"
		}
		if err := in.apply(&sw); err != nil {
			note("switch", o.Name, false, err)
			continue
		}
		created := sw.ID == 0
		if created {
			err = s.store.CreateSwitch(ctx, &sw)
		} else {
			err = s.store.UpdateSwitch(ctx, &sw)
		}
		note("switch", o.Name, created, err)
		if err == nil {
			swByName[sw.Name] = sw
		}
	}
	allNodes, err := s.store.Nodes(ctx)
	if err != nil {
		return nil, err
	}
	nodeByName := map[string]store.Node{}
	for _, n := range allNodes {
		nodeByName[n.Name] = n
	}
	for _, o := range nodes {
		sw, ok := swByName[o.Switch]
		if !ok {
			note("node", o.Name, false, badInput("unknown switch %q", o.Switch))
			continue
		}
		n := nodeByName[o.Name]
		n.Switch = store.Switch{}
		serial := strings.ToLower(o.ID)
		if len(serial) > 8 {
			serial = serial[len(serial)-8:]
		}
		err := s.applyNode(ctx, nodeInput{Name: o.Name, SwitchID: sw.ID, Port: o.PortNumber, IP: o.IP, MAC: n.MAC, Serial: serial, Model: o.Model}, &n)
		if err != nil {
			note("node", o.Name, false, err)
			continue
		}
		created := n.ID == 0
		if created {
			err = s.store.CreateNode(ctx, &n)
		} else {
			err = s.store.UpdateNode(ctx, &n)
		}
		note("node", o.Name, created, err)
	}
	allEnvs, err := s.store.Environments(ctx)
	if err != nil {
		return nil, err
	}
	envByName := map[string]store.Environment{}
	for _, e := range allEnvs {
		envByName[e.Name] = e
	}
	for _, o := range envs {
		e := envByName[o.Name]
		in := environmentForm(&e)
		in.Name, in.Type, in.Description, in.ImageName, in.ImageSize = o.Name, o.Type, descText(o.Desc), path.Base(o.ImgName), o.ImgSize
		in.SectorStart, in.SSHUser, in.Shell, in.Web, in.ScriptTest = o.SectorStart, o.SSHUser, o.Shell, o.Web, o.ScriptTest
		if in.Type == "" {
			in.Type = store.EnvDefault
		}
		if in.Shell == "" {
			in.Shell = "bash"
		}
		if strings.HasSuffix(in.ImageName, ".tar.gz") {
			in.ImageFormat = "tar.gz"
		} else if strings.HasSuffix(in.ImageName, ".img.gz") {
			in.ImageFormat = "gz"
		}
		if o.ImgName != path.Base(o.ImgName) {
			note("environment", o.Name, false, badInput("the image must be a plain file name, not %q", o.ImgName))
			continue
		}
		if err := in.apply(&e); err != nil {
			note("environment", o.Name, false, err)
			continue
		}
		created := e.ID == 0
		if created {
			err = s.store.CreateEnvironment(ctx, &e)
		} else {
			err = s.store.UpdateEnvironment(ctx, &e)
		}
		note("environment", o.Name, created, err)
	}
	return rep, nil
}

// Limits of an upload: the original's files are a few hundred bytes each.
const (
	maxImportFiles = 2000
	maxImportBytes = 64 << 10
)

func (s *Server) showImport(c echo.Context) error {
	return s.render(c, http.StatusOK, "admin_import", &page{Title: "Import", Nav: "admin"})
}

// saveImport takes the JSON files of an original cluster_desc/ folder (a multiple-file upload).
func (s *Server) saveImport(c echo.Context) error {
	form, err := c.MultipartForm()
	if err != nil {
		return s.redirectError(c, "/admin/import", "Choose the JSON files of a cluster_desc folder.")
	}
	files := map[string][]byte{}
	fhs := form.File["files"]
	if len(fhs) == 0 || len(fhs) > maxImportFiles {
		return s.redirectError(c, "/admin/import", fmt.Sprintf("Choose from 1 to %d JSON files.", maxImportFiles))
	}
	for _, fh := range fhs {
		if !strings.HasSuffix(fh.Filename, ".json") {
			continue
		}
		f, err := fh.Open()
		if err != nil {
			return err
		}
		b, err := io.ReadAll(io.LimitReader(f, maxImportBytes+1))
		f.Close()
		if err != nil {
			return err
		}
		if len(b) > maxImportBytes {
			return s.redirectError(c, "/admin/import", fh.Filename+" is too big for a cluster description file.")
		}
		name := fh.Filename
		for i := 2; files[name] != nil; i++ {
			name = fmt.Sprintf("%s (%d)", fh.Filename, i)
		}
		files[name] = b
	}
	if len(files) == 0 {
		return s.redirectError(c, "/admin/import", "No .json file in the upload.")
	}
	rep, err := s.importClusterDesc(c.Request().Context(), files)
	if err != nil {
		return err
	}
	s.log.Info("cluster description imported", "admin", currentUser(c).ID, "created", rep.Created, "updated", rep.Updated, "errors", len(rep.Errors))
	return s.render(c, http.StatusOK, "admin_import", &page{Title: "Import", Nav: "admin", Data: rep})
}
