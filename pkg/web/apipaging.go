package web

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"strconv"

	"github.com/labstack/echo/v4"

	"github.com/piseduce/piseduce/pkg/store"
)

// maxPageLimit bounds the limit a client may ask of a paged API list.
const maxPageLimit = 1000

// listCursor is where a page of deployments ends, in their order (reservation, then node
// name): the next page starts with the first deployment after it, whatever was added or
// removed in between.
type listCursor struct {
	reservation uint
	node        string
	id          uint
}

func cursorOf(d *store.Deployment) string {
	return base64.RawURLEncoding.EncodeToString(fmt.Appendf(nil, "%d/%d/%s", d.ReservationID, d.ID, d.Node.Name))
}

// before reports whether the cursor's position is before d.
func (k *listCursor) before(d *store.Deployment) bool {
	switch {
	case k.reservation != d.ReservationID:
		return k.reservation < d.ReservationID
	case k.node != d.Node.Name:
		return store.NameLess(k.node, d.Node.Name)
	}
	return k.id < d.ID
}

// pageParams reads limit (0: no limit) and cursor.
func pageParams(c echo.Context) (int, *listCursor, error) {
	bad := func(what string) error { return apiError(http.StatusBadRequest, what) }
	limit := 0
	if q := c.QueryParam("limit"); q != "" {
		n, err := strconv.Atoi(q)
		if err != nil || n < 1 || n > maxPageLimit {
			return 0, nil, bad(fmt.Sprintf("limit must be a number from 1 to %d", maxPageLimit))
		}
		limit = n
	}
	q := c.QueryParam("cursor")
	if q == "" {
		return limit, nil, nil
	}
	raw, err := base64.RawURLEncoding.DecodeString(q)
	var k listCursor
	if err == nil {
		_, err = fmt.Sscanf(string(raw), "%d/%d/", &k.reservation, &k.id)
	}
	if err != nil {
		return 0, nil, bad("cursor is not one this server gave (use next_cursor as it came)")
	}
	prefix := fmt.Sprintf("%d/%d/", k.reservation, k.id)
	k.node = string(raw[len(prefix):])
	if string(raw[:len(prefix)]) != prefix {
		return 0, nil, bad("cursor is not one this server gave (use next_cursor as it came)")
	}
	return limit, &k, nil
}
