package notify_test

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/piseduce/piseduce/pkg/auth"
	"github.com/piseduce/piseduce/pkg/auth/smtptest"
	"github.com/piseduce/piseduce/pkg/notify"
	"github.com/piseduce/piseduce/pkg/process"
	"github.com/piseduce/piseduce/pkg/store/storetest"
	"github.com/piseduce/piseduce/pkg/testenv"
)

// TestOutboxSendsOnceOverSMTP: a user who opted in gets one e-mail per event through a real
// SMTP exchange, however many rounds see it; while the server is unreachable the message waits
// and is sent by a later round; the password of the mail account never reaches the log.
func TestOutboxSendsOnceOverSMTP(t *testing.T) {
	for _, dialect := range storetest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			ctx := context.Background()
			s := storetest.Open(t, dialect)
			c := storetest.Seed(t, s, 2)
			start := time.Now()
			if err := s.SetNotify(ctx, c.User.ID, true, start.Add(-time.Minute)); err != nil {
				t.Fatal(err)
			}
			ds := c.Deploy(t, s, 2)
			if err := s.ForceState(ctx, ds[0].ID, process.Deploy, process.Deployed, "test"); err != nil {
				t.Fatal(err)
			}
			if err := s.ForceState(ctx, ds[1].ID, process.Deploy, process.Lost, "test"); err != nil {
				t.Fatal(err)
			}
			srv := smtptest.Start(t)
			var logs bytes.Buffer
			now := start
			o := &notify.Outbox{Store: s, Mailer: auth.SMTPMailer{}, Owner: "pitasks-test", Every: time.Second,
				SendTimeout: 30 * time.Second, Log: slog.New(slog.NewTextHandler(&logs, nil)), Now: func() time.Time { return now },
				// First a server that is not there.
				Base: auth.SMTPSettings{Address: srv.Host(), Port: testenv.FreePort(t), Password: "s3cret-mail-pw", From: "piseduce@example.com"}}
			if err := o.Round(ctx); err != nil {
				t.Fatal(err)
			}
			ns, err := s.Notifications(ctx, c.User.ID)
			if err != nil {
				t.Fatal(err)
			}
			// Both deployments, and the reservation (Seed's ends within the hour).
			if len(ns) != 3 || ns[0].SentAt != nil || ns[0].Attempts != 1 || ns[0].LastError == "" {
				t.Fatalf("after a round without a server: %+v", ns)
			}
			o.Base.Port = srv.Port()
			if err := o.Round(ctx); err != nil { // too early: nothing is retried yet
				t.Fatal(err)
			}
			if got := len(srv.Messages()); got != 0 {
				t.Fatalf("%d message(s) sent before the retry time", got)
			}
			now = now.Add(2 * time.Minute)
			for range 3 {
				if err := o.Round(ctx); err != nil {
					t.Fatal(err)
				}
			}
			msgs := srv.Wait(t, 3, time.Minute)
			if len(msgs) != 3 {
				t.Fatalf("%d messages, want 3 (one per event)", len(msgs))
			}
			var subjects []string
			for _, m := range msgs {
				if len(m.To) != 1 || m.To[0] != c.User.Email {
					t.Fatalf("sent to %v", m.To)
				}
				subjects = append(subjects, m.Header.Get("Subject"))
			}
			all := strings.Join(subjects, "|")
			for _, want := range []string{"node-1: deployed", "node-2: lost", "ends within the hour"} {
				if !strings.Contains(all, want) {
					t.Fatalf("no %q in the subjects: %s", want, all)
				}
			}
			if strings.Contains(logs.String(), "s3cret-mail-pw") {
				t.Fatalf("the mail password is in the log:\n%s", logs.String())
			}
		})
	}
}

// TestNothingWithoutSMTP: without a mail server nothing is queued, so nothing piles up.
func TestNothingWithoutSMTP(t *testing.T) {
	ctx := context.Background()
	s := storetest.Open(t, "sqlite")
	c := storetest.Seed(t, s, 1)
	if err := s.SetNotify(ctx, c.User.ID, true, time.Now().Add(-time.Minute)); err != nil {
		t.Fatal(err)
	}
	ds := c.Deploy(t, s, 1)
	if err := s.ForceState(ctx, ds[0].ID, process.Deploy, process.Deployed, "test"); err != nil {
		t.Fatal(err)
	}
	o := &notify.Outbox{Store: s, Mailer: auth.SMTPMailer{}, Owner: "t", Every: time.Second, SendTimeout: time.Second,
		Log: slog.New(slog.DiscardHandler)}
	if err := o.Round(ctx); err != nil {
		t.Fatal(err)
	}
	if ns, err := s.Notifications(ctx, 0); err != nil || len(ns) != 0 {
		t.Fatalf("queued without SMTP: %d, %v", len(ns), err)
	}
}

// TestSMTPSettings: the admin's saved settings replace the config file's, password included
// only when saved.
func TestSMTPSettings(t *testing.T) {
	base := auth.SMTPSettings{Address: "mail.invalid", Port: 587, Account: "a", Password: "p", From: "f@x"}
	if got := notify.SMTP(base, map[string]string{}); got != base {
		t.Fatalf("no saved settings: %+v", got)
	}
	got := notify.SMTP(base, map[string]string{notify.SettingSMTPAddress: "", notify.SettingSMTPPort: "25"})
	if got.Configured() || got.Port != 25 || got.Password != "p" {
		t.Fatalf("saved, mail turned off: %+v", got)
	}
	got = notify.SMTP(base, map[string]string{notify.SettingSMTPAddress: "127.0.0.1", notify.SettingSMTPPassword: "q"})
	if got.Address != "127.0.0.1" || got.Password != "q" || got.Port != 587 {
		t.Fatalf("saved: %+v", got)
	}
}
