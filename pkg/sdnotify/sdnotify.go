// Package sdnotify tells systemd how a daemon of Type=notify is doing, with the sd_notify
// datagrams on $NOTIFY_SOCKET: READY=1 once it serves, STOPPING=1 when it stops, and
// WATCHDOG=1 twice per WatchdogSec for as long as its main loop is alive, so that systemd
// restarts a daemon whose loop is wedged. Without systemd ($NOTIFY_SOCKET unset) it does nothing.
package sdnotify

import (
	"context"
	"log/slog"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
)

// Ready says that start-up is over.
func Ready(log *slog.Logger) { send(log, daemon.SdNotifyReady) }

// Stopping says that the daemon is stopping (systemd then waits for it, up to TimeoutStopSec).
func Stopping(log *slog.Logger) { send(log, daemon.SdNotifyStopping) }

func send(log *slog.Logger, state string) {
	if _, err := daemon.SdNotify(false, state); err != nil {
		log.Warn("systemd notify", "state", state, "err", err)
	}
}

// Watchdog feeds systemd's watchdog until ctx ends, when WatchdogSec is set ($WATCHDOG_USEC);
// else it returns at once. Every half WatchdogSec it asks alive whether the daemon's main loop
// works, giving it the whole WatchdogSec to judge by; it sends WATCHDOG=1 only when alive
// returns nil, and logs when it stops and starts feeding again.
func Watchdog(ctx context.Context, log *slog.Logger, alive func(ctx context.Context, timeout time.Duration) error) {
	timeout, err := daemon.SdWatchdogEnabled(false)
	if err != nil {
		log.Warn("systemd watchdog", "err", err)
		return
	}
	if timeout == 0 {
		return
	}
	log.Info("systemd watchdog", "timeout", timeout)
	t := time.NewTicker(timeout / 2)
	defer t.Stop()
	fed := true
	for {
		switch err := alive(ctx, timeout); {
		case ctx.Err() != nil:
			return
		case err != nil:
			if fed {
				log.Error("systemd watchdog: not fed, systemd will restart this daemon", "err", err)
			}
			fed = false
		default:
			if !fed {
				log.Info("systemd watchdog: fed again")
			}
			fed = true
			send(log, daemon.SdNotifyWatchdog)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
