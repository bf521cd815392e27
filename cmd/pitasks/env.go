package main

// The environment subcommands:
//
//	pitasks env-register -name N -ssh-user U [-shell bash] [-desc TEXT] [-type default] [-web]
//	                     [-decompress-on node|pimaster] [-family F] [-move] IMAGE_FILE
//	    measure an image once (format from its content, uncompressed size, sha256, where its
//	    root partition starts, its OS family and name), put it in [cluster] img_dir (copied, or
//	    moved with -move; a file already there stays) and record the environment.
//	pitasks env-export [-o DIR] NAME
//	    the environment as the original's environments/NAME.json: printed, or written into the
//	    cluster_desc folder DIR (import it with import-cluster or the admin's import page).

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/piseduce/piseduce/pkg/cli"
	"github.com/piseduce/piseduce/pkg/clusterdesc"
	"github.com/piseduce/piseduce/pkg/image"
	"github.com/piseduce/piseduce/pkg/store"
	"github.com/piseduce/piseduce/pkg/units"
)

// envFlags names the command-line flag of each field of an environment.
func envFlags() map[string]string {
	return map[string]string{"name": "-name", "type": "-type", "description": "-desc", "ssh_user": "-ssh-user",
		"shell": "-shell", "decompress_on": "-decompress-on", "os_family": "-family", "image_name": "IMAGE_FILE"}
}

type envRegisterFlags struct {
	name, user, shell, desc, typ, decompressOn, family *string
	web, move                                          *bool
}

func envRegisterCommand() (*cli.Command, envRegisterFlags) {
	c := cli.New("pitasks env-register", "-name N -ssh-user U IMAGE_FILE",
		"Measure an image once (format, uncompressed size, sha256, where its root partition starts),\n"+
			"put it in [cluster] img_dir (copied, or moved with -move) and record the environment.", 1, 1)
	fs := c.Flags
	return c, envRegisterFlags{
		name:         fs.String("name", "", "environment name (letters, digits, spaces and . _ + -)"),
		user:         fs.String("ssh-user", "", "the account users log in as (root, pi, ubuntu…)"),
		shell:        fs.String("shell", "bash", "the program that runs users' init scripts"),
		desc:         fs.String("desc", "", "description"),
		typ:          fs.String("type", store.EnvDefault, "default (everyone), user or hidden (admins)"),
		web:          fs.Bool("web", false, "the environment serves a web page on port 80"),
		decompressOn: fs.String("decompress-on", "node", "where a compressed image is inflated: node or pimaster"),
		move:         fs.Bool("move", false, "move the file into img_dir instead of copying it"),
		family:       fs.String("family", "", "OS family: "+strings.Join(image.Families(), ", ")+" (default: measured from the image)"),
	}
}

// envRegisterCmd runs "env-register". Reading the image stops when ctx ends (SIGTERM).
func envRegisterCmd(ctx context.Context, st *store.Store, imgDir string, args []string, w io.Writer) error {
	c, f := envRegisterCommand()
	args, err := c.Parse(args)
	if err != nil {
		return err
	}
	name, user, shell, desc, typ, web, decompressOn, move, family := f.name, f.user, f.shell, f.desc, f.typ, f.web, f.decompressOn, f.move, f.family
	if imgDir == "" {
		return errors.New("env-register: no [cluster] img_dir in the configuration")
	}
	src := args[0]
	e := store.Environment{Name: *name, Type: *typ, Description: *desc, SSHUser: *user, Shell: *shell, Web: *web,
		DecompressOn: *decompressOn, ImageName: filepath.Base(src), OSFamily: *family}
	if err := st.CheckEnvironment(ctx, &e); err != nil {
		var ie *store.InvalidError
		if errors.As(err, &ie) {
			return fmt.Errorf("env-register: %s: %s", envFlags()[ie.Field], ie.Reason)
		}
		return fmt.Errorf("env-register: %w", err)
	}
	inDir, err := sameDir(filepath.Dir(src), imgDir)
	if err != nil {
		return fmt.Errorf("env-register: %w", err)
	}
	if inDir {
		// Registered where it is: it must be an image file of img_dir.
		if src, err = image.Locate(imgDir, e.ImageName); err != nil {
			return fmt.Errorf("env-register: %w", err)
		}
	} else if fi, err := os.Lstat(src); err == nil && *move && fi.Mode()&os.ModeSymlink != 0 {
		return fmt.Errorf("env-register: -move: %s is a symbolic link; give the file itself, or copy it (no -move)", src)
	}
	fmt.Fprintf(w, "measuring %s…\n", src)
	info, osInfo, err := image.ExamineOS(ctx, src, imgDir)
	if err != nil {
		return fmt.Errorf("env-register: %w", err)
	}
	if *family == "" {
		e.OSFamily = osInfo.Family
		fmt.Fprintf(w, "OS family %s: %s\n", osInfo.Family, osInfo.Why)
	}
	if e.Description == "" {
		e.Description = osInfo.Name
	}
	if _, ok := info.Layout.Root(); !ok {
		return fmt.Errorf("env-register: %s has no Linux (0x83) root partition", src)
	}
	if !inDir {
		if err := copyIntoDir(ctx, src, imgDir, e.ImageName, *move); err != nil {
			return err
		}
		info.KeepFor(filepath.Join(imgDir, e.ImageName)) // its measure was kept for src
	}
	// What is registered is a regular file inside img_dir, never a link out of it or to nothing.
	if _, err := image.Locate(imgDir, e.ImageName); err != nil {
		return fmt.Errorf("env-register: %w", err)
	}
	e.ImageFormat, e.ImageSize, e.ImageSHA256, e.SectorStart = info.Format, info.Size, info.SHA256, info.Layout.RootStart
	if err := st.CreateEnvironment(ctx, &e); err != nil {
		return fmt.Errorf("env-register: %w", err)
	}
	fmt.Fprintf(w, "environment %s registered (id %d): %s, %s, %s (%d bytes) uncompressed, sha256 %s, root partition at sector %d, OS family %s\n",
		e.Name, e.ID, e.ImageName, e.ImageFormat, units.Bytes(e.ImageSize), e.ImageSize, e.ImageSHA256, e.SectorStart, e.OSFamily)
	return nil
}

// sameDir reports whether the folders a and b are one, through symbolic links.
func sameDir(a, b string) (bool, error) {
	ra, err := filepath.EvalSymlinks(a)
	if err != nil {
		return false, err
	}
	rb, err := filepath.EvalSymlinks(b)
	if err != nil {
		return false, fmt.Errorf("img_dir: %w", err)
	}
	return ra == rb, nil
}

// copyIntoDir copies (or, with move, links then removes when it can) the regular file src into
// dir as name, never replacing a file there; the copy stops when ctx ends.
func copyIntoDir(ctx context.Context, src, dir, name string, move bool) error {
	dst := filepath.Join(dir, name)
	if _, err := os.Lstat(dst); err == nil {
		return fmt.Errorf("env-register: %s exists already in img_dir %s", name, dir)
	}
	if move {
		if err := os.Link(src, dst); err == nil {
			return os.Remove(src)
		}
	}
	in, _, err := image.Open(src)
	if err != nil {
		return fmt.Errorf("env-register: %w", err)
	}
	defer in.Close()
	tmp, err := os.CreateTemp(dir, ".register-*.part")
	if err != nil {
		return fmt.Errorf("env-register: img_dir: %w", err)
	}
	defer os.Remove(tmp.Name())
	_, err = io.Copy(tmp, image.ContextReader(ctx, in))
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
		return fmt.Errorf("env-register: copying into img_dir: %w", err)
	}
	if move {
		os.Remove(src)
	}
	return nil
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
		SectorStart: e.SectorStart, SSHUser: e.SSHUser, Shell: e.Shell, Web: e.Web, ScriptTest: e.ScriptTest, OSFamily: e.OSFamily}
}

func envExportCommand() (*cli.Command, *string) {
	c := cli.New("pitasks env-export", "NAME", "Print the environment NAME as the original's environments/NAME.json, or write it\n"+
		"into a cluster_desc folder (import it with import-cluster or the admin's import page).", 1, 1)
	return c, c.Flags.String("o", "", "write DIR/environments/NAME.json (a cluster_desc folder) instead of printing")
}

// envExportCmd runs "env-export".
func envExportCmd(ctx context.Context, st *store.Store, args []string, w io.Writer) error {
	c, dir := envExportCommand()
	args, err := c.Parse(args)
	if err != nil {
		return err
	}
	e, err := st.EnvironmentByName(ctx, args[0])
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("no environment named %q", args[0])
	}
	if err != nil {
		return err
	}
	out := exportEnvironment(e)
	// What import-cluster would refuse is refused here.
	check := clusterdesc.Desc{Environments: []clusterdesc.Environment{out}}
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
