package web

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"path"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/piseduce/piseduce/pkg/store"
	"github.com/piseduce/piseduce/pkg/units"
	"github.com/piseduce/piseduce/pkg/version"
)

// page is what every template receives.
type page struct {
	Title string
	// Nav is the active menu entry.
	Nav  string
	User *store.User
	CSRF string
	// Flash is the message left by the previous POST (Post/Redirect/Get); FlashError marks an error.
	Flash      string
	FlashError bool
	// Error is the message of a form shown again after a failed submit.
	Error string
	// Data is the page's own content.
	Data any
	// NoWorker is the banner shown while no pitasks runs (workers.go).
	NoWorker string
}

// pages holds one template set per page: the layout, the shared partials and the page.
type pages struct {
	sets map[string]*template.Template
}

func loadPages(assets fs.FS, z *zones) (*pages, error) {
	base, err := template.New("base").Funcs(funcs(z)).ParseFS(assets, "templates/layout/*.html")
	if err != nil {
		return nil, fmt.Errorf("web: templates: %w", err)
	}
	files, err := fs.Glob(assets, "templates/*.html")
	if err != nil || len(files) == 0 {
		return nil, fmt.Errorf("web: no page templates found (%v)", err)
	}
	p := &pages{sets: map[string]*template.Template{}}
	for _, f := range files {
		t, err := template.Must(base.Clone()).ParseFS(assets, f)
		if err != nil {
			return nil, fmt.Errorf("web: template %s: %w", f, err)
		}
		p.sets[strings.TrimSuffix(path.Base(f), ".html")] = t
	}
	return p, nil
}

// render writes page name with the layout. The page is rendered into a buffer first, so a
// template error becomes a clean 500 instead of half a page.
func (s *Server) render(c echo.Context, code int, name string, p *page) error {
	t, ok := s.pages.sets[name]
	if !ok {
		return fmt.Errorf("web: no template %q", name)
	}
	v := vis(c)
	p.User = v.User
	if v.csrfSeed != "" {
		p.CSRF = s.csrfToken(c)
	}
	if p.Flash == "" {
		p.Flash, p.FlashError = s.takeFlash(c)
	}
	p.NoWorker = s.noWorkerBanner(c.Request().Context())
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, "layout", p); err != nil {
		return fmt.Errorf("web: render %s: %w", name, err)
	}
	return c.HTMLBlob(code, buf.Bytes())
}

// redirect ends a successful POST: it leaves msg for the next page and sends the browser there.
func (s *Server) redirect(c echo.Context, to, msg string) error {
	if msg != "" {
		s.setFlash(c, msg, false)
	}
	return c.Redirect(http.StatusSeeOther, to)
}

// redirectError ends a POST that failed on a page without its own form: back to a page, with
// the error shown there.
func (s *Server) redirectError(c echo.Context, to, msg string) error {
	s.setFlash(c, msg, true)
	return c.Redirect(http.StatusSeeOther, to)
}

// redirectUserError ends a POST that failed with err: back to a page with the message when err
// is the visitor's; an internal error is returned as it is.
func (s *Server) redirectUserError(c echo.Context, to string, err error) error {
	if msg, _, ok := userMessage(err); ok {
		return s.redirectError(c, to, msg)
	}
	return err
}

// The flash cookie is signed so that nobody else can make the site say something.
func (s *Server) setFlash(c echo.Context, msg string, isErr bool) {
	kind := "ok"
	if isErr {
		kind = "err"
	}
	v := kind + "." + base64.RawURLEncoding.EncodeToString([]byte(msg))
	s.setCookie(c, flashCookie, v+"."+s.signer.Tag("flash", v), 0)
}

func (s *Server) takeFlash(c echo.Context) (string, bool) {
	raw := s.cookie(c, flashCookie)
	if raw == "" {
		return "", false
	}
	s.setCookie(c, flashCookie, "", -1)
	i := strings.LastIndexByte(raw, '.')
	if i < 0 || !s.signer.Check("flash", raw[:i], raw[i+1:]) {
		return "", false
	}
	kind, enc, _ := strings.Cut(raw[:i], ".")
	msg, err := base64.RawURLEncoding.DecodeString(enc)
	if err != nil {
		return "", false
	}
	return string(msg), kind == "err"
}

func funcs(z *zones) template.FuncMap {
	return template.FuncMap{
		// datetime writes a time in UTC, inzone in the zone a reservation was entered in.
		"datetime": func(t time.Time) string { return z.format(t, "") },
		"inzone":   z.format,
		"isotime":  func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
		"ms":       func(ms int64) string { return humanDuration(time.Duration(ms) * time.Millisecond) },
		"since":    func(t time.Time) string { return humanDuration(time.Since(t)) },
		"until":    func(t time.Time) string { return humanDuration(time.Until(t)) },
		"bytes":    units.Bytes,
		// rateclass colours a success rate (see admin_stats.go).
		"rateclass": rateClass,
		// arglines writes a command for a text area, one argument per line (argv reads it back).
		"arglines": func(argv []string) string { return strings.Join(argv, "\n") },
		"lines":    func(s string) []string { return strings.Split(strings.TrimRight(s, "\n"), "\n") },
		"add":      func(a, b int) int { return a + b },
		"version":  func() string { return version.Get().String() },
		"seq": func(n int) []int {
			out := make([]int, n)
			for i := range out {
				out[i] = i + 1
			}
			return out
		},
	}
}

// humanDuration prints 3h05m, 4m12s or 850ms.
func humanDuration(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	switch {
	case d < time.Second:
		return fmt.Sprintf("%dms", d.Milliseconds())
	case d < time.Minute:
		return fmt.Sprintf("%.1fs", d.Seconds())
	case d < time.Hour:
		return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
	}
	return fmt.Sprintf("%dd%02dh", int(d.Hours())/24, int(d.Hours())%24)
}
