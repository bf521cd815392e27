package web

import (
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/piseduce/piseduce/pkg/apijson"
	"github.com/piseduce/piseduce/pkg/store"
)

type modelCount struct {
	Model string
	Free  int
}

type reserveData struct {
	Free     []nodeGroup
	Models   []modelCount
	MaxHours int
	// The form, shown again after an error.
	Selected map[uint]bool
	Model    string
	Count    int
	Hours    int
	Start    string
	Zone     string // the zone of Start, as the browser said (empty: UTC until app.js tells)
	// Then offers the earliest start that fits, after a refusal for taken nodes.
	Then *reserveThen
}

func (s *Server) reserveData(c echo.Context) (*reserveData, error) {
	ctx := c.Request().Context()
	st, err := s.settings(ctx)
	if err != nil {
		return nil, err
	}
	sts, err := s.store.NodeStatuses(ctx, s.now())
	if err != nil {
		return nil, err
	}
	var free []store.NodeStatus
	counts := map[string]int{}
	var models []modelCount
	for _, n := range sts {
		if _, ok := counts[n.Model]; !ok {
			models = append(models, modelCount{Model: n.Model})
		}
		if n.Free() {
			free = append(free, n)
			counts[n.Model]++
		}
	}
	for i := range models {
		models[i].Free = counts[models[i].Model]
	}
	return &reserveData{Free: groupNodes(free), Models: models, MaxHours: st.MaxHours, Selected: map[uint]bool{},
		Count: 1, Hours: 2}, nil
}

func (s *Server) showReserve(c echo.Context) error {
	d, err := s.reserveData(c)
	if err != nil {
		return err
	}
	return s.render(c, http.StatusOK, "reserve", &page{Title: "Reserve nodes", Nav: "reserve", Data: d})
}

// parseLocalTime reads a datetime-local field ("2006-01-02T15:04") in the browser's time zone
// (an IANA name app.js fills in; UTC without JavaScript), with the summer or winter time of
// that date.
func (s *Server) parseLocalTime(v, zone string) (*time.Time, error) {
	loc, err := s.zones.load(zone)
	if err != nil || v == "" {
		return nil, err
	}
	t, err := time.ParseInLocation("2006-01-02T15:04", v, loc)
	if err != nil {
		return nil, badInput("The start must look like 2030-01-31T14:00.")
	}
	return &t, nil
}

func (s *Server) saveReserve(c echo.Context) error {
	ctx := c.Request().Context()
	form, err := c.FormParams()
	if err != nil {
		return echo.ErrBadRequest
	}
	d, err := s.reserveData(c)
	if err != nil {
		return err
	}
	var in apijson.ReservationRequest
	for _, v := range form["nodes"] {
		id, err := strconv.ParseUint(v, 10, 32)
		if err != nil {
			return echo.ErrBadRequest
		}
		in.NodeIDs = append(in.NodeIDs, uint(id))
		d.Selected[uint(id)] = true
	}
	in.Model, in.TimeZone = form.Get("model"), form.Get("tz")
	in.Count, _ = strconv.Atoi(form.Get("count"))
	in.Hours, _ = strconv.Atoi(form.Get("hours"))
	d.Model, d.Count, d.Hours, d.Start, d.Zone = in.Model, in.Count, in.Hours, form.Get("start"), in.TimeZone
	fail := func(err error) error {
		msg, code, ok := userMessage(err)
		if !ok {
			return err
		}
		d.Then = s.reserveThen(err, in.TimeZone)
		return s.render(c, code, "reserve", &page{Title: "Reserve nodes", Nav: "reserve", Error: msg, Data: d})
	}
	if in.StartsAt, err = s.parseLocalTime(form.Get("start"), in.TimeZone); err != nil {
		return fail(err)
	}
	r, err := s.reserve(ctx, currentUser(c), in)
	if err != nil {
		return fail(err)
	}
	at := func(t time.Time) string { return s.zones.format(t, r.TimeZone) }
	if !r.StartsAt.After(s.now()) {
		return s.redirect(c, "/reservations/"+strconv.Itoa(int(r.ID))+"/deploy",
			"Reserved "+plural(len(r.Nodes), "node")+" until "+at(r.EndsAt)+". Now choose what to deploy.")
	}
	return s.redirect(c, "/deployments", "Reserved "+plural(len(r.Nodes), "node")+" from "+at(r.StartsAt)+" to "+at(r.EndsAt)+".")
}

func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return strconv.Itoa(n) + " " + word + "s"
}

// extendReservation adds hours to one of the visitor's reservations.
func (s *Server) extendReservation(c echo.Context) error {
	r, err := s.paramReservation(c, false)
	if err != nil {
		return err
	}
	hours, _ := strconv.Atoi(c.FormValue("hours"))
	if err := s.extend(c.Request().Context(), r, hours); err != nil {
		return s.redirectUserError(c, "/deployments", err)
	}
	return s.redirect(c, "/deployments", "Reservation extended by "+plural(hours, "hour")+".")
}

// endReservation gives the nodes back now: deployed ones are destroyed; a reservation that
// has not started is cancelled.
func (s *Server) endReservation(c echo.Context) error {
	if err := s.endOwnReservation(c); err != nil {
		return err
	}
	return s.redirect(c, "/deployments", "Reservation ended: its nodes are being given back.")
}

// endOwnReservation ends the visitor's reservation named by :id now (the page and the API).
func (s *Server) endOwnReservation(c echo.Context) error {
	r, err := s.paramReservation(c, false)
	if err != nil {
		return err
	}
	return s.store.EndReservation(c.Request().Context(), r.ID, s.now())
}
