package power

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/gosnmp/gosnmp"

	"github.com/piseduce/piseduce/pkg/power/powerconf"
)

// SNMP drives the PoE ports of one switch. It is safe for concurrent use: every
// call opens its own gosnmp session (gosnmp.GoSNMP is not goroutine-safe), so
// many nodes can be powered in parallel.
type SNMP struct {
	c    powerconf.Config
	addr string
	// slots bounds the sessions in flight: a switch's agent answers one request
	// at a time, and a request queued behind many others would time out (and be
	// sent again, adding to the queue) although the switch is well.
	slots chan struct{}
	pace  *pace
	// engine is the SNMPv3 engine of the switch, learnt by the first session.
	engine engineCache
}

// maxSessions is the number of sessions a driver has in flight to its switch.
const maxSessions = 4

// errStaleEngine: the switch no longer knows the engine ID the session started with.
var errStaleEngine = errors.New("the switch has a new SNMPv3 engine ID")

var _ Controller = (*SNMP)(nil)

// NewSNMP validates c, applies defaults and returns an SNMP driver. It sends nothing. Outside
// this package, Open is the constructor: it picks the driver of c's kind.
func NewSNMP(c powerconf.Config) (*SNMP, error) {
	n, err := c.Normalize()
	if err != nil {
		return nil, err
	}
	if n.Driver != powerconf.DriverSNMP {
		return nil, fmt.Errorf("power: switch %q: driver %q is not SNMP", n.Name, n.Driver)
	}
	return newSNMP(n), nil
}

// newSNMP returns the driver of the normalized SNMP configuration n.
func newSNMP(n powerconf.Config) *SNMP {
	return &SNMP{c: n, addr: net.JoinHostPort(n.Host, strconv.Itoa(n.Port)), slots: make(chan struct{}, maxSessions),
		pace: newPace()}
}

// Config returns the normalized configuration (it prints with secrets redacted).
func (s *SNMP) Config() powerconf.Config { return s.c }

// Name is the switch name used in messages.
func (s *SNMP) Name() string { return s.c.Name }

// Ports is the number of ports.
func (s *SNMP) Ports() int { return s.c.Ports }

// MasterPort is the port never switched (0 = none).
func (s *SNMP) MasterPort() int { return s.c.MasterPort }

// AdminOID is the admin-enable OID of port.
func (s *SNMP) AdminOID(port int) string { return s.c.OID + "." + strconv.Itoa(s.c.OIDOffset+port) }

// StatusOID is the detection-status OID of port.
func (s *SNMP) StatusOID(port int) string {
	return s.c.StatusOID + "." + strconv.Itoa(s.c.OIDOffset+port)
}

func onOff(on bool) string {
	if on {
		return "on"
	}
	return "off"
}

// Set switches port on or off, then reads the admin state back and fails if it
// differs. The master port and ports outside 1..Ports are refused.
func (s *SNMP) Set(ctx context.Context, port int, on bool) error {
	op := fmt.Sprintf("set port %d %s", port, onOff(on))
	if err := refusePort(s.c, op, port, true); err != nil {
		return err
	}
	want := 2
	if on {
		want = 1
	}
	oid := s.AdminOID(port)
	return s.session(ctx, op, func(c *call) error {
		pkt, err := c.g.Set([]gosnmp.SnmpPDU{{Name: oid, Type: gosnmp.Integer, Value: want}})
		if err := c.check(pkt, err, []string{oid}); err != nil {
			return err
		}
		vals, err := c.get([]string{oid})
		if err != nil {
			return err
		}
		got, err := c.adminValue(oid, vals[oid])
		if err != nil {
			return err
		}
		if got != want {
			return c.fail(ErrReadBack, nil, "%s answered the set but reads back %s=%d, want %d", c.where(), oid, got, want)
		}
		return nil
	})
}

// Status reads the admin and detection state of port in one request.
func (s *SNMP) Status(ctx context.Context, port int) (PortStatus, error) {
	op := fmt.Sprintf("status port %d", port)
	if err := refusePort(s.c, op, port, false); err != nil {
		return PortStatus{}, err
	}
	var st PortStatus
	err := s.session(ctx, op, func(c *call) error {
		m, err := c.statuses([]int{port})
		st = m[port]
		return err
	})
	return st, err
}

// StatusAll reads every port 1..Ports (the master port included) with as few
// requests as possible (one GET of many OIDs per chunk of ports).
func (s *SNMP) StatusAll(ctx context.Context) (map[int]PortStatus, error) {
	ports := make([]int, s.c.Ports)
	for i := range ports {
		ports[i] = i + 1
	}
	var m map[int]PortStatus
	err := s.session(ctx, "status of all ports", func(c *call) error {
		var err error
		m, err = c.statuses(ports)
		return err
	})
	if err != nil {
		return nil, err
	}
	return m, nil
}

// Cycle switches port off, waits offFor, and switches it on again. If ctx ends
// during the wait, the port is left off and the error wraps ErrCycleAborted and
// the context's error.
func (s *SNMP) Cycle(ctx context.Context, port int, offFor time.Duration) error {
	return cycleBySet(ctx, s.Set, s.c.Name, port, offFor)
}

// call is one session with the switch, for one operation.
type call struct {
	s     *SNMP
	g     *gosnmp.GoSNMP
	ctx   context.Context
	op    string
	start time.Time
	// SNMPv3: the filter of the session's answers, and the engine it started with.
	answers *answerConn
	engine  engine
}

// newGoSNMP prepares a gosnmp session; with SNMPv3, it starts from the engine
// learnt by earlier sessions, unless it must discover it.
func (c *call) newGoSNMP(discover bool) *gosnmp.GoSNMP {
	s := c.s
	g := &gosnmp.GoSNMP{
		Target:    s.c.Host,
		Port:      uint16(s.c.Port),
		Transport: "udp",
		Community: s.c.Community,
		Version:   gosnmp.Version2c,
		Timeout:   s.pace.timeout(s.c.Timeout),
		Retries:   s.c.Retries,
		Context:   c.ctx,
		MaxOids:   gosnmp.MaxOids,
	}
	if s.c.Version == "3" {
		g.Version = gosnmp.Version3
		g.Community = ""
		g.SecurityModel = gosnmp.UserSecurityModel
		usm := &gosnmp.UsmSecurityParameters{UserName: s.c.V3User}
		c.engine = engine{}
		if !discover {
			c.engine = s.engine.get()
		}
		usm.AuthoritativeEngineID = c.engine.id
		usm.AuthoritativeEngineBoots = c.engine.boots
		usm.AuthoritativeEngineTime = c.engine.time
		g.MsgFlags = gosnmp.NoAuthNoPriv
		if s.c.V3AuthProto != "" {
			g.MsgFlags = gosnmp.AuthNoPriv
			usm.AuthenticationProtocol = authProto(s.c.V3AuthProto)
			usm.AuthenticationPassphrase = s.c.V3AuthPass
		}
		if s.c.V3PrivProto != "" {
			g.MsgFlags = gosnmp.AuthPriv
			usm.PrivacyProtocol = privProto(s.c.V3PrivProto)
			usm.PrivacyPassphrase = s.c.V3PrivPass
		}
		g.SecurityParameters = usm
	}
	return g
}

func authProto(p string) gosnmp.SnmpV3AuthProtocol {
	return map[string]gosnmp.SnmpV3AuthProtocol{"MD5": gosnmp.MD5, "SHA": gosnmp.SHA, "SHA224": gosnmp.SHA224,
		"SHA256": gosnmp.SHA256, "SHA384": gosnmp.SHA384, "SHA512": gosnmp.SHA512}[p]
}

func privProto(p string) gosnmp.SnmpV3PrivProtocol {
	return map[string]gosnmp.SnmpV3PrivProtocol{"DES": gosnmp.DES, "AES": gosnmp.AES, "AES192": gosnmp.AES192,
		"AES256": gosnmp.AES256, "AES192C": gosnmp.AES192C, "AES256C": gosnmp.AES256C}[p]
}

// session runs fn with a fresh connection, once one of the driver's slots is
// free. If the switch no longer knows the SNMPv3 engine ID the session started
// with, fn runs again with a new engine discovery (its requests are idempotent).
func (s *SNMP) session(ctx context.Context, op string, fn func(*call) error) error {
	c := &call{s: s, ctx: ctx, op: op, start: time.Now()}
	if err := ctx.Err(); err != nil {
		return c.fail(err, nil, "not sent to %s", c.where())
	}
	inFlight := maxSessions
	slots := []chan struct{}{s.slots}
	if s.pace.isLate() {
		inFlight, slots = 1, append(slots, s.pace.lone)
	}
	for _, slot := range slots {
		select {
		case slot <- struct{}{}:
			defer func() { <-slot }()
		case <-ctx.Done():
			kind := ctx.Err()
			if errors.Is(kind, context.DeadlineExceeded) {
				kind = fmt.Errorf("%w: %w", ErrNoAnswer, kind)
			}
			return c.fail(kind, nil, "not sent to %s: the caller gave up {after} waiting behind %d requests in flight", c.where(), inFlight)
		}
	}
	err := c.run(fn, false)
	if errors.Is(err, errStaleEngine) {
		s.engine.forget(c.engine.id)
		err = c.run(fn, true)
	}
	return err
}

// run runs fn on a new socket; discover: with an SNMPv3 engine discovery even
// if the engine is known. Cancelling ctx closes the socket, so a call blocked on
// the network returns at once; deadlines bound each attempt.
func (c *call) run(fn func(*call) error, discover bool) error {
	c.g = c.newGoSNMP(discover)
	if err := c.g.Connect(); err != nil {
		return c.fail(ErrNoAnswer, err, "cannot open a socket to %s", c.where())
	}
	conn := c.g.Conn
	defer conn.Close()
	stop := context.AfterFunc(c.ctx, func() { conn.Close() })
	defer stop()
	// The round trip of a request runs from its first send to its answer, whichever send that
	// answers: a slow switch is rather overrated than underrated.
	var sent time.Time
	c.g.OnSent = func(*gosnmp.GoSNMP) {
		if sent.IsZero() {
			sent = time.Now()
		}
	}
	c.g.OnRetry = func(*gosnmp.GoSNMP) { c.s.pace.unanswered() }
	c.g.OnFinish = func(*gosnmp.GoSNMP) { c.s.pace.answered(time.Since(sent)); sent = time.Time{} }
	if c.g.Version != gosnmp.Version3 {
		return fn(c)
	}
	c.answers = &answerConn{Conn: conn}
	c.g.Conn = c.answers
	// A request is over once gosnmp took an answer: what comes later is late.
	answered := c.g.OnFinish
	c.g.OnFinish = func(g *gosnmp.GoSNMP) { answered(g); c.answers.next() }
	if err := fn(c); err != nil {
		return err
	}
	c.s.engine.learn(c.g.SecurityParameters)
	return nil
}

func (c *call) where() string { return fmt.Sprintf("switch %q at %s", c.s.c.Name, c.s.addr) }

// fail builds an error naming the operation (with the port), the switch, its
// address and the elapsed time; kind is wrapped for errors.Is, cause is
// included with secrets scrubbed. The elapsed time goes where the message says
// {after}, or at its end.
func (c *call) fail(kind, cause error, format string, args ...any) error {
	msg := fmt.Sprintf(format, args...)
	after := "after " + elapsed(time.Since(c.start))
	if strings.Contains(msg, "{after}") {
		msg = strings.Replace(msg, "{after}", after, 1)
	} else {
		msg += " " + after
	}
	if cause != nil {
		return fmt.Errorf("power: %s: %s: %w (%s)", c.op, msg, kind, c.s.scrub(cause.Error()))
	}
	return fmt.Errorf("power: %s: %s: %w", c.op, msg, kind)
}

func elapsed(d time.Duration) string {
	if d >= time.Second {
		return d.Round(100 * time.Millisecond).String()
	}
	return d.Round(time.Millisecond).String()
}

func (s *SNMP) scrub(msg string) string {
	for _, secret := range []string{s.c.Community, s.c.V3AuthPass, s.c.V3PrivPass} {
		if secret != "" {
			msg = strings.ReplaceAll(msg, secret, "<secret>")
		}
	}
	return msg
}

// errTooBig: the switch answered tooBig, the request must be split (an ErrSNMP).
var errTooBig = fmt.Errorf("%w (tooBig)", ErrSNMP)

// gosnmpSays reports whether an error of gosnmp says one of phrases. gosnmp (v1.47) makes
// some of its errors with fmt.Errorf and no sentinel: a message that failed authentication
// ("incoming packet is not authentic", "message is not authenticated") and a read timeout
// it reports as text. This is the one place that reads error text, for want of a sentinel;
// TestNoErrorTextMatching allows it here only.
func gosnmpSays(err error, phrases ...string) bool {
	for _, p := range phrases {
		if strings.Contains(err.Error(), p) {
			return true
		}
	}
	return false
}

// check turns a gosnmp result into an error: a nil error is not success, the
// packet's error status and the varbind types count too.
func (c *call) check(pkt *gosnmp.SnmpPacket, err error, oids []string) error {
	if err != nil {
		return c.transportError(err)
	}
	if pkt == nil {
		return c.fail(ErrSNMP, nil, "%s returned no packet", c.where())
	}
	if pkt.Error != gosnmp.NoError {
		what := ""
		if i := int(pkt.ErrorIndex) - 1; i >= 0 && i < len(oids) {
			what = " for " + oids[i]
		}
		hint := ""
		switch pkt.Error {
		case gosnmp.NotWritable, gosnmp.NoCreation, gosnmp.NoSuchName, gosnmp.NoAccess:
			hint = " (check oid, oid offset and ports)"
		case gosnmp.AuthorizationError:
			hint = " (the community or user may not write)"
		}
		kind := ErrSNMP
		if pkt.Error == gosnmp.TooBig {
			kind = errTooBig
		}
		return c.fail(kind, nil, "%s answered %s%s%s", c.where(), errName(pkt.Error), what, hint)
	}
	for _, v := range pkt.Variables {
		switch v.Type {
		case gosnmp.NoSuchObject, gosnmp.NoSuchInstance, gosnmp.EndOfMibView:
			return c.fail(ErrNoSuchPort, nil, "%s has no %s (%s, check oid, oid offset and ports)", c.where(), v.Name, typeName(v.Type))
		}
	}
	return nil
}

func (c *call) transportError(err error) error {
	if cerr := c.ctx.Err(); cerr != nil && !errors.Is(cerr, context.DeadlineExceeded) {
		return c.fail(cerr, nil, "gave up waiting for %s", c.where())
	}
	if dl, ok := c.ctx.Deadline(); errors.Is(err, context.DeadlineExceeded) || (ok && !time.Now().Before(dl)) {
		return c.fail(fmt.Errorf("%w: %w", ErrNoAnswer, context.DeadlineExceeded), nil,
			"no answer from %s {after}, when the caller's deadline was reached", c.where())
	}
	report := ""
	if c.answers != nil {
		report = c.answers.report
	}
	for _, r := range []struct {
		err error
		oid string
	}{{gosnmp.ErrWrongDigest, usmStatsWrongDigests}, {gosnmp.ErrDecryption, usmStatsDecryptionErrors},
		{gosnmp.ErrUnknownUsername, usmStatsUnknownUserNames}, {gosnmp.ErrUnknownSecurityLevel, usmStatsUnsupportedSecLevels}} {
		if report == "" && errors.Is(err, r.err) {
			report = r.oid
		}
	}
	if report != "" {
		return c.reportError(report)
	}
	switch {
	case gosnmpSays(err, "not authentic", "not authenticated"):
		return c.fail(ErrAuth, nil, "%s answered {after}, but not to v3 user %q: unknown user, or wrong authentication password or protocol", c.where(), c.s.c.V3User)
	case errors.Is(err, gosnmp.ErrNotInTimeWindow):
		return c.fail(ErrNoAnswer, nil, "no answer from %s {after} to the request sent again with the clock of its usmStatsNotInTimeWindows report", c.where())
	}
	hint := "unreachable, or wrong community"
	if c.s.c.Version == "3" {
		hint = "unreachable, not an SNMPv3 agent, or wrong privacy password"
	}
	if errors.Is(err, syscall.ECONNREFUSED) {
		hint = "connection refused: nothing listens on that UDP port"
	}
	var ne net.Error
	if errors.Is(err, gosnmp.ErrMaxRetriesExceeded) || errors.Is(err, context.DeadlineExceeded) ||
		errors.Is(err, os.ErrDeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()) ||
		errors.Is(err, syscall.ECONNREFUSED) || gosnmpSays(err, "timeout") {
		return c.fail(ErrNoAnswer, nil, "no answer from %s {after} (%s)", c.where(), hint)
	}
	return c.fail(ErrNoAnswer, err, "request to %s failed", c.where())
}

// reportError names what a USM report (RFC 3414) says about the request. An
// unknown engine ID is errStaleEngine when the session started from a cached one.
func (c *call) reportError(oid string) error {
	user := c.s.c.V3User
	switch oid {
	case usmStatsUnknownEngineIDs:
		if c.engine.id != "" {
			return errStaleEngine
		}
		return c.fail(ErrSNMP, nil, "%s answered usmStatsUnknownEngineIDs to the engine ID it had just given", c.where())
	case usmStatsUnknownUserNames:
		return c.fail(ErrAuth, nil, "%s does not know v3 user %q", c.where(), user)
	case usmStatsWrongDigests:
		return c.fail(ErrAuth, nil, "%s rejected v3 user %q: wrong authentication password or protocol", c.where(), user)
	case usmStatsDecryptionErrors:
		return c.fail(ErrAuth, nil, "%s could not decrypt the request of v3 user %q: wrong privacy password or protocol", c.where(), user)
	case usmStatsUnsupportedSecLevels:
		return c.fail(ErrAuth, nil, "%s does not accept this security level for v3 user %q", c.where(), user)
	}
	return c.fail(ErrSNMP, nil, "%s answered with report %s", c.where(), oid)
}

// get reads oids (at most MaxOids) in one request and returns them by OID.
func (c *call) get(oids []string) (map[string]gosnmp.SnmpPDU, error) {
	pkt, err := c.g.Get(oids)
	if err := c.check(pkt, err, oids); err != nil {
		return nil, err
	}
	m := make(map[string]gosnmp.SnmpPDU, len(pkt.Variables))
	for _, v := range pkt.Variables {
		m["."+strings.TrimPrefix(v.Name, ".")] = v
	}
	for _, o := range oids {
		if _, ok := m[o]; !ok {
			return nil, c.fail(ErrBadValue, nil, "%s left %s out of its answer", c.where(), o)
		}
	}
	return m, nil
}

// statuses reads admin and detection state of ports, chunked by MaxOids and
// halving the chunk if the switch says tooBig.
func (c *call) statuses(ports []int) (map[int]PortStatus, error) {
	res := make(map[int]PortStatus, len(ports))
	chunk := c.g.MaxOids / 2
	for len(ports) > 0 {
		n := min(chunk, len(ports))
		oids := make([]string, 0, 2*n)
		for _, p := range ports[:n] {
			oids = append(oids, c.s.AdminOID(p), c.s.StatusOID(p))
		}
		vals, err := c.get(oids)
		if err != nil {
			if chunk > 1 && errors.Is(err, errTooBig) {
				chunk /= 2
				continue
			}
			return nil, err
		}
		for _, p := range ports[:n] {
			a, err := c.adminValue(c.s.AdminOID(p), vals[c.s.AdminOID(p)])
			if err != nil {
				return nil, err
			}
			d, err := c.intValue(c.s.StatusOID(p), vals[c.s.StatusOID(p)])
			if err != nil {
				return nil, err
			}
			res[p] = PortStatus{On: a == 1, Delivering: d == 3}
		}
		ports = ports[n:]
	}
	return res, nil
}

func (c *call) intValue(oid string, v gosnmp.SnmpPDU) (int, error) {
	switch v.Type {
	case gosnmp.Integer, gosnmp.Gauge32, gosnmp.Uinteger32, gosnmp.Counter32:
		return int(gosnmp.ToBigInt(v.Value).Int64()), nil
	}
	return 0, c.fail(ErrBadValue, nil, "%s returned %s for %s, want an INTEGER", c.where(), typeName(v.Type), oid)
}

func (c *call) adminValue(oid string, v gosnmp.SnmpPDU) (int, error) {
	n, err := c.intValue(oid, v)
	if err != nil {
		return 0, err
	}
	if n != 1 && n != 2 {
		return 0, c.fail(ErrBadValue, nil, "%s returned %d for %s, want 1 (on) or 2 (off)", c.where(), n, oid)
	}
	return n, nil
}

// errName gives the RFC 3416 spelling (notWritable, wrongValue…).
func errName(e gosnmp.SNMPError) string {
	s := e.String()
	if s == "" || strings.HasPrefix(s, "SNMPError(") {
		return "error " + strconv.Itoa(int(e))
	}
	return strings.ToLower(s[:1]) + s[1:]
}

func typeName(t gosnmp.Asn1BER) string {
	switch t {
	case gosnmp.NoSuchObject:
		return "noSuchObject"
	case gosnmp.NoSuchInstance:
		return "noSuchInstance"
	case gosnmp.EndOfMibView:
		return "endOfMibView"
	}
	return t.String()
}
