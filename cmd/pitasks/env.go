package main

// The environment subcommands:
//
//	pitasks env-register -name N -ssh-user U [-shell bash] [-desc TEXT] [-type default] [-web]
//	                     [-decompress-on node|pimaster] [-move] IMAGE_FILE
//	    measure an image once (format from its content, uncompressed size, sha256, where its
//	    root partition starts), put it in [cluster] img_dir (copied, or moved with -move; a file
//	    already there stays) and record the environment.
//	pitasks env-export [-o DIR] NAME
//	    the environment as the original's environments/NAME.json: printed, or written into the
//	    cluster_desc folder DIR (import it with import-cluster or the admin's import page).

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/piseduce/piseduce/pkg/clusterdesc"
	"github.com/piseduce/piseduce/pkg/image"
	"github.com/piseduce/piseduce/pkg/store"
)

var (
	envNameRE   = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$`)
	envFileRE   = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._+-]{0,254}$`)
	envUserRE   = regexp.MustCompile(`^[a-z_][a-z0-9_-]{0,31}$`)
	envShellRE  = regexp.MustCompile(`^[A-Za-z0-9/._-]{1,255}$`)
	envTypeList = []string{store.EnvDefault, store.EnvUser, store.EnvHidden}
)

// envRegisterCmd runs "env-register".
func envRegisterCmd(ctx context.Context, st *store.Store, imgDir string, args []string, w io.Writer) error {
	fs := flag.NewFlagSet("env-register", flag.ContinueOnError)
	fs.SetOutput(w)
	name := fs.String("name", "", "environment name (letters, digits, . _ -)")
	user := fs.String("ssh-user", "", "the account users log in as (root, pi, ubuntu…)")
	shell := fs.String("shell", "bash", "the program that runs users' init scripts")
	desc := fs.String("desc", "", "description")
	typ := fs.String("type", store.EnvDefault, "default (everyone), user or hidden (admins)")
	web := fs.Bool("web", false, "the environment serves a web page on port 80")
	decompressOn := fs.String("decompress-on", "node", "where a compressed image is inflated: node or pimaster")
	move := fs.Bool("move", false, "move the file into img_dir instead of copying it")
	fs.Usage = func() {
		fmt.Fprintln(w, "usage: pitasks env-register -name N -ssh-user U [flags] IMAGE_FILE")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return errors.New("env-register: one IMAGE_FILE")
	}
	e := store.Environment{Name: *name, Type: *typ, Description: *desc, SSHUser: *user, Shell: *shell, Web: *web,
		DecompressOn: *decompressOn}
	if err := checkEnvFields(&e); err != nil {
		return err
	}
	if imgDir == "" {
		return errors.New("env-register: no [cluster] img_dir in the configuration")
	}
	src := fs.Arg(0)
	if _, err := st.EnvironmentByName(ctx, e.Name); err == nil {
		return fmt.Errorf("env-register: an environment named %s exists already", e.Name)
	}
	fmt.Fprintf(w, "measuring %s…\n", src)
	info, err := image.Examine(ctx, src)
	if err != nil {
		return err
	}
	if _, ok := info.Layout.Root(); !ok {
		return fmt.Errorf("env-register: %s has no Linux (0x83) root partition", src)
	}
	dst, err := placeImage(src, imgDir, *move)
	if err != nil {
		return err
	}
	e.ImageName = filepath.Base(dst)
	e.ImageFormat, e.ImageSize, e.ImageSHA256, e.SectorStart = info.Format, info.Size, info.SHA256, info.Layout.RootStart
	if err := st.CreateEnvironment(ctx, &e); err != nil {
		if errors.Is(err, store.ErrDuplicate) {
			return fmt.Errorf("env-register: an environment named %s exists already", e.Name)
		}
		return err
	}
	fmt.Fprintf(w, "environment %s registered (id %d): %s, %s, %d bytes, sha256 %s, root partition at sector %d\n",
		e.Name, e.ID, e.ImageName, e.ImageFormat, e.ImageSize, e.ImageSHA256, e.SectorStart)
	return nil
}

// checkEnvFields validates what an admin typed, as the web's environment form does.
func checkEnvFields(e *store.Environment) error {
	ok := false
	for _, t := range envTypeList {
		ok = ok || e.Type == t
	}
	switch {
	case !envNameRE.MatchString(e.Name):
		return fmt.Errorf("-name %q: letters, digits, dots, dashes and underscores", e.Name)
	case !ok:
		return fmt.Errorf("-type %q: default, user or hidden", e.Type)
	case !envUserRE.MatchString(e.SSHUser):
		return fmt.Errorf("-ssh-user %q is not a Unix user name", e.SSHUser)
	case !envShellRE.MatchString(e.Shell):
		return fmt.Errorf("-shell %q must be a program name or path, like bash or /bin/sh", e.Shell)
	case e.DecompressOn != "node" && e.DecompressOn != "pimaster":
		return fmt.Errorf("-decompress-on %q: node or pimaster", e.DecompressOn)
	case len(e.Description) > 4000:
		return errors.New("-desc: at most 4000 characters")
	}
	return nil
}

// placeImage puts the file src into imgDir, keeping its name, and returns where it is. A file
// already in imgDir stays where it is; a file of the same name there is never replaced.
func placeImage(src, imgDir string, move bool) (string, error) {
	name := filepath.Base(src)
	if !envFileRE.MatchString(name) || strings.Contains(name, "..") {
		return "", fmt.Errorf("env-register: %q cannot be an image file name (letters, digits, . _ + -)", name)
	}
	absSrc, err := filepath.Abs(src)
	if err != nil {
		return "", err
	}
	absDir, err := filepath.Abs(imgDir)
	if err != nil {
		return "", err
	}
	dst := filepath.Join(absDir, name)
	if filepath.Dir(absSrc) == absDir {
		return dst, nil
	}
	if _, err := os.Lstat(dst); err == nil {
		return "", fmt.Errorf("env-register: %s exists already in img_dir %s", name, imgDir)
	}
	if move {
		if err := os.Link(absSrc, dst); err == nil {
			return dst, os.Remove(absSrc)
		}
	}
	tmp, err := os.CreateTemp(absDir, ".register-*.part")
	if err != nil {
		return "", fmt.Errorf("env-register: img_dir: %w", err)
	}
	defer os.Remove(tmp.Name())
	in, err := os.Open(absSrc)
	if err != nil {
		tmp.Close()
		return "", err
	}
	_, err = io.Copy(tmp, in)
	in.Close()
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp.Name(), 0o644)
	}
	if err == nil {
		err = os.Link(tmp.Name(), dst) // never replaces a file that appeared meanwhile
	}
	if err != nil {
		return "", fmt.Errorf("env-register: copying into img_dir: %w", err)
	}
	if move {
		os.Remove(absSrc)
	}
	return dst, nil
}

// exportEnvironment is e in the original's environment JSON.
func exportEnvironment(e *store.Environment) clusterdesc.Environment {
	var desc clusterdesc.Lines
	if e.Description != "" {
		desc = strings.Split(e.Description, "\n")
	} else {
		desc = clusterdesc.Lines{}
	}
	return clusterdesc.Environment{Type: e.Type, Name: e.Name, Desc: desc, ImgName: e.ImageName, ImgSize: e.ImageSize,
		SectorStart: e.SectorStart, SSHUser: e.SSHUser, Shell: e.Shell, Web: e.Web, ScriptTest: e.ScriptTest}
}

// envExportCmd runs "env-export".
func envExportCmd(ctx context.Context, st *store.Store, args []string, w io.Writer) error {
	fs := flag.NewFlagSet("env-export", flag.ContinueOnError)
	fs.SetOutput(w)
	dir := fs.String("o", "", "write DIR/environments/NAME.json (a cluster_desc folder) instead of printing")
	fs.Usage = func() {
		fmt.Fprintln(w, "usage: pitasks env-export [-o DIR] NAME")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return errors.New("env-export: one environment NAME")
	}
	e, err := st.EnvironmentByName(ctx, fs.Arg(0))
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("no environment named %q", fs.Arg(0))
	}
	if err != nil {
		return err
	}
	out := exportEnvironment(e)
	// What import-cluster would refuse is refused here.
	check := clusterdesc.Desc{Environments: []clusterdesc.Environment{out}}
	check.Main.Pimaster.IP = "192.0.2.1" // main.json is not exported
	if err := check.Validate("export"); err != nil {
		return err
	}
	b, err := json.MarshalIndent(out, "", "  ")
	if err != nil {
		return err
	}
	b = append(b, '\n')
	if *dir == "" {
		_, err = w.Write(b)
		return err
	}
	p := filepath.Join(*dir, "environments", e.Name+".json")
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(p, b, 0o644); err != nil {
		return err
	}
	fmt.Fprintf(w, "wrote %s\n", p)
	return nil
}

// envCmd dispatches the environment subcommands.
func envCmd(ctx context.Context, imgDir string, st *store.Store, cmd string, args []string, w io.Writer) error {
	if cmd == "env-export" {
		return envExportCmd(ctx, st, args, w)
	}
	return envRegisterCmd(ctx, st, imgDir, args, w)
}
