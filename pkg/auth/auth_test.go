package auth

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/piseduce/piseduce/pkg/auth/smtptest"
)

func TestEmailAllowed(t *testing.T) {
	filter := ParseDomains(" @Example.com, lab.org\n.uni.edu ")
	if strings.Join(filter, "|") != "example.com|lab.org|uni.edu" {
		t.Fatalf("parsed %q", filter)
	}
	for email, want := range map[string]bool{
		"a@example.com":          true,
		"a@EXAMPLE.COM":          true,
		"a@team.example.com":     true,
		"a@evil-example.com":     false,
		"a@example.com.evil.org": false,
		"a@notexample.com":       false,
		"a@lab.org":              true,
		"a@cs.uni.edu":           true,
		"a@uni.edu.fr":           false,
		"example.com":            false,
	} {
		if got := EmailAllowed(email, filter); got != want {
			t.Errorf("%s: got %v want %v", email, got, want)
		}
	}
	if !EmailAllowed("anyone@anywhere.net", nil) {
		t.Error("an empty filter must let everyone in")
	}
}

func TestParseEmail(t *testing.T) {
	for in, ok := range map[string]bool{
		"Ada@Example.com":             true,
		"ada":                         false,
		"Ada <ada@example.com>":       false,
		"ada@example.com\r\nBcc: x@y": false,
		"a@b@example.com":             false,
		"ada@localhost":               false,
		"deleted-3@deleted.invalid":   false,
		"ada@exa_mple.com":            false,
	} {
		got, err := ParseEmail(in)
		if (err == nil) != ok {
			t.Errorf("%q: %v", in, err)
		}
		if ok && got != strings.ToLower(in) {
			t.Errorf("%q → %q", in, got)
		}
	}
}

func TestPasswordsAndTokens(t *testing.T) {
	SetFastHashingForTests()
	h, err := HashPassword("correct horse battery")
	if err != nil {
		t.Fatal(err)
	}
	if !CheckPassword(h, "correct horse battery") || CheckPassword(h, "wrong") || CheckPassword("", "") {
		t.Fatal("CheckPassword")
	}
	if ValidatePassword("short") == nil || ValidatePassword(strings.Repeat("x", 73)) == nil || ValidatePassword("long enough pw") != nil {
		t.Fatal("ValidatePassword")
	}
	a, b := NewToken("psd_"), NewToken("psd_")
	if a == b || !strings.HasPrefix(a, "psd_") || len(a) < 40 || HashToken(a) == HashToken(b) || len(HashToken(a)) != 64 {
		t.Fatal("tokens")
	}
	p := RandomPassword(16)
	if len(p) != 16 || p == RandomPassword(16) || strings.ContainsAny(p, "0O1lI'\"$ ") {
		t.Fatalf("random password %q", p)
	}
	s := NewSigner("k")
	tag := s.Tag("csrf", "v")
	if !s.Check("csrf", "v", tag) || s.Check("csrf", "w", tag) || s.Check("flash", "v", tag) || NewSigner("k2").Check("csrf", "v", tag) {
		t.Fatal("signer")
	}
}

func TestLimiter(t *testing.T) {
	l := NewLimiter(3, time.Minute)
	now := time.Unix(1000, 0)
	for i := 0; i < 3; i++ {
		if b, _ := l.Blocked("k", now); b {
			t.Fatalf("blocked after %d", i)
		}
		l.Fail("k", now.Add(time.Duration(i)*time.Second))
	}
	if b, until := l.Blocked("k", now.Add(3*time.Second)); !b || !until.Equal(now.Add(time.Minute)) {
		t.Fatalf("not blocked: %v %v", b, until)
	}
	if b, _ := l.Blocked("other", now); b {
		t.Fatal("other key blocked")
	}
	if b, _ := l.Blocked("k", now.Add(61*time.Second)); b {
		t.Fatal("window did not slide")
	}
	l.Fail("k", now)
	l.Reset("k")
	if b, _ := l.Blocked("k", now); b {
		t.Fatal("reset")
	}
}

// TestSMTPMailer talks to an in-process SMTP server on loopback, never to a real host.
func TestSMTPMailer(t *testing.T) {
	srv := smtptest.Start(t)
	set := SMTPSettings{Address: srv.Host(), Port: srv.Port(), From: "pi@lab.example.org"}
	err := SMTPMailer{Timeout: 5 * time.Second}.Send(context.Background(), set,
		Message{To: "ada@example.com", Subject: "Confirm your e-mail", Body: "Open https://pi/confirm/abc\n"})
	if err != nil {
		t.Fatal(err)
	}
	msg := srv.Wait(t, 1, time.Minute)[0]
	if msg.From != "pi@lab.example.org" || len(msg.To) != 1 || msg.To[0] != "ada@example.com" {
		t.Errorf("envelope from %q to %q", msg.From, msg.To)
	}
	for h, want := range map[string]string{"From": "PiSeduce <pi@lab.example.org>", "To": "<ada@example.com>", "Subject": "Confirm your e-mail"} {
		if got := msg.Header.Get(h); got != want {
			t.Errorf("%s: %q, want %q", h, got, want)
		}
	}
	if !strings.Contains(msg.Body, "https://pi/confirm/abc") {
		t.Errorf("body lacks the link:\n%s", msg.Body)
	}
	if err := (SMTPMailer{}).Send(context.Background(), set, Message{To: "ada@example.com", Subject: "x\r\nBcc: eve@evil.org"}); err == nil {
		t.Error("header injection accepted")
	}
}

func TestThrottle(t *testing.T) {
	th := NewThrottle(Backoff{Free: 3, Base: time.Second, Max: 10 * time.Second, Forget: time.Hour})
	now := time.Unix(1000, 0)
	var waits []time.Duration
	for i := 0; i < 7; i++ {
		if w := th.Wait("a", now); w != 0 {
			t.Fatalf("failure %d: must wait %s although the last delay is over", i, w)
		}
		d := th.Fail("a", now)
		waits = append(waits, d)
		now = now.Add(d)
	}
	want := []time.Duration{0, 0, 0, time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second}
	if fmt.Sprint(waits) != fmt.Sprint(want) {
		t.Fatalf("delays %v, want %v", waits, want)
	}
	for i := 0; i < 3; i++ {
		now = now.Add(th.Fail("a", now))
	}
	if d := th.Fail("a", now); d != 10*time.Second {
		t.Fatalf("delay past the cap: %s", d)
	}
	if w := th.Wait("a", now.Add(4*time.Second)); w != 6*time.Second {
		t.Fatalf("wait: %s", w)
	}
	if th.Wait("b", now) != 0 || th.Failed("b", now) || !th.Failed("a", now) {
		t.Fatal("another key is slowed")
	}
	// Forgotten an hour after the last failure; a success forgets at once.
	if th.Failed("a", now.Add(time.Hour)) || th.Wait("a", now.Add(time.Hour)) != 0 {
		t.Fatal("not forgotten")
	}
	th.Fail("c", now)
	th.Reset("c")
	if th.Failed("c", now) {
		t.Fatal("reset")
	}
	// A flood of distinct keys stays bounded.
	big := NewThrottle(Backoff{Free: 1, Base: time.Second, Max: time.Minute, Forget: time.Hour})
	for i := 0; i < maxThrottled+10; i++ {
		big.Fail(strconv.Itoa(i), now)
	}
	if n := len(big.keys); n > maxThrottled {
		t.Fatalf("%d keys kept", n)
	}
}

func TestClientKey(t *testing.T) {
	for in, want := range map[string]string{
		"127.0.0.2":                 "127.0.0.2",
		"::ffff:192.0.2.7":          "192.0.2.7",
		"2001:db8:1:2:3:4:5:6":      "2001:db8:1:2::/64",
		"2001:db8:1:2:ffff::1":      "2001:db8:1:2::/64",
		"fe80::1%eth0":              "fe80::/64",
		"not an address":            "not an address",
		"2001:db8:1:3::1":           "2001:db8:1:3::/64",
		"::1":                       "::/64",
		"2001:0db8:0001:0002::0001": "2001:db8:1:2::/64",
	} {
		if got := ClientKey(in); got != want {
			t.Errorf("%s → %s, want %s", in, got, want)
		}
	}
}

// gateState is what the gate holds: hashes running, and requests waiting for a slot.
func gateState(g *Gate) (running, urgent, other int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.running, len(g.queue[0]), len(g.queue[1])
}

// waitFor polls cond with a generous deadline (the machine may be busy).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestGate: at most Slots hashes at once, one at a time per client, a bounded queue per client,
// urgent requests first, a bounded wait.
func TestGate(t *testing.T) {
	g := NewGate(2, 2, time.Minute)
	ctx := context.Background()
	var mu sync.Mutex
	inside, peak := 0, 0
	var order []string
	release := map[string]chan struct{}{}
	hash := func(name string) func() {
		release[name] = make(chan struct{})
		ch := release[name]
		return func() {
			mu.Lock()
			inside++
			peak = max(peak, inside)
			order = append(order, name)
			mu.Unlock()
			<-ch
			mu.Lock()
			inside--
			mu.Unlock()
		}
	}
	errs := make(chan error, 10)
	run := func(client, name string, urgent bool) {
		f := hash(name)
		go func() { errs <- g.Do(ctx, client, urgent, f) }()
	}
	run("10.0.0.1", "a1", false)
	run("10.0.0.2", "b1", false)
	waitFor(t, "two hashes running", func() bool { r, _, _ := gateState(g); return r == 2 })
	run("10.0.0.3", "c1", false)
	waitFor(t, "c1 queued", func() bool { _, _, o := gateState(g); return o == 1 })
	run("10.0.0.4", "d1", true)
	waitFor(t, "d1 queued", func() bool { _, u, _ := gateState(g); return u == 1 })
	// A second request of a client waits for its first, outside the slot queue; a third is refused.
	run("10.0.0.1", "a2", true)
	waitFor(t, "a2 in the gate", func() bool { g.mu.Lock(); defer g.mu.Unlock(); return g.clients["10.0.0.1"].in == 2 })
	if err := g.Do(ctx, "10.0.0.1", true, func() { t.Error("a third request of a client ran") }); !errors.Is(err, ErrBusy) {
		t.Fatalf("third request of a client: %v", err)
	}
	if _, u, _ := gateState(g); u != 1 {
		t.Fatal("a client's second request took a place in the slot queue while its first runs")
	}
	close(release["a1"]) // d1 (urgent) goes before c1, although it came later
	waitFor(t, "d1 running", func() bool { mu.Lock(); defer mu.Unlock(); return len(order) == 3 })
	// a2 (urgent) got its client's turn when a1 ended, and goes before c1 too.
	close(release["b1"])
	waitFor(t, "a2 running", func() bool { mu.Lock(); defer mu.Unlock(); return len(order) == 4 })
	close(release["d1"])
	waitFor(t, "c1 running", func() bool { mu.Lock(); defer mu.Unlock(); return len(order) == 5 })
	close(release["a2"])
	close(release["c1"])
	for i := 0; i < 5; i++ {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	// a1 and b1 start together: either may be first.
	slices.Sort(order[:2])
	if peak != 2 || strings.Join(order, " ") != "a1 b1 d1 a2 c1" {
		t.Fatalf("peak %d, order %v", peak, order)
	}
	if r, u, o := gateState(g); r != 0 || u != 0 || o != 0 || len(g.clients) != 0 {
		t.Fatalf("gate not empty: %d running, %d+%d waiting, %d clients", r, u, o, len(g.clients))
	}

	// A wait that runs out gives ErrBusy and leaves the slot count right; a cancelled request
	// gives its context's error.
	short := NewGate(1, 4, 50*time.Millisecond)
	hold := make(chan struct{})
	go short.Do(ctx, "x", false, func() { <-hold })
	waitFor(t, "the slot taken", func() bool { r, _, _ := gateState(short); return r == 1 })
	if err := short.Do(ctx, "y", true, func() { t.Error("ran without a slot") }); !errors.Is(err, ErrBusy) {
		t.Fatalf("timeout: %v", err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := short.Do(cctx, "z", true, func() { t.Error("ran although cancelled") }); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled: %v", err)
	}
	close(hold)
	waitFor(t, "the slot free", func() bool { r, _, _ := gateState(short); return r == 0 })
	ran := false
	if err := short.Do(ctx, "y", false, func() { ran = true }); err != nil || !ran {
		t.Fatalf("after the timeouts: %v %v", err, ran)
	}
}
