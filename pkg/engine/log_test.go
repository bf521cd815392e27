package engine

import (
	"bytes"
	"log/slog"
	"testing"

	"github.com/piseduce/piseduce/pkg/store"
)

// TestDeploymentLogIsWith: a deployment's logger writes what Logger.With its attributes
// writes, with a record's own attributes, a group and more attributes after it.
func TestDeploymentLogIsWith(t *testing.T) {
	d := &store.Deployment{ID: 7, Node: store.Node{Name: "node-3"}, Process: "deploy", State: "boot_nfs"}
	noTime := func(_ []string, a slog.Attr) slog.Attr {
		if a.Key == slog.TimeKey {
			return slog.Attr{}
		}
		return a
	}
	write := func(log func(*slog.Logger) *slog.Logger) string {
		var b bytes.Buffer
		l := log(slog.New(slog.NewTextHandler(&b, &slog.HandlerOptions{Level: slog.LevelInfo, ReplaceAttr: noTime})))
		l.Info("one", "err", "boom", "n", 3)
		l.Debug("not enabled")
		l.With("k", "v").Warn("two", "x", 1)
		l.WithGroup("g").Error("three", "y", 2)
		return b.String()
	}
	want := write(func(l *slog.Logger) *slog.Logger {
		return l.With("deployment", d.ID, "node", d.Node.Name, "process", d.Process, "state", d.State)
	})
	got := write(func(l *slog.Logger) *slog.Logger { return (&Engine{log: l}).deploymentLog(d) })
	if got != want || want == "" {
		t.Fatalf("deployment log:\n%s\nwant (Logger.With):\n%s", got, want)
	}
}
