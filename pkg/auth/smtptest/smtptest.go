// Package smtptest is a small SMTP server for tests: it listens on 127.0.0.1, speaks enough
// real SMTP for net/smtp (EHLO, MAIL, RCPT, DATA, RSET, NOOP, QUIT; no STARTTLS, no AUTH) and
// keeps every message it accepts. Nothing is relayed anywhere.
package smtptest

import (
	"bufio"
	"io"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Message is one message accepted by the server.
type Message struct {
	From string   // MAIL FROM
	To   []string // RCPT TO
	// Header and Body are the parsed message; Body is decoded from quoted-printable when the
	// message says it is.
	Header mail.Header
	Body   string
}

// Server is a running SMTP server; the test's cleanup stops it.
type Server struct {
	ln   net.Listener
	mu   sync.Mutex
	msgs []Message
	got  chan struct{} // receives once per message
	wg   sync.WaitGroup
}

// Start starts a server on a free port of 127.0.0.1.
func Start(t testing.TB) *Server {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{ln: ln, got: make(chan struct{}, 1000)}
	s.wg.Add(1)
	go s.serve()
	t.Cleanup(func() {
		ln.Close()
		s.wg.Wait()
	})
	return s
}

// Host and Port are where the server listens.
func (s *Server) Host() string { return "127.0.0.1" }

// Port is the server's TCP port.
func (s *Server) Port() int { return s.ln.Addr().(*net.TCPAddr).Port }

// Messages returns the messages accepted so far.
func (s *Server) Messages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Message(nil), s.msgs...)
}

// Wait waits until n messages in all were accepted, at most timeout; it fails the test otherwise.
func (s *Server) Wait(t testing.TB, n int, timeout time.Duration) []Message {
	t.Helper()
	deadline := time.After(timeout)
	for {
		if m := s.Messages(); len(m) >= n {
			return m
		}
		select {
		case <-s.got:
		case <-deadline:
			t.Fatalf("smtptest: %d message(s) after %s, want %d", len(s.Messages()), timeout, n)
		}
	}
}

func (s *Server) serve() {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer c.Close()
			s.session(c)
		}()
	}
}

func (s *Server) session(c net.Conn) {
	r := bufio.NewReader(c)
	say := func(line string) { _, _ = io.WriteString(c, line+"\r\n") }
	say("220 smtptest ESMTP")
	var cur Message
	for {
		_ = c.SetDeadline(time.Now().Add(time.Minute))
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		line = strings.TrimRight(line, "\r\n")
		verb, arg, _ := strings.Cut(line, " ")
		switch strings.ToUpper(verb) {
		case "EHLO":
			say("250-smtptest")
			say("250 8BITMIME")
		case "HELO", "NOOP":
			say("250 ok")
		case "RSET":
			cur = Message{}
			say("250 ok")
		case "MAIL":
			cur = Message{From: address(arg)}
			say("250 ok")
		case "RCPT":
			if cur.From == "" {
				say("503 MAIL first")
				continue
			}
			cur.To = append(cur.To, address(arg))
			say("250 ok")
		case "DATA":
			if len(cur.To) == 0 {
				say("503 RCPT first")
				continue
			}
			say("354 end with <CRLF>.<CRLF>")
			data, err := readData(r)
			if err != nil {
				return
			}
			if err := cur.parse(data); err != nil {
				say("554 " + err.Error())
				continue
			}
			s.mu.Lock()
			s.msgs = append(s.msgs, cur)
			s.mu.Unlock()
			s.got <- struct{}{}
			say("250 queued as " + strconv.Itoa(len(s.Messages())))
			cur = Message{}
		case "QUIT":
			say("221 bye")
			return
		default:
			say("502 not implemented")
		}
	}
}

// address reads the address of "FROM:<a@b>" or "TO:<a@b> …".
func address(arg string) string {
	_, a, _ := strings.Cut(arg, ":")
	a, _, _ = strings.Cut(strings.TrimSpace(a), " ")
	return strings.Trim(a, "<>")
}

// readData reads the message up to the line with a single dot, undoing dot-stuffing.
func readData(r *bufio.Reader) (string, error) {
	var b strings.Builder
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return "", err
		}
		if line == ".\r\n" {
			return b.String(), nil
		}
		b.WriteString(strings.TrimPrefix(line, "."))
	}
}

func (m *Message) parse(data string) error {
	msg, err := mail.ReadMessage(strings.NewReader(data))
	if err != nil {
		return err
	}
	body := msg.Body
	if strings.EqualFold(msg.Header.Get("Content-Transfer-Encoding"), "quoted-printable") {
		body = quotedprintable.NewReader(body)
	}
	b, err := io.ReadAll(body)
	if err != nil {
		return err
	}
	m.Header, m.Body = msg.Header, strings.ReplaceAll(string(b), "\r\n", "\n")
	return nil
}
