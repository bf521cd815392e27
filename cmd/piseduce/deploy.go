package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/piseduce/piseduce/pkg/client"
)

func (a *app) deployCmd() subcommand {
	c := newCommand("deploy", "RESERVATION", `Deploys an environment on every node of a reservation (by its number, or by naming all
its nodes with --nodes). The system's password is random unless --password-from-stdin;
the SSH key is --ssh-key's, else ~/.ssh/id_ed25519.pub, id_ecdsa.pub or id_rsa.pub, the
first there is (none: log in with the password). With --wait, follows the
deployments until every node is deployed or given up (news pushed by the site, or asked
for every second when it cannot push): live progress bars on a terminal, a line per
change otherwise; the exit status is 1 when a node failed or was lost.`, 0, 1)
	nodeList := c.Flags.String("nodes", "", "the nodes of the reservation, by name: node-1,node-2")
	envName := c.Flags.String("env", "", "the environment (piseduce envs lists them; required)")
	name := c.Flags.String("name", "", "the deployments' name (default: the environment's)")
	keyFile := c.Flags.String("ssh-key", "", "a public key file to log in with, e.g. ~/.ssh/id_ed25519.pub")
	pwStdin := c.Flags.Bool("password-from-stdin", false, "read the system's password from the first line of stdin")
	wait := c.Flags.Bool("wait", false, "follow the deployments until they end")
	return subcommand{c, func(ctx context.Context, args []string) error {
		switch {
		case *envName == "":
			return c.Errorf("--env is required")
		case len(args) == 1 && *nodeList != "", len(args) == 0 && *nodeList == "":
			return c.Errorf("give a reservation number or --nodes, one of them")
		}
		req := client.DeploymentRequest{Name: *name}
		if *keyFile == "" {
			*keyFile = a.defaultKey()
		}
		if *keyFile != "" {
			key, err := os.ReadFile(*keyFile)
			if err != nil {
				return err
			}
			req.PublicKey = strings.TrimSpace(string(key))
		}
		if *pwStdin {
			pw, err := readLine(bufio.NewReader(a.stdin))
			if err != nil {
				return fmt.Errorf("reading the password from stdin: %w", err)
			}
			req.OSPassword = pw
		}
		cl, err := a.client()
		if err != nil {
			return err
		}
		if len(args) == 1 {
			if req.ReservationID, err = reservationID(c, args[0]); err != nil {
				return err
			}
		} else if req.ReservationID, err = reservationOf(ctx, cl, names(*nodeList)); err != nil {
			return err
		}
		es, err := cl.Environments(ctx)
		if err != nil {
			return err
		}
		env := slices.IndexFunc(es, func(e client.Environment) bool { return e.Name == *envName })
		if env < 0 {
			return fmt.Errorf("no environment named %q that you may deploy (piseduce envs lists them)", *envName)
		}
		req.EnvironmentID = es[env].ID
		if req.Name == "" {
			req.Name = es[env].Name
		}
		ds, err := cl.Deploy(ctx, req)
		if err != nil {
			return err
		}
		ids := make([]uint, len(ds))
		var nodes []string
		for i, d := range ds {
			ids[i], nodes = d.ID, append(nodes, d.Node)
		}
		fmt.Fprintf(a.stdout, "Deploying %s on %s.\n", es[env].Name, strings.Join(nodes, ", "))
		if !*wait {
			return nil
		}
		w := &streamer{poll: &poller{c: cl, ids: ids, every: a.pollEvery}, wait: a.eventsWait}
		defer w.close()
		return follow(ctx, w, a.stdout, isTerminal(a.stdout))
	}}
}

// defaultKey is the public key ssh would offer first, as ssh-keygen names them; "" for none.
func (a *app) defaultKey() string {
	home := a.getenv("HOME")
	if home == "" {
		return ""
	}
	for _, k := range []string{"id_ed25519.pub", "id_ecdsa.pub", "id_rsa.pub"} {
		if p := filepath.Join(home, ".ssh", k); fileExists(p) {
			return p
		}
	}
	return ""
}

func fileExists(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular()
}

// reservationOf is the one reservation of the user that holds exactly the nodes named.
func reservationOf(ctx context.Context, cl *client.Client, want []string) (uint, error) {
	ns, err := cl.Nodes(ctx)
	if err != nil {
		return 0, err
	}
	nodes, err := nodesNamed(ns, want)
	if err != nil {
		return 0, err
	}
	id := nodes[0].ReservationID
	for _, n := range nodes {
		switch {
		case n.ReservationID == 0:
			return 0, fmt.Errorf("%s is not reserved by you now (piseduce reserve --nodes %s --for 1h)", n.Name, n.Name)
		case n.ReservationID != id:
			return 0, fmt.Errorf("%s and %s are in different reservations (%d, %d): deploy each one", nodes[0].Name, n.Name, id, n.ReservationID)
		}
	}
	for _, n := range ns {
		if n.ReservationID == id && !slices.Contains(want, n.Name) {
			return 0, fmt.Errorf("reservation %d also holds %s: a deployment covers a whole reservation; name it too, or give %d", id, n.Name, id)
		}
	}
	return id, nil
}

func (a *app) destroyCmd() subcommand {
	c := newCommand("destroy", "NODE…", `Destroys the deployments of the nodes (or of all your nodes with --all): the cards are
wiped and the nodes powered off; they stay reserved and may be deployed again.`, 0, -1)
	all := c.Flags.Bool("all", false, "every deployment of yours")
	return subcommand{c, func(ctx context.Context, args []string) error {
		if *all == (len(args) > 0) {
			return c.Errorf("give the nodes or --all, one of them")
		}
		cl, err := a.client()
		if err != nil {
			return err
		}
		ds, err := cl.Deployments(ctx)
		if err != nil {
			return err
		}
		for _, n := range args {
			if !slices.ContainsFunc(ds, func(d client.Deployment) bool { return d.Node == n }) {
				return fmt.Errorf("%s has no deployment of yours", n)
			}
		}
		var failed []string
		for _, d := range ds {
			if !*all && !slices.Contains(args, d.Node) {
				continue
			}
			if d.Process == "destroy" {
				fmt.Fprintf(a.stdout, "%s: already being destroyed.\n", d.Node)
				continue
			}
			if _, err := cl.Destroy(ctx, d.ID); err != nil {
				fmt.Fprintf(a.stdout, "%s: %v\n", d.Node, err)
				failed = append(failed, d.Node)
				continue
			}
			fmt.Fprintf(a.stdout, "%s: being destroyed.\n", d.Node)
		}
		if len(failed) > 0 {
			return fmt.Errorf("not destroyed: %s", strings.Join(failed, ", "))
		}
		return nil
	}}
}
