// Command pifrontend serves PiSeduce's web interface and JSON API. It only writes requests
// into the database; pitasks carries them out.
//
//	pifrontend [-config seducepp.conf] [-log-level info] [-log-format text|json] [-admin-email admin@piseduce.local] [-check]
//	pifrontend -version
//
// pifrontend -h prints the usage (see pkg/cli for the conventions).
//
// On an empty database it creates the first admin with a random password, printed once.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/piseduce/piseduce/pkg/cli"
	"github.com/piseduce/piseduce/pkg/config"
	"github.com/piseduce/piseduce/pkg/logging"
	"github.com/piseduce/piseduce/pkg/metrics"
	"github.com/piseduce/piseduce/pkg/sdnotify"
	"github.com/piseduce/piseduce/pkg/store"
	"github.com/piseduce/piseduce/pkg/version"
	"github.com/piseduce/piseduce/pkg/web"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	c := cli.New("pifrontend", "", "Serve PiSeduce's web interface and JSON API; pitasks carries out what they ask.", 0, 0)
	fs := c.Flags
	cfgPath := fs.String("config", "", "configuration file (default: /etc/seducepp.conf, then ./seducepp.conf)")
	logFlags := logging.AddFlags(fs)
	showVersion := fs.Bool("version", false, "print the version, commit and build date, and exit")
	adminEmail := fs.String("admin-email", web.DefaultAdminEmail, "e-mail of the admin created on an empty database")
	check := fs.Bool("check", false, "check the configuration and exit")
	if _, err := c.Parse(args); err != nil {
		return cli.Exit("pifrontend", err, stdout, stderr)
	}
	if *showVersion {
		fmt.Fprintln(stdout, "pifrontend", version.Get())
		return 0
	}
	log, err := logFlags.Logger(stderr)
	if err != nil {
		fmt.Fprintln(stderr, "pifrontend:", err)
		return 2
	}

	path, err := config.Find(*cfgPath)
	if err != nil {
		log.Error("no configuration", "err", err)
		return 1
	}
	cfg, err := config.Load(path)
	if err != nil {
		log.Error("bad configuration", "err", err)
		return 1
	}
	if *check {
		fmt.Fprintf(stdout, "%s: configuration OK\n", path)
		return 0
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	st, err := store.Open(ctx, cfg.DB.ConnectionURL.Value())
	if err != nil {
		log.Error("database", "err", err)
		return 1
	}
	defer st.Close()
	for _, w := range st.Warnings {
		log.Warn("database", "problem", w)
	}

	pw, created, err := web.EnsureFirstAdmin(ctx, st, *adminEmail)
	if err != nil {
		log.Error("first admin", "err", err)
		return 1
	}
	if created {
		fmt.Fprintf(stdout, "Created the first admin account.\n  e-mail:   %s\n  password: %s\n"+
			"This password is shown only now: log in and change it on the Account page.\n", *adminEmail, pw)
	}

	m := metrics.NewFrontend(st, time.Now)
	if addr := cfg.Frontend.MetricsListen; addr != "" {
		// Otherwise pifrontend serves them itself on /metrics, to admins.
		if err := metrics.Serve(ctx, addr, m.Handler(), log); err != nil {
			log.Error("[frontend]", "err", err)
			return 1
		}
	}
	srv, err := web.New(ctx, web.Options{Store: st, Config: cfg, Logger: log, Metrics: m})
	if err != nil {
		log.Error("web", "err", err)
		return 1
	}
	addr := net.JoinHostPort(cfg.Frontend.Listen, strconv.Itoa(cfg.Frontend.Port))
	hs := &http.Server{Addr: addr, Handler: srv, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second,
		WriteTimeout: 60 * time.Second, IdleTimeout: 2 * time.Minute, MaxHeaderBytes: 1 << 20,
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		log.Error("listen", "addr", addr, "err", err)
		return 1
	}
	log.Info("pifrontend listening", "addr", "http://"+ln.Addr().String(), "config", path, "public_address", cfg.Frontend.PublicAddress,
		"version", version.Get().Version)

	go func() {
		t := time.NewTicker(10 * time.Minute)
		defer t.Stop()
		for {
			srv.Housekeeping(ctx)
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()

	hs.RegisterOnShutdown(srv.EndStreams)
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	sdnotify.Ready(log)
	go sdnotify.Watchdog(ctx, log, answers(ln.Addr()))
	select {
	case err := <-errc:
		log.Error("server stopped", "err", err)
		return 1
	case <-ctx.Done():
	}
	sdnotify.Stopping(log)
	log.Info("stopping")
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Warn("shutdown", "err", err)
	}
	srv.WaitBackground() // password reset e-mails being sent (each bounded by its own timeout)
	return 0
}
