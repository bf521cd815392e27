package power_test

import (
	"context"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/piseduce/piseduce/lab/poeswitch"
	"github.com/piseduce/piseduce/pkg/power"
	"github.com/piseduce/piseduce/pkg/power/powerconf"
)

// udpProxy relays datagrams between drivers and snmpd, with one socket to snmpd per
// driver socket (a session). With late, it holds back the answer to each session's first
// request until it relays the answer to its third: the driver has sent the first request
// again meanwhile, and the held answer arrives while another request waits. With dup, it
// sends every answer twice.
type udpProxy struct {
	conn      *net.UDPConn
	target    string
	late, dup bool
	wg        sync.WaitGroup

	mu          sync.Mutex
	sessions    map[string]*proxySession
	requests    [][]byte // every datagram from a driver, in order
	lateAnswers int
	duplicates  int
}

type proxySession struct {
	up      net.Conn
	answers int
	held    []byte
}

func startProxy(t *testing.T, target string, late, dup bool) *udpProxy {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	p := &udpProxy{conn: c, target: target, late: late, dup: dup, sessions: map[string]*proxySession{}}
	p.wg.Add(1)
	go p.serve(t)
	t.Cleanup(func() {
		c.Close()
		p.mu.Lock()
		for _, s := range p.sessions {
			s.up.Close()
		}
		p.mu.Unlock()
		p.wg.Wait()
	})
	return p
}

func (p *udpProxy) port() int { return p.conn.LocalAddr().(*net.UDPAddr).Port }

func (p *udpProxy) serve(t *testing.T) {
	defer p.wg.Done()
	buf := make([]byte, 65536)
	for {
		n, client, err := p.conn.ReadFromUDP(buf)
		if err != nil {
			return
		}
		msg := slices.Clone(buf[:n])
		p.mu.Lock()
		p.requests = append(p.requests, msg)
		s, ok := p.sessions[client.String()]
		if !ok {
			up, err := net.Dial("udp4", p.target)
			if err != nil {
				p.mu.Unlock()
				t.Errorf("proxy: %v", err)
				return
			}
			s = &proxySession{up: up}
			p.sessions[client.String()] = s
			p.wg.Add(1)
			go p.answer(s, client)
		}
		p.mu.Unlock()
		_, _ = s.up.Write(msg)
	}
}

func (p *udpProxy) answer(s *proxySession, client *net.UDPAddr) {
	defer p.wg.Done()
	buf := make([]byte, 65536)
	for {
		n, err := s.up.Read(buf)
		if err != nil {
			return
		}
		answer := slices.Clone(buf[:n])
		var out [][]byte
		p.mu.Lock()
		s.answers++
		if p.late && s.answers == 1 {
			s.held = answer
		} else {
			if s.held != nil && s.answers >= 3 {
				out = append(out, s.held)
				s.held = nil
				p.lateAnswers++
			}
			out = append(out, answer)
			if p.dup {
				out = append(out, answer)
				p.duplicates++
			}
		}
		p.mu.Unlock()
		for _, b := range out {
			_, _ = p.conn.WriteToUDP(b, client)
		}
	}
}

// counts returns the late answers and duplicates sent, and the requests received.
func (p *udpProxy) counts() (late, dups int, requests [][]byte) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.lateAnswers, p.duplicates, slices.Clone(p.requests)
}

// discoveries counts the SNMPv3 engine discovery probes among requests (RFC 3414
// section 4: reportable and noAuthNoPriv).
func discoveries(t *testing.T, requests [][]byte) int {
	n := 0
	for _, r := range requests {
		flags, ok := power.V3Flags(r)
		if !ok {
			t.Fatalf("the driver sent a datagram that is not SNMPv3: %x", r)
		}
		if flags == 0x04 {
			n++
		}
	}
	return n
}

// TestLateAnswers: the switch answers late, after the driver sent its request again, and
// twice. A late or duplicate answer to an earlier request, an engine discovery report
// among them, is not taken for the answer to the current one.
func TestLateAnswers(t *testing.T) {
	sw := startSwitch(t, 4, 0)
	for _, conf := range []func(*poeswitch.Switch) powerconf.Config{v2config, v3config} {
		c := conf(sw)
		t.Run("v"+c.Version, func(t *testing.T) {
			px := startProxy(t, sw.Addr(), true, true)
			c.Port, c.Timeout, c.Retries = px.port(), 700*time.Millisecond, 1
			p := newSNMP(t, c)
			ctx := ctxT(t, 60*time.Second)
			for _, on := range []bool{true, false} {
				if err := p.Set(ctx, 2, on); err != nil {
					t.Fatal(err)
				}
				wantFile(t, sw, 2, on)
				if st, err := p.Status(ctx, 2); err != nil || st.On != on {
					t.Fatalf("Status = %+v, %v, want on=%v", st, err, on)
				}
			}
			// Each Set's session had three requests or more: its held answer came late.
			if late, dups, _ := px.counts(); late < 2 || dups < 6 {
				t.Fatalf("the proxy sent %d late answers and %d duplicates, want at least 2 and 6", late, dups)
			}
		})
	}
}

// TestEngine: the SNMPv3 engine is discovered once per driver, and found again when the
// switch reboots (new boots and clock) or changes its engine ID.
func TestEngine(t *testing.T) {
	sw := startSwitch(t, 4, 0)
	px := startProxy(t, sw.Addr(), false, false)
	c := v3config(sw)
	c.Port = px.port()
	p := newSNMP(t, c)
	ctx := ctxT(t, 60*time.Second)
	seen := 0
	// set switches port 2 and says how many engine discoveries it took.
	set := func(t *testing.T, on bool) int {
		t.Helper()
		if err := p.Set(ctx, 2, on); err != nil {
			t.Fatal(err)
		}
		wantFile(t, sw, 2, on)
		_, _, reqs := px.counts()
		n := discoveries(t, reqs[seen:])
		seen = len(reqs)
		return n
	}
	if n := set(t, true); n != 1 {
		t.Fatalf("first session: %d engine discoveries, want 1", n)
	}
	id, boots, clock := p.Engine()
	if len(id) < 5 || boots == 0 {
		t.Fatalf("engine after the first session: id %x boots %d clock %d", id, boots, clock)
	}
	if n := set(t, false); n != 0 {
		t.Fatalf("second session: %d engine discoveries, want 0", n)
	}

	t.Run("clock out of the time window", func(t *testing.T) {
		p.SetEngine(id, boots, clock+3600) // usmStatsNotInTimeWindows, with the switch's clock
		if n := set(t, true); n != 0 {
			t.Fatalf("%d engine discoveries, want 0", n)
		}
		if gotID, _, gotClock := p.Engine(); gotID != id || gotClock > clock+600 {
			t.Fatalf("engine %x clock %d, want %x and about %d", gotID, gotClock, id, clock)
		}
	})
	t.Run("unknown engine ID", func(t *testing.T) {
		p.SetEngine("\x80\x00\x1f\x88\x04stale-engine", 7, 1000) // usmStatsUnknownEngineIDs
		if n := set(t, false); n != 1 {
			t.Fatalf("%d engine discoveries, want 1", n)
		}
		if gotID, _, _ := p.Engine(); gotID != id {
			t.Fatalf("engine %x, want %x", gotID, id)
		}
	})
	t.Run("switch restarted", func(t *testing.T) {
		rctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		sw2, err := sw.Restart(rctx)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = sw2.Stop() })
		n := set(t, true)
		gotID, gotBoots, _ := p.Engine()
		t.Logf("after the restart: %d engine discoveries, engine %x boots %d (was %x boots %d)", n, gotID, gotBoots, id, boots)
	})
}
