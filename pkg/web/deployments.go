package web

import (
	"net/http"
	"sort"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/piseduce/piseduce/pkg/apijson"
	"github.com/piseduce/piseduce/pkg/store"
)

// reservationView is one reservation on the "My deployments" page.
type reservationView struct {
	Reservation store.Reservation
	Running     bool
	Future      bool
	Ended       bool
	Deployments []apijson.Deployment
	// Undeployed counts the nodes with no deployment yet.
	Undeployed int
	Extend     []int
	// CanRelease: its holder may give single nodes back (it runs and holds more than one).
	CanRelease bool
}

type deploymentsData struct {
	Reservations []reservationView
	// All: an admin's view of everyone's deployments.
	All bool
	// Ended: the viewer's reservations an admin ended lately, with the reason.
	Ended []store.Reservation
}

// deploymentsData gathers the current and future reservations of userID (0: everyone's), with
// their deployments, plus any deployment of an ended reservation that is not destroyed yet.
func (s *Server) deploymentsData(c echo.Context, userID uint) (*deploymentsData, error) {
	ctx := c.Request().Context()
	now := s.now().UTC()
	st, err := s.settings(ctx)
	if err != nil {
		return nil, err
	}
	rs, err := s.store.UserReservations(ctx, userID, now)
	if err != nil {
		return nil, err
	}
	ds, err := s.store.Deployments(ctx, store.DeploymentFilter{UserID: userID, Current: now})
	if err != nil {
		return nil, err
	}
	viewer := currentUser(c)
	byRes := map[uint]int{}
	out := &deploymentsData{All: userID == 0}
	add := func(r store.Reservation) {
		byRes[r.ID] = len(out.Reservations)
		rv := reservationView{Reservation: r, Future: r.StartsAt.After(now), Ended: !r.EndsAt.After(now)}
		rv.Running = !rv.Future && !rv.Ended
		if r.UserID == viewer.ID {
			rv.Extend = extendChoices(&r, now, st.MaxHours)
		}
		out.Reservations = append(out.Reservations, rv)
	}
	for _, r := range rs {
		add(r)
	}
	for i := range ds {
		if _, ok := byRes[ds[i].ReservationID]; !ok {
			add(ds[i].Reservation)
		}
		rv := &out.Reservations[byRes[ds[i].ReservationID]]
		v := viewDeployment(&ds[i], viewer, now)
		s.markQueued(c.Request().Context(), &v)
		rv.Deployments = append(rv.Deployments, v)
	}
	for i := range out.Reservations {
		rv := &out.Reservations[i]
		n := len(rv.Reservation.Nodes)
		for _, d := range rv.Deployments {
			if !d.Released {
				n--
			}
		}
		if n > 0 && rv.Running {
			rv.Undeployed = n
		}
		rv.CanRelease = rv.Running && rv.Reservation.UserID == viewer.ID && len(rv.Reservation.Nodes) > 1
	}
	if userID != 0 {
		if out.Ended, err = s.store.EndedByAdmin(ctx, userID, now.Add(-endedNoticeFor)); err != nil {
			return nil, err
		}
	}
	sort.SliceStable(out.Reservations, func(i, j int) bool {
		return out.Reservations[i].Reservation.StartsAt.Before(out.Reservations[j].Reservation.StartsAt)
	})
	return out, nil
}

// showDeployments is "My deployments": each reservation with its nodes' state, a live
// progress bar during the copy (app.js polls deploymentsStatus) and the actions.
func (s *Server) showDeployments(c echo.Context) error {
	d, err := s.deploymentsData(c, currentUser(c).ID)
	if err != nil {
		return err
	}
	return s.render(c, http.StatusOK, "deployments", &page{Title: "My deployments", Nav: "deployments", Data: d})
}

// deploymentsStatus is the live feed of the pages: the visitor's own deployments (ids=1,2,3 to
// choose some; an admin may ask for anyone's by id).
func (s *Server) deploymentsStatus(c echo.Context) error {
	u := currentUser(c)
	var ids []uint
	if q := c.QueryParam("ids"); q != "" {
		for _, p := range strings.Split(q, ",") {
			id, err := strconv.ParseUint(p, 10, 32)
			if err != nil || len(ids) >= 500 {
				return echo.NewHTTPError(http.StatusBadRequest, "ids must be a comma-separated list of numbers")
			}
			ids = append(ids, uint(id))
		}
	}
	ds, gen, err := s.visibleDeployments(c, ids != nil && u.Admin, ids)
	if err != nil {
		return err
	}
	// No passwords in it: the browser may keep it and ask again with its ETag.
	c.Response().Header().Set("Cache-Control", "private, no-cache")
	idle := s.noWorkerFor(c.Request().Context(), ds)
	return s.answerJSON(c, withWorkers(gen, idle), func() any {
		now := s.now()
		out := make([]apijson.Deployment, len(ds))
		for i := range ds {
			out[i] = viewDeployment(&ds[i], u, now)
			out[i].OSPassword, out[i].PublicKey = "", ""
			sayNoWorker(&out[i], idle)
		}
		return map[string]any{"deployments": out}
	})
}

// visibleDeployments are the visitor's own current deployments (everyone's with all), or
// those of ids among them, from what live holds; deployments of ids that are not current
// any more (up to a year old) are read from the store.
func (s *Server) visibleDeployments(c echo.Context, all bool, ids []uint) ([]store.Deployment, uint64, error) {
	cur, gen, err := s.live.deployments(c.Request().Context())
	if err != nil {
		return nil, 0, err
	}
	uid := currentUser(c).ID
	mine := func(d *store.Deployment) bool { return all || d.UserID == uid }
	if ids == nil {
		var out []store.Deployment
		for i := range cur {
			if mine(&cur[i]) {
				out = append(out, cur[i])
			}
		}
		return out, gen, nil
	}
	want := make(map[uint]bool, len(ids))
	for _, id := range ids {
		want[id] = true
	}
	var out []store.Deployment
	for i := range cur {
		if want[cur[i].ID] && mine(&cur[i]) {
			out = append(out, cur[i])
			delete(want, cur[i].ID)
		}
	}
	if len(want) == 0 {
		return out, gen, nil
	}
	f := store.DeploymentFilter{IDs: ids, Current: s.now().AddDate(-1, 0, 0)}
	if !all {
		f.UserID = uid
	}
	ds, err := s.store.Deployments(c.Request().Context(), f)
	return ds, gen, err
}
