package web

import (
	"context"
	"fmt"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/piseduce/piseduce/lab"
	"github.com/piseduce/piseduce/lab/deploytest"
	"github.com/piseduce/piseduce/pkg/auth"
	"github.com/piseduce/piseduce/pkg/image"
	"github.com/piseduce/piseduce/pkg/store"
	"github.com/piseduce/piseduce/pkg/store/storetest"
	"github.com/piseduce/piseduce/pkg/testenv"
)

// TestBrowserOnTheLab walks the browser story (see story) against the real pitasks: the
// engine and drivers of deploytest on a virtual Pi lab of two Pi 3B+ nodes, pifrontend on the
// same database. The lab's test environment is sent raw, so that its 76 MiB go over each
// node's 10 MB/s (9.5 MiB/s) link and the progress bar has time to move in the page.
func TestBrowserOnTheLab(t *testing.T) {
	testenv.NeedRoot(t)
	testenv.NeedCommand(t, "chromium")
	if testing.Short() {
		t.Skip("browser test skipped in -short mode")
	}
	h := deploytest.Start(t, lab.Options{Nodes: 2})
	ctx := context.Background()
	// The lab's test environment is a 76 MiB image gzipped to ~80 KB: over in a blink. Its raw
	// image (same folder, same content and sha256) keeps the copy on the link for ~8 s.
	if err := storetest.DB(h.Store).Model(&store.Environment{}).Where("id = ?", h.Env.ID).
		Updates(map[string]any{"image_name": filepath.Base(h.Lab.Desc.Image.Img), "image_format": image.Raw}).Error; err != nil {
		t.Fatal(err)
	}
	hash, err := auth.HashPassword(testPassword)
	if err != nil {
		t.Fatal(err)
	}
	admin := store.User{Email: "root@admin.example", FirstName: "Ada", LastName: "Admin", PasswordHash: hash,
		EmailConfirmed: true, Authorized: true, Admin: true}
	if err := h.Store.CreateUser(ctx, &admin); err != nil {
		t.Fatal(err)
	}
	s, err := New(ctx, Options{Store: h.Store, Config: newFixtureConfig(), Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close) // after the browser's own cleanup, which ends the page's event stream
	var sw store.Switch
	if err := storetest.DB(h.Store).First(&sw).Error; err != nil {
		t.Fatal(err)
	}
	// The admin's switch page shows the ports as pitasks reads them on the lab's switch.
	if _, err := h.Store.RequestPort(ctx, sw.ID, 0, store.PortStatus, admin.ID); err != nil {
		t.Fatal(err)
	}

	story{
		URL: srv.URL, Store: h.Store, Admin: admin.Email, Nodes: []uint{h.Nodes[0].ID, h.Nodes[1].ID}, Env: h.Env.Name,
		Pitasks: func() func() {
			stop := runPortRequests(t, h.Store)
			tick := deploytest.TickEvery(t, h.Engine, 250*time.Millisecond)
			return func() { tick(); stop() }
		},
		Shots:      artifactsDir(t, "web-lab"),
		AdminPages: []string{fmt.Sprintf("/admin/switches/%d", sw.ID), "/admin/deployments", "/admin/nodes", "/admin/environments"},
	}.run(t)

	// The real drivers did it: the destroyed nodes are powered off on the lab's switch.
	for _, n := range h.Nodes {
		if on, err := h.Lab.Switch().PortOn(n.Port); err != nil || on {
			t.Errorf("%s: PoE port %d still on after destroy (%v)", n.Name, n.Port, err)
		}
	}
}
