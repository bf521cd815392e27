// Package notify sends the e-mails of the outbox (store.Notification) for pitasks. The web
// and pitasks queue them in the database, the web in the same transaction as what it tells
// (an admin ended a reservation), pitasks when it sees an event (a deployment reached
// deployed, lost or failed; a reservation ends within the hour); pitasks alone sends, from its
// own loop: a slow or absent SMTP server never holds up a tick, a refused message is retried
// later, and each event has one row, marked sent once the server took it.
package notify

import (
	"context"
	"log/slog"
	"strconv"
	"time"

	"github.com/piseduce/piseduce/pkg/auth"
	"github.com/piseduce/piseduce/pkg/store"
)

// Keys of the Setting table holding the mail settings saved on the admin's settings page.
const (
	SettingSMTPAddress  = "smtp_address"
	SettingSMTPPort     = "smtp_port"
	SettingSMTPAccount  = "smtp_account"
	SettingSMTPPassword = "smtp_password"
	SettingSMTPFrom     = "smtp_from"
)

// SMTP is the mail server to use: base (the config file's [mail]) unless the admin saved mail
// settings in the page (the settings m), which then replace it.
func SMTP(base auth.SMTPSettings, m map[string]string) auth.SMTPSettings {
	v, ok := m[SettingSMTPAddress]
	if !ok {
		return base
	}
	s := base
	s.Address, s.Account, s.From = v, m[SettingSMTPAccount], m[SettingSMTPFrom]
	if p, err := strconv.Atoi(m[SettingSMTPPort]); err == nil {
		s.Port = p
	}
	if p, ok := m[SettingSMTPPassword]; ok {
		s.Password = p
	}
	return s
}

// Outbox queues and sends the notifications.
type Outbox struct {
	Store *store.Store
	// Mailer sends (auth.SMTPMailer in pitasks); Base is the config file's mail settings.
	Mailer auth.Mailer
	Base   auth.SMTPSettings
	Owner  string
	// Every is the time between two rounds; SendTimeout bounds one message's SMTP exchange.
	Every       time.Duration
	SendTimeout time.Duration
	Log         *slog.Logger
	// Now is the clock (time.Now when nil).
	Now func() time.Time
}

// batch is the most messages one round sends.
const batch = 50

// Run does a round every o.Every until ctx ends.
func (o *Outbox) Run(ctx context.Context) {
	t := time.NewTicker(o.Every)
	defer t.Stop()
	for {
		if err := o.Round(ctx); err != nil && ctx.Err() == nil {
			o.Log.Warn("notifications", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (o *Outbox) now() time.Time {
	if o.Now != nil {
		return o.Now()
	}
	return time.Now()
}

// Round queues the events seen now and sends what is due, when mail is configured (otherwise
// nothing is queued: nobody could send it).
func (o *Outbox) Round(ctx context.Context) error {
	m, err := o.Store.Settings(ctx)
	if err != nil {
		return err
	}
	smtp := SMTP(o.Base, m)
	if !smtp.Configured() {
		return nil
	}
	now := o.now()
	if _, err := o.Store.QueueNotifications(ctx, now); err != nil {
		return err
	}
	// The lease outlasts every attempt of the batch, so no other pitasks takes a message
	// this one is still sending.
	ns, err := o.Store.ClaimNotifications(ctx, o.Owner, now, batch*o.SendTimeout+time.Minute, batch)
	if err != nil {
		return err
	}
	for _, n := range ns {
		if ctx.Err() != nil {
			return nil // the claim ends by itself; another round sends them
		}
		sctx, cancel := context.WithTimeout(ctx, o.SendTimeout)
		err := o.Mailer.Send(sctx, smtp, auth.Message{To: n.To, Subject: n.Subject, Body: n.Body})
		cancel()
		if err != nil {
			retry := o.now().Add(backoff(n.Attempts))
			o.Log.Warn("notification not sent; retrying later", "notification", n.ID, "user", n.UserID, "attempt", n.Attempts+1, "retry_at", retry, "err", err)
			if err := o.Store.NotificationFailed(ctx, n.ID, o.Owner, err, retry); err != nil {
				return err
			}
			continue
		}
		if err := o.Store.NotificationSent(ctx, n.ID, o.Owner, o.now()); err != nil {
			return err
		}
		o.Log.Info("notification sent", "notification", n.ID, "user", n.UserID)
	}
	return nil
}

// backoff is the wait before attempt n+1: a minute, doubling, at most two hours.
func backoff(attempts int) time.Duration {
	d := time.Minute << min(attempts, 7)
	return min(d, 2*time.Hour)
}
