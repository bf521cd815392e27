package web

import (
	"context"
	"strconv"

	"github.com/piseduce/piseduce/pkg/auth"
	"github.com/piseduce/piseduce/pkg/notify"
	"github.com/piseduce/piseduce/pkg/store"
)

// Keys of the Setting table that the web uses.
const (
	settingSessionSecret = "session_secret"
	settingSignupDomains = store.SettingSignupDomains
	settingEmailSignup   = store.SettingEmailSignup
	settingAutoApprove   = "auto_approve"
	settingMaxHours      = "max_hours"
	settingSMTPAddress   = notify.SettingSMTPAddress
	settingSMTPPort      = notify.SettingSMTPPort
	settingSMTPAccount   = notify.SettingSMTPAccount
	settingSMTPPassword  = notify.SettingSMTPPassword
	settingSMTPFrom      = notify.SettingSMTPFrom
)

// Reservation length limits: MaxHours is the admin's setting, within these bounds.
const (
	defaultMaxHours = 72
	limitMaxHours   = 24 * 30
	maxDaysAhead    = 90
)

// siteSettings are the admin's settings, with the config file's mail section as defaults.
type siteSettings struct {
	SignupDomains []string
	// EmailSignup: new users confirm their address by e-mail (when SMTP is configured).
	EmailSignup bool
	AutoApprove bool
	MaxHours    int
	SMTP        auth.SMTPSettings
}

func (s *Server) settings(ctx context.Context) (siteSettings, error) {
	m, err := s.store.Settings(ctx)
	if err != nil {
		return siteSettings{}, err
	}
	st := siteSettings{
		SignupDomains: auth.ParseDomains(m[settingSignupDomains]),
		EmailSignup:   m[settingEmailSignup] != "false",
		AutoApprove:   m[settingAutoApprove] == "true",
		MaxHours:      defaultMaxHours,
		SMTP: auth.SMTPSettings{Address: s.cfg.Mail.SMTPAddress, Port: s.cfg.Mail.SMTPPort,
			Account: s.cfg.Mail.Account, Password: s.cfg.Mail.Password.Value(), From: s.cfg.Mail.From},
	}
	if h, err := strconv.Atoi(m[settingMaxHours]); err == nil && h >= 1 && h <= limitMaxHours {
		st.MaxHours = h
	}
	// Once the admin saved the mail settings in the page, they replace the config file's.
	st.SMTP = notify.SMTP(st.SMTP, m)
	return st, nil
}

// confirmByMail says whether a new account must confirm its e-mail address first.
func (st siteSettings) confirmByMail() bool { return st.EmailSignup && st.SMTP.Configured() }
