package web

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"unicode"

	"github.com/labstack/echo/v4"

	"github.com/piseduce/piseduce/pkg/names"
	"github.com/piseduce/piseduce/pkg/store"
)

// formError is a message for the visitor about what they sent (shown in the form, or as a
// 4xx JSON error); any other error is internal.
type formError struct {
	msg  string
	code int
}

func (e *formError) Error() string { return e.msg }

func badInput(format string, args ...any) error {
	return &formError{msg: fmt.Sprintf(format, args...), code: http.StatusBadRequest}
}

func conflict(format string, args ...any) error {
	return &formError{msg: fmt.Sprintf(format, args...), code: http.StatusConflict}
}

// userMessage returns what to tell the visitor about err and the status code, or ok=false
// when err is internal.
func userMessage(err error) (msg string, code int, ok bool) {
	var fe *formError
	var ce *store.ConflictError
	var ie *store.InvalidError
	var de *store.DuplicateError
	switch {
	case errors.As(err, &fe):
		return fe.msg, fe.code, true
	case errors.As(err, &ie):
		return upperFirst(ie.Error()) + ".", http.StatusBadRequest, true
	case errors.As(err, &de):
		return upperFirst(de.Error()) + ".", http.StatusConflict, true
	case errors.As(err, &ce):
		if len(ce.Nodes) > 0 {
			return strings.Join(ce.Nodes, ", ") + ": " + ce.Reason + ".", http.StatusConflict, true
		}
		return upperFirst(ce.Reason) + ".", http.StatusConflict, true
	case errors.Is(err, store.ErrNotFound):
		return "Not found.", http.StatusNotFound, true
	case errors.Is(err, store.ErrLastAdmin):
		return "The last active admin cannot be removed, revoked or demoted.", http.StatusConflict, true
	case errors.Is(err, store.ErrInUse):
		return "It is still in use, so it cannot be deleted.", http.StatusConflict, true
	case errors.Is(err, store.ErrDuplicate):
		return "That name is already taken.", http.StatusConflict, true
	}
	return "", 0, false
}

func upperFirst(s string) string {
	if s == "" {
		return s
	}
	r := []rune(s)
	r[0] = unicode.ToUpper(r[0])
	return string(r)
}

// httpError turns err into what the error handler shows: the user's message for a user
// error, a logged 500 otherwise.
func httpError(err error) error {
	if msg, code, ok := userMessage(err); ok {
		return echo.NewHTTPError(code, msg)
	}
	return err
}

// paramID reads a numeric path parameter; anything else is a 404.
func paramID(c echo.Context, name string) (uint, error) {
	n, err := strconv.ParseUint(c.Param(name), 10, 32)
	if err != nil || n == 0 {
		return 0, echo.ErrNotFound
	}
	return uint(n), nil
}

// byID loads, with load, the record named by the :id path parameter; a malformed id is a 404.
func byID[T any](c echo.Context, load func(context.Context, uint) (T, error)) (T, error) {
	id, err := paramID(c, "id")
	if err != nil {
		var zero T
		return zero, err
	}
	return load(c.Request().Context(), id)
}

// formRecord is the record an add-or-edit form works on: the one named by :id, or a new one
// on the add form (no :id).
func formRecord[T any](c echo.Context, load func(context.Context, uint) (*T, error)) (*T, error) {
	if c.Param("id") == "" {
		return new(T), nil
	}
	return byID(c, load)
}

// deleteByID deletes, with del, the record named by :id, then goes back to the list page to
// with the message done (or with the visitor's error).
func (s *Server) deleteByID(c echo.Context, del func(context.Context, uint) error, to, done string) error {
	id, err := paramID(c, "id")
	if err != nil {
		return err
	}
	if err := del(c.Request().Context(), id); err != nil {
		return s.redirectUserError(c, to, err)
	}
	return s.redirect(c, to, done)
}

// apiDeleteByID deletes, with del, the record named by :id: 204 No Content.
func apiDeleteByID(c echo.Context, del func(context.Context, uint) error) error {
	id, err := paramID(c, "id")
	if err != nil {
		return err
	}
	if err := del(c.Request().Context(), id); err != nil {
		return httpError(err)
	}
	return c.NoContent(http.StatusNoContent)
}

// createOrUpdate saves v with create when isNew, with update otherwise, and returns the status
// code of an API answer: 201 Created or 200 OK.
func createOrUpdate[T any](ctx context.Context, isNew bool, v *T, create, update func(context.Context, *T) error) (int, error) {
	if isNew {
		return http.StatusCreated, create(ctx, v)
	}
	return http.StatusOK, update(ctx, v)
}

// apiUpdate hands save the record named by :id, loaded with load (PUT /api/v1/admin/...).
func apiUpdate[T any](c echo.Context, load func(context.Context, uint) (*T, error), save func(echo.Context, *T) error) error {
	v, err := byID(c, load)
	if err != nil {
		return err
	}
	return save(c, v)
}

// paramDeployment is ownDeployment for the deployment named by the :id path parameter.
func (s *Server) paramDeployment(c echo.Context, adminMay bool) (*store.Deployment, error) {
	id, err := paramID(c, "id")
	if err != nil {
		return nil, err
	}
	return s.ownDeployment(c, id, adminMay)
}

// paramReservation is ownReservation for the reservation named by the :id path parameter.
func (s *Server) paramReservation(c echo.Context, adminMay bool) (*store.Reservation, error) {
	id, err := paramID(c, "id")
	if err != nil {
		return nil, err
	}
	return s.ownReservation(c, id, adminMay)
}

// ownDeployment loads deployment id if the visitor owns it (admins may see any); someone
// else's is reported as not found, so ids do not reveal what exists.
func (s *Server) ownDeployment(c echo.Context, id uint, adminMay bool) (*store.Deployment, error) {
	d, err := s.store.Deployment(c.Request().Context(), id)
	if err != nil {
		return nil, err
	}
	if !mayUse(c, d.UserID, adminMay) {
		return nil, store.ErrNotFound
	}
	return d, nil
}

// ownReservation loads reservation id if the visitor owns it (admins may act on any when adminMay).
func (s *Server) ownReservation(c echo.Context, id uint, adminMay bool) (*store.Reservation, error) {
	r, err := s.store.Reservation(c.Request().Context(), id)
	if err != nil {
		return nil, err
	}
	if !mayUse(c, r.UserID, adminMay) {
		return nil, store.ErrNotFound
	}
	return r, nil
}

// mayUse: the visitor may see or act on what user owner owns: their own, or anyone's for an
// admin when adminMay.
func mayUse(c echo.Context, owner uint, adminMay bool) bool {
	u := currentUser(c)
	return owner == u.ID || (adminMay && u.Admin)
}

// printable rejects control characters (new lines included) in one-line fields.
func printable(s string) bool {
	for _, r := range s {
		if unicode.IsControl(r) {
			return false
		}
	}
	return true
}

// oneLine validates a short one-line text field: a name (see names.Check).
func oneLine(field, v string, min, max int) (string, error) {
	v = strings.TrimSpace(v)
	n := len([]rune(v))
	switch {
	case n < min && min == 1:
		return "", badInput("%s is required.", field)
	case n < min:
		return "", badInput("%s must have at least %d characters.", field, min)
	case n > max:
		return "", badInput("%s must have at most %d characters.", field, max)
	}
	if err := names.Check(field, v); err != nil {
		return "", badInput("%s.", err)
	}
	return v, nil
}

// healthz answers without auth: the process is up and the database answers.
func (s *Server) healthz(c echo.Context) error {
	if err := s.store.Ping(c.Request().Context()); err != nil {
		s.log.Error("health check: database", "err", err)
		return c.JSON(http.StatusServiceUnavailable, map[string]string{"status": "database unavailable"})
	}
	return c.JSON(http.StatusOK, map[string]string{"status": "ok"})
}
