// Package web is pifrontend: the server-rendered pages and the /api/v1 JSON API. It only writes
// requests into the database; pitasks does the work on the nodes.
//
// Layout: routes.go lists every route with its access level; middleware.go holds the
// deny-by-default guard (sessions, API tokens, CSRF, admin checks); each page action has its
// own file (login.go, reserve_save.go, …) and each API resource its own api_*.go file.
package web

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"runtime"
	"sync"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/piseduce/piseduce"
	"github.com/piseduce/piseduce/pkg/auth"
	"github.com/piseduce/piseduce/pkg/config"
	"github.com/piseduce/piseduce/pkg/metrics"
	"github.com/piseduce/piseduce/pkg/store"
)

// Options configures a Server. Store and Config are required.
type Options struct {
	Store  *store.Store
	Config *config.Config
	Logger *slog.Logger
	// Mailer sends e-mail; auth.SMTPMailer{} when nil.
	Mailer auth.Mailer
	// Now is the clock (time.Now when nil).
	Now func() time.Time
	// Assets holds templates/ and static/ (the embedded piseduce.Assets when nil).
	Assets fs.FS
	// Metrics counts the HTTP requests and is served on /metrics to admins, unless [frontend]
	// metrics_listen is set (then pifrontend serves it there, not here); a new
	// metrics.Frontend on Store when nil.
	Metrics *metrics.Frontend
}

// Server is the web application.
type Server struct {
	store  *store.Store
	cfg    *config.Config
	log    *slog.Logger
	mailer auth.Mailer
	now    func() time.Time
	signer *auth.Signer
	pages  *pages
	echo   *echo.Echo
	// access gives the access level of each route, by "METHOD /path/:param".
	access map[string]access

	// Login failures slow down, with growing delays and never a lockout, the client address
	// (whatever e-mails it tries) and the account tried from that address; hashing bounds the
	// bcrypt work done at once. All three are per process (see auth.Throttle, auth.Gate).
	loginByAddr    *auth.Throttle
	loginByAccount *auth.Throttle
	hashing        *auth.Gate
	// Sign-ups per address.
	signupByIP *auth.Limiter
	// Password reset requests per address, and reset e-mails per account.
	resetByIP, resetByAccount *auth.Limiter
	// background counts the password reset requests still being handled after their answer.
	background sync.WaitGroup

	resources resourcesCache
	workers   workersCache
	live      *live
	hub       hub
	// eventsMaxAge ends an event stream: a browser opens a new one by itself.
	eventsMaxAge time.Duration
	metrics      *metrics.Frontend
	zones        zones
	// apiDocs is openapi.json as the docs page shows it.
	apiDocs *apiDocs
}

// Session lifetime.
const sessionTTL = 7 * 24 * time.Hour

// New builds the server. The session secret comes from the config, or is generated once and
// kept in the database (setting "session_secret").
func New(ctx context.Context, o Options) (*Server, error) {
	if o.Store == nil || o.Config == nil {
		return nil, errors.New("web: Store and Config are required")
	}
	s := &Server{store: o.Store, cfg: o.Config, log: o.Logger, mailer: o.Mailer, now: o.Now,
		// An address may fail 20 times, an account at an address 5 times, before each failure
		// makes the next attempt wait 1 s, 2 s, 4 s … (at most 5 and 15 minutes); an hour
		// without failures forgets them.
		loginByAddr:    auth.NewThrottle(auth.Backoff{Free: 20, Base: time.Second, Max: 5 * time.Minute, Forget: time.Hour}),
		loginByAccount: auth.NewThrottle(auth.Backoff{Free: 5, Base: time.Second, Max: 15 * time.Minute, Forget: time.Hour}),
		// One core stays free for the rest of the site. An address hashes one password at a
		// time; 8 may wait (a class behind one NAT logging in at once), 10 s at most.
		hashing:        auth.NewGate(runtime.GOMAXPROCS(0)-1, 8, 10*time.Second),
		signupByIP:     auth.NewLimiter(10, time.Hour),
		resetByIP:      auth.NewLimiter(10, time.Hour),
		resetByAccount: auth.NewLimiter(3, time.Hour),
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	if s.mailer == nil {
		s.mailer = auth.SMTPMailer{}
	}
	if s.now == nil {
		s.now = time.Now
	}
	// Through s.now, which tests may replace after New.
	s.live = newLive(o.Store, func() time.Time { return s.now() })
	s.eventsMaxAge = 5 * time.Minute
	s.hub.ended = make(chan struct{})
	if s.metrics = o.Metrics; s.metrics == nil {
		s.metrics = metrics.NewFrontend(o.Store, s.now)
	}
	assets := o.Assets
	if assets == nil {
		assets = piseduce.Assets
	}
	secret := o.Config.Frontend.SessionSecret.Value()
	if secret == "" {
		var err error
		secret, err = o.Store.EnsureSetting(ctx, settingSessionSecret, func() (string, error) { return auth.NewToken(""), nil })
		if err != nil {
			return nil, fmt.Errorf("web: session secret: %w", err)
		}
	}
	s.signer = auth.NewSigner(secret)
	var err error
	if s.pages, err = loadPages(assets, &s.zones); err != nil {
		return nil, err
	}
	if s.apiDocs, err = parseAPIDocs(openAPISpec); err != nil {
		return nil, err
	}
	static, err := fs.Sub(assets, "static")
	if err != nil {
		return nil, err
	}
	s.echo = s.routes(static)
	return s, nil
}

// ServeHTTP makes Server an http.Handler. A HEAD request is served as a GET: the router and
// the guard see a GET (a copy of the request), while net/http, which holds the original,
// sends the headers of the answer and drops its body.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodHead {
		r = r.WithContext(r.Context())
		r.Method = http.MethodGet
	}
	s.echo.ServeHTTP(w, r)
}

// Routes lists the registered routes (for tests and docs).
func (s *Server) Routes() []*echo.Route { return s.echo.Routes() }

// Housekeeping deletes expired sessions and purges deleted users whose nodes are destroyed;
// pifrontend runs it every few minutes.
func (s *Server) Housekeeping(ctx context.Context) {
	if err := s.store.DeleteExpiredSessions(ctx, s.now()); err != nil {
		s.log.Warn("housekeeping: sessions", "err", err)
	}
	if n, err := s.store.PurgeDeletedUsers(ctx); err != nil {
		s.log.Warn("housekeeping: deleted users", "err", err)
	} else if n > 0 {
		s.log.Info("housekeeping: purged deleted users", "count", n)
	}
}
