package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/piseduce/piseduce/pkg/client"
)

// watcher gives the deployments followed as they stand now, waiting for news first except
// the first time.
type watcher interface {
	Next(ctx context.Context) ([]client.Deployment, error)
}

// poller asks the API for the deployments every `every`.
type poller struct {
	c       *client.Client
	ids     []uint
	every   time.Duration
	started bool
}

func (p *poller) Next(ctx context.Context) ([]client.Deployment, error) {
	if p.started {
		t := time.NewTimer(p.every)
		defer t.Stop()
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-t.C:
		}
	}
	p.started = true
	return p.read(ctx)
}

// read asks the API for the deployments now.
func (p *poller) read(ctx context.Context) ([]client.Deployment, error) {
	all, err := p.c.Deployments(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]client.Deployment, 0, len(p.ids))
	for _, id := range p.ids {
		if i := slices.IndexFunc(all, func(d client.Deployment) bool { return d.ID == id }); i >= 0 {
			out = append(out, all[i])
			continue
		}
		// No longer current (its reservation ended): as it stands.
		d, err := p.c.Deployment(ctx, id)
		if client.IsStatus(err, http.StatusNotFound) {
			return nil, fmt.Errorf("deployment %d is gone (its reservation ended?)", id)
		}
		if err != nil {
			return nil, err
		}
		out = append(out, *d)
	}
	return out, nil
}

// streamQuiet is how long a stream may say nothing (the site pings every 20 s) before it is
// taken for stalled.
const streamQuiet = 45 * time.Second

// streamer follows the deployments through the site's event stream, from where the poller
// read them: news arrives as it happens, without asking every second. It polls instead when
// the stream cannot be opened or says nothing in time (a site without one, a proxy that
// buffers answers), and from then on.
type streamer struct {
	poll *poller
	// wait is how long the stream may take to say it works.
	wait    time.Duration
	events  *client.Events
	cur     []client.Deployment
	polling bool
}

func (s *streamer) Next(ctx context.Context) ([]client.Deployment, error) {
	var err error
	switch {
	case s.polling:
		return s.poll.Next(ctx)
	case s.cur == nil:
		s.cur, err = s.poll.read(ctx)
		return slices.Clone(s.cur), err
	case s.events == nil:
		if s.events, err = s.poll.c.Events(ctx, s.poll.ids, s.wait); err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			s.polling, s.poll.started = true, true
			return s.poll.Next(ctx)
		}
	}
	d, err := s.events.Next(streamQuiet)
	if err != nil {
		// The site ended the stream (it does every few minutes) or it stalled: read where
		// things stand, then open a new one.
		s.events.Close()
		s.events = nil
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		s.cur, err = s.poll.read(ctx)
		return slices.Clone(s.cur), err
	}
	if i := slices.IndexFunc(s.cur, func(c client.Deployment) bool { return c.ID == d.ID }); i >= 0 {
		s.cur[i] = *d
	}
	return slices.Clone(s.cur), nil
}

// close ends the stream, if one is open.
func (s *streamer) close() {
	if s.events != nil {
		s.events.Close()
	}
}

// follow shows the deployments until each one is done: on a terminal (tty), a progress bar
// per node redrawn in place; otherwise a line per node whenever what it says changes. The
// error names the nodes that failed or were lost.
func follow(ctx context.Context, w watcher, out io.Writer, tty bool) error {
	last := map[uint]string{}
	drawn := 0
	for {
		ds, err := w.Next(ctx)
		if err != nil {
			return err
		}
		if tty {
			var b strings.Builder
			if drawn > 0 {
				fmt.Fprintf(&b, "\x1b[%dA", drawn) // back to the first bar
			}
			for _, d := range ds {
				b.WriteString("\x1b[2K" + barLine(&d) + "\n")
			}
			drawn = len(ds)
			io.WriteString(out, b.String())
		} else {
			for _, d := range ds {
				if l := plainLine(&d); l != last[d.ID] {
					fmt.Fprintln(out, l)
					last[d.ID] = l
				}
			}
		}
		if !slices.ContainsFunc(ds, func(d client.Deployment) bool { return !d.Done() }) {
			var bad []string
			for _, d := range ds {
				if d.Stopped() {
					bad = append(bad, fmt.Sprintf("%s %s", d.Node, d.State))
				}
			}
			if len(bad) > 0 {
				return fmt.Errorf("not deployed: %s", strings.Join(bad, ", "))
			}
			return nil
		}
	}
}

const barWidth = 24

// barLine is one node's progress bar: the copy's share while the image is written, else the
// share of the process's steps done; then its state, speed and time left.
func barLine(d *client.Deployment) string {
	frac := 0.0
	switch {
	case d.Copying:
		frac = d.Percent / 100
	case d.Done():
		frac = 1
	case d.Steps > 0:
		frac = float64(d.Step-1) / float64(d.Steps)
	}
	n := min(max(int(frac*barWidth+0.5), 0), barWidth)
	bar := "[" + strings.Repeat("#", n) + strings.Repeat(".", barWidth-n) + "]"
	return fmt.Sprintf("%-10s %s %5.1f%% %s", d.Node, bar, frac*100, status(d))
}

// plainLine is what a node is doing, in whole tens of percent while the image is written, so
// that it changes only when something happened.
func plainLine(d *client.Deployment) string {
	if d.Copying {
		return fmt.Sprintf("%s: %s %d%%", d.Node, label(d), int(d.Percent)/10*10)
	}
	return fmt.Sprintf("%s: %s", d.Node, status(d))
}

// label is the state's badge as the web shows it, with the step while the process runs.
func label(d *client.Deployment) string {
	switch {
	case d.Done() || d.StepText == "":
		return d.Label
	case d.Label == "":
		return d.StepText
	}
	return d.Label + " (" + d.StepText + ")"
}

// status is the state in words, with the copy's speed and time left while it runs, and the
// reason when the node was given up.
func status(d *client.Deployment) string {
	s := label(d)
	if d.Copying && d.Speed != "" {
		s += "  " + d.Speed
		if d.ETASeconds > 0 {
			s += "  " + (time.Duration(d.ETASeconds) * time.Second).String() + " left"
		}
	}
	if d.Stopped() && d.LastError != "" {
		s += ": " + d.LastError
	}
	return s
}
