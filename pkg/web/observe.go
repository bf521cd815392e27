package web

import (
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"net/http"
	"regexp"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
)

const requestIDKey = "piseduce.request_id"

// A request id from a reverse proxy (X-Request-Id) is kept when it looks like one.
var proxyRequestID = regexp.MustCompile(`^[A-Za-z0-9._-]{8,64}$`)

// requestID is the id observe gave the request (on its error page, in its log lines and in the
// X-Request-Id header).
func requestID(c echo.Context) string {
	id, _ := c.Get(requestIDKey).(string)
	return id
}

func newRequestID() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// observe is the outermost middleware: it gives every request an id, answers its error here
// (so that the status is known), then writes the access log line and the HTTP metrics.
func (s *Server) observe(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		start := time.Now()
		r := c.Request()
		id := r.Header.Get(echo.HeaderXRequestID)
		if !proxyRequestID.MatchString(id) {
			id = newRequestID()
		}
		c.Set(requestIDKey, id)
		c.Response().Header().Set(echo.HeaderXRequestID, id)
		if err := next(c); err != nil {
			c.Error(err)
		}
		d := time.Since(start)
		status := c.Response().Status
		route, method := c.Path(), r.Method
		if _, ok := s.access[method+" "+route]; !ok {
			route = "unmatched" // not the typed path: one series per URL would have no end
			if !knownMethod[method] {
				method = "OTHER"
			}
		}
		s.metrics.Request(route, method, status, d)
		level := slog.LevelInfo
		if status >= 500 {
			level = slog.LevelWarn
		}
		var userID uint
		if u := vis(c).User; u != nil {
			userID = u.ID
		}
		s.log.LogAttrs(r.Context(), level, "http", slog.String("method", method), slog.String("path", loggedPath(c)),
			slog.String("route", route), slog.Int("status", status), slog.Float64("duration_ms", float64(d.Microseconds())/1000),
			slog.Int64("bytes", c.Response().Size), slog.Uint64("user_id", uint64(userID)), slog.String("request_id", id))
		return nil
	}
}

var knownMethod = map[string]bool{http.MethodGet: true, http.MethodHead: true, http.MethodPost: true, http.MethodPut: true,
	http.MethodPatch: true, http.MethodDelete: true, http.MethodOptions: true}

// loggedPath is the request's path without the secrets some paths carry (a confirmation
// token), and without the query.
func loggedPath(c echo.Context) string {
	p := c.Request().URL.Path
	for i, name := range c.ParamNames() {
		if strings.Contains(name, "token") && i < len(c.ParamValues()) && c.ParamValues()[i] != "" {
			p = strings.ReplaceAll(p, c.ParamValues()[i], ":"+name)
		}
	}
	return p
}
