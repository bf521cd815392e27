package auth

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"mime"
	"mime/quotedprintable"
	"net"
	"net/smtp"
	"strconv"
	"strings"
	"sync"
	"time"
)

// SMTPSettings says how to send e-mail; Address empty means e-mail is not configured.
type SMTPSettings struct {
	Address  string
	Port     int
	Account  string
	Password string
	From     string
}

// Configured reports whether e-mail can be sent.
func (s SMTPSettings) Configured() bool { return s.Address != "" }

// Message is a plain-text e-mail to one recipient.
type Message struct {
	To      string
	Subject string
	Body    string
}

// Mailer sends e-mail. SMTPMailer is the real one; MailRecorder keeps messages for tests.
type Mailer interface {
	Send(ctx context.Context, s SMTPSettings, m Message) error
}

// SMTPMailer sends through an SMTP server with net/smtp: implicit TLS on port 465, STARTTLS
// when the server offers it, PLAIN authentication when an account is set (net/smtp refuses to
// send the password unencrypted except to localhost).
type SMTPMailer struct {
	// Timeout bounds the whole exchange when ctx has no earlier deadline (30 s when zero).
	Timeout time.Duration
}

// Send delivers m.
func (sm SMTPMailer) Send(ctx context.Context, s SMTPSettings, m Message) error {
	if !s.Configured() {
		return errors.New("mail: no SMTP server configured")
	}
	data, err := buildMessage(s, m, time.Now())
	if err != nil {
		return err
	}
	timeout := sm.Timeout
	if timeout == 0 {
		timeout = 30 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	port := s.Port
	if port == 0 {
		port = 587
	}
	addr := net.JoinHostPort(s.Address, strconv.Itoa(port))
	tlsConf := &tls.Config{ServerName: s.Address, MinVersion: tls.VersionTLS12}
	var conn net.Conn
	if port == 465 {
		d := tls.Dialer{Config: tlsConf}
		conn, err = d.DialContext(ctx, "tcp", addr)
	} else {
		var d net.Dialer
		conn, err = d.DialContext(ctx, "tcp", addr)
	}
	if err != nil {
		return fmt.Errorf("mail: connect to %s: %w", addr, err)
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	c, err := smtp.NewClient(conn, s.Address)
	if err != nil {
		return fmt.Errorf("mail: %s: %w", addr, err)
	}
	defer c.Close()
	if port != 465 {
		if ok, _ := c.Extension("STARTTLS"); ok {
			if err := c.StartTLS(tlsConf); err != nil {
				return fmt.Errorf("mail: %s: STARTTLS: %w", addr, err)
			}
		}
	}
	if s.Account != "" {
		if err := c.Auth(smtp.PlainAuth("", s.Account, s.Password, s.Address)); err != nil {
			return fmt.Errorf("mail: %s: authentication as %s: %w", addr, s.Account, err)
		}
	}
	if err := c.Mail(sender(s)); err != nil {
		return fmt.Errorf("mail: %s: MAIL FROM: %w", addr, err)
	}
	if err := c.Rcpt(m.To); err != nil {
		return fmt.Errorf("mail: %s: RCPT TO: %w", addr, err)
	}
	w, err := c.Data()
	if err != nil {
		return fmt.Errorf("mail: %s: DATA: %w", addr, err)
	}
	if _, err := w.Write(data); err != nil {
		return fmt.Errorf("mail: %s: write: %w", addr, err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("mail: %s: end of data: %w", addr, err)
	}
	return c.Quit()
}

func sender(s SMTPSettings) string {
	if s.From != "" {
		return s.From
	}
	if strings.Contains(s.Account, "@") {
		return s.Account
	}
	return "piseduce@" + s.Address
}

// buildMessage formats m as RFC 5322 text; header injection (a new line in a header) is refused.
func buildMessage(s SMTPSettings, m Message, now time.Time) ([]byte, error) {
	from := sender(s)
	for _, h := range []string{from, m.To, m.Subject} {
		if strings.ContainsAny(h, "\r\n") {
			return nil, errors.New("mail: a header holds a line break")
		}
	}
	if _, err := ParseEmail(m.To); err != nil {
		return nil, fmt.Errorf("mail: bad recipient: %w", err)
	}
	id := make([]byte, 12)
	_, _ = rand.Read(id)
	domain := from[strings.LastIndex(from, "@")+1:]
	var b bytes.Buffer
	fmt.Fprintf(&b, "From: PiSeduce <%s>\r\n", from)
	fmt.Fprintf(&b, "To: <%s>\r\n", m.To)
	fmt.Fprintf(&b, "Subject: %s\r\n", mime.QEncoding.Encode("utf-8", m.Subject))
	fmt.Fprintf(&b, "Date: %s\r\n", now.Format(time.RFC1123Z))
	fmt.Fprintf(&b, "Message-ID: <%s@%s>\r\n", hex.EncodeToString(id), domain)
	b.WriteString("MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n")
	qp := quotedprintable.NewWriter(&b)
	_, _ = qp.Write([]byte(strings.ReplaceAll(m.Body, "\n", "\r\n")))
	_ = qp.Close()
	b.WriteString("\r\n")
	return b.Bytes(), nil
}

// MailRecorder is a Mailer that keeps every message instead of sending it (tests).
type MailRecorder struct {
	mu   sync.Mutex
	sent []Message
	// Err, when set, is returned by Send (the message is not kept).
	Err error
}

// Send records m.
func (r *MailRecorder) Send(_ context.Context, s SMTPSettings, m Message) error {
	if !s.Configured() {
		return errors.New("mail: no SMTP server configured")
	}
	if _, err := buildMessage(s, m, time.Now()); err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.Err != nil {
		return r.Err
	}
	r.sent = append(r.sent, m)
	return nil
}

// Sent returns the messages recorded so far.
func (r *MailRecorder) Sent() []Message {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Message(nil), r.sent...)
}
