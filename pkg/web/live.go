package web

import (
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"net/http"
	"reflect"
	"sort"
	"sync"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/piseduce/piseduce/pkg/store"
)

// live keeps in memory what pifrontend's busiest answers are made of and what changes at
// most once per pitasks tick: the current deployments of every user, and who the session
// cookies and API tokens seen lately belong to. Every request filters the shared copy for its
// own visitor, so nothing of one user reaches another through it.
//
// It is valid while the store's ChangeStamp (read at most every stampEvery) stays the same
// and this process writes nothing; what the stamp might miss (two writes of one row within
// the database's time resolution) is re-read after liveMaxAge anyway, well within a tick.
// gen moves each time what it holds may have changed: ETags and the event streams use it.
type live struct {
	st      *store.Store
	now     func() time.Time
	mu      sync.Mutex
	checked time.Time // when the stamp was last read (monotonic clock)
	stamp   string
	gen     uint64

	// deps: DeploymentFilter{Current: …} of every user, in its order; past the soonest end of
	// their reservations the actions allowed and the set of current deployments change.
	deps liveList[store.Deployment]
	// statuses: store.NodeStatuses in nodeLess order; who holds a node changes when a
	// reservation starts or ends.
	statuses liveList[store.NodeStatus]

	sessions map[string]liveSession
	tokens   map[string]liveToken
	tags     map[string]liveTag // answerJSON's last ETag per visitor and URL
}

type liveTag struct {
	gen uint64
	tag string
}

const (
	stampEvery = 250 * time.Millisecond
	liveMaxAge = time.Second
	// liveMaxEntries bounds the sessions and tokens remembered between two changes.
	liveMaxEntries = 10000
)

type liveSession struct {
	se   store.Session
	read time.Time
}

type liveToken struct {
	user store.User
	tok  store.APIToken
	read time.Time
}

func newLive(st *store.Store, now func() time.Time) *live {
	return &live{st: st, now: now, gen: 1}
}

// changed is called after every write of this process: whatever it changed shows at once.
func (l *live) changed() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.bump()
	l.checked = time.Time{}
}

// bump moves to a new generation; l.mu is held.
func (l *live) bump() {
	l.gen++
	l.sessions, l.tokens = nil, nil
}

// refresh reads the stamp if it is due and returns the current generation; l.mu is held.
func (l *live) refresh(ctx context.Context) (uint64, error) {
	now := l.now()
	if d, n := l.deps.due(now), l.statuses.due(now); d || n {
		l.bump()
	}
	if !l.checked.IsZero() && time.Since(l.checked) < stampEvery {
		return l.gen, nil
	}
	stamp, err := l.st.ChangeStamp(ctx)
	if err != nil {
		return 0, err
	}
	if stamp != l.stamp {
		l.stamp = stamp
		l.bump()
	}
	l.checked = time.Now()
	return l.gen, nil
}

// liveList is one list live holds, read again when the generation moved or after liveMaxAge.
type liveList[T any] struct {
	list []T
	gen  uint64
	read time.Time
	// next is the soonest time the list changes with no write at all (zero: none known).
	next time.Time
}

// due reports, once, that next has come.
func (ll *liveList[T]) due(now time.Time) bool {
	if ll.next.IsZero() || now.Before(ll.next) {
		return false
	}
	ll.next = time.Time{}
	return true
}

// soon lowers ll.next to t when t is still to come.
func (ll *liveList[T]) soon(t, now time.Time) {
	if t.After(now) && (ll.next.IsZero() || t.Before(ll.next)) {
		ll.next = t
	}
}

// readLive returns ll's list (shared: read only) and its generation, read again with read when
// it may be stale; changes gives the times it will change by itself. l.mu is held.
func readLive[T any](ctx context.Context, l *live, ll *liveList[T], read func(context.Context, time.Time) ([]T, error),
	changes func(*T) []time.Time) ([]T, uint64, error) {
	gen, err := l.refresh(ctx)
	if err != nil {
		return nil, 0, err
	}
	if ll.gen == gen && time.Since(ll.read) < liveMaxAge {
		return ll.list, gen, nil
	}
	now := l.now()
	list, err := read(ctx, now)
	if err != nil {
		return nil, 0, err
	}
	if ll.gen == gen && !reflect.DeepEqual(list, ll.list) {
		l.bump() // a change the stamp missed
		gen = l.gen
	}
	ll.next = time.Time{}
	for i := range list {
		for _, t := range changes(&list[i]) {
			ll.soon(t, now)
		}
	}
	ll.list, ll.gen, ll.read = list, gen, time.Now()
	return list, gen, nil
}

// deployments returns the current deployments of every user (shared: read only) and the
// generation they belong to.
func (l *live) deployments(ctx context.Context) ([]store.Deployment, uint64, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return readLive(ctx, l, &l.deps, func(ctx context.Context, now time.Time) ([]store.Deployment, error) {
		return l.st.Deployments(ctx, store.DeploymentFilter{Current: now})
	}, func(d *store.Deployment) []time.Time { return []time.Time{d.Reservation.EndsAt} })
}

// nodes returns every node with who holds it (store.NodeStatuses, shared: read only) in
// nodeLess order, and the generation they belong to.
func (l *live) nodes(ctx context.Context) ([]store.NodeStatus, uint64, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return readLive(ctx, l, &l.statuses, func(ctx context.Context, now time.Time) ([]store.NodeStatus, error) {
		ns, err := l.st.NodeStatuses(ctx, now)
		sort.SliceStable(ns, func(i, j int) bool { return nodeLess(&ns[i], &ns[j]) })
		return ns, err
	}, func(n *store.NodeStatus) []time.Time {
		var out []time.Time
		if n.Held {
			out = append(out, n.Until)
		}
		if n.NextStart != nil {
			out = append(out, *n.NextStart)
		}
		return out
	})
}

// session is store.SessionByHash, remembered until the next change or liveMaxAge.
func (l *live) session(ctx context.Context, hash string) (*store.Session, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, err := l.refresh(ctx); err != nil {
		return nil, err
	}
	now := l.now()
	if e, ok := l.sessions[hash]; ok && time.Since(e.read) < liveMaxAge && now.Before(e.se.ExpiresAt) {
		se := e.se
		return &se, nil
	}
	se, err := l.st.SessionByHash(ctx, hash, now)
	if err != nil {
		return nil, err
	}
	if l.sessions == nil || len(l.sessions) >= liveMaxEntries {
		l.sessions = map[string]liveSession{}
	}
	l.sessions[hash] = liveSession{se: *se, read: time.Now()}
	return se, nil
}

// apiUser is store.UserByAPIToken, remembered like sessions. The token's last use is still
// recorded (UserByAPIToken does it at most once a minute) since an entry lives a second.
func (l *live) apiUser(ctx context.Context, hash string) (*store.User, *store.APIToken, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, err := l.refresh(ctx); err != nil {
		return nil, nil, err
	}
	if e, ok := l.tokens[hash]; ok && time.Since(e.read) < liveMaxAge && l.now().Before(e.tok.ExpiresAt) {
		u, t := e.user, e.tok
		return &u, &t, nil
	}
	u, t, err := l.st.UserByAPIToken(ctx, hash, l.now())
	if err != nil {
		return nil, nil, err
	}
	if l.tokens == nil || len(l.tokens) >= liveMaxEntries {
		l.tokens = map[string]liveToken{}
	}
	l.tokens[hash] = liveToken{user: *u, tok: *t, read: time.Now()}
	return u, t, nil
}

// noteWrites tells live about every request that may have written something.
func (s *Server) noteWrites(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		err := next(c)
		if unsafeMethod(c.Request().Method) {
			s.live.changed()
		}
		return err
	}
}

// answerJSON sends what build makes as JSON, with an ETag that hashes the answer and who it
// is for (user, role, URL): a client holding it gets 304 as long as its own answer is the
// same, however often other users' changes move the generation, and a tag never validates
// what another user would be sent. The last tag per visitor and URL is remembered with its
// generation, so while nothing changed a 304 costs no encoding.
func (s *Server) answerJSON(c echo.Context, gen uint64, build func() any) error {
	u := currentUser(c)
	key := fmt.Sprintf("%d|%t|%s", u.ID, u.Admin, c.Request().URL.RequestURI())
	inm := c.Request().Header.Get("If-None-Match")
	if tag, ok := s.live.tag(key, gen); ok && inm == tag {
		c.Response().Header().Set("ETag", tag)
		return c.NoContent(http.StatusNotModified)
	}
	body, err := json.Marshal(build())
	if err != nil {
		return err
	}
	h := fnv.New64a()
	h.Write([]byte(key))
	h.Write(body)
	tag := fmt.Sprintf(`"%x"`, h.Sum64())
	s.live.rememberTag(key, gen, tag)
	c.Response().Header().Set("ETag", tag)
	if inm == tag {
		return c.NoContent(http.StatusNotModified)
	}
	return c.JSONBlob(http.StatusOK, body)
}

// tag is the ETag remembered for key at generation gen.
func (l *live) tag(key string, gen uint64) (string, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	e, ok := l.tags[key]
	return e.tag, ok && e.gen == gen
}

func (l *live) rememberTag(key string, gen uint64, tag string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.tags == nil || len(l.tags) >= liveMaxEntries {
		l.tags = map[string]liveTag{}
	}
	l.tags[key] = liveTag{gen: gen, tag: tag}
}
