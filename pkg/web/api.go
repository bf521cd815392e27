package web

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/piseduce/piseduce/pkg/apijson"
	"github.com/piseduce/piseduce/pkg/process"
	"github.com/piseduce/piseduce/pkg/store"
)

// The JSON API: Bearer tokens, JSON in and out, errors as {"error": "..."} with the status
// code that fits (400 bad input, 401 no token, 403 not an admin, 404 not found or not yours,
// 409 conflict, 500 with a reference).

// maxJSONBody bounds request bodies (an init script is at most 64 KiB).
const maxJSONBody = 1 << 20

// bindJSON decodes the request body into v, refusing unknown fields and trailing data.
func bindJSON(c echo.Context, v any) error {
	r := c.Request()
	if ct := r.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(ct, "application/json") {
		return apiError(http.StatusUnsupportedMediaType, "send JSON with Content-Type: application/json")
	}
	tooLarge := apiError(http.StatusRequestEntityTooLarge, fmt.Sprintf("the request body is too large: at most %d MiB", maxJSONBody>>20))
	if r.ContentLength > maxJSONBody {
		return tooLarge
	}
	dec := json.NewDecoder(http.MaxBytesReader(c.Response(), r.Body, maxJSONBody))
	dec.DisallowUnknownFields()
	var mbe *http.MaxBytesError
	switch err := dec.Decode(v); {
	case errors.As(err, &mbe):
		return tooLarge
	case errors.Is(err, io.EOF):
		return apiError(http.StatusBadRequest, "the request body is empty; send a JSON object")
	case err != nil:
		return apiError(http.StatusBadRequest, "invalid JSON: "+err.Error())
	case dec.More():
		return apiError(http.StatusBadRequest, "invalid JSON: data after the object")
	}
	return nil
}

// allRequested: an admin asks for everyone's rows with ?all=true.
func allRequested(c echo.Context) bool {
	return currentUser(c).Admin && c.QueryParam("all") == "true"
}

// apiNodes lists the nodes, a page at a time when the client asks for one (limit, then
// cursor), from what live holds; a reservation's id only to its holder and admins.
func (s *Server) apiNodes(c echo.Context) error {
	limit, raw, err := pageParams(c)
	if err != nil {
		return err
	}
	var after func(*store.NodeStatus) bool
	if raw != nil {
		k, err := parseNodeCursor(raw)
		if err != nil {
			return err
		}
		after = k.before
	}
	sts, gen, err := s.live.nodes(c.Request().Context())
	if err != nil {
		return err
	}
	return s.answerJSON(c, gen, func() any {
		sts, next := pageOf(sts, limit, after, nodeCursorOf)
		me := currentUser(c)
		out := make([]apijson.Node, len(sts))
		for i := range sts {
			n := &sts[i]
			out[i] = apijson.Node{ID: n.ID, Name: n.Name, Model: n.Model, Switch: n.Switch.Name, Port: n.Port, IP: n.IP,
				Free: n.Free(), Held: n.Held, Holder: n.Holder, NextStart: n.NextStart, Process: n.Process, State: n.State}
			if n.Held {
				u := n.Until
				out[i].Until = &u
				if n.HolderID == me.ID || me.Admin {
					out[i].ReservationID = n.ReservationID
				}
			}
		}
		body := map[string]any{"nodes": out}
		if next != "" {
			body["next_cursor"] = next
		}
		return body
	})
}

func (s *Server) apiEnvironments(c echo.Context) error {
	u := currentUser(c)
	es, err := s.store.VisibleEnvironments(c.Request().Context(), u.ID, u.Admin)
	if err != nil {
		return err
	}
	out := make([]apijson.Environment, len(es))
	for i, e := range es {
		out[i] = apijson.Environment{ID: e.ID, Name: e.Name, Type: e.Type, Description: e.Description, SSHUser: e.SSHUser,
			Web: e.Web, ImageSize: e.ImageSize}
	}
	return c.JSON(http.StatusOK, map[string]any{"environments": out})
}

func viewReservation(r *store.Reservation) apijson.Reservation {
	out := apijson.Reservation{ID: r.ID, UserID: r.UserID, User: r.User.DisplayName(), StartsAt: r.StartsAt, EndsAt: r.EndsAt,
		TimeZone: r.TimeZone, NodeIDs: []uint{}, Nodes: []string{}}
	if r.EndedBy != 0 {
		out.EndReason, out.EndedAt = r.EndReason, r.EndedAt
	}
	for _, n := range r.Nodes {
		out.NodeIDs = append(out.NodeIDs, n.ID)
		out.Nodes = append(out.Nodes, n.Name)
	}
	return out
}

func (s *Server) apiReservations(c echo.Context) error {
	uid := currentUser(c).ID
	if allRequested(c) {
		uid = 0
	}
	rs, err := s.store.UserReservations(c.Request().Context(), uid, s.now())
	if err != nil {
		return err
	}
	out := make([]apijson.Reservation, len(rs))
	for i := range rs {
		out[i] = viewReservation(&rs[i])
	}
	return c.JSON(http.StatusOK, map[string]any{"reservations": out})
}

func (s *Server) apiCreateReservation(c echo.Context) error {
	var in apijson.ReservationRequest
	if err := bindJSON(c, &in); err != nil {
		return err
	}
	r, err := s.reserve(c.Request().Context(), currentUser(c), in)
	if err != nil {
		return apiReservationError(c, err)
	}
	return s.replyReservation(c, http.StatusCreated, r.ID)
}

// replyReservation answers with reservation id as it now stands, with its user and nodes.
func (s *Server) replyReservation(c echo.Context, code int, id uint) error {
	r, err := s.store.Reservation(c.Request().Context(), id)
	if err != nil {
		return err
	}
	return c.JSON(code, viewReservation(r))
}

func (s *Server) apiExtendReservation(c echo.Context) error {
	r, err := s.paramReservation(c, false)
	if err != nil {
		return err
	}
	var in struct {
		Hours int `json:"hours"`
	}
	if err := bindJSON(c, &in); err != nil {
		return err
	}
	if err := s.extend(c.Request().Context(), r, in.Hours); err != nil {
		return apiReservationError(c, err)
	}
	return s.replyReservation(c, http.StatusOK, r.ID)
}

func (s *Server) apiEndReservation(c echo.Context) error {
	if err := s.endOwnReservation(c); err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]string{"status": "ended"})
}

func (s *Server) deploymentViews(c echo.Context, f store.DeploymentFilter) ([]apijson.Deployment, error) {
	ds, err := s.store.Deployments(c.Request().Context(), f)
	if err != nil {
		return nil, err
	}
	u := currentUser(c)
	now := s.now()
	out := make([]apijson.Deployment, len(ds))
	for i := range ds {
		out[i] = viewDeployment(&ds[i], u, now)
		s.markQueued(c.Request().Context(), &out[i])
	}
	return out, nil
}

// apiDeployments lists the current deployments, a page at a time when the client asks for
// one (limit, then cursor: the next_cursor of the page before); without limit, all of them.
func (s *Server) apiDeployments(c echo.Context) error {
	limit, raw, err := pageParams(c)
	if err != nil {
		return err
	}
	var after func(*store.Deployment) bool
	if raw != nil {
		k, err := parseListCursor(raw)
		if err != nil {
			return err
		}
		after = k.before
	}
	ds, gen, err := s.visibleDeployments(c, allRequested(c), nil)
	if err != nil {
		return err
	}
	idle := s.noWorkerFor(c.Request().Context(), ds)
	return s.answerJSON(c, withWorkers(gen, idle), func() any {
		ds, next := pageOf(ds, limit, after, cursorOf)
		u, now := currentUser(c), s.now()
		out := make([]apijson.Deployment, len(ds))
		for i := range ds {
			out[i] = viewDeployment(&ds[i], u, now)
			sayNoWorker(&out[i], idle)
		}
		body := map[string]any{"deployments": out}
		if next != "" {
			body["next_cursor"] = next
		}
		return body
	})
}

func (s *Server) apiCreateDeployments(c echo.Context) error {
	var in struct {
		ReservationID uint `json:"reservation_id"`
		deployInput
	}
	if err := bindJSON(c, &in); err != nil {
		return err
	}
	r, err := s.ownReservation(c, in.ReservationID, false)
	if err != nil {
		return err
	}
	ds, err := s.deploy(c.Request().Context(), currentUser(c), r, in.deployInput)
	if err != nil {
		return httpError(err)
	}
	ids := make([]uint, len(ds))
	for i := range ds {
		ids[i] = ds[i].ID
	}
	out, err := s.deploymentViews(c, store.DeploymentFilter{IDs: ids})
	if err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, map[string]any{"deployments": out})
}

// apiDeployment returns one deployment; the OS password and the host key only to its owner.
func (s *Server) apiDeployment(c echo.Context) error {
	d, err := s.paramDeployment(c, true)
	if err != nil {
		return err
	}
	u := currentUser(c)
	v := viewDeployment(d, u, s.now())
	if u.ID == d.UserID && v.Reachable {
		if v.HostKey, _, err = s.store.SystemHostKey(c.Request().Context(), d.NodeID); err != nil {
			return err
		}
	}
	s.markQueued(c.Request().Context(), &v)
	return c.JSON(http.StatusOK, v)
}

func (s *Server) apiRequest(c echo.Context, a process.Action) error {
	d, err := s.paramDeployment(c, false)
	if err != nil {
		return err
	}
	if err := s.request(c.Request().Context(), currentUser(c), d, a); err != nil {
		return httpError(err)
	}
	return s.replyDeployment(c, http.StatusAccepted, d.ID)
}

// replyDeployment answers with deployment id as it now stands.
func (s *Server) replyDeployment(c echo.Context, code int, id uint) error {
	d, err := s.store.Deployment(c.Request().Context(), id)
	if err != nil {
		return err
	}
	v := viewDeployment(d, currentUser(c), s.now())
	s.markQueued(c.Request().Context(), &v)
	return c.JSON(code, v)
}

func (s *Server) apiDestroy(c echo.Context) error  { return s.apiRequest(c, process.ActDestroy) }
func (s *Server) apiReboot(c echo.Context) error   { return s.apiRequest(c, process.ActReboot) }
func (s *Server) apiRedeploy(c echo.Context) error { return s.apiRequest(c, process.ActRedeploy) }
