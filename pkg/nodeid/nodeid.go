// Package nodeid checks what identifies a node on the pimaster's network: its host name, IPv4
// address, MAC address and serial (its TFTP folder). The store validates nodes with it and
// netboot writes dnsmasq's and TFTP's files with it; it imports nothing of either, so that
// pifrontend validates nodes without linking netboot.
package nodeid

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"regexp"
	"strings"
)

var hostNameRE = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$`)

// CheckHostName refuses a node name that cannot be a host name in a DHCP hosts line (and the
// deployed system's host name): letters, digits and inner hyphens, at most 63.
func CheckHostName(name string) error {
	if !hostNameRE.MatchString(name) {
		return fmt.Errorf("%q is not a host name (letters, digits and inner hyphens, at most 63)", name)
	}
	return nil
}

// NormalizeMAC returns mac as six lower-case colon-separated hex pairs, or an error for what
// is not the address of one network card (a multicast or all-zero address).
func NormalizeMAC(mac string) (string, error) {
	hw, err := net.ParseMAC(strings.TrimSpace(mac))
	if err != nil || len(hw) != 6 {
		return "", fmt.Errorf("%q is not a MAC address (like b8:27:eb:12:34:56)", mac)
	}
	if hw[0]&1 == 1 || bytes.Equal(hw, make(net.HardwareAddr, 6)) {
		return "", fmt.Errorf("%s is not the address of one network card (multicast or zero)", hw)
	}
	return hw.String(), nil
}

// ParseIPv4 reads a dotted IPv4 address (dnsmasq's hosts lines take no other).
func ParseIPv4(s string) (netip.Addr, error) {
	a, err := netip.ParseAddr(strings.TrimSpace(s))
	if err != nil || !a.Is4() {
		return netip.Addr{}, fmt.Errorf("%q is not an IPv4 address", s)
	}
	return a, nil
}

var serialRE = regexp.MustCompile(`^[0-9a-f]{8}$`)

// ErrBadSerial is the kind (errors.Is) of CheckSerial's error: trying again cannot fix it.
var ErrBadSerial = errors.New("not a node serial")

// CheckSerial refuses what cannot name a node's TFTP folder: a node's serial is the last 8 hex
// digits, in lower case, of the Serial line of its /proc/cpuinfo.
func CheckSerial(serial string) error {
	if !serialRE.MatchString(serial) {
		return fmt.Errorf("%q is %w: the last 8 hex digits, in lower case, of Serial in /proc/cpuinfo (like a67c64b3)", serial, ErrBadSerial)
	}
	return nil
}
