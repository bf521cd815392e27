package main

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/piseduce/piseduce/pkg/cli"
	"github.com/piseduce/piseduce/pkg/client"
)

// hours reads a duration in whole hours, the unit of reservations: "2h", "90m" is refused,
// a bare number is hours.
func hours(c *cli.Command, flag, s string) (int, error) {
	if n, err := strconv.Atoi(s); err == nil && n > 0 {
		return n, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 || d%time.Hour != 0 {
		return 0, c.Errorf("--%s %q: give whole hours, e.g. 2h", flag, s)
	}
	return int(d / time.Hour), nil
}

// startTime reads --start: RFC 3339, or a date and time in the local zone.
func startTime(c *cli.Command, s string) (*time.Time, error) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return &t, nil
	}
	for _, layout := range []string{"2006-01-02 15:04", "2006-01-02T15:04"} {
		if t, err := time.ParseInLocation(layout, s, time.Local); err == nil {
			return &t, nil
		}
	}
	return nil, c.Errorf("--start %q: give a time like 2026-05-04T14:00:00+02:00 or \"2026-05-04 14:00\" (local time)", s)
}

// names splits a comma-separated list of node names.
func names(s string) []string {
	var out []string
	for _, n := range strings.Split(s, ",") {
		if n = strings.TrimSpace(n); n != "" {
			out = append(out, n)
		}
	}
	return out
}

// nodesNamed finds the nodes by name, in the order given; a name that is no node is an error.
func nodesNamed(ns []client.Node, want []string) ([]client.Node, error) {
	var out []client.Node
	for _, w := range want {
		i := slices.IndexFunc(ns, func(n client.Node) bool { return n.Name == w })
		if i < 0 {
			return nil, fmt.Errorf("no node named %q (piseduce nodes lists them)", w)
		}
		out = append(out, ns[i])
	}
	return out, nil
}

func printReservation(a *app, verb string, r *client.Reservation) {
	fmt.Fprintf(a.stdout, "Reservation %d %s: %s from %s until %s.\n", r.ID, verb, strings.Join(r.Nodes, ", "), when(r.StartsAt), when(r.EndsAt))
}

func (a *app) reserveCmd() subcommand {
	c := newCommand("reserve", "", `Reserves nodes: some of a model (-n, --model) or named ones (--nodes), for whole hours,
now or from --start. Prints the reservation's number, which deploy and extend take.`, 0, 0)
	count := c.Flags.Int("n", 0, "how many nodes (of --model when given)")
	nodeList := c.Flags.String("nodes", "", "the nodes, by name: node-1,node-2")
	model := c.Flags.String("model", "", "the model, e.g. RPI4B (with -n)")
	dur := c.Flags.String("for", "", "how long, in whole hours: 2h (required)")
	start := c.Flags.String("start", "", "when it starts (default: now): 2026-05-04T14:00:00Z or \"2026-05-04 14:00\" local time")
	return subcommand{c, func(ctx context.Context, _ []string) error {
		if *dur == "" {
			return c.Errorf("--for is required")
		}
		h, err := hours(c, "for", *dur)
		if err != nil {
			return err
		}
		req := client.ReservationRequest{Hours: h, Model: *model, Count: *count}
		if *start != "" {
			if req.StartsAt, err = startTime(c, *start); err != nil {
				return err
			}
		}
		switch {
		case *nodeList != "" && (*count != 0 || *model != ""):
			return c.Errorf("give either --nodes or -n (with --model), not both")
		case *nodeList == "" && *count <= 0:
			return c.Errorf("give -n N (how many nodes) or --nodes a,b")
		}
		cl, err := a.client()
		if err != nil {
			return err
		}
		if *nodeList != "" {
			ns, err := cl.Nodes(ctx)
			if err != nil {
				return err
			}
			want, err := nodesNamed(ns, names(*nodeList))
			if err != nil {
				return err
			}
			for _, n := range want {
				req.NodeIDs = append(req.NodeIDs, n.ID)
			}
		}
		r, err := cl.Reserve(ctx, req)
		if err != nil {
			return err
		}
		printReservation(a, "made", r)
		return nil
	}}
}

func (a *app) extendCmd() subcommand {
	c := newCommand("extend", "RESERVATION", "Makes a reservation longer (up to the site's maximum).", 1, 1)
	by := c.Flags.String("by", "", "how much longer, in whole hours: 1h (required)")
	return subcommand{c, func(ctx context.Context, args []string) error {
		id, err := reservationID(c, args[0])
		if err != nil {
			return err
		}
		if *by == "" {
			return c.Errorf("--by is required")
		}
		h, err := hours(c, "by", *by)
		if err != nil {
			return err
		}
		cl, err := a.client()
		if err != nil {
			return err
		}
		r, err := cl.Extend(ctx, id, h)
		if err != nil {
			return err
		}
		printReservation(a, "extended", r)
		return nil
	}}
}

func reservationID(c *cli.Command, s string) (uint, error) {
	id, err := strconv.ParseUint(s, 10, 32)
	if err != nil || id == 0 {
		return 0, c.Errorf("%q is not a reservation number (piseduce reservations lists them)", s)
	}
	return uint(id), nil
}

// The API ends whole reservations (POST /reservations/{id}/end): release ends those of the
// nodes named, and refuses to end one with other nodes that were not named.
func (a *app) releaseCmd() subcommand {
	c := newCommand("release", "NODE…", `Ends the reservation of the nodes now: their deployments are destroyed and the nodes
are free for others. The site ends whole reservations: name every node of a reservation.`, 1, -1)
	return subcommand{c, func(ctx context.Context, args []string) error {
		cl, err := a.client()
		if err != nil {
			return err
		}
		ns, err := cl.Nodes(ctx)
		if err != nil {
			return err
		}
		want, err := nodesNamed(ns, args)
		if err != nil {
			return err
		}
		var ids []uint
		for _, n := range want {
			if n.ReservationID == 0 {
				return fmt.Errorf("%s is not reserved by you now", n.Name)
			}
			if !slices.Contains(ids, n.ReservationID) {
				ids = append(ids, n.ReservationID)
			}
		}
		rs, err := cl.Reservations(ctx)
		if err != nil {
			return err
		}
		for _, id := range ids {
			i := slices.IndexFunc(rs, func(r client.Reservation) bool { return r.ID == id })
			if i < 0 {
				return fmt.Errorf("reservation %d is not yours any more", id)
			}
			for _, n := range rs[i].Nodes {
				if !slices.Contains(args, n) {
					return fmt.Errorf("%s is in reservation %d with %s: the site releases whole reservations; name them all",
						want[slices.IndexFunc(want, func(w client.Node) bool { return w.ReservationID == id })].Name, id, strings.Join(rs[i].Nodes, ", "))
				}
			}
		}
		for _, id := range ids {
			if err := cl.EndReservation(ctx, id); err != nil {
				return fmt.Errorf("reservation %d: %w", id, err)
			}
			r := rs[slices.IndexFunc(rs, func(r client.Reservation) bool { return r.ID == id })]
			fmt.Fprintf(a.stdout, "Released %s (reservation %d); their deployments are being destroyed.\n", strings.Join(r.Nodes, ", "), id)
		}
		return nil
	}}
}
