package client_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/piseduce/piseduce/pkg/auth"
	"github.com/piseduce/piseduce/pkg/client"
	"github.com/piseduce/piseduce/pkg/config"
	"github.com/piseduce/piseduce/pkg/store"
	"github.com/piseduce/piseduce/pkg/store/storetest"
	"github.com/piseduce/piseduce/pkg/web"
)

func init() { auth.SetFastHashingForTests() }

func TestURL(t *testing.T) {
	for in, want := range map[string]string{
		"http://pimaster:9000/": "http://pimaster:9000", " https://pis.example.org ": "https://pis.example.org",
		"pimaster:9000": "", "ftp://pimaster": "", "http://": "", "http://u:p@pimaster": "", "http://pimaster/?x=1": "",
	} {
		got, err := client.URL(in)
		if got != want || (err == nil) != (want != "") {
			t.Errorf("URL(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}

// TestAgainstPifrontend: the client's calls and errors against a real pifrontend on SQLite.
func TestAgainstPifrontend(t *testing.T) {
	ctx := context.Background()
	st := storetest.Open(t, "sqlite")
	c := storetest.Seed(t, st, 2)
	hash, err := auth.HashPassword("a good password")
	if err != nil {
		t.Fatal(err)
	}
	u := store.User{Email: "eve@example.com", FirstName: "Eve", PasswordHash: hash, EmailConfirmed: true, Authorized: true}
	if err := st.CreateUser(ctx, &u); err != nil {
		t.Fatal(err)
	}
	s, err := web.New(ctx, web.Options{Store: st, Config: config.Default(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s)
	defer srv.Close()

	anon := client.New(srv.URL+"/", "")
	_, err = anon.CreateToken(ctx, client.TokenRequest{Email: u.Email, Password: "wrong", Name: "t"})
	var ae *client.Error
	if !errors.As(err, &ae) || ae.Status != http.StatusUnauthorized || ae.Message != "Wrong e-mail or password." {
		t.Fatalf("wrong password: %#v", err)
	}
	if _, err := anon.Nodes(ctx); !client.IsStatus(err, http.StatusUnauthorized) {
		t.Errorf("nodes without a token: %v", err)
	}
	tok, err := anon.CreateToken(ctx, client.TokenRequest{Email: u.Email, Password: "a good password", Name: "t", Days: 7})
	if err != nil || tok.Token == "" || tok.ExpiresAt.Before(time.Now().Add(6*24*time.Hour)) {
		t.Fatalf("token: %+v %v", tok, err)
	}
	cl := client.New(srv.URL, tok.Token)
	ns, err := cl.Nodes(ctx)
	if err != nil || len(ns) != 2 || ns[0].Name != "node-1" || !ns[0].Free || ns[0].Model != "RPI4B" {
		t.Fatalf("nodes: %+v %v", ns, err)
	}
	es, err := cl.Environments(ctx)
	if err != nil || len(es) != 1 || es[0].Name != c.Environment.Name {
		t.Fatalf("environments: %+v %v", es, err)
	}
	r, err := cl.Reserve(ctx, client.ReservationRequest{Model: "RPI4B", Count: 2, Hours: 1})
	if err != nil || len(r.Nodes) != 2 || r.EndsAt.Sub(r.StartsAt) != time.Hour {
		t.Fatalf("reserve: %+v %v", r, err)
	}
	if _, err := cl.Reserve(ctx, client.ReservationRequest{NodeIDs: []uint{ns[0].ID}, Hours: 1}); !client.IsStatus(err, http.StatusConflict) {
		t.Errorf("a taken node: %v, want a 409", err)
	}
	if r, err = cl.Extend(ctx, r.ID, 2); err != nil || r.EndsAt.Sub(r.StartsAt) != 3*time.Hour {
		t.Fatalf("extend: %+v %v", r, err)
	}
	ds, err := cl.Deploy(ctx, client.DeploymentRequest{ReservationID: r.ID, Name: "exp", EnvironmentID: es[0].ID})
	if err != nil || len(ds) != 2 || ds[0].SSHPort != 22 || ds[0].Process != "deploy" {
		t.Fatalf("deploy: %+v %v", ds, err)
	}
	if list, err := cl.Deployments(ctx); err != nil || len(list) != 2 {
		t.Fatalf("deployments: %d %v", len(list), err)
	}
	if d, err := cl.Deployment(ctx, ds[1].ID); err != nil || d.Node != "node-2" || d.Reachable || d.HostKey != "" {
		t.Fatalf("deployment: %+v %v", d, err)
	}
	if _, err := cl.Deployment(ctx, 999); !client.IsStatus(err, http.StatusNotFound) {
		t.Errorf("no such deployment: %v", err)
	}
	// The event stream: node-2's deployment as it stands first, without its password.
	ev, err := cl.Events(ctx, []uint{ds[1].ID}, time.Minute)
	if err != nil {
		t.Fatalf("events: %v", err)
	}
	d, err := ev.Next(time.Minute)
	ev.Close()
	if err != nil || d.ID != ds[1].ID || d.Node != "node-2" || d.Process != "deploy" || d.OSPassword != "" {
		t.Fatalf("the first event: %+v %v", d, err)
	}
	if d, err := cl.Destroy(ctx, ds[0].ID); err != nil || d.Process != "destroy" {
		t.Fatalf("destroy: %+v %v", d, err)
	}
	if err := cl.EndReservation(ctx, r.ID); err != nil {
		t.Fatal(err)
	}
	if rs, err := cl.Reservations(ctx); err != nil || len(rs) != 0 {
		t.Fatalf("reservations after the end: %+v %v", rs, err)
	}
	if err := cl.RevokeToken(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.Nodes(ctx); !client.IsStatus(err, http.StatusUnauthorized) {
		t.Errorf("a revoked token: %v", err)
	}
	// Not the API: a clear error, not a JSON one.
	other := httptest.NewServer(http.NotFoundHandler())
	defer other.Close()
	if _, err := client.New(other.URL, "x").Nodes(ctx); err == nil || err.Error() != "GET /nodes: 404 Not Found from "+other.URL {
		t.Errorf("another site: %v", err)
	}
	if _, err := client.New(other.URL, "x").Events(ctx, nil, time.Minute); !client.IsStatus(err, http.StatusNotFound) {
		t.Errorf("events of another site: %v", err)
	}
	// A 200 that is not a stream (a proxy's page) is no stream either.
	page := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		_, _ = w.Write([]byte("<html>please log in</html>"))
	}))
	defer page.Close()
	if _, err := client.New(page.URL, "x").Events(ctx, nil, time.Minute); !errors.Is(err, client.ErrNoEvents) {
		t.Errorf("events answered by a page: %v", err)
	}
}
