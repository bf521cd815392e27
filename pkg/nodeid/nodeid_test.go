package nodeid

import (
	"strings"
	"testing"
)

func TestNodeIDs(t *testing.T) {
	for _, name := range []string{"node-1", "a", strings.Repeat("x", 63)} {
		if err := CheckHostName(name); err != nil {
			t.Errorf("host name %q: %v", name, err)
		}
	}
	for _, name := range []string{"", "-node", "node-", "nöde", "node_1", strings.Repeat("x", 64)} {
		if CheckHostName(name) == nil {
			t.Errorf("host name %q accepted", name)
		}
	}
	if mac, err := NormalizeMAC(" B8-27-EB-12-34-56 "); err != nil || mac != "b8:27:eb:12:34:56" {
		t.Errorf("MAC: %q %v", mac, err)
	}
	for _, mac := range []string{"b8:27:eb:12:34", "01:00:5e:00:00:01", "00:00:00:00:00:00", "x"} {
		if _, err := NormalizeMAC(mac); err == nil {
			t.Errorf("MAC %q accepted", mac)
		}
	}
	if a, err := ParseIPv4(" 10.10.0.11"); err != nil || a.String() != "10.10.0.11" {
		t.Errorf("IPv4: %v %v", a, err)
	}
	for _, ip := range []string{"::1", "10.10.0", "host"} {
		if _, err := ParseIPv4(ip); err == nil {
			t.Errorf("IPv4 %q accepted", ip)
		}
	}
	if err := CheckSerial("a67c64b3"); err != nil {
		t.Error(err)
	}
	for _, s := range []string{"A67C64B3", "a67c64b", "../etc00", "a67c64b30"} {
		if CheckSerial(s) == nil {
			t.Errorf("serial %q accepted", s)
		}
	}
}
