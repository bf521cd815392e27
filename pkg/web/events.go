package web

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/piseduce/piseduce/pkg/auth"
	"github.com/piseduce/piseduce/pkg/store"
)

// Server-sent events: each viewer of a deployments page (or the CLI) holds one stream; one
// loop (runHub) looks at what live holds once per eventsEvery for all of them, which reads
// the store only when the generation moved, and sends each stream that has not seen that
// generation yet the deployments of its viewer that changed since it last sent them. Whether
// a pitasks runs is part of what a stream has seen: a queued deployment's queued_reason changes
// with it, as status.json's does.
const (
	eventsEvery = time.Second
	// eventsPing keeps proxies and browsers from closing a stream that has nothing to say.
	eventsPing = 20 * time.Second
)

type hub struct {
	mu      sync.Mutex
	subs    map[*subscriber]struct{}
	running bool
	// ended is closed by EndStreams: every stream ends, those opening included.
	ended   chan struct{}
	endOnce sync.Once
}

// subscriber is one stream.
type subscriber struct {
	user store.User
	// ids are the deployments asked for (nil: the viewer's own current ones); an admin may
	// ask for anyone's.
	ids map[uint]bool
	// allowed says whether the viewer still may watch: their session or token still holds.
	allowed func(context.Context) error

	mu sync.Mutex
	// gen is the generation of live's list last looked at: an older list never replaces it;
	// idle, whether no pitasks ran then.
	gen  uint64
	idle bool
	// sent is the last data sent of each deployment; pending what to send next, in order.
	sent    map[uint]string
	pending []uint
	queued  map[uint]string
	closed  bool
	wake    chan struct{}
}

func newSubscriber(u store.User) *subscriber {
	return &subscriber{user: u, sent: map[uint]string{}, queued: map[uint]string{}, wake: make(chan struct{}, 1)}
}

// behind reports whether sub has not looked at generation gen, with idle, yet.
func (sub *subscriber) behind(gen uint64, idle bool) bool {
	sub.mu.Lock()
	defer sub.mu.Unlock()
	return !sub.closed && sub.isBehind(gen, idle)
}

// isBehind is behind with sub.mu held.
func (sub *subscriber) isBehind(gen uint64, idle bool) bool {
	return sub.gen < gen || sub.gen == gen && sub.idle != idle
}

// update queues what changed in ds, live's list of generation gen, for sub, idle saying
// whether no pitasks runs; a list older than one it already looked at is ignored. The caller
// holds nothing.
func (sub *subscriber) update(ds []store.Deployment, gen uint64, idle bool, now time.Time) {
	sub.mu.Lock()
	defer sub.mu.Unlock()
	if sub.closed || !sub.isBehind(gen, idle) {
		return
	}
	sub.gen, sub.idle = gen, idle
	changed := false
	for i := range ds {
		d := &ds[i]
		if !sub.sees(d) {
			continue
		}
		v := viewDeployment(d, &sub.user, now)
		v.OSPassword, v.PublicKey = "", ""
		sayNoWorker(&v, idle)
		b, err := json.Marshal(v)
		if err != nil || sub.sent[d.ID] == string(b) {
			continue
		}
		sub.sent[d.ID] = string(b)
		if _, ok := sub.queued[d.ID]; !ok {
			sub.pending = append(sub.pending, d.ID)
		}
		sub.queued[d.ID] = string(b)
		changed = true
	}
	if changed {
		select {
		case sub.wake <- struct{}{}:
		default:
		}
	}
}

// sees: the viewer's own deployments, or those asked for by id among them (an admin's: anyone's).
func (sub *subscriber) sees(d *store.Deployment) bool {
	if sub.ids == nil {
		return d.UserID == sub.user.ID
	}
	return sub.ids[d.ID] && (sub.user.Admin || d.UserID == sub.user.ID)
}

// take returns the events waiting, in the order they came.
func (sub *subscriber) take() []string {
	sub.mu.Lock()
	defer sub.mu.Unlock()
	out := make([]string, 0, len(sub.pending))
	for _, id := range sub.pending {
		out = append(out, sub.queued[id])
	}
	sub.pending, sub.queued = sub.pending[:0], map[uint]string{}
	return out
}

func (sub *subscriber) close() {
	sub.mu.Lock()
	defer sub.mu.Unlock()
	if !sub.closed {
		sub.closed = true
		close(sub.wake)
	}
}

func (s *Server) subscribe(sub *subscriber) {
	s.hub.mu.Lock()
	defer s.hub.mu.Unlock()
	if s.hub.subs == nil {
		s.hub.subs = map[*subscriber]struct{}{}
	}
	s.hub.subs[sub] = struct{}{}
	if !s.hub.running {
		s.hub.running = true
		go s.runHub()
	}
}

// EndStreams ends every open event stream: pifrontend's graceful shutdown calls it
// (http.Server.RegisterOnShutdown), which would otherwise wait for them until its timeout.
// Browsers open a new stream by themselves, to the next pifrontend.
func (s *Server) EndStreams() {
	s.hub.endOnce.Do(func() { close(s.hub.ended) })
}

func (s *Server) unsubscribe(sub *subscriber) {
	s.hub.mu.Lock()
	defer s.hub.mu.Unlock()
	delete(s.hub.subs, sub)
}

// runHub is the one loop that feeds every stream; it ends with the last one.
func (s *Server) runHub() {
	t := time.NewTicker(eventsEvery)
	defer t.Stop()
	for range t.C {
		s.hub.mu.Lock()
		if len(s.hub.subs) == 0 {
			s.hub.running = false
			s.hub.mu.Unlock()
			return
		}
		subs := make([]*subscriber, 0, len(s.hub.subs))
		for sub := range s.hub.subs {
			subs = append(subs, sub)
		}
		s.hub.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		ds, gen, err := s.live.deployments(ctx)
		if err != nil {
			cancel()
			s.log.Error("events: unable to read deployments", "err", err)
			continue
		}
		now, idle := s.now(), s.noWorkerFor(ctx, ds)
		for _, sub := range subs {
			if !sub.behind(gen, idle) {
				continue
			}
			if err := sub.allowed(ctx); err != nil {
				sub.close()
				continue
			}
			sub.update(ds, gen, idle, now)
		}
		cancel()
	}
}

// deploymentEvents is the event stream of deploymentsStatus: an event "deployment" whose data
// is one deployment as status.json gives it, each time it changes (all of them first).
func (s *Server) deploymentEvents(c echo.Context) error {
	v := vis(c)
	sub := newSubscriber(*v.User)
	if q := c.QueryParam("ids"); q != "" {
		sub.ids = map[uint]bool{}
		for _, p := range strings.Split(q, ",") {
			id, err := strconv.ParseUint(p, 10, 32)
			if err != nil || len(sub.ids) >= 500 {
				msg := "ids must be a comma-separated list of numbers"
				if v.API {
					return apiError(http.StatusBadRequest, msg)
				}
				return echo.NewHTTPError(http.StatusBadRequest, msg)
			}
			sub.ids[uint(id)] = true
		}
	}
	sub.allowed = s.stillAllowed(c)
	// Subscribed before its first read, the stream gets every generation from that read on:
	// one the hub looked at in between reaches it too (an older read is then ignored).
	s.subscribe(sub)
	defer s.unsubscribe(sub)
	ctx := c.Request().Context()
	ds, gen, err := s.live.deployments(ctx)
	if err != nil {
		return err
	}
	sub.update(ds, gen, s.noWorkerFor(ctx, ds), s.now())

	w := c.Response()
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	// nginx: do not buffer this answer (other proxies that do make the page fall back to polling).
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	if c.Request().Method == http.MethodHead {
		return nil // the headers say what GET gives; there is no body to wait for
	}
	// A stream lasts as long as the viewer stays: no write deadline.
	_ = http.NewResponseController(w.Writer).SetWriteDeadline(time.Time{})
	// The first event says the stream works, even with nothing to send yet.
	if _, err := fmt.Fprintf(w, "retry: 2000\nevent: ready\ndata: {}\n\n"); err != nil {
		return nil
	}
	w.Flush()
	ping := time.NewTicker(eventsPing)
	defer ping.Stop()
	end := time.NewTimer(s.eventsMaxAge)
	defer end.Stop()
	for {
		var out strings.Builder
		for _, data := range sub.take() {
			fmt.Fprintf(&out, "event: deployment\ndata: %s\n\n", data)
		}
		if out.Len() > 0 {
			if _, err := w.Write([]byte(out.String())); err != nil {
				return nil
			}
			w.Flush()
		}
		select {
		case <-ctx.Done():
			return nil
		case <-end.C:
			return nil
		case <-s.hub.ended:
			return nil
		case _, ok := <-sub.wake:
			if !ok {
				return nil // the session or token ended
			}
		case <-ping.C:
			if _, err := fmt.Fprint(w, ": ping\n\n"); err != nil {
				return nil
			}
			w.Flush()
		}
	}
}

// stillAllowed checks, each time there is something to send, that the session or API token
// the stream was opened with still holds and its user may still log in.
func (s *Server) stillAllowed(c echo.Context) func(context.Context) error {
	errGone := errors.New("web: the session or token of this stream has ended")
	check := func(u *store.User, err error) error {
		switch {
		case err != nil:
			return err
		case !canLogIn(u):
			return errGone
		}
		return nil
	}
	if v := vis(c); v.API {
		_, tok, _ := strings.Cut(c.Request().Header.Get("Authorization"), " ")
		hash := auth.HashToken(strings.TrimSpace(tok))
		return func(ctx context.Context) error {
			u, _, err := s.live.apiUser(ctx, hash)
			return check(u, err)
		}
	}
	hash := vis(c).SessionHash
	return func(ctx context.Context) error {
		se, err := s.live.session(ctx, hash)
		if err != nil {
			return err
		}
		return check(&se.User, nil)
	}
}
