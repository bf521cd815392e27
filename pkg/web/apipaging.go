package web

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strconv"

	"github.com/labstack/echo/v4"

	"github.com/piseduce/piseduce/pkg/store"
)

// maxPageLimit bounds the limit a client may ask of a paged API list.
const maxPageLimit = 1000

var errBadCursor = apiError(http.StatusBadRequest, "cursor is not one this server gave (use next_cursor as it came)")

// A cursor is where a page ends, in the list's order: the next page starts with the first
// element after it, whatever was added or removed in between.

// listCursor is a cursor in the deployments' order (reservation, then node name).
type listCursor struct {
	reservation uint
	node        string
	id          uint
}

func cursorOf(d *store.Deployment) string {
	return base64.RawURLEncoding.EncodeToString(fmt.Appendf(nil, "%d/%d/%s", d.ReservationID, d.ID, d.Node.Name))
}

func parseListCursor(raw []byte) (*listCursor, error) {
	var k listCursor
	if _, err := fmt.Sscanf(string(raw), "%d/%d/", &k.reservation, &k.id); err != nil {
		return nil, errBadCursor
	}
	prefix := fmt.Sprintf("%d/%d/", k.reservation, k.id)
	if len(raw) < len(prefix) || string(raw[:len(prefix)]) != prefix {
		return nil, errBadCursor
	}
	k.node = string(raw[len(prefix):])
	return &k, nil
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

// nodeCursor is a cursor in nodeLess order (switch, port, id).
type nodeCursor struct {
	Switch string `json:"s"`
	Port   int    `json:"p"`
	ID     uint   `json:"i"`
}

// nodeLess orders the API's nodes: by switch (natural order), port, then id.
func nodeLess(a, b *store.NodeStatus) bool {
	return (&nodeCursor{a.Switch.Name, a.Port, a.ID}).before(b)
}

func nodeCursorOf(n *store.NodeStatus) string {
	b, _ := json.Marshal(nodeCursor{n.Switch.Name, n.Port, n.ID})
	return base64.RawURLEncoding.EncodeToString(b)
}

func parseNodeCursor(raw []byte) (*nodeCursor, error) {
	var k nodeCursor
	if json.Unmarshal(raw, &k) != nil {
		return nil, errBadCursor
	}
	return &k, nil
}

// before reports whether the cursor's position is before n.
func (k *nodeCursor) before(n *store.NodeStatus) bool {
	switch {
	case k.Switch != n.Switch.Name:
		return store.NameLess(k.Switch, n.Switch.Name)
	case k.Port != n.Port:
		return k.Port < n.Port
	}
	return k.ID < n.ID
}

// pageParams reads limit (0: no limit) and the cursor, decoded (nil: none given).
func pageParams(c echo.Context) (int, []byte, error) {
	limit := 0
	if q := c.QueryParam("limit"); q != "" {
		n, err := strconv.Atoi(q)
		if err != nil || n < 1 || n > maxPageLimit {
			return 0, nil, apiError(http.StatusBadRequest, fmt.Sprintf("limit must be a number from 1 to %d", maxPageLimit))
		}
		limit = n
	}
	q := c.QueryParam("cursor")
	if q == "" {
		return limit, nil, nil
	}
	raw, err := base64.RawURLEncoding.DecodeString(q)
	if err != nil {
		return 0, nil, errBadCursor
	}
	return limit, raw, nil
}

// pageOf cuts a page out of list (in its cursors' order): the elements after the cursor
// (after reports whether one is; nil: from the start), at most limit of them (0: no limit),
// and the cursor of its last element when more follow.
func pageOf[T any](list []T, limit int, after func(*T) bool, cursor func(*T) string) ([]T, string) {
	if after != nil {
		list = list[sort.Search(len(list), func(i int) bool { return after(&list[i]) }):]
	}
	if limit > 0 && len(list) > limit {
		return list[:limit], cursor(&list[limit-1])
	}
	return list, ""
}
