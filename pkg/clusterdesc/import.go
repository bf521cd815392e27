package clusterdesc

import (
	"context"
	"errors"
	"fmt"
	"path"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"

	"github.com/piseduce/piseduce/pkg/auth"
	"github.com/piseduce/piseduce/pkg/image"
	"github.com/piseduce/piseduce/pkg/store"
)

// Summary is what an import did, and what the admin should know about it.
type Summary struct {
	Created, Updated, Unchanged int
	// Switches, Nodes and Environments count the records imported (created, updated or
	// unchanged).
	Switches, Nodes, Environments int
	// Ignored lists, one line per file, the keys nobody reads.
	Ignored []string
	// Skipped lists the environments left out, and why (their image is not in img_dir).
	Skipped []string
	// Notes are what else the admin should know: nodes that cannot be deployed yet,
	// environments that only serve boot tests, what main.json says that is not imported.
	Notes []string
}

func (s Summary) String() string {
	return fmt.Sprintf("%d created, %d updated, %d unchanged", s.Created, s.Updated, s.Unchanged)
}

// Import writes d into the store in one transaction, through the store's validation.
// Switches, nodes and environments are matched by name: a new one is created; an existing
// one gets what its file says and keeps the rest (a MAC, SNMPv3 settings, a measured
// checksum); one its file would not change is not written at all, so importing the same
// files again changes nothing. An environment whose image is not a file of imgDir is skipped,
// as the original skips it, and the others are imported. The sign-up rules of main.json
// become settings. On any error nothing is written.
func Import(ctx context.Context, s *store.Store, d *Desc, imgDir string) (Summary, error) {
	if imgDir == "" {
		return Summary{}, errors.New("clusterdesc: no img_dir to look for the environments' images in")
	}
	var sum Summary
	err := s.InTx(ctx, func(tx *store.Store) error {
		sum = d.notes(imgDir)
		switchIDs := map[string]uint{}
		for _, in := range d.Switches {
			cur, err := existing(tx.SwitchByName(ctx, in.Name))
			if err != nil {
				return err
			}
			next := store.Switch{SNMPVersion: "2c"}
			if cur != nil {
				next = *cur
			}
			in.apply(&next)
			if err := save(ctx, &sum, cur, &next, (*store.Switch).Validate, tx.CreateSwitch, tx.UpdateSwitch); err != nil {
				return fieldError("", fileOr(in.file, "switches", in.Name), err)
			}
			switchIDs[in.Name] = next.ID
			sum.Switches++
		}
		for _, in := range d.Nodes {
			file := fileOr(in.file, "nodes", in.Name)
			cur, err := existing(tx.NodeByName(ctx, in.Name))
			if err != nil {
				return err
			}
			var next store.Node
			if cur != nil {
				cur.Switch = store.Switch{}
				next = *cur
			}
			in.apply(&next, switchIDs[in.Switch])
			sw, err := tx.Switch(ctx, next.SwitchID)
			if err != nil {
				return err
			}
			validate := func(n *store.Node) error { return n.Validate(sw) }
			if err := save(ctx, &sum, cur, &next, validate, tx.CreateNode, tx.UpdateNode); err != nil {
				return fieldError("", file, err)
			}
			sum.Nodes++
			if next.Serial == "" {
				sum.Notes = append(sum.Notes, fmt.Sprintf("%s: node %s has no serial (id) yet: it cannot be deployed until discovery finds it or an admin sets it on its page", file, next.Name))
			}
		}
		for _, in := range d.Environments {
			file := fileOr(in.file, "environments", in.Name)
			if in.ImgName != "" {
				if _, err := image.Locate(imgDir, in.ImgName); err != nil {
					sum.Skipped = append(sum.Skipped, fmt.Sprintf("%s: environment %s not imported: %s (put the image there and import again)",
						file, in.Name, strings.TrimPrefix(err.Error(), "image: ")))
					continue
				}
			}
			cur, err := existing(tx.EnvironmentByName(ctx, in.Name))
			if err != nil {
				return err
			}
			next := store.Environment{DecompressOn: "node"}
			if cur != nil {
				next = *cur
			}
			in.apply(&next)
			if err := save(ctx, &sum, cur, &next, (*store.Environment).Validate, tx.CreateEnvironment, tx.UpdateEnvironment); err != nil {
				return fieldError("", file, err)
			}
			sum.Environments++
			if !next.Deployable() {
				sum.Notes = append(sum.Notes, fmt.Sprintf("%s: environment %s has no image: kept for boot tests, never offered for deployment", file, next.Name))
			}
		}
		return importSettings(ctx, tx, &d.Main)
	})
	if err != nil {
		return Summary{}, err
	}
	return sum, nil
}

// existing is a row looked up by name, nil when there is none.
func existing[T any](row *T, err error) (*T, error) {
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	return row, err
}

// save creates next when cur is nil; else it updates cur to next, unless next (validated,
// so normalized as it would be stored) is cur as it is.
func save[T any](ctx context.Context, sum *Summary, cur, next *T, validate func(*T) error, create, update func(context.Context, *T) error) error {
	if cur == nil {
		sum.Created++
		return create(ctx, next)
	}
	if err := validate(next); err != nil {
		return err
	}
	if reflect.DeepEqual(*next, *cur) {
		sum.Unchanged++
		return nil
	}
	sum.Updated++
	return update(ctx, next)
}

// importSettings stores the sign-up rules of m, if the file gave them and they differ.
func importSettings(ctx context.Context, tx *store.Store, m *Main) error {
	want := map[string]string{}
	if m.has("email_filters") {
		want[store.SettingSignupDomains] = strings.Join(auth.ParseDomains(strings.Join(m.EmailFilters, "\n")), "\n")
	}
	if m.has("email_signup") {
		want[store.SettingEmailSignup] = strconv.FormatBool(m.EmailSignup)
	}
	have, err := tx.Settings(ctx)
	if err != nil {
		return err
	}
	for k, v := range want {
		if cur, ok := have[k]; ok && cur == v {
			delete(want, k)
		}
	}
	if len(want) == 0 {
		return nil
	}
	return tx.SetSettings(ctx, want)
}

// notes are what the summary says about the files themselves: the keys nobody reads, and
// what main.json says that this project takes from seducepp.conf instead.
func (d *Desc) notes(imgDir string) Summary {
	var sum Summary
	byFile := map[string][]string{}
	var files []string
	for _, ig := range d.Ignored {
		if byFile[ig.File] == nil {
			files = append(files, ig.File)
		}
		byFile[ig.File] = append(byFile[ig.File], ig.Key)
	}
	for _, f := range files {
		sum.Ignored = append(sum.Ignored, fmt.Sprintf("%s: %s", f, strings.Join(byFile[f], ", ")))
	}
	m := &d.Main
	var conf []string
	for _, c := range []struct{ key, value, ours string }{
		{"pimaster", m.Pimaster.IP, "pimaster_ip"},
		{"first_node_ip", m.FirstNodeIP, "first_node_ip"},
		{"img_dir", m.ImgDir, "img_dir"},
	} {
		if c.value != "" {
			conf = append(conf, fmt.Sprintf("%s (%s: [cluster] %s here)", c.key, c.value, c.ours))
		}
	}
	if len(conf) > 0 {
		sum.Notes = append(sum.Notes, "main.json: "+strings.Join(conf, ", ")+" are taken from seducepp.conf, not imported")
	}
	if m.ImgDir != "" && path.Clean(m.ImgDir) != filepath.Clean(imgDir) {
		sum.Notes = append(sum.Notes, fmt.Sprintf("images are looked for in img_dir %s, not in %s", imgDir, m.ImgDir))
	}
	return sum
}
