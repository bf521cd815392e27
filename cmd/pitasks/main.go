// Command pitasks is PiSeduce's worker: it polls the database on a cron tick and moves every
// node through its process (deploy, destroy, reboot, boot_test).
//
//	pitasks [-config FILE] [-log-level LEVEL] [-log-format text|json]  run the worker
//	pitasks -version                                           version, commit and build date
//	pitasks [-config FILE] import-cluster DIR                  import an original cluster_desc/ folder
//	pitasks [-config FILE] import-original-db [-dry-run] URL   import a running original's users and deployments (see origdb.go)
//	pitasks [-config FILE] check                               check the configuration and the database (writes nothing)
//	pitasks [-config FILE] port SWITCH PORT status|on|off|cycle  one PoE port (see admin.go)
//	pitasks [-config FILE] switches [--json]                   does each switch answer; port grid
//	pitasks [-config FILE] nodes [--json] [NAME]               node state: deployment, lease, events
//	pitasks [-config FILE] discover SWITCH [PORT…]             node discovery (see discover.go)
//	pitasks [-config FILE] dnsmasq                             regenerate the DHCP hosts file, reload dnsmasq
//	pitasks [-config FILE] env-register … IMAGE | env-export NAME   environments (see env.go)
//	pitasks [-config FILE] user create-admin|reset-password EMAIL    one-time passwords (see user.go)
//
// pitasks -h and pitasks COMMAND -h print the usage (see pkg/cli for the conventions).
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/piseduce/piseduce/pkg/auth"
	"github.com/piseduce/piseduce/pkg/cli"
	"github.com/piseduce/piseduce/pkg/clusterdesc"
	"github.com/piseduce/piseduce/pkg/config"
	"github.com/piseduce/piseduce/pkg/deploy"
	"github.com/piseduce/piseduce/pkg/discovery"
	"github.com/piseduce/piseduce/pkg/engine"
	"github.com/piseduce/piseduce/pkg/logging"
	"github.com/piseduce/piseduce/pkg/metrics"
	"github.com/piseduce/piseduce/pkg/netboot"
	"github.com/piseduce/piseduce/pkg/notify"
	"github.com/piseduce/piseduce/pkg/remote"
	"github.com/piseduce/piseduce/pkg/requests"
	"github.com/piseduce/piseduce/pkg/sdnotify"
	"github.com/piseduce/piseduce/pkg/store"
	"github.com/piseduce/piseduce/pkg/version"
)

func main() {
	os.Exit(cli.Exit("pitasks", run(os.Args[1:]), os.Stdout, os.Stderr))
}

// subcommands are pitasks' subcommands in the order the usage lists them. Each one's
// arguments are checked before the configuration is read, so that -h and wrong arguments
// answer on a machine without one.
var subcommands = []struct {
	name, summary string
	command       func() *cli.Command
}{
	{"run", "run the worker (the default)", noFlags("run", "", "", 0, 0)},
	{"check", "check the configuration and the database (writes nothing)", noFlags("check", "", "", 0, 0)},
	{"import-cluster", "import an original cluster_desc/ folder", noFlags("import-cluster", "DIR", "", 1, 1)},
	{"import-original-db", "import a running original's users and deployments", commandOf(importOriginalDBCommand)},
	{"discover", "find the Raspberry Pis on a switch's free ports", commandOf(discoverCommand)},
	{"dnsmasq", "regenerate the DHCP hosts file, reload dnsmasq", commandOf(dnsmasqCommand)},
	{"port", "show or switch one PoE port", portCommand},
	{"switches", "does each switch answer; its port grid", commandOf(switchesCommand)},
	{"nodes", "node state: deployment, progress, lease, events", commandOf(nodesCommand)},
	{"env-register", "measure an image and record its environment", commandOf(envRegisterCommand)},
	{"env-export", "an environment as the original's JSON", commandOf(envExportCommand)},
	{"user", "a new admin, or a new password, when nobody can log in", userCommand},
}

// noFlags makes the command of a subcommand without flags.
func noFlags(name, args, help string, minArgs, maxArgs int) func() *cli.Command {
	return func() *cli.Command { return cli.New("pitasks "+name, args, help, minArgs, maxArgs) }
}

// commandOf is the command of a subcommand whose constructor also returns its flags' values.
func commandOf[T any](f func() (*cli.Command, T)) func() *cli.Command {
	return func() *cli.Command { c, _ := f(); return c }
}

func rootCommand() *cli.Command {
	var help strings.Builder
	help.WriteString("commands (pitasks COMMAND -h says more):\n")
	tw := tabwriter.NewWriter(&help, 0, 0, 2, ' ', 0)
	for _, sc := range subcommands {
		fmt.Fprintf(tw, "  %s\t%s\n", sc.name, sc.summary)
	}
	tw.Flush()
	return cli.New("pitasks", "[COMMAND [ARGS…]]", help.String(), 0, -1)
}

func run(args []string) error {
	root := rootCommand()
	cfgPath := root.Flags.String("config", "", "configuration file (default: /etc/seducepp.conf, then ./seducepp.conf)")
	logFlags := logging.AddFlags(root.Flags)
	showVersion := root.Flags.Bool("version", false, "print the version, commit and build date, and exit")
	args, err := root.ParseHead(args)
	if err != nil {
		return err
	}
	if *showVersion {
		fmt.Println("pitasks", version.Get())
		return nil
	}
	cmd := "run"
	if len(args) > 0 {
		cmd, args = args[0], args[1:]
	}
	known := false
	for _, sc := range subcommands {
		if sc.name == cmd {
			known = true
			if _, err := sc.command().Parse(args); err != nil {
				return err
			}
			if cmd == "user" { // its action and e-mail too
				if _, err := parseUserArgs(args); err != nil {
					return err
				}
			}
		}
	}
	if !known {
		return root.Errorf("unknown command %q", cmd)
	}
	log, err := logFlags.Logger(os.Stderr)
	if err != nil {
		return err
	}
	path, err := config.Find(*cfgPath)
	if err != nil {
		return err
	}
	cfg, err := config.Load(path)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if cmd == "check" {
		return checkCmd(ctx, path, cfg.DB.ConnectionURL.Value(), os.Stdout)
	}
	st, err := store.Open(ctx, cfg.DB.ConnectionURL.Value())
	if err != nil {
		return err
	}
	defer st.Close()

	switch cmd {
	case "run":
		return serve(ctx, cfg, st, log)
	case "import-cluster":
		return importCluster(ctx, st, args[0], cfg.Cluster.ImgDir, os.Stdout)
	case "import-original-db": // see origdb.go
		return importOriginalDBCmd(ctx, st, args, os.Stdout)
	case "discover", "dnsmasq": // see discover.go
		return discoveryCmd(ctx, cfg, st, cmd, args, os.Stdout)
	case "port":
		return portCmd(ctx, st, args, os.Stdout)
	case "switches":
		return switchesCmd(ctx, st, args, os.Stdout)
	case "nodes":
		return nodesCmd(ctx, st, args, os.Stdout)
	case "user": // see user.go
		return userCmd(ctx, st, args, os.Stdout)
	default: // "env-register", "env-export": see env.go
		return envCmd(ctx, cfg.Cluster.ImgDir, st, cmd, args, os.Stdout)
	}
}

// checkCmd reports on the configuration at path (already valid) and its database, and writes
// nothing: a schema behind this program is said, not migrated; one ahead of it is an error.
func checkCmd(ctx context.Context, path, connURL string, w io.Writer) error {
	dialect, _, err := store.ParseURL(connURL)
	if err != nil {
		return err
	}
	sc, err := store.InspectSchema(ctx, connURL)
	if errors.Is(err, store.ErrNoDatabase) {
		fmt.Fprintf(w, "%s: configuration valid; %v (a daemon creates it when it first starts)\n", path, err)
		return nil
	}
	if err != nil {
		return err
	}
	state := "current"
	if n := sc.Latest - sc.Version; n > 0 {
		state = fmt.Sprintf("%d migration(s) pending, applied when a daemon starts", n)
	}
	fmt.Fprintf(w, "%s: configuration valid, database %s reachable, schema version %d (%s)\n", path, dialect, sc.Version, state)
	for _, warning := range sc.Warnings {
		fmt.Fprintf(w, "warning: %s\n", warning)
	}
	if len(sc.Warnings) > 0 {
		return fmt.Errorf("%d problem(s) in the database", len(sc.Warnings))
	}
	return checkWorkers(ctx, connURL, time.Now(), w)
}

// checkWorkers says whether a pitasks works on the database (its heartbeat): none that ticked
// within three ticks, when one ran before, is a problem; none ever is a fresh install.
func checkWorkers(ctx context.Context, connURL string, now time.Time, w io.Writer) error {
	h, recorded, err := store.InspectWorkers(ctx, connURL, now)
	switch {
	case err != nil:
		return err
	case !recorded || h.LastTick.IsZero():
		fmt.Fprintln(w, "workers: no pitasks has run on this database yet")
	case h.Running():
		fmt.Fprintf(w, "workers: %d pitasks running, last tick %s ago\n", h.Alive, now.Sub(h.LastTick).Round(time.Second))
	default:
		fmt.Fprintf(w, "warning: no pitasks is running: the last tick was %s ago (%s); deployments wait\n",
			now.Sub(h.LastTick).Round(time.Second), h.LastTick.UTC().Format(time.RFC3339))
		return errors.New("no pitasks worker is running")
	}
	return nil
}

// How often pitasks looks for events to mail and sends the outbox, and how long one
// message's SMTP exchange may take before it is tried again later.
const (
	notifyEvery       = 15 * time.Second
	notifySendTimeout = 30 * time.Second
)

// serve runs the engine on the configured tick until ctx ends, then stops cleanly.
func serve(ctx context.Context, cfg *config.Config, st *store.Store, log *slog.Logger) error {
	for _, w := range cfg.Warnings {
		log.Warn("config: " + w)
	}
	signer, err := remote.LoadOrCreateKey(cfg.Cluster.SSHKey)
	if err != nil {
		return err
	}
	if cfg.Cluster.NFSHostKey == "" {
		log.Warn("no [cluster] nfs_host_key: no node can be deployed, as the NFS system's host key is not trusted on first use")
	} else if err := pinNFSKey(ctx, st, cfg.Cluster.NFSHostKey); err != nil {
		return err
	}
	dep := deploy.New(deploy.Deployer{
		Dialer:       deploy.SSH{Dialer: &remote.Dialer{Signer: signer, Keys: st}},
		Switches:     &deploy.PowerDrivers{},
		Boot:         netboot.TFTP{Root: cfg.Cluster.TFTPRoot, NFSBootDir: cfg.Cluster.NFSBootDir},
		Keys:         st,
		ImgDir:       cfg.Cluster.ImgDir,
		NFSHostname:  cfg.Cluster.NFSHostname,
		PimasterKey:  remote.AuthorizedKey(signer.PublicKey()),
		PowerOffWait: cfg.Tasks.PowerOffWait, ModelOffWait: cfg.Tasks.ModelOffWait,
	}, deploy.Limits{Booting: cfg.Tasks.MaxBooting, Copying: cfg.Tasks.MaxCopying})
	sched, err := config.TickParser().Parse(cfg.Tasks.Tick)
	if err != nil {
		return fmt.Errorf("[tasks] tick: %w", err)
	}
	m := metrics.NewTasks()
	ticks := &tickWatch{Observer: m}
	eng, err := engine.New(engine.Options{Store: st, Steps: dep.Steps(), Rebooter: dep, Log: log,
		Workers: cfg.Tasks.Workers, Lease: cfg.Tasks.Lease, Tick: tickInterval(sched, time.Now()),
		StepDeadline: cfg.Tasks.StepDeadline, Timeouts: cfg.Timeouts, SilentLimit: cfg.Tasks.NodeSilent,
		SwitchLimit: cfg.Tasks.SwitchSilent, Observer: ticks})
	if err != nil {
		return err
	}
	m.WatchLeases(eng.Busy)
	if cfg.Tasks.MetricsListen != "" {
		if err := metrics.Serve(ctx, cfg.Tasks.MetricsListen, m.Handler(), log); err != nil {
			return fmt.Errorf("[tasks] %w", err)
		}
	}
	if err := eng.Start(ctx); err != nil {
		return err
	}
	c := cron.New()
	c.Schedule(sched, cron.FuncJob(func() {
		if err := eng.Tick(ctx); err != nil && ctx.Err() == nil {
			log.Error("tick", "err", err)
		}
	}))
	for _, w := range st.Warnings {
		log.Warn("database", "problem", w)
	}
	log.Info("pitasks started", "owner", eng.Owner(), "tick", cfg.Tasks.Tick, "workers", cfg.Tasks.Workers, "db", st.Dialect,
		"version", version.Get().Version)
	ticks.started(time.Now())
	c.Start()
	// The web only writes requests: pitasks carries them out under leases like deployments.
	go (&requests.Discoveries{Store: st, Owner: eng.Owner(), Discover: discoverRun(cfg, st), Lease: cfg.Tasks.Lease, Log: log}).Run(ctx)
	go (&requests.Ports{Store: st, Owner: eng.Owner(), Open: openSwitch, Lease: cfg.Tasks.Lease, Log: log}).Run(ctx)
	go keepDHCPHostsCurrent(ctx, cfg, st, log)
	// A node seen booting in dnsmasq's log has its SSH wait woken at once.
	go (&discovery.Boots{Log: cfg.Cluster.DnsmasqLog, Wake: eng.Wake, Logger: log,
		Waiting: func(ctx context.Context, mac, ip string) ([]uint, error) {
			return st.BootWaits(ctx, mac, ip, deploy.BootWaits)
		}}).Run(ctx)
	// E-mail notifications, from their own loop: SMTP never holds up a tick.
	go (&notify.Outbox{Store: st, Mailer: auth.SMTPMailer{}, Owner: eng.Owner(), Every: notifyEvery, SendTimeout: notifySendTimeout, Log: log,
		Base: auth.SMTPSettings{Address: cfg.Mail.SMTPAddress, Port: cfg.Mail.SMTPPort, Account: cfg.Mail.Account,
			Password: cfg.Mail.Password.Value(), From: cfg.Mail.From}}).Run(ctx)
	if cfg.Publishing() {
		go keepNginxCurrent(ctx, cfg, st, log)
	}
	sdnotify.Ready(log)
	go sdnotify.Watchdog(ctx, log, ticks.alive(sched))
	<-ctx.Done()
	sdnotify.Stopping(log)
	log.Info("stopping: no new work, waiting for running steps", "grace", cfg.Tasks.StopGrace)
	<-c.Stop().Done()
	sctx, cancel := context.WithTimeout(context.Background(), cfg.Tasks.StopGrace)
	defer cancel()
	eng.Stop(sctx)
	log.Info("pitasks stopped")
	return nil
}

// importCluster imports the cluster_desc folder dir, looking for the images in imgDir, and
// prints what it did and what the admin should know.
func importCluster(ctx context.Context, st *store.Store, dir, imgDir string, w io.Writer) error {
	d, err := clusterdesc.Read(dir)
	if err != nil {
		return err
	}
	sum, err := clusterdesc.Import(ctx, st, d, imgDir)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "imported %s: %d switches, %d nodes, %d environments (%s)\n", dir, sum.Switches, sum.Nodes, sum.Environments, sum)
	for _, list := range []struct {
		title string
		lines []string
	}{
		{"not imported", sum.Skipped},
		{"ignored keys (the original does not read them either)", sum.Ignored},
		{"notes", sum.Notes},
	} {
		if len(list.lines) > 0 {
			fmt.Fprintf(w, "%s:\n", list.title)
		}
		for _, l := range list.lines {
			fmt.Fprintf(w, "  %s\n", l)
		}
	}
	return nil
}

// pinNFSKey pins the NFS system's key read from path ([cluster] nfs_host_key).
func pinNFSKey(ctx context.Context, st *store.Store, path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("[cluster] nfs_host_key: %w", err)
	}
	key, err := remote.ParseKey(string(b))
	if err != nil {
		return fmt.Errorf("[cluster] nfs_host_key %s: %w", path, err)
	}
	return st.PinHostKey(ctx, remote.RoleNFS, 0, remote.AuthorizedKey(key))
}
