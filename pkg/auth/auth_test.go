package auth

import (
	"bufio"
	"context"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"
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
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	got := make(chan string, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		r := bufio.NewReader(c)
		say := func(s string) { c.Write([]byte(s + "\r\n")) }
		say("220 fake ESMTP")
		var data strings.Builder
		inData := false
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return
			}
			if inData {
				if line == ".\r\n" {
					inData = false
					say("250 queued")
					got <- data.String()
					continue
				}
				data.WriteString(line)
				continue
			}
			switch cmd := strings.ToUpper(strings.Fields(line)[0]); cmd {
			case "EHLO", "HELO":
				say("250 fake")
			case "DATA":
				inData = true
				say("354 go on")
			case "QUIT":
				say("221 bye")
				return
			default:
				say("250 ok")
			}
		}
	}()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	p, _ := strconv.Atoi(port)
	set := SMTPSettings{Address: "127.0.0.1", Port: p, From: "pi@lab.example.org"}
	err = SMTPMailer{Timeout: 5 * time.Second}.Send(context.Background(), set,
		Message{To: "ada@example.com", Subject: "Confirm your e-mail", Body: "Open https://pi/confirm/abc\n"})
	if err != nil {
		t.Fatal(err)
	}
	msg := <-got
	for _, want := range []string{"From: PiSeduce <pi@lab.example.org>", "To: <ada@example.com>", "Subject: Confirm your e-mail", "https://pi/confirm/abc"} {
		if !strings.Contains(msg, want) {
			t.Errorf("message lacks %q:\n%s", want, msg)
		}
	}
	if err := (SMTPMailer{}).Send(context.Background(), set, Message{To: "ada@example.com", Subject: "x\r\nBcc: eve@evil.org"}); err == nil {
		t.Error("header injection accepted")
	}
}
