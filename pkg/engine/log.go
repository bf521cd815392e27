package engine

import (
	"context"
	"log/slog"

	"github.com/piseduce/piseduce/pkg/store"
)

// deploymentLog is e.log with d's attributes (as Logger.With them), which it adds when a
// record is written: most turns (a poll, "not yet") log nothing, and With's handler of
// their own, formatted ahead, was a tenth of a busy tick's allocations.
func (e *Engine) deploymentLog(d *store.Deployment) *slog.Logger {
	return slog.New(&withAttrs{h: e.log.Handler(), attrs: [...]slog.Attr{slog.Uint64("deployment", uint64(d.ID)),
		slog.String("node", d.Node.Name), slog.String("process", d.Process), slog.String("state", string(d.State))}})
}

// withAttrs is h with attrs added before each record's own, as h.WithAttrs(attrs) would.
type withAttrs struct {
	h     slog.Handler
	attrs [4]slog.Attr
}

func (w *withAttrs) Enabled(ctx context.Context, l slog.Level) bool { return w.h.Enabled(ctx, l) }

func (w *withAttrs) Handle(ctx context.Context, r slog.Record) error {
	out := slog.NewRecord(r.Time, r.Level, r.Message, r.PC)
	out.AddAttrs(w.attrs[:]...)
	r.Attrs(func(a slog.Attr) bool { out.AddAttrs(a); return true })
	return w.h.Handle(ctx, out)
}

func (w *withAttrs) WithAttrs(as []slog.Attr) slog.Handler {
	return w.h.WithAttrs(w.attrs[:]).WithAttrs(as)
}

func (w *withAttrs) WithGroup(name string) slog.Handler {
	return w.h.WithAttrs(w.attrs[:]).WithGroup(name)
}
