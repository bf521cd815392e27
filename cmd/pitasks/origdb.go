package main

// pitasks import-original-db [-dry-run] [-time-zone ZONE] URL: a running original site's
// users, user environments' owners and current deployments (see pkg/origdb).

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/piseduce/piseduce/pkg/cli"
	"github.com/piseduce/piseduce/pkg/origdb"
	"github.com/piseduce/piseduce/pkg/store"
)

type origDBFlags struct {
	dryRun *bool
	zone   *string
}

func importOriginalDBCommand() (*cli.Command, origDBFlags) {
	c := cli.New("pitasks import-original-db", "mysql://user:password@host[:port]/database",
		"Import a running original PiSeduce's users, the owners of its user environments and its\n"+
			"current deployments, reading its database in a read-only transaction.", 1, 1)
	return c, origDBFlags{
		dryRun: c.Flags.Bool("dry-run", false, "list what would be imported, write nothing"),
		zone:   c.Flags.String("time-zone", "Local", "the zone of the original's dates (its pimaster's), e.g. Europe/Paris"),
	}
}

func importOriginalDBCmd(ctx context.Context, st *store.Store, args []string, w io.Writer) error {
	c, f := importOriginalDBCommand()
	args, err := c.Parse(args)
	if err != nil {
		return err
	}
	dry, zone := f.dryRun, f.zone
	loc, err := time.LoadLocation(*zone)
	if err != nil {
		return fmt.Errorf("-time-zone: %w", err)
	}
	snap, err := origdb.Read(ctx, args[0], loc)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "read the original's database (read-only transaction, SELECT only): %d users, %d current deployments\n",
		len(snap.Users), len(snap.Deployments))
	rep, err := origdb.Import(ctx, st, snap, origdb.Options{DryRun: *dry})
	if err != nil {
		return err
	}
	for _, l := range rep.Lines {
		fmt.Fprintln(w, l)
	}
	for _, n := range rep.Notes {
		fmt.Fprintln(w, "note:", n)
	}
	if *dry {
		fmt.Fprintf(w, "dry run, nothing written: would be %s\n", rep)
	} else {
		fmt.Fprintf(w, "imported: %s\n", rep)
	}
	return nil
}
