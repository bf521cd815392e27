package web

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/piseduce/piseduce/pkg/apijson"
	"github.com/piseduce/piseduce/pkg/auth"
	"github.com/piseduce/piseduce/pkg/auth/smtptest"
	"github.com/piseduce/piseduce/pkg/notify"
	"github.com/piseduce/piseduce/pkg/process"
	"github.com/piseduce/piseduce/pkg/store"
)

// pitasksMails runs one round of pitasks' notification sender (pkg/notify) against the
// fixture's database, sending through the real SMTP client.
func (f *fixture) pitasksMails() {
	f.t.Helper()
	o := &notify.Outbox{Store: f.st, Mailer: auth.SMTPMailer{Timeout: time.Minute}, Owner: "pitasks-test", Every: time.Second,
		SendTimeout: time.Minute, Log: slog.New(slog.DiscardHandler)}
	if err := o.Round(context.Background()); err != nil {
		f.t.Fatal(err)
	}
}

// TestAdminEndsReservation: an admin ends alice's running reservation with a reason (the
// page and the API); it needs one; its nodes go to destroy; alice reads the reason on her
// pages and in the e-mail pitasks sends through a real SMTP exchange, once.
func TestAdminEndsReservation(t *testing.T) {
	f := newFixture(t)
	srv := smtptest.Start(t)
	f.useSMTP(srv)
	admin := f.as("admin")
	path := fmt.Sprintf("/admin/reservations/%d/end", f.r1.ID)
	if res := admin.post(path, url.Values{"reason": {"   "}}); res.Code != http.StatusSeeOther {
		t.Fatalf("no reason: %d", res.Code)
	}
	if page := admin.get("/admin/deployments").Body.String(); !strings.Contains(page, "Give a reason") {
		t.Fatal("no reason: the page does not say one is needed")
	}
	if r, _ := f.st.Reservation(context.Background(), f.r1.ID); !r.EndsAt.After(f.now) {
		t.Fatal("ended without a reason")
	}
	const reason = "the lab closes for <maintenance> at noon"
	if res := admin.post(path, url.Values{"reason": {reason}}); res.Code != http.StatusSeeOther {
		t.Fatalf("end: %d %s", res.Code, res.Body.String())
	}
	for _, d := range []store.Deployment{f.d1, f.d2} {
		got, err := f.st.Deployment(context.Background(), d.ID)
		if err != nil || got.Process != process.Destroy {
			t.Fatalf("deployment %d after the end: %v %v", d.ID, got.Process, err)
		}
	}
	alice := f.as("user")
	page := alice.get("/deployments").Body.String()
	if !strings.Contains(page, fmt.Sprintf(`id="ended-%d"`, f.r1.ID)) || !strings.Contains(page, "the lab closes for &lt;maintenance&gt; at noon") {
		t.Fatalf("alice's deployments page does not say why:\n%s", page)
	}
	if page := alice.get(fmt.Sprintf("/deployments/%d", f.d1.ID)).Body.String(); !strings.Contains(page, "Ended by an admin: the lab closes for &lt;maintenance&gt;") {
		t.Fatalf("the deployment page does not say why:\n%s", page)
	}
	var dep apijson.Deployment
	if res := f.api("user", "GET", fmt.Sprintf("/api/v1/deployments/%d", f.d1.ID), nil); json.Unmarshal(res.Body.Bytes(), &dep) != nil || dep.EndReason != reason {
		t.Fatalf("API deployment: %s", res.Body.String())
	}
	for range 2 {
		f.pitasksMails()
	}
	msgs := srv.Wait(t, 1, time.Minute)
	if len(msgs) != 1 || msgs[0].To[0] != f.alice.Email || !strings.Contains(msgs[0].Body, reason) || !strings.Contains(msgs[0].Body, "node-1, node-2") {
		t.Fatalf("e-mails: %+v", msgs)
	}

	// The API: a reason is required; bob's reservation ends with one and says so.
	bobEnd := fmt.Sprintf("/api/v1/admin/reservations/%d/end", f.r2.ID)
	if res := f.api("admin", "POST", bobEnd, map[string]any{"reason": ""}); res.Code != http.StatusBadRequest {
		t.Fatalf("API without a reason: %d", res.Code)
	}
	res := f.api("admin", "POST", bobEnd, map[string]any{"reason": "needed for the exam"})
	var got apijson.Reservation
	if res.Code != http.StatusOK || json.Unmarshal(res.Body.Bytes(), &got) != nil || got.EndReason != "needed for the exam" || got.EndedAt == nil {
		t.Fatalf("API end: %d %s", res.Code, res.Body.String())
	}
	if res := f.api("admin", "POST", bobEnd, map[string]any{"reason": "again"}); res.Code != http.StatusConflict {
		t.Fatalf("ending it again: %d", res.Code)
	}
	if res := f.api("user", "POST", bobEnd, map[string]any{"reason": "mine now"}); res.Code != http.StatusForbidden {
		t.Fatalf("a user ending someone's reservation: %d", res.Code)
	}
}

// TestUserReleasesNode: alice gives node-1 of her two-node reservation back; the reservation
// keeps node-2, node-1 is destroyed and others may reserve it; she cannot deploy it again,
// nor release the last node, nor anyone else's.
func TestUserReleasesNode(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	n1, n2 := f.nodes[0], f.nodes[1]
	// bob may not release alice's node: not found, and nothing changes.
	before := f.fingerprint()
	if res := f.api("other", "POST", fmt.Sprintf("/api/v1/reservations/%d/nodes/%d/release", f.r1.ID, n1.ID), nil); res.Code != http.StatusNotFound {
		t.Fatalf("bob releasing alice's node: %d", res.Code)
	}
	if res := f.as("other").post(fmt.Sprintf("/reservations/%d/nodes/%d/release", f.r1.ID, n1.ID), nil); res.Code != http.StatusNotFound {
		t.Fatalf("bob releasing alice's node on the page: %d", res.Code)
	}
	// A node of another reservation, through alice's own reservation: not found either.
	if res := f.api("user", "POST", fmt.Sprintf("/api/v1/reservations/%d/nodes/%d/release", f.r1.ID, f.nodes[2].ID), nil); res.Code != http.StatusNotFound {
		t.Fatalf("releasing bob's node through alice's reservation: %d", res.Code)
	}
	if f.fingerprint() != before {
		t.Fatal("refused releases changed something")
	}

	res := f.api("user", "POST", fmt.Sprintf("/api/v1/reservations/%d/nodes/%d/release", f.r1.ID, n1.ID), nil)
	var r apijson.Reservation
	if res.Code != http.StatusOK || json.Unmarshal(res.Body.Bytes(), &r) != nil || len(r.Nodes) != 1 || r.Nodes[0] != n2.Name {
		t.Fatalf("release: %d %s", res.Code, res.Body.String())
	}
	d1, err := f.st.Deployment(ctx, f.d1.ID)
	if err != nil || d1.Process != process.Destroy || !d1.Released {
		t.Fatalf("released node's deployment: %+v %v", d1, err)
	}
	if res := f.api("user", "POST", fmt.Sprintf("/api/v1/deployments/%d/redeploy", f.d1.ID), nil); res.Code != http.StatusConflict {
		t.Fatalf("deploying a released node again: %d %s", res.Code, res.Body.String())
	}
	if res := f.api("user", "POST", fmt.Sprintf("/api/v1/reservations/%d/nodes/%d/release", f.r1.ID, n2.ID), nil); res.Code != http.StatusConflict ||
		!strings.Contains(res.Body.String(), "end the reservation instead") {
		t.Fatalf("releasing the last node: %d %s", res.Code, res.Body.String())
	}
	// Free for bob after alice's time there... at once, for later times.
	res = f.api("other", "POST", "/api/v1/reservations", map[string]any{"node_ids": []uint{n1.ID}, "starts_at": f.now.Add(time.Hour).Format(time.RFC3339), "hours": 1})
	if res.Code != http.StatusCreated {
		t.Fatalf("bob reserving the released node: %d %s", res.Code, res.Body.String())
	}
	page := f.as("user").get("/deployments").Body.String()
	if !strings.Contains(page, "released") || strings.Contains(page, fmt.Sprintf("/reservations/%d/nodes/%d/release", f.r1.ID, n2.ID)) {
		t.Fatalf("alice's page after the release (a last node offers no Release):\n%s", page)
	}
}

// TestReleaseButtons: a running reservation of several nodes offers Release per node on the
// page, and the button works.
func TestReleaseButtons(t *testing.T) {
	f := newFixture(t)
	alice := f.as("user")
	page := alice.get("/deployments").Body.String()
	action := fmt.Sprintf("/reservations/%d/nodes/%d/release", f.r1.ID, f.nodes[1].ID)
	if !strings.Contains(page, `action="`+action+`"`) {
		t.Fatalf("no Release button for node-2:\n%s", page)
	}
	if res := alice.post(action, nil); res.Code != http.StatusSeeOther {
		t.Fatalf("release: %d", res.Code)
	}
	if page := alice.get("/deployments").Body.String(); !strings.Contains(page, "Node released") {
		t.Fatalf("no confirmation:\n%s", page)
	}
	r, err := f.st.Reservation(context.Background(), f.r1.ID)
	if err != nil || len(r.Nodes) != 1 || r.Nodes[0].ID != f.nodes[0].ID {
		t.Fatalf("after the button: %+v %v", r, err)
	}
}

// TestNotificationChoice: the Account page offers notifications only when e-mail is set up,
// and saves the choice.
func TestNotificationChoice(t *testing.T) {
	f := newFixture(t)
	alice := f.as("user")
	if page := alice.get("/account").Body.String(); strings.Contains(page, `id="notify-form"`) {
		t.Fatal("notifications offered without e-mail")
	}
	f.useSMTP(smtptest.Start(t))
	if page := alice.get("/account").Body.String(); !strings.Contains(page, `id="notify-form"`) {
		t.Fatal("notifications not offered with e-mail")
	}
	for _, on := range []bool{true, false} {
		form := url.Values{}
		if on {
			form.Set("notify", "true")
		}
		if res := alice.post("/account/notifications", form); res.Code != http.StatusSeeOther {
			t.Fatalf("save: %d", res.Code)
		}
		u, err := f.st.User(context.Background(), f.alice.ID)
		if err != nil || (u.NotifySince != nil) != on {
			t.Fatalf("notify %v: saved %v (%v)", on, u.NotifySince, err)
		}
	}
}
