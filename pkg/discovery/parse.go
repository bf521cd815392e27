package discovery

import (
	"fmt"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"github.com/piseduce/piseduce/pkg/nodeid"
)

// PiMACPrefixes are the Raspberry Pi Foundation's / Raspberry Pi Ltd's MAC prefixes (OUIs).
var PiMACPrefixes = []string{"b8:27:eb", "dc:a6:32", "e4:5f:01", "d8:3a:dd", "2c:cf:67"}

// IsPiMAC reports whether mac (lower-case, colon-separated) belongs to a Raspberry Pi.
func IsPiMAC(mac string) bool {
	mac = strings.ToLower(mac)
	for _, p := range PiMACPrefixes {
		if strings.HasPrefix(mac, p+":") {
			return true
		}
	}
	return false
}

// LogEvent is one line of dnsmasq's log that discovery cares about.
type LogEvent struct {
	// Kind is "dhcp" or "tftp".
	Kind string
	// Msg is the DHCP message (DHCPDISCOVER, DHCPREQUEST, DHCPOFFER, DHCPACK, …), or for TFTP
	// "not found" or "sent".
	Msg   string
	Iface string // DHCP: the interface
	MAC   string // DHCP: the client's MAC, lower-case
	IP    string // DHCP: the address in the message (may be empty); TFTP: the client
	Info  string // DHCP: what follows (a name, "no address available", …)
	Path  string // TFTP: the file asked for, as dnsmasq names it (under the tftp root)
}

var (
	// "dnsmasq-dhcp[12]: 3841368290 DHCPDISCOVER(eth0) b8:27:eb:01:02:03 no address available"
	// "dnsmasq-dhcp[12]: 3841368290 DHCPACK(eth0) 10.10.0.11 b8:27:eb:01:02:03 node-1"
	// (the transaction number is there with log-dhcp only).
	dhcpRE = regexp.MustCompile(`dnsmasq-dhcp\[\d+\]: (?:\d+ )?(DHCP[A-Z]+)\(([^)]*)\) (?:(\d{1,3}(?:\.\d{1,3}){3}) )?([0-9A-Fa-f]{2}(?::[0-9A-Fa-f]{2}){5})(?: (.*))?$`)
	// "dnsmasq-tftp[12]: file /tftpboot/0123abcd/start.elf not found for 10.10.0.11"
	tftpMissRE = regexp.MustCompile(`dnsmasq-tftp\[\d+\]: file (.+) not found(?: for (\S+))?$`)
	// "dnsmasq-tftp[12]: sent /tftpboot/0123abcd/start.elf to 10.10.0.11"
	tftpSentRE = regexp.MustCompile(`dnsmasq-tftp\[\d+\]: sent (.+) to (\S+)$`)
)

// ParseLogLine reads one line of dnsmasq's log (log-facility=<file> with log-dhcp).
func ParseLogLine(line string) (LogEvent, bool) {
	line = strings.TrimRight(line, "\r\n")
	if m := dhcpRE.FindStringSubmatch(line); m != nil {
		return LogEvent{Kind: "dhcp", Msg: m[1], Iface: m[2], IP: m[3], MAC: strings.ToLower(m[4]), Info: m[5]}, true
	}
	if m := tftpMissRE.FindStringSubmatch(line); m != nil {
		return LogEvent{Kind: "tftp", Msg: "not found", Path: m[1], IP: m[2]}, true
	}
	if m := tftpSentRE.FindStringSubmatch(line); m != nil {
		return LogEvent{Kind: "tftp", Msg: "sent", Path: m[1], IP: m[2]}, true
	}
	return LogEvent{}, false
}

// SerialFromPath returns the node serial of a TFTP request: a Pi asks for the files of its
// boot folder, <tftp_root>/<serial>/…, where serial is the last 8 hex digits of its serial.
func SerialFromPath(tftpRoot, path string) (string, bool) {
	root := filepath.Clean(tftpRoot)
	p := filepath.Clean(path)
	if root == "." || root == "" {
		return "", false
	}
	rel, err := filepath.Rel(root, p)
	if err != nil || rel == "." || strings.HasPrefix(rel, "..") {
		return "", false
	}
	first, rest, ok := strings.Cut(rel, "/")
	if !ok || rest == "" || nodeid.CheckSerial(first) != nil {
		return "", false
	}
	return first, true
}

// CPUInfo is what /proc/cpuinfo says about a Pi.
type CPUInfo struct {
	Serial    string // the last 8 hex digits, lower-case: the TFTP folder name
	Revision  string // e.g. a020d3
	ModelName string // the Model line, e.g. "Raspberry Pi 3 Model B Plus Rev 1.3"
	Model     string // PiSeduce's model name: RPI3Bplus, RPI4B, …
}

// ParseCPUInfo reads the Serial, Revision and Model lines of a Pi's /proc/cpuinfo.
func ParseCPUInfo(s string) (CPUInfo, error) {
	var c CPUInfo
	var serial string
	for _, line := range strings.Split(s, "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		v = strings.TrimSpace(v)
		switch strings.TrimSpace(k) {
		case "Serial":
			serial = strings.ToLower(v)
		case "Revision":
			c.Revision = strings.ToLower(v)
		case "Model":
			c.ModelName = v
		}
	}
	if len(serial) < 8 || nodeid.CheckSerial(serial[len(serial)-8:]) != nil {
		return c, fmt.Errorf("no serial number in /proc/cpuinfo (Serial line %q)", serial)
	}
	c.Serial = serial[len(serial)-8:]
	m, err := ModelOf(c.ModelName, c.Revision)
	if err != nil {
		return c, err
	}
	c.Model = m
	return c, nil
}

// Board types of the new-style revision codes (bits 4–11).
var boardTypes = map[uint64]string{
	0x04: "RPI2B",
	0x08: "RPI3B",
	0x0d: "RPI3Bplus",
	0x0e: "RPI3Aplus",
	0x11: "RPI4B",
	0x13: "RPI400",
	0x14: "RPICM4",
	0x17: "RPI5",
	0x18: "RPICM5",
	0x19: "RPI500",
	0x1a: "RPICM5", // CM5 Lite
}

// ModelOf names a Pi model from its cpuinfo Model line or, failing that, its revision code.
func ModelOf(modelLine, revision string) (string, error) {
	m := strings.ToLower(modelLine)
	switch {
	case strings.Contains(m, "pi 3 model b plus"):
		return "RPI3Bplus", nil
	case strings.Contains(m, "pi 3 model a plus"):
		return "RPI3Aplus", nil
	case strings.Contains(m, "pi 3 model b"):
		return "RPI3B", nil
	case strings.Contains(m, "pi 4 model b"):
		return "RPI4B", nil
	case strings.Contains(m, "pi 5 model b"):
		return "RPI5", nil
	}
	if r, err := strconv.ParseUint(revision, 16, 32); err == nil && r&(1<<23) != 0 {
		if name, ok := boardTypes[(r>>4)&0xff]; ok {
			return name, nil
		}
	}
	return "", fmt.Errorf("unknown Raspberry Pi model (Model %q, Revision %q)", modelLine, revision)
}
