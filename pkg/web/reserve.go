package web

import (
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

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

// parseLocalTime reads a datetime-local field ("2006-01-02T15:04") in the browser's time zone,
// given as minutes behind UTC (JavaScript's getTimezoneOffset; 0 without JavaScript).
func parseLocalTime(v, offset string) (*time.Time, error) {
	if v == "" {
		return nil, nil
	}
	t, err := time.Parse("2006-01-02T15:04", v)
	if err != nil {
		return nil, badInput("The start must look like 2030-01-31T14:00.")
	}
	off, _ := strconv.Atoi(offset)
	if off < -16*60 || off > 16*60 {
		off = 0
	}
	t = t.Add(time.Duration(off) * time.Minute)
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
	var in reserveInput
	for _, v := range form["nodes"] {
		id, err := strconv.ParseUint(v, 10, 32)
		if err != nil {
			return echo.ErrBadRequest
		}
		in.NodeIDs = append(in.NodeIDs, uint(id))
		d.Selected[uint(id)] = true
	}
	in.Model = form.Get("model")
	in.Count, _ = strconv.Atoi(form.Get("count"))
	in.Hours, _ = strconv.Atoi(form.Get("hours"))
	d.Model, d.Count, d.Hours, d.Start = in.Model, in.Count, in.Hours, form.Get("start")
	fail := func(err error) error {
		msg, code, ok := userMessage(err)
		if !ok {
			return err
		}
		return s.render(c, code, "reserve", &page{Title: "Reserve nodes", Nav: "reserve", Error: msg, Data: d})
	}
	if in.StartsAt, err = parseLocalTime(form.Get("start"), form.Get("tz_offset")); err != nil {
		return fail(err)
	}
	r, err := s.reserve(ctx, currentUser(c), in)
	if err != nil {
		return fail(err)
	}
	if !r.StartsAt.After(s.now()) {
		return s.redirect(c, "/reservations/"+strconv.Itoa(int(r.ID))+"/deploy",
			"Reserved "+plural(len(r.Nodes), "node")+" until "+r.EndsAt.Format("2006-01-02 15:04 UTC")+". Now choose what to deploy.")
	}
	return s.redirect(c, "/deployments", "Reserved "+plural(len(r.Nodes), "node")+" from "+
		r.StartsAt.Format("2006-01-02 15:04 UTC")+" to "+r.EndsAt.Format("2006-01-02 15:04 UTC")+".")
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
