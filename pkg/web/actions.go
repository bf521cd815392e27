package web

import (
	"context"
	"errors"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/piseduce/piseduce/pkg/apijson"
	"github.com/piseduce/piseduce/pkg/auth"
	"github.com/piseduce/piseduce/pkg/process"
	"github.com/piseduce/piseduce/pkg/sshkey"
	"github.com/piseduce/piseduce/pkg/store"
)

// The actions below are shared by the pages and the API: they validate what the user sent,
// check that the user may do it, and call one store method. Errors meant for the user are
// *formError or store errors that userMessage knows.

func (s *Server) reserve(ctx context.Context, u *store.User, in apijson.ReservationRequest) (*store.Reservation, error) {
	st, err := s.settings(ctx)
	if err != nil {
		return nil, err
	}
	if in.Hours < 1 || in.Hours > st.MaxHours {
		return nil, badInput("The duration must be from 1 to %d hours.", st.MaxHours)
	}
	if _, err := s.zones.load(in.TimeZone); err != nil {
		return nil, err
	}
	now := s.now().UTC()
	start := now
	if in.StartsAt != nil && in.StartsAt.After(now) {
		start = in.StartsAt.UTC()
	} else if in.StartsAt != nil && in.StartsAt.Before(now.Add(-5*time.Minute)) {
		return nil, badInput("The start is in the past.")
	}
	if start.After(now.AddDate(0, 0, maxDaysAhead)) {
		return nil, badInput("A reservation can start at most %d days ahead.", maxDaysAhead)
	}
	req := store.ReservationRequest{UserID: u.ID, StartsAt: start, EndsAt: start.Add(time.Duration(in.Hours) * time.Hour),
		TimeZone: in.TimeZone}
	switch {
	case len(in.NodeIDs) > 0:
		if len(in.NodeIDs) > 1000 {
			return nil, badInput("Too many nodes.")
		}
		req.NodeIDs = in.NodeIDs
	case in.Model != "" && in.Count >= 1 && in.Count <= 1000:
		req.Model, req.Count = in.Model, in.Count
	default:
		return nil, badInput("Pick some nodes, or a number of nodes of a model.")
	}
	r, err := s.store.CreateReservation(ctx, req, now)
	if err != nil {
		if err == store.ErrNotFound {
			return nil, badInput("Some of these nodes do not exist.")
		}
		return nil, s.explainConflict(ctx, s.explainQuota(err, in.TimeZone), req, in.TimeZone, now)
	}
	s.log.Info("reservation created", "user", u.ID, "reservation", r.ID, "nodes", len(r.Nodes), "start", r.StartsAt, "end", r.EndsAt)
	return r, nil
}

// extendChoices are the numbers of hours reservation r may still be extended by: its remaining
// time after the extension stays within the admin's limit.
func extendChoices(r *store.Reservation, now time.Time, maxHours int) []int {
	if !r.EndsAt.After(now) {
		return nil
	}
	from := now
	if r.StartsAt.After(now) {
		from = r.StartsAt
	}
	left := r.EndsAt.Sub(from)
	var out []int
	for h := 1; h <= maxHours; h++ {
		if left+time.Duration(h)*time.Hour <= time.Duration(maxHours)*time.Hour {
			out = append(out, h)
		}
	}
	return out
}

// extend adds hours to reservation r, within the limit: the time left after the extension is
// at most the admin's maximum duration.
func (s *Server) extend(ctx context.Context, r *store.Reservation, hours int) error {
	st, err := s.settings(ctx)
	if err != nil {
		return err
	}
	now := s.now().UTC()
	ok := false
	for _, h := range extendChoices(r, now, st.MaxHours) {
		ok = ok || h == hours
	}
	if !ok {
		if !r.EndsAt.After(now) {
			return conflict("This reservation has ended.")
		}
		return badInput("A reservation can be extended so that at most %d hours are left.", st.MaxHours)
	}
	return s.explainQuota(s.store.ExtendReservation(ctx, r.ID, r.EndsAt.Add(time.Duration(hours)*time.Hour), now), r.TimeZone)
}

// sizeChoice is a root partition size of the deploy form.
type sizeChoice struct {
	MiB   int64
	Label string
}

// systemSizes are the original's choices, in MiB: 200 MiB to 3 GiB, or the whole card (0).
var systemSizes = []sizeChoice{{0, "Whole card"}, {200, "200 MiB"}, {500, "500 MiB"}, {1024, "1 GiB"}, {2048, "2 GiB"}, {3072, "3 GiB"}}

// Limits of the deploy form.
const (
	maxInitScript = 64 << 10
	minOSPassword = 8
	maxOSPassword = 64
)

// deployInput is the deploy form, applied to every node of a reservation.
type deployInput struct {
	Name          string `json:"name"`
	EnvironmentID uint   `json:"environment_id"`
	OSUpdate      bool   `json:"os_update"`
	SystemSize    int64  `json:"system_size_mib"`
	Password      string `json:"os_password"`
	PublicKey     string `json:"public_key"`
	InitScript    string `json:"init_script"`
}

// validOSPassword: printable ASCII without spaces or colons (it goes through chpasswd).
func validOSPassword(p string) error {
	if len(p) < minOSPassword || len(p) > maxOSPassword {
		return badInput("The OS password must have %d to %d characters (or leave it empty to get a random one).", minOSPassword, maxOSPassword)
	}
	for _, r := range p {
		if r <= ' ' || r > '~' || r == ':' {
			return badInput("The OS password may only hold printable ASCII characters, without spaces or colons.")
		}
	}
	return nil
}

// normalizeSSHKey checks one authorized_keys line (no options) and returns it cleaned up.
func normalizeSSHKey(text string) (string, error) {
	text = strings.TrimSpace(text)
	if text == "" {
		return "", nil
	}
	if strings.ContainsAny(text, "\r\n") {
		return "", badInput("Give one SSH public key, on one line.")
	}
	out, comment, err := sshkey.Parse(text)
	if errors.Is(err, sshkey.ErrUnsupported) {
		return "", badInput("This SSH key type is not accepted: give an ed25519, ECDSA or RSA key (ssh-keygen -t ed25519).")
	}
	if err != nil {
		return "", badInput("This is not an SSH public key (expected a line like \"ssh-ed25519 AAAA… you@laptop\").")
	}
	if comment != "" && printable(comment) && len(comment) <= 100 {
		out += " " + comment
	}
	return out, nil
}

func (s *Server) deploy(ctx context.Context, u *store.User, r *store.Reservation, in deployInput) ([]store.Deployment, error) {
	name, err := oneLine("The deployment name", in.Name, 1, 100)
	if err != nil {
		return nil, err
	}
	env, err := s.store.Environment(ctx, in.EnvironmentID)
	if err != nil || !envVisible(env, u) {
		return nil, badInput("Choose an environment from the list.")
	}
	okSize := false
	for _, c := range systemSizes {
		okSize = okSize || c.MiB == in.SystemSize
	}
	if !okSize {
		return nil, badInput("Choose a root partition size from the list.")
	}
	pw := in.Password
	if pw == "" {
		pw = auth.RandomPassword(16)
	} else if err := validOSPassword(pw); err != nil {
		return nil, err
	}
	key, err := normalizeSSHKey(in.PublicKey)
	if err != nil {
		return nil, err
	}
	script := strings.ReplaceAll(in.InitScript, "\r\n", "\n")
	if len(script) > maxInitScript {
		return nil, badInput("The init script may have at most %d KiB.", maxInitScript>>10)
	}
	if !utf8.ValidString(script) || strings.ContainsRune(script, 0) {
		return nil, badInput("The init script must be UTF-8 text.")
	}
	tmpl := store.Deployment{Name: name, EnvironmentID: env.ID, OSUpdate: in.OSUpdate, SystemSize: in.SystemSize,
		SystemPassword: pw, PublicKey: key, InitScript: script}
	ds, err := s.store.DeployReservation(ctx, r.ID, tmpl, s.now())
	if err != nil {
		return nil, err
	}
	s.log.Info("deployment requested", "user", u.ID, "reservation", r.ID, "nodes", len(ds), "environment", env.Name)
	return ds, nil
}

// envVisible: default environments for everyone, user ones for their owner (for everyone
// when they have none, as the original's), hidden ones for admins only.
func envVisible(e *store.Environment, u *store.User) bool {
	switch e.Type {
	case store.EnvDefault:
		return true
	case store.EnvUser:
		return e.OwnerID == u.ID || e.OwnerID == 0 || u.Admin
	}
	return u.Admin
}

// request asks pitasks to carry action a out on d, if process.Allowed allows it now.
func (s *Server) request(ctx context.Context, u *store.User, d *store.Deployment, a process.Action) error {
	if r := process.Allowed(d.Situation(s.now()), a); r != nil {
		return conflict("%s", r.Reason)
	}
	if err := s.store.RequestProcess(ctx, d.ID, a.Process()); err != nil {
		return err
	}
	s.log.Info("process requested", "user", u.ID, "deployment", d.ID, "process", a.Process())
	return nil
}
