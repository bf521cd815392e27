package power

import "time"

// V3Flags returns the msgFlags of an SNMPv3 message, for tests that watch the wire.
func V3Flags(b []byte) (flags byte, ok bool) {
	m, ok := parseV3(b)
	return m.flags, ok
}

// Engine returns the SNMPv3 engine the driver has learnt (its clock advanced to now).
func (s *SNMP) Engine() (id string, boots, clock uint32) {
	e := s.engine.get()
	return e.id, e.boots, e.time
}

// SetEngine makes the driver believe the switch's engine is id, boots, clock.
func (s *SNMP) SetEngine(id string, boots, clock uint32) {
	s.engine.mu.Lock()
	defer s.engine.mu.Unlock()
	s.engine.e = engine{id: id, boots: boots, time: clock, at: time.Now()}
}
