package web

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/piseduce/piseduce/pkg/store"
	"github.com/piseduce/piseduce/pkg/store/storetest"
)

// BenchmarkLoginFlood measures, on a live server with bcrypt at its real cost, what a flood of
// wrong passwords does to /healthz and to a real login from another address, against the
// same measures without a flood, in the same run:
//
//	go test -run '^$' -bench '^BenchmarkLoginFlood$' -benchtime 1x ./pkg/web
//
// The floods: 8 connections from one address, each trying another account every time, and 2
// connections from each of 16 addresses. Reported per scenario: the median and 95th percentile
// of /healthz and of a login (ms), their ratio to no flood, and the password checks the flood
// got done per second.
func BenchmarkLoginFlood(b *testing.B) {
	f := newFixture(b)
	ctx := context.Background()
	hash, err := bcrypt.GenerateFromPassword([]byte(testPassword), bcrypt.DefaultCost)
	if err != nil {
		b.Fatal(err)
	}
	if err := storetest.DB(f.st).Model(&store.User{}).Where("id = ?", f.alice.ID).Update("password_hash", string(hash)).Error; err != nil {
		b.Fatal(err)
	}
	// The accounts the floods try, all with a real-cost hash (an unknown e-mail costs the same).
	victims := make([]store.User, 500)
	for i := range victims {
		victims[i] = store.User{Email: fmt.Sprintf("victim%d@example.org", i), PasswordHash: string(hash), FirstName: "V", EmailConfirmed: true, Authorized: true}
	}
	if err := storetest.DB(f.st).CreateInBatches(&victims, 100).Error; err != nil {
		b.Fatal(err)
	}
	s, err := New(ctx, Options{Store: f.st, Config: f.cfg, Logger: quietLogger(), Mailer: f.mail})
	if err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewServer(s)
	defer srv.Close()

	const warmUp, measure = 3 * time.Second, 10 * time.Second
	type result struct {
		name                 string
		healthz, login       []time.Duration
		loginFailed, checked int
	}
	run := func(name string, flood map[string]int) result {
		fctx, stopFlood := context.WithCancel(ctx)
		var wg sync.WaitGroup
		var checked atomic.Int64 // answers that needed a password check (401)
		var n atomic.Int64
		for addr, conns := range flood {
			for range conns {
				c := newNetClient(b, srv.URL, addr)
				c.get("/login")
				wg.Add(1)
				go func() {
					defer wg.Done()
					for fctx.Err() == nil {
						i := n.Add(1)
						form := url.Values{"email": {victims[i%int64(len(victims))].Email}, "password": {"wrong guess"}, "csrf_token": {c.csrf}}
						req, _ := http.NewRequestWithContext(fctx, http.MethodPost, srv.URL+"/login", strings.NewReader(form.Encode()))
						req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
						if res, err := c.hc.Do(req); err == nil {
							res.Body.Close()
							if res.StatusCode == http.StatusUnauthorized {
								checked.Add(1)
							}
						}
					}
				}()
			}
		}
		time.Sleep(warmUp) // let the flood reach its steady state
		r := result{name: name}
		start := checked.Load()
		end := time.Now().Add(measure)
		var pwg sync.WaitGroup
		pwg.Add(2)
		go func() { // /healthz every 20 ms
			defer pwg.Done()
			c := newNetClient(b, srv.URL, "127.0.0.3")
			for time.Now().Before(end) {
				t0 := time.Now()
				if res, _ := c.get("/healthz"); res.StatusCode == http.StatusOK {
					r.healthz = append(r.healthz, time.Since(t0))
				}
				time.Sleep(20 * time.Millisecond)
			}
		}()
		go func() { // alice logs in from a browser of her own, again and again
			defer pwg.Done()
			for time.Now().Before(end) {
				c := newNetClient(b, srv.URL, "127.0.0.4")
				c.get("/login")
				t0 := time.Now()
				res, _ := c.post("/login", url.Values{"email": {f.alice.Email}, "password": {testPassword}})
				if res.StatusCode == http.StatusSeeOther {
					r.login = append(r.login, time.Since(t0))
				} else {
					r.loginFailed++
				}
				time.Sleep(100 * time.Millisecond)
			}
		}()
		pwg.Wait()
		r.checked = int(checked.Load() - start)
		stopFlood()
		wg.Wait()
		return r
	}
	spread := map[string]int{}
	for a := 20; a < 36; a++ {
		spread[fmt.Sprintf("127.0.0.%d", a)] = 2
	}
	var results []result
	for range b.N {
		results = []result{
			run("no flood", nil),
			run("one address, 8 connections", map[string]int{"127.0.0.2": 8}),
			run("16 addresses, 2 connections each", spread),
		}
	}
	pct := func(d []time.Duration, p float64) float64 {
		if len(d) == 0 {
			return 0
		}
		slices.Sort(d)
		return float64(d[int(float64(len(d)-1)*p)]) / float64(time.Millisecond)
	}
	base := results[0]
	var report strings.Builder
	fmt.Fprintf(&report, "\n%-34s %12s %12s %12s %12s %8s %10s\n", "flood", "healthz p50", "healthz p95", "login p50", "login p95", "logins", "checks/s")
	for i, r := range results {
		fmt.Fprintf(&report, "%-34s %9.1f ms %9.1f ms %9.0f ms %9.0f ms %4d/%-3d %10.1f\n", r.name, pct(r.healthz, .5), pct(r.healthz, .95),
			pct(r.login, .5), pct(r.login, .95), len(r.login), len(r.login)+r.loginFailed, float64(r.checked)/measure.Seconds())
		if i > 0 {
			fmt.Fprintf(&report, "%-34s %9.1f ×  %9.1f ×  %9.1f ×  %9.1f ×\n", "  ratio to no flood", pct(r.healthz, .5)/pct(base.healthz, .5),
				pct(r.healthz, .95)/pct(base.healthz, .95), pct(r.login, .5)/pct(base.login, .5), pct(r.login, .95)/pct(base.login, .95))
			b.ReportMetric(pct(r.healthz, .5)/pct(base.healthz, .5), fmt.Sprintf("healthz-p50-ratio-%d", i))
			b.ReportMetric(pct(r.login, .5)/pct(base.login, .5), fmt.Sprintf("login-p50-ratio-%d", i))
		}
	}
	b.Log(report.String())
}
