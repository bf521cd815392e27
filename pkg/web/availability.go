package web

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/piseduce/piseduce/pkg/store"
)

// fitError is a reservation refused because its nodes are taken, with the earliest start at
// which the same request fits: the page offers to reserve then, the API answers it in the 409
// body (earliest_start).
type fitError struct {
	form *formError
	fit  store.Fit
}

func (e *fitError) Error() string { return e.form.msg }
func (e *fitError) Unwrap() error { return e.form }

// explainConflict adds to a refusal for taken nodes (*store.ConflictError) the earliest start
// at which req fits, in zone; other errors are returned as they are.
func (s *Server) explainConflict(ctx context.Context, err error, req store.ReservationRequest, zone string, now time.Time) error {
	var ce *store.ConflictError
	if !errors.As(err, &ce) {
		return err
	}
	msg, code, _ := userMessage(err)
	fit, ferr := s.store.EarliestFit(ctx, store.FitRequest{UserID: req.UserID, NodeIDs: req.NodeIDs, Model: req.Model,
		Count: req.Count, Duration: req.EndsAt.Sub(req.StartsAt), NotBefore: req.StartsAt, Until: now.AddDate(0, 0, maxDaysAhead)}, now)
	if ferr != nil {
		return ferr
	}
	msg = strings.TrimSuffix(msg, ".")
	// Pages write minutes: a start rounded down would be a minute too early.
	at := func(t time.Time) string { return s.zones.format(ceilMinute(t), zone) }
	quota := "your quota on node-hours"
	if fit.Quota == store.QuotaLimitNodes {
		quota = "your quota on nodes held at once"
	}
	switch {
	case fit.QuotaAlone && !fit.NodesFree.IsZero():
		msg += "; they are free from " + at(fit.NodesFree) + ", but this request alone is over " + quota + "."
	case fit.Start.IsZero():
		msg += "; they do not fit in the next " + strconv.Itoa(maxDaysAhead) + " days."
	case fit.Quota != "":
		msg += "; they are free from " + at(fit.NodesFree) + ", and the earliest " + quota + " allows is " + at(fit.Start) + "."
	default:
		msg += "; the earliest these fit is " + at(fit.Start) + "."
	}
	return &fitError{form: &formError{msg: msg, code: code}, fit: fit}
}

// reserveThen is the reserve form's offer to reserve at the earliest start that fits: the start
// as the form's field takes it in zone, rounded up to the minute, and as people read it.
type reserveThen struct {
	Start string
	Label string
}

func (s *Server) reserveThen(err error, zone string) *reserveThen {
	var fe *fitError
	if !errors.As(err, &fe) || fe.fit.Start.IsZero() {
		return nil
	}
	loc, lerr := s.zones.load(zone)
	if lerr != nil {
		return nil
	}
	t := ceilMinute(fe.fit.Start)
	return &reserveThen{Start: t.In(loc).Format("2006-01-02T15:04"), Label: s.zones.format(t, zone)}
}

// ceilMinute rounds t up to the minute, as the reserve form's start field takes it.
func ceilMinute(t time.Time) time.Time {
	if r := t.Truncate(time.Minute); !r.Equal(t) {
		return r.Add(time.Minute)
	}
	return t
}

// Limits of the availability page and API.
const (
	availDefaultDays = 7
	availMaxDays     = 31
)

// availBlock is one reservation on the timeline as the visitor may see it: the holder's
// name to admins only.
type availBlock struct {
	Start, End time.Time
	Mine       bool
	Holder     string
	// ReservationID: the visitor's own reservations and, for admins, all.
	ReservationID uint
}

type availNode struct {
	Name, Model, Switch string
	Blocks              []availBlock
}

// availability reads the timeline of [from, to) for visitor u.
func (s *Server) availability(ctx context.Context, u *store.User, f store.AvailabilityFilter) ([]availNode, error) {
	tl, err := s.store.Availability(ctx, f)
	if err != nil {
		return nil, err
	}
	out := make([]availNode, len(tl))
	for i, n := range tl {
		out[i] = availNode{Name: n.Name, Model: n.Model, Switch: n.SwitchName, Blocks: []availBlock{}}
		for _, b := range n.Blocks {
			ab := availBlock{Start: b.Start, End: b.End, Mine: b.UserID == u.ID}
			if ab.Mine || u.Admin {
				ab.ReservationID = b.ReservationID
			}
			if u.Admin {
				ab.Holder = b.Holder
			}
			out[i].Blocks = append(out[i].Blocks, ab)
		}
	}
	return out, nil
}

// Geometry of the timeline, in SVG user units.
const (
	tlLabel     = 150 // the node names' column
	tlWidth     = 900 // the whole drawing
	tlRowHeight = 24
	tlBar       = 16
	tlHeader    = 20
)

type tlRect struct {
	X, Y, W int
	Class   string
	Title   string
}

type tlTick struct {
	X     int
	Label string
}

type tlRow struct {
	Y     int
	Name  string
	Title string
}

type availabilityData struct {
	Days             int
	DayChoices       []int
	Model, Switch    string
	Models, Switches []string
	Zone             string
	From, To         time.Time
	Nodes            []availNode
	// The drawing.
	Width, Height, LabelWidth, NowX int
	Rows                            []tlRow
	Rects                           []tlRect
	Ticks                           []tlTick
}

// showAvailability draws each node's reservations over the coming days, in the visitor's zone
// (the tz parameter app.js fills in; UTC without it), filtered by model and switch.
func (s *Server) showAvailability(c echo.Context) error {
	ctx := c.Request().Context()
	u := currentUser(c)
	d := &availabilityData{Days: availDefaultDays, DayChoices: []int{1, 3, availDefaultDays, 14, availMaxDays},
		Model: c.QueryParam("model"), Switch: c.QueryParam("switch"), Zone: c.QueryParam("tz")}
	if v := c.QueryParam("days"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > availMaxDays {
			return echo.NewHTTPError(http.StatusBadRequest, "days must be from 1 to "+strconv.Itoa(availMaxDays)+".")
		}
		d.Days = n
	}
	loc, err := s.zones.load(d.Zone)
	if err != nil {
		d.Zone, loc = "", time.UTC
	}
	now := s.now().In(loc)
	d.From = time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, loc)
	d.To = d.From.AddDate(0, 0, d.Days)
	if d.Models, d.Switches, err = s.store.NodeKinds(ctx); err != nil {
		return err
	}
	if d.Nodes, err = s.availability(ctx, u, store.AvailabilityFilter{From: d.From, To: d.To, Model: d.Model, Switch: d.Switch}); err != nil {
		return err
	}
	d.draw(s, now)
	return s.render(c, http.StatusOK, "availability", &page{Title: "Availability", Nav: "availability", Data: d})
}

// draw lays the timeline out: a row per node, a tick per day, a rectangle per reservation.
func (d *availabilityData) draw(s *Server, now time.Time) {
	span := d.To.Sub(d.From)
	inner := tlWidth - tlLabel
	x := func(t time.Time) int {
		switch {
		case t.Before(d.From):
			t = d.From
		case t.After(d.To):
			t = d.To
		}
		return tlLabel + int(int64(inner)*int64(t.Sub(d.From))/int64(span))
	}
	d.Width, d.LabelWidth, d.Height = tlWidth, tlLabel, tlHeader+tlRowHeight*len(d.Nodes)
	d.NowX = x(now)
	for day := d.From; day.Before(d.To); day = day.AddDate(0, 0, 1) {
		label := day.Format("Mon 2")
		if d.Days > 14 {
			label = day.Format("2")
		}
		d.Ticks = append(d.Ticks, tlTick{X: x(day), Label: label})
	}
	at := func(t time.Time) string { return s.zones.format(t, d.Zone) }
	for i, n := range d.Nodes {
		y := tlHeader + i*tlRowHeight
		d.Rows = append(d.Rows, tlRow{Y: y, Name: n.Name, Title: n.Name + " (" + n.Model + ", " + n.Switch + ")"})
		for _, b := range n.Blocks {
			r := tlRect{X: x(b.Start), Y: y + (tlRowHeight-tlBar)/2, Class: "res", Title: n.Name + ": reserved"}
			r.W = max(x(b.End)-r.X, 2) // a short reservation stays visible
			switch {
			case b.Mine:
				r.Class, r.Title = "res mine", n.Name+": your reservation"
			case b.Holder != "":
				r.Title = n.Name + ": reserved by " + b.Holder
			}
			r.Title += ", " + at(b.Start) + " to " + at(b.End)
			d.Rects = append(d.Rects, r)
		}
	}
}

type availBlockJSON struct {
	Start         time.Time `json:"start"`
	End           time.Time `json:"end"`
	Mine          bool      `json:"mine"`
	Holder        string    `json:"holder,omitempty"`
	ReservationID uint      `json:"reservation_id,omitempty"`
}

type availNodeJSON struct {
	Name         string           `json:"name"`
	Model        string           `json:"model"`
	Switch       string           `json:"switch"`
	Reservations []availBlockJSON `json:"reservations"`
}

// apiAvailability answers each node's reservations in [from, to) (default: now and 7 days
// later), filtered by model and switch.
func (s *Server) apiAvailability(c echo.Context) error {
	now := s.now().UTC().Truncate(time.Second)
	from, to := now, now.AddDate(0, 0, availDefaultDays)
	for _, p := range []struct {
		name string
		t    *time.Time
	}{{"from", &from}, {"to", &to}} {
		if v := c.QueryParam(p.name); v != "" {
			t, err := time.Parse(time.RFC3339, v)
			if err != nil {
				return apiError(http.StatusBadRequest, p.name+" must be an RFC 3339 time, like 2030-01-31T14:00:00Z")
			}
			*p.t = t.UTC()
		}
	}
	if !to.After(from) || to.Sub(from) > availMaxDays*24*time.Hour {
		return apiError(http.StatusBadRequest, "to must be after from, by at most "+strconv.Itoa(availMaxDays)+" days")
	}
	nodes, err := s.availability(c.Request().Context(), currentUser(c),
		store.AvailabilityFilter{From: from, To: to, Model: c.QueryParam("model"), Switch: c.QueryParam("switch")})
	if err != nil {
		return err
	}
	out := struct {
		From  time.Time       `json:"from"`
		To    time.Time       `json:"to"`
		Nodes []availNodeJSON `json:"nodes"`
	}{From: from, To: to, Nodes: make([]availNodeJSON, len(nodes))}
	for i, n := range nodes {
		out.Nodes[i] = availNodeJSON{Name: n.Name, Model: n.Model, Switch: n.Switch, Reservations: make([]availBlockJSON, len(n.Blocks))}
		for j, b := range n.Blocks {
			out.Nodes[i].Reservations[j] = availBlockJSON{Start: b.Start, End: b.End, Mine: b.Mine, Holder: b.Holder, ReservationID: b.ReservationID}
		}
	}
	return c.JSON(http.StatusOK, out)
}
