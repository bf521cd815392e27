package power

import (
	"testing"

	"github.com/gosnmp/gosnmp"
)

// v3Message encodes a message the way gosnmp sends it, with msgID id.
func v3Message(t testing.TB, flags gosnmp.SnmpV3MsgFlags, pduType gosnmp.PDUType, pdus []gosnmp.SnmpPDU, id uint32) []byte {
	t.Helper()
	usm := &gosnmp.UsmSecurityParameters{UserName: "poeadmin", AuthoritativeEngineID: "\x80\x00\x1f\x88\x04engine-1",
		AuthoritativeEngineBoots: 3, AuthoritativeEngineTime: 1234}
	if flags&gosnmp.AuthNoPriv != 0 {
		usm.AuthenticationProtocol, usm.AuthenticationPassphrase = gosnmp.SHA, "auth-Pass-4242"
	}
	if flags&gosnmp.AuthPriv == gosnmp.AuthPriv {
		usm.PrivacyProtocol, usm.PrivacyPassphrase = gosnmp.AES, "priv-Pass-4242"
	}
	if err := usm.InitSecurityKeys(); err != nil {
		t.Fatal(err)
	}
	g := &gosnmp.GoSNMP{Version: gosnmp.Version3, SecurityModel: gosnmp.UserSecurityModel, MsgFlags: flags,
		SecurityParameters: usm, MaxOids: gosnmp.MaxOids}
	g.SetMsgID(id - 1)
	b, err := g.SnmpEncodePacket(pduType, pdus, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParseV3(t *testing.T) {
	report := []gosnmp.SnmpPDU{{Name: usmStatsUnknownEngineIDs, Type: gosnmp.Counter32, Value: uint32(7)}}
	get := []gosnmp.SnmpPDU{{Name: ".1.3.6.1.2.1.105.1.1.1.3.1.49", Type: gosnmp.Null}}
	for _, tc := range []struct {
		name string
		msg  []byte
		ok   bool
		want v3msg
	}{
		{"unauthenticated report", v3Message(t, gosnmp.NoAuthNoPriv, gosnmp.Report, report, 42), true,
			v3msg{id: 42, flags: 0x04, report: usmStatsUnknownEngineIDs}},
		{"authenticated report", v3Message(t, gosnmp.AuthNoPriv, gosnmp.Report, report, 0x7fffffff), true,
			v3msg{id: 0x7fffffff, flags: 0x05, report: usmStatsUnknownEngineIDs}},
		{"encrypted request", v3Message(t, gosnmp.AuthPriv, gosnmp.GetRequest, get, 1000), true,
			v3msg{id: 1000, flags: 0x07}},
		{"request in clear", v3Message(t, gosnmp.AuthNoPriv, gosnmp.GetRequest, get, 5), true,
			v3msg{id: 5, flags: 0x05}},
		{"truncated report", v3Message(t, gosnmp.NoAuthNoPriv, gosnmp.Report, report, 42)[:20], false, v3msg{}},
		{"SNMPv2c", func() []byte {
			g := &gosnmp.GoSNMP{Version: gosnmp.Version2c, Community: "public", MaxOids: gosnmp.MaxOids}
			b, err := g.SnmpEncodePacket(gosnmp.GetRequest, get, 0, 0)
			if err != nil {
				t.Fatal(err)
			}
			return b
		}(), false, v3msg{}},
		{"empty", nil, false, v3msg{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := parseV3(tc.msg)
			if ok != tc.ok || (ok && got != tc.want) {
				t.Fatalf("parseV3 = %+v, %v; want %+v, %v", got, ok, tc.want, tc.ok)
			}
		})
	}
}

func TestOIDString(t *testing.T) {
	for _, tc := range []struct {
		ber  []byte
		want string
	}{
		{[]byte{0x2b, 6, 1, 6, 3, 15, 1, 1, 4, 0}, ".1.3.6.1.6.3.15.1.1.4.0"},
		{[]byte{0x2b, 6, 1, 4, 1, 0x82, 0x37, 1}, ".1.3.6.1.4.1.311.1"},
		{[]byte{0x88, 0x37, 3}, ".2.999.3"},
		{[]byte{0x2b, 0x86}, ""}, // an arc cut short
		{nil, ""},
	} {
		if got := oidString(tc.ber); got != tc.want {
			t.Errorf("oidString(%x) = %q, want %q", tc.ber, got, tc.want)
		}
	}
}

// FuzzParseV3: whatever a switch (or anything on the path) sends, parsing neither panics
// nor reads past the datagram, and a report's OID is well formed.
func FuzzParseV3(f *testing.F) {
	report := []gosnmp.SnmpPDU{{Name: usmStatsWrongDigests, Type: gosnmp.Counter32, Value: uint32(1)}}
	f.Add(v3Message(f, gosnmp.NoAuthNoPriv, gosnmp.Report, report, 9))
	f.Add(v3Message(f, gosnmp.AuthPriv, gosnmp.GetResponse, report, 9))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, ok := parseV3(b)
		if !ok && m.report != "" {
			t.Fatalf("a report OID from a message that does not parse: %+v", m)
		}
		if m.report != "" && m.report[0] != '.' {
			t.Fatalf("report OID %q", m.report)
		}
	})
}
