package main

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/piseduce/piseduce/pkg/atomicfile"
	"github.com/piseduce/piseduce/pkg/config"
	"github.com/piseduce/piseduce/pkg/publish"
	"github.com/piseduce/piseduce/pkg/store"
)

// keepNginxCurrent keeps the nginx configuration that publishes deployed nodes ([nginx]
// stream_conf and http_conf, see pkg/publish) following the database, and reloads nginx
// when it changed: a node is published once deployed, and no longer once destroyed.
func keepNginxCurrent(ctx context.Context, cfg *config.Config, st *store.Store, log *slog.Logger) {
	for _, p := range []string{cfg.Nginx.StreamConf, cfg.Nginx.HTTPConf} {
		if p == "" {
			continue
		}
		if _, err := os.Stat(filepath.Dir(p)); err != nil {
			log.Warn("nodes are not published through nginx: no such folder", "file", p)
			return
		}
	}
	n := &nginxSync{cfg: cfg, st: st, log: log}
	keepCurrent(ctx, log, "nginx configuration", n.sync)
}

// nginxSync writes the nginx files and reloads nginx.
type nginxSync struct {
	cfg *config.Config
	st  *store.Store
	log *slog.Logger
	// reloadDue: a file changed and nginx has not reloaded it yet (the last reload failed).
	reloadDue bool
}

// sync writes the files the database calls for, each only if its content changed, and runs
// the reload command after a change (again at the next call while it fails).
func (n *nginxSync) sync(ctx context.Context) error {
	nodes, err := n.st.PublishedNodes(ctx, time.Now())
	if err != nil {
		return err
	}
	c := n.cfg.Nginx
	o := publish.Options{Listen: c.Listen, HTTPPort: c.HTTPPort, HTTPDomain: c.HTTPDomain}
	for _, f := range []struct {
		path string
		gen  func([]store.PublishedNode, publish.Options) ([]byte, error)
	}{{c.StreamConf, publish.Stream}, {c.HTTPConf, publish.HTTP}} {
		if f.path == "" {
			continue
		}
		b, err := f.gen(nodes, o)
		if err != nil {
			return err
		}
		wrote, err := atomicfile.WriteIfChanged(f.path, b, 0o644)
		if err != nil {
			return err
		}
		n.reloadDue = n.reloadDue || wrote
	}
	if !n.reloadDue || len(c.Reload) == 0 {
		return nil
	}
	rctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	var out bytes.Buffer
	cmd := exec.CommandContext(rctx, c.Reload[0], c.Reload[1:]...)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("[nginx] reload %s: %v: %s", strings.Join(c.Reload, " "), err, strings.TrimSpace(out.String()))
	}
	n.reloadDue = false
	n.log.Info("nginx reloaded: the published nodes changed", "nodes", len(nodes))
	return nil
}
