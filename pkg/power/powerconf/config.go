// Package powerconf holds a switch's power settings and their one validation, without the
// drivers: the store, the import and the web validate and keep switches with it, and only
// pitasks links the drivers (package power) that act on them.
package powerconf

import (
	"errors"
	"fmt"
	"math"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/piseduce/piseduce/pkg/names"
)

// Driver kinds (Config.Driver).
const (
	DriverSNMP    = "snmp"    // the default: a PoE switch driven over SNMP
	DriverCommand = "command" // programs the admin configures (Command)
)

// Settings are the settings of the driver kinds added after SNMP (whose settings have fields
// and columns of their own), one field per kind, named by its JSON key. The store keeps them
// as one JSON document, and the import, the API and pitasks carry them as they are: a new
// kind's settings are one more field here, and nothing outside pkg/power changes.
type Settings struct {
	Command Command `json:"command,omitzero"`
}

// Drivers lists the driver kinds, the default first.
func Drivers() []string { return []string{DriverSNMP, DriverCommand} }

// ErrConfig is the kind of every *ConfigError.
var ErrConfig = errors.New("invalid power configuration")

// Standard POWER-ETHERNET-MIB columns (group 1).
const (
	PethPsePortEntry           = ".1.3.6.1.2.1.105.1.1.1"
	PethPsePortAdminEnable     = PethPsePortEntry + ".3.1"
	PethPsePortDetectionStatus = PethPsePortEntry + ".6.1"
)

// Defaults applied by NewSNMP.
const (
	DefaultPort    = 161
	DefaultTimeout = 2 * time.Second
)

// Config describes one PoE switch. Secrets (Community, V3AuthPass, V3PrivPass)
// never appear in String, GoString, errors or logs.
type Config struct {
	Name   string // for messages, e.g. "poe-rack1"
	Driver string // driver kind: DriverSNMP (default when empty)

	// Settings are the settings of the driver kinds after SNMP.
	Settings

	// SNMP settings.
	Host      string // IP address or name of the switch
	Port      int    // UDP port; 161 if 0
	Version   string // "2c" (default when empty) or "3"
	Community string // v2c read-write community

	V3User      string
	V3AuthProto string // MD5, SHA (default), SHA224, SHA256, SHA384, SHA512
	V3AuthPass  string
	V3PrivProto string // DES, AES (default), AES192, AES256, AES192C, AES256C
	V3PrivPass  string

	OID       string        // admin-enable column base; POWER-ETHERNET-MIB pethPsePortAdminEnable if empty
	StatusOID string        // detection-status column base; derived from OID (column 3 -> 6) when empty
	OIDOffset int           // OID index of port p is OIDOffset+p (Linksys LGS308P: 48)
	Timeout   time.Duration // per SNMP attempt; 2s if 0
	Retries   int           // extra SNMP attempts after the first

	MasterPort int // port of the master node: never powered (0 = none)
	Ports      int // number of ports, 1..Ports
}

func redact(s string) string {
	if s == "" {
		return `""`
	}
	return "<secret>"
}

// String prints the configuration with secrets redacted.
func (c Config) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "power.Config{Name:%q Driver:%q Host:%q Port:%d Version:%q Community:%s", c.Name, c.Driver, c.Host, c.Port, c.Version, redact(c.Community))
	fmt.Fprintf(&b, " V3User:%q V3AuthProto:%q V3AuthPass:%s V3PrivProto:%q V3PrivPass:%s", c.V3User, c.V3AuthProto, redact(c.V3AuthPass), c.V3PrivProto, redact(c.V3PrivPass))
	fmt.Fprintf(&b, " OID:%q StatusOID:%q OIDOffset:%d MasterPort:%d Ports:%d Timeout:%s Retries:%d Command:%s}", c.OID, c.StatusOID, c.OIDOffset, c.MasterPort, c.Ports, c.Timeout, c.Retries, c.Command)
	return b.String()
}

// Summary says how the switch is driven, in a few words and without secrets, for an admin's
// listing: "10.0.0.2:161  SNMP v2c". Call it on a normalized Config.
func (c Config) Summary() string {
	if c.Driver == DriverCommand {
		return fmt.Sprintf("commands %s", c.Command.On[0])
	}
	return fmt.Sprintf("%s  SNMP v%s", net.JoinHostPort(c.Host, strconv.Itoa(c.Port)), c.Version)
}

// GoString makes %#v redact secrets too.
func (c Config) GoString() string { return c.String() }

var authProtos = map[string]bool{"MD5": true, "SHA": true, "SHA224": true, "SHA256": true, "SHA384": true, "SHA512": true}
var privProtos = map[string]bool{"DES": true, "AES": true, "AES192": true, "AES256": true, "AES192C": true, "AES256C": true}

// MaxPorts is the most PoE ports a switch may have.
const MaxPorts = 1024

// Problem is one invalid setting: Field is the name of the Config field, or for Settings the
// JSON path of the setting ("command.on").
type Problem struct {
	Field string
	Msg   string
}

// ConfigError lists what is wrong with a switch's configuration; it wraps ErrConfig and names
// no secret.
type ConfigError struct {
	Switch   string
	Problems []Problem
}

func (e *ConfigError) Error() string {
	msgs := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		msgs[i] = p.Msg
	}
	return fmt.Sprintf("%v: switch %s: %s", ErrConfig, e.Switch, strings.Join(msgs, "; "))
}

func (e *ConfigError) Unwrap() error { return ErrConfig }

// Normalize validates c and returns it with the defaults filled in. It is the one validation
// of a switch's power settings: whoever stores a switch calls it. Errors are *ConfigError.
func (c Config) Normalize() (Config, error) {
	var probs []Problem
	bad := func(field, f string, a ...any) {
		probs = append(probs, Problem{Field: field, Msg: fmt.Sprintf(f, a...)})
	}
	if c.Name == "" {
		c.Name = c.Host
	}
	switch c.Driver = strings.ToLower(strings.TrimSpace(c.Driver)); c.Driver {
	case "", DriverSNMP:
		c.Driver = DriverSNMP
		c.normalizeSNMP(bad)
	case DriverCommand:
		c.normalizeCommand(bad)
	default:
		bad("Driver", "unknown driver %q (want %s)", c.Driver, strings.Join(Drivers(), " or "))
	}
	if c.Ports < 1 || c.Ports > MaxPorts {
		bad("Ports", "ports must be from 1 to %d (got %d)", MaxPorts, c.Ports)
	}
	if c.MasterPort < 0 || c.MasterPort > c.Ports {
		bad("MasterPort", "master port %d out of range 0..%d", c.MasterPort, c.Ports)
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	if c.Timeout < 0 {
		bad("Timeout", "timeout %s is negative", c.Timeout)
	}
	if c.Retries < 0 {
		bad("Retries", "retries %d is negative", c.Retries)
	}
	if len(probs) > 0 {
		name := c.Name
		if name == "" {
			name = "(unnamed)"
		}
		return c, &ConfigError{Switch: name, Problems: probs}
	}
	return c, nil
}

// normalizeSNMP checks and fills in the SNMP settings of c.
func (c *Config) normalizeSNMP(bad func(field, f string, a ...any)) {
	if c.Host = strings.TrimSpace(c.Host); c.Host == "" {
		bad("Host", "host is empty")
	} else {
		checkHost(c.Host, bad)
	}
	if c.Port == 0 {
		c.Port = DefaultPort
	}
	if c.Port < 1 || c.Port > 65535 {
		bad("Port", "port %d out of range 1..65535", c.Port)
	}
	switch strings.ToLower(c.Version) {
	case "", "2c", "v2c", "2":
		c.Version = "2c"
		if c.Community == "" {
			bad("Community", "SNMP v2c needs a community")
		}
	case "3", "v3":
		c.Version = "3"
		c.V3AuthProto = strings.ToUpper(c.V3AuthProto)
		c.V3PrivProto = strings.ToUpper(c.V3PrivProto)
		if c.V3User == "" {
			bad("V3User", "SNMP v3 needs a user")
		}
		if c.V3AuthPass != "" && c.V3AuthProto == "" {
			c.V3AuthProto = "SHA"
		}
		if c.V3PrivPass != "" && c.V3PrivProto == "" {
			c.V3PrivProto = "AES"
		}
		if c.V3AuthProto != "" && !authProtos[c.V3AuthProto] {
			bad("V3AuthProto", "unknown v3 auth protocol %q (want MD5, SHA, SHA224, SHA256, SHA384 or SHA512)", c.V3AuthProto)
		}
		if c.V3PrivProto != "" && !privProtos[c.V3PrivProto] {
			bad("V3PrivProto", "unknown v3 privacy protocol %q (want DES, AES, AES192, AES256, AES192C or AES256C)", c.V3PrivProto)
		}
		if c.V3AuthProto != "" && len(c.V3AuthPass) < 8 {
			bad("V3AuthPass", "v3 auth password must have at least 8 characters")
		}
		if c.V3PrivProto != "" && len(c.V3PrivPass) < 8 {
			bad("V3PrivPass", "v3 privacy password must have at least 8 characters")
		}
		if c.V3PrivProto != "" && c.V3AuthProto == "" {
			bad("V3PrivProto", "v3 privacy needs authentication too")
		}
	default:
		bad("Version", "unsupported SNMP version %q (want \"2c\" or \"3\")", c.Version)
	}
	if c.OID == "" {
		c.OID = PethPsePortAdminEnable
	}
	var err error
	if c.OID, err = normOID(c.OID); err != nil {
		bad("OID", "oid: %v", err)
	}
	if c.StatusOID == "" && err == nil {
		if rest, ok := strings.CutPrefix(c.OID, PethPsePortEntry+".3."); ok {
			c.StatusOID = PethPsePortEntry + ".6." + rest
		} else {
			bad("OID", "status oid is empty and cannot be derived from oid %s (not a POWER-ETHERNET-MIB pethPsePortAdminEnable column)", c.OID)
		}
	} else if c.StatusOID != "" {
		if c.StatusOID, err = normOID(c.StatusOID); err != nil {
			bad("StatusOID", "status oid: %v", err)
		}
	}
	// The index of the last port is an OID arc: at most 2^32-1.
	maxOffset := int64(math.MaxUint32) - int64(max(c.Ports, 1))
	switch {
	case c.OIDOffset < 0:
		bad("OIDOffset", "oid offset %d is negative", c.OIDOffset)
	case int64(c.OIDOffset) > maxOffset:
		bad("OIDOffset", "oid offset %d is too big (at most %d)", c.OIDOffset, maxOffset)
	}
}

func checkHost(host string, bad func(field, f string, a ...any)) {
	if net.ParseIP(host) == nil && !names.ValidDomain(strings.ToLower(host)) {
		bad("Host", "host %q is not an IP address or a host name", host)
	}
}

func normOID(s string) (string, error) {
	s = strings.TrimSpace(s)
	t := strings.TrimSuffix(strings.TrimPrefix(s, "."), ".")
	if t == "" {
		return "", fmt.Errorf("%q is not a numeric OID", s)
	}
	for _, arc := range strings.Split(t, ".") {
		if _, err := strconv.ParseUint(arc, 10, 32); err != nil {
			return "", fmt.Errorf("%q is not a numeric OID", s)
		}
	}
	return "." + t, nil
}
