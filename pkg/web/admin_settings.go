package web

import (
	"net/http"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/piseduce/piseduce/pkg/auth"
	"github.com/piseduce/piseduce/pkg/names"
	"github.com/piseduce/piseduce/pkg/store"
)

type settingsData struct {
	Domains     string
	EmailSignup bool
	AutoApprove bool
	MaxHours    int
	SMTPAddress string
	SMTPPort    int
	SMTPAccount string
	SMTPFrom    string
	// PasswordSet says whether an SMTP password is stored; the password itself never goes to
	// the browser.
	PasswordSet bool
	Limit       int
	Quota       store.Quota
	QuotaMax    int
}

func (s *Server) showAdminSettings(c echo.Context) error {
	st, err := s.settings(c.Request().Context())
	if err != nil {
		return err
	}
	q, err := s.store.ReadQuota(c.Request().Context())
	if err != nil {
		return err
	}
	d := settingsData{Quota: q, QuotaMax: maxQuota, Domains: strings.Join(st.SignupDomains, "\n"), EmailSignup: st.EmailSignup, AutoApprove: st.AutoApprove, MaxHours: st.MaxHours,
		SMTPAddress: st.SMTP.Address, SMTPPort: st.SMTP.Port, SMTPAccount: st.SMTP.Account, SMTPFrom: st.SMTP.From,
		PasswordSet: st.SMTP.Password != "", Limit: limitMaxHours}
	return s.render(c, http.StatusOK, "admin_settings", &page{Title: "Settings", Nav: "admin", Data: d})
}

// saveAdminSettings stores the sign-up filter, approval mode, reservation limit, quotas and
// mail settings. An empty password field keeps the stored password; "clear" removes it.
func (s *Server) saveAdminSettings(c echo.Context) error {
	fail := func(msg string) error { return s.redirectError(c, "/admin/settings", msg) }
	domains := auth.ParseDomains(c.FormValue("signup_domains"))
	for _, d := range domains {
		if !names.ValidDomain(d) {
			return fail("Not a domain name: " + d)
		}
	}
	hours, err := strconv.Atoi(c.FormValue("max_hours"))
	if err != nil || hours < 1 || hours > limitMaxHours {
		return fail("The longest reservation must be from 1 to " + strconv.Itoa(limitMaxHours) + " hours.")
	}
	quota, err := validQuota(c.FormValue("quota_nodes"), c.FormValue("quota_node_hours"))
	if err != nil {
		return fail(err.Error())
	}
	addr := strings.TrimSpace(c.FormValue("smtp_address"))
	if addr != "" && (!printable(addr) || strings.ContainsAny(addr, " /:@")) {
		return fail("The SMTP server must be a host name or an IP address.")
	}
	port, err := strconv.Atoi(c.FormValue("smtp_port"))
	if err != nil || port < 1 || port > 65535 {
		port = 587
	}
	account, err := oneLine("The SMTP account", c.FormValue("smtp_account"), 0, 255)
	if err != nil {
		return fail(err.Error())
	}
	from := strings.TrimSpace(c.FormValue("smtp_from"))
	if from != "" {
		if from, err = auth.ParseEmail(from); err != nil {
			return fail("The sender must be an e-mail address.")
		}
	}
	values := map[string]string{
		settingSignupDomains: strings.Join(domains, "\n"),
		settingAutoApprove:   strconv.FormatBool(c.FormValue("auto_approve") == "true"),
		settingEmailSignup:   strconv.FormatBool(c.FormValue("email_signup") == "true"),
		settingMaxHours:      strconv.Itoa(hours),
		settingSMTPAddress:   addr,
		settingSMTPPort:      strconv.Itoa(port),
		settingSMTPAccount:   account,
		settingSMTPFrom:      from,
		// As SetQuota stores them, in the same transaction as the rest.
		store.SettingQuotaNodes:     strconv.Itoa(quota.Nodes),
		store.SettingQuotaNodeHours: strconv.Itoa(quota.NodeHours),
	}
	if c.FormValue("smtp_password_clear") == "true" {
		values[settingSMTPPassword] = ""
	} else if pw := c.FormValue("smtp_password"); pw != "" {
		if !printable(pw) {
			return fail("The SMTP password must fit on one line.")
		}
		values[settingSMTPPassword] = pw
	} else if st, err := s.settings(c.Request().Context()); err == nil {
		// Keep the password in force (perhaps from the config file) when saving the page the first time.
		values[settingSMTPPassword] = st.SMTP.Password
	} else {
		return err
	}
	if err := s.store.SetSettings(c.Request().Context(), values); err != nil {
		return err
	}
	s.log.Info("settings changed", "admin", currentUser(c).ID)
	return s.redirect(c, "/admin/settings", "Settings saved.")
}
