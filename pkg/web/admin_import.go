package web

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path"
	"strconv"
	"strings"
	"testing/fstest"

	"github.com/labstack/echo/v4"

	"github.com/piseduce/piseduce/pkg/clusterdesc"
	"github.com/piseduce/piseduce/pkg/store"
)

// The original PiSeduce described its cluster in a cluster_desc/ folder of JSON files:
// main.json, switches/<name>.json, nodes/<name>.json, environments/<name>.json. The admin
// uploads those files (the folder itself, or the files: each is placed by its path when the
// browser sends one, else by its fields); pkg/clusterdesc checks them all and imports them in
// one transaction, creating or updating rows by name.

// Limits of an upload: the original's files are a few hundred bytes each.
const (
	maxImportFiles = 2000
	maxImportBytes = 64 << 10
)

type importResult struct {
	Summary string
	// Skipped, Ignored and Notes are clusterdesc.Summary's.
	Skipped, Ignored, Notes []string
	Error                   string
	Files                   int
}

// placeFile returns where a cluster_desc file goes: its folder when its name has one, else
// guessed from its fields; "" when it is none of the four kinds.
func placeFile(name string, b []byte) string {
	name = strings.ReplaceAll(name, "\\", "/")
	base := path.Base(name)
	if base == "main.json" {
		return "main.json"
	}
	if dir := path.Base(path.Dir(name)); dir == "switches" || dir == "nodes" || dir == "environments" {
		return dir + "/" + base
	}
	var probe map[string]json.RawMessage
	if json.Unmarshal(b, &probe) != nil {
		return ""
	}
	switch {
	case probe["port_nb"] != nil:
		return "switches/" + base
	case probe["port_number"] != nil:
		return "nodes/" + base
	case probe["img_name"] != nil:
		return "environments/" + base
	case probe["pimaster"] != nil || probe["email_filters"] != nil:
		return "main.json"
	}
	return ""
}

// importFiles imports the uploaded files. Without a main.json, the sign-up settings in force
// are kept (a main.json saying so is made up from them).
func (s *Server) importFiles(ctx context.Context, files map[string][]byte) (*importResult, error) {
	fsys := fstest.MapFS{}
	for name, b := range files {
		p := placeFile(name, b)
		if p == "" {
			return &importResult{Error: name + ": not a main.json, switch, node or environment file of a cluster_desc folder"}, nil
		}
		if _, dup := fsys[p]; dup {
			return &importResult{Error: p + ": given twice"}, nil
		}
		fsys[p] = &fstest.MapFile{Data: b}
	}
	if _, ok := fsys["main.json"]; !ok {
		m, err := s.store.Settings(ctx)
		if err != nil {
			return nil, err
		}
		var main clusterdesc.Main
		main.EmailFilters = strings.Fields(m[store.SettingSignupDomains])
		main.EmailSignup, _ = strconv.ParseBool(m[store.SettingEmailSignup])
		if _, set := m[store.SettingEmailSignup]; !set {
			main.EmailSignup = true
		}
		b, _ := json.Marshal(main)
		fsys["main.json"] = &fstest.MapFile{Data: b}
	}
	d, err := clusterdesc.ReadFS(fsys, "cluster_desc")
	if err != nil {
		return &importResult{Error: strings.TrimPrefix(err.Error(), "clusterdesc: "), Files: len(files)}, nil
	}
	sum, err := clusterdesc.Import(ctx, s.store, d, s.cfg.Cluster.ImgDir)
	if errors.Is(err, store.ErrInvalid) || errors.Is(err, store.ErrDuplicate) { // names the file
		return &importResult{Error: strings.TrimPrefix(err.Error(), "clusterdesc: "), Files: len(files)}, nil
	}
	if err != nil {
		s.log.Error("cluster description import", "err", err)
		return &importResult{Error: "The files are valid but could not be saved; nothing was imported (see the log).", Files: len(files)}, nil
	}
	s.resources.mu.Lock()
	s.resources.at = s.resources.at.AddDate(-1, 0, 0) // show the new nodes at once
	s.resources.mu.Unlock()
	return &importResult{Summary: fmt.Sprintf("%d switches, %d nodes, %d environments: %s.", sum.Switches, sum.Nodes,
		sum.Environments, sum), Skipped: sum.Skipped, Ignored: sum.Ignored, Notes: sum.Notes, Files: len(files)}, nil
}

func (s *Server) showImport(c echo.Context) error {
	return s.render(c, http.StatusOK, "admin_import", &page{Title: "Import", Nav: "admin"})
}

// saveImport takes the JSON files of an original cluster_desc/ folder (a multiple-file upload).
func (s *Server) saveImport(c echo.Context) error {
	form, err := c.MultipartForm()
	if err != nil {
		return s.redirectError(c, "/admin/import", "Choose the JSON files of a cluster_desc folder.")
	}
	fhs := form.File["files"]
	if len(fhs) == 0 || len(fhs) > maxImportFiles {
		return s.redirectError(c, "/admin/import", fmt.Sprintf("Choose from 1 to %d JSON files.", maxImportFiles))
	}
	files := map[string][]byte{}
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
	res, err := s.importFiles(c.Request().Context(), files)
	if err != nil {
		return err
	}
	code := http.StatusOK
	if res.Error != "" {
		code = http.StatusBadRequest
	}
	s.log.Info("cluster description import", "admin", currentUser(c).ID, "files", len(files), "result", res.Summary, "error", res.Error)
	return s.render(c, code, "admin_import", &page{Title: "Import", Nav: "admin", Data: res})
}
