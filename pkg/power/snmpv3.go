package power

import (
	"errors"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gosnmp/gosnmp"
)

// USM reports (RFC 3414 section 3.2): what an SNMPv3 agent sends instead of an answer.
const (
	usmStatsUnsupportedSecLevels = ".1.3.6.1.6.3.15.1.1.1.0"
	usmStatsNotInTimeWindows     = ".1.3.6.1.6.3.15.1.1.2.0"
	usmStatsUnknownUserNames     = ".1.3.6.1.6.3.15.1.1.3.0"
	usmStatsUnknownEngineIDs     = ".1.3.6.1.6.3.15.1.1.4.0"
	usmStatsWrongDigests         = ".1.3.6.1.6.3.15.1.1.5.0"
	usmStatsDecryptionErrors     = ".1.3.6.1.6.3.15.1.1.6.0"
)

// errReported ends gosnmp's wait and retries once the switch has answered a request with an
// unauthenticated report: no retransmission would get another answer.
var errReported = errors.New("the switch answered with a report")

// engine is what an SNMPv3 switch said of its engine: its ID, how often it booted, and its
// clock (seconds since that boot) at a moment of ours. A session that starts with them needs
// no discovery round trip, so no late discovery report can stray into its requests.
type engine struct {
	id    string
	boots uint32
	time  uint32
	at    time.Time
}

// engineCache keeps the engine of one switch, shared by the driver's concurrent sessions.
type engineCache struct {
	mu sync.Mutex
	e  engine
}

// get returns the engine with its clock advanced to now (no ID while none is known).
func (c *engineCache) get() engine {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.e
	if e.id != "" {
		e.time += uint32(time.Since(e.at) / time.Second)
	}
	return e
}

// learn keeps the engine parameters of a session whose requests the switch answered.
func (c *engineCache) learn(sp gosnmp.SnmpV3SecurityParameters) {
	usm, ok := sp.(*gosnmp.UsmSecurityParameters)
	if !ok || usm.AuthoritativeEngineID == "" {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.e = engine{id: usm.AuthoritativeEngineID, boots: usm.AuthoritativeEngineBoots,
		time: usm.AuthoritativeEngineTime, at: time.Now()}
}

// forget drops the engine: the switch no longer knows it (replaced, or reset).
func (c *engineCache) forget(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.e.id == id {
		c.e = engine{}
	}
}

// answerConn sits between gosnmp and the UDP socket of one SNMPv3 session. gosnmp takes
// whatever arrives while it waits: a late report to an attempt it has already given up on
// (say an engine discovery it retried) fails its authentication check, and the request
// fails as if the password were wrong. answerConn lets through only answers to the attempts
// of the current request, and keeps an unauthenticated report to an authenticated request
// (unknown user, wrong digest, unknown engine ID) for the driver to name.
type answerConn struct {
	net.Conn
	sent   []sentMsg // the attempts of the current request
	report string    // OID of the report that ended the session's exchange
}

type sentMsg struct {
	id   uint32
	auth bool
}

// next starts a new request: answers to earlier ones are late from now on.
func (a *answerConn) next() { a.sent = a.sent[:0] }

func (a *answerConn) Write(b []byte) (int, error) {
	if a.report != "" {
		return 0, errReported
	}
	if m, ok := parseV3(b); ok {
		a.sent = append(a.sent, sentMsg{id: m.id, auth: m.flags&byte(gosnmp.AuthNoPriv) != 0})
	}
	return a.Conn.Write(b)
}

func (a *answerConn) Read(b []byte) (int, error) {
	if a.report != "" {
		return 0, errReported
	}
	for {
		n, err := a.Conn.Read(b)
		if err != nil {
			return n, err
		}
		m, ok := parseV3(b[:n])
		i := slices.IndexFunc(a.sent, func(s sentMsg) bool { return s.id == m.id })
		if !ok || i < 0 {
			continue // late, a duplicate, or not SNMPv3: the deadline still bounds the wait
		}
		if m.report != "" && a.sent[i].auth && m.flags&byte(gosnmp.AuthNoPriv) == 0 {
			a.report = m.report
			return 0, errReported
		}
		return n, nil
	}
}

// v3msg is what can be read of an SNMPv3 message without its keys.
type v3msg struct {
	id    uint32
	flags byte
	// report is the first OID of an unencrypted Report PDU ("" otherwise).
	report string
}

// BER tags of the SNMPv3 message fields parseV3 reads.
const (
	tagInteger  = 0x02
	tagOctets   = 0x04
	tagOID      = 0x06
	tagSequence = 0x30
	tagReport   = 0xa8
)

// parseV3 reads the header of an SNMPv3 message (RFC 3412 section 6) and, when its scoped
// PDU is in clear, the OID a Report carries. ok is false for anything else.
func parseV3(b []byte) (m v3msg, ok bool) {
	msg, _, ok := berNext(b, tagSequence)
	if !ok {
		return m, false
	}
	version, msg, ok := berNext(msg, tagInteger)
	if !ok || len(version) != 1 || version[0] != 3 {
		return m, false
	}
	header, msg, ok := berNext(msg, tagSequence)
	if !ok {
		return m, false
	}
	id, header, ok := berNext(header, tagInteger)
	if !ok || len(id) == 0 || len(id) > 5 || id[0]&0x80 != 0 || (len(id) == 5 && id[0] != 0) {
		return m, false
	}
	for _, c := range id {
		m.id = m.id<<8 | uint32(c)
	}
	if _, header, ok = berNext(header, tagInteger); !ok { // msgMaxSize
		return m, false
	}
	flags, _, ok := berNext(header, tagOctets)
	if !ok || len(flags) != 1 {
		return m, false
	}
	m.flags = flags[0]
	if _, msg, ok = berNext(msg, tagOctets); !ok { // msgSecurityParameters
		return m, false
	}
	scoped, _, ok := berNext(msg, tagSequence)
	if !ok {
		return m, true // encrypted
	}
	for range 2 { // contextEngineID, contextName
		if _, scoped, ok = berNext(scoped, tagOctets); !ok {
			return m, true
		}
	}
	pdu, _, ok := berNext(scoped, tagReport)
	if !ok {
		return m, true
	}
	for range 3 { // request-id, error-status, error-index
		if _, pdu, ok = berNext(pdu, tagInteger); !ok {
			return m, true
		}
	}
	if pdu, _, ok = berNext(pdu, tagSequence); ok {
		if pdu, _, ok = berNext(pdu, tagSequence); ok {
			if oid, _, ok := berNext(pdu, tagOID); ok {
				m.report = oidString(oid)
			}
		}
	}
	return m, true
}

// berNext splits off the first element of b, which must have the given tag: its contents and
// what follows it.
func berNext(b []byte, tag byte) (contents, rest []byte, ok bool) {
	if len(b) < 2 || b[0] != tag {
		return nil, nil, false
	}
	n, b := int(b[1]), b[2:]
	if n&0x80 != 0 {
		size := n & 0x7f
		if size == 0 || size > 3 || len(b) < size {
			return nil, nil, false
		}
		n = 0
		for _, c := range b[:size] {
			n = n<<8 | int(c)
		}
		b = b[size:]
	}
	if n > len(b) {
		return nil, nil, false
	}
	return b[:n], b[n:], true
}

// oidString formats BER OID contents the way gosnmp does (".1.3.6…"); "" if malformed.
func oidString(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	var s strings.Builder
	var arc uint64
	first := true
	for i, c := range b {
		if arc > 1<<56 {
			return ""
		}
		arc = arc<<7 | uint64(c&0x7f)
		if c&0x80 != 0 {
			if i == len(b)-1 {
				return ""
			}
			continue
		}
		if first {
			x := min(arc/40, 2)
			s.WriteString("." + strconv.FormatUint(x, 10) + "." + strconv.FormatUint(arc-40*x, 10))
			first = false
		} else {
			s.WriteString("." + strconv.FormatUint(arc, 10))
		}
		arc = 0
	}
	return s.String()
}
