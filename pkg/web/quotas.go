package web

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/labstack/echo/v4"

	"github.com/piseduce/piseduce/pkg/store"
)

// maxQuota bounds what the admin may set as a quota.
const maxQuota = 1000000

// quotaError is a reservation refused by a quota: the page shows its message, the API adds
// the limit and the time the same request fits to its 409 body.
type quotaError struct {
	form  *formError
	quota *store.QuotaError
}

func (e *quotaError) Error() string   { return e.form.msg }
func (e *quotaError) Unwrap() []error { return []error{e.form, e.quota} }

// explainQuota turns a store quota refusal into a message with times in zone; other errors
// are returned as they are.
func (s *Server) explainQuota(err error, zone string) error {
	var qe *store.QuotaError
	if !errors.As(err, &qe) {
		return err
	}
	msg := fmt.Sprintf("Quota: you may hold at most %d node(s) at once.", qe.Max)
	if qe.Limit == store.QuotaLimitNodeHours {
		msg = fmt.Sprintf("Quota: you may reserve at most %d node-hours in any 7 days.", qe.Max)
	}
	if qe.FitsAt.IsZero() {
		msg += " This request alone is more than that."
	} else {
		msg += " The same request fits from " + s.zones.format(qe.FitsAt, zone) + "."
	}
	return &quotaError{form: &formError{msg: msg, code: http.StatusConflict}, quota: qe}
}

// apiReservationError answers a refused reservation: nodes taken then, with the earliest
// start that fits, as 409 {"error", "earliest_start"}; a quota refusal as 409 {"error", "quota":
// {"limit", "max", "fits_at"}} (no fits_at: this request alone is over the limit), anything
// else as httpError does.
func apiReservationError(c echo.Context, err error) error {
	var fe *fitError
	if errors.As(err, &fe) && !fe.fit.Start.IsZero() {
		return c.JSON(fe.form.code, map[string]any{"error": fe.form.msg, "earliest_start": fe.fit.Start.UTC()})
	}
	var qe *quotaError
	if !errors.As(err, &qe) {
		return httpError(err)
	}
	quota := map[string]any{"limit": qe.quota.Limit, "max": qe.quota.Max}
	if !qe.quota.FitsAt.IsZero() {
		quota["fits_at"] = qe.quota.FitsAt.UTC()
	}
	return c.JSON(http.StatusConflict, map[string]any{"error": qe.form.msg, "quota": quota})
}

type quotaJSON struct {
	Nodes     int `json:"nodes"`
	NodeHours int `json:"node_hours"`
}

func (s *Server) apiAdminQuotas(c echo.Context) error {
	q, err := s.store.ReadQuota(c.Request().Context())
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, quotaJSON{Nodes: q.Nodes, NodeHours: q.NodeHours})
}

func (s *Server) apiUpdateQuotas(c echo.Context) error {
	var in quotaJSON
	if err := bindJSON(c, &in); err != nil {
		return err
	}
	q, err := validQuota(strconv.Itoa(in.Nodes), strconv.Itoa(in.NodeHours))
	if err != nil {
		return httpError(err)
	}
	if err := s.store.SetQuota(c.Request().Context(), q); err != nil {
		return err
	}
	s.log.Info("quotas changed", "admin", currentUser(c).ID, "nodes", q.Nodes, "node_hours", q.NodeHours)
	return c.JSON(http.StatusOK, quotaJSON{Nodes: q.Nodes, NodeHours: q.NodeHours})
}

// validQuota reads the two quotas as the settings page and the API send them: whole numbers
// from 0 (no limit, also "") to maxQuota.
func validQuota(nodes, nodeHours string) (store.Quota, error) {
	var q store.Quota
	for _, f := range []struct {
		what, value string
		to          *int
	}{{"The most nodes at once", nodes, &q.Nodes}, {"The most node-hours per 7 days", nodeHours, &q.NodeHours}} {
		if f.value == "" {
			continue
		}
		n, err := strconv.Atoi(f.value)
		if err != nil || n < 0 || n > maxQuota {
			return q, badInput("%s must be a whole number from 0 (no limit) to %d.", f.what, maxQuota)
		}
		*f.to = n
	}
	return q, nil
}
