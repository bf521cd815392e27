package main

// pitasks import-original-db [-dry-run] [-time-zone ZONE] URL: a running original site's
// users, user environments' owners and current deployments (see pkg/origdb).

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/piseduce/piseduce/pkg/origdb"
	"github.com/piseduce/piseduce/pkg/store"
)

func importOriginalDBCmd(ctx context.Context, st *store.Store, args []string, w io.Writer) error {
	fs := flag.NewFlagSet("import-original-db", flag.ContinueOnError)
	fs.SetOutput(w)
	dry := fs.Bool("dry-run", false, "list what would be imported, write nothing")
	zone := fs.String("time-zone", "Local", "the zone of the original's dates (its pimaster's), e.g. Europe/Paris")
	fs.Usage = func() {
		fmt.Fprintln(w, "usage: pitasks import-original-db [-dry-run] [-time-zone ZONE] mysql://user:password@host[:port]/database")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return errors.New("import-original-db needs the URL of the original's database")
	}
	loc, err := time.LoadLocation(*zone)
	if err != nil {
		return fmt.Errorf("-time-zone: %w", err)
	}
	snap, err := origdb.Read(ctx, fs.Arg(0), loc)
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
