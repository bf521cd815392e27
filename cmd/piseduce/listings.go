package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/piseduce/piseduce/pkg/units"
)

// writeJSON writes v indented, as a listing's --json.
func writeJSON(w io.Writer, v any) error {
	e := json.NewEncoder(w)
	e.SetIndent("", "  ")
	return e.Encode(v)
}

func table(w io.Writer) *tabwriter.Writer { return tabwriter.NewWriter(w, 0, 0, 2, ' ', 0) }

// when writes a time in the user's zone, to the minute.
func when(t time.Time) string { return t.Local().Format("2006-01-02 15:04") }

func (a *app) nodesCmd() subcommand {
	c := newCommand("nodes", "", "Lists the nodes: model, free or busy (whose, until when), and the state of their deployment.", 0, 0)
	asJSON := c.Flags.Bool("json", false, `print {"nodes": […]} as the API gives it`)
	return subcommand{c, func(ctx context.Context, _ []string) error {
		cl, err := a.client()
		if err != nil {
			return err
		}
		ns, err := cl.Nodes(ctx)
		if err != nil {
			return err
		}
		if *asJSON {
			return a.printJSON(map[string]any{"nodes": ns})
		}
		tw := table(a.stdout)
		fmt.Fprintln(tw, "NAME\tMODEL\tFREE\tHELD BY\tUNTIL\tSTATE")
		for _, n := range ns {
			free, until := "free", ""
			if !n.Free {
				free = "busy"
			}
			if n.Until != nil {
				until = when(*n.Until)
			}
			state := string(n.State)
			if n.Process != "" && n.Process != "deploy" {
				state = n.Process + ": " + state
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", n.Name, n.Model, free, n.Holder, until, state)
		}
		return tw.Flush()
	}}
}

func (a *app) envsCmd() subcommand {
	c := newCommand("envs", "", "Lists the environments you may deploy.", 0, 0)
	asJSON := c.Flags.Bool("json", false, `print {"environments": […]} as the API gives it`)
	return subcommand{c, func(ctx context.Context, _ []string) error {
		cl, err := a.client()
		if err != nil {
			return err
		}
		es, err := cl.Environments(ctx)
		if err != nil {
			return err
		}
		if *asJSON {
			return a.printJSON(map[string]any{"environments": es})
		}
		tw := table(a.stdout)
		fmt.Fprintln(tw, "NAME\tSSH USER\tIMAGE\tDESCRIPTION")
		for _, e := range es {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", e.Name, e.SSHUser, units.Bytes(e.ImageSize), e.Description)
		}
		return tw.Flush()
	}}
}

func (a *app) reservationsCmd() subcommand {
	c := newCommand("reservations", "", "Lists your current and future reservations.", 0, 0)
	asJSON := c.Flags.Bool("json", false, `print {"reservations": […]} as the API gives it`)
	return subcommand{c, func(ctx context.Context, _ []string) error {
		cl, err := a.client()
		if err != nil {
			return err
		}
		rs, err := cl.Reservations(ctx)
		if err != nil {
			return err
		}
		if *asJSON {
			return a.printJSON(map[string]any{"reservations": rs})
		}
		tw := table(a.stdout)
		fmt.Fprintln(tw, "ID\tFROM\tUNTIL\tNODES")
		for _, r := range rs {
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\n", r.ID, when(r.StartsAt), when(r.EndsAt), strings.Join(r.Nodes, ","))
		}
		return tw.Flush()
	}}
}
