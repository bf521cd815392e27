package store

import (
	"errors"
	"fmt"
	"net"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"gorm.io/gorm"

	"github.com/piseduce/piseduce/pkg/image"
	"github.com/piseduce/piseduce/pkg/names"
	"github.com/piseduce/piseduce/pkg/nodeid"
	"github.com/piseduce/piseduce/pkg/power/powerconf"
)

// The one validation of switches, nodes and environments. Every path that stores one (the web
// forms, the JSON API, import-cluster, env-register, discovery, a capture) goes through the
// Create… and Update… methods, which validate the record, normalize it, and refuse a
// duplicate naming both records; unique indexes (keys.go) are the last line of defence.
// Callers that want to check before slow work (measuring an image) call Validate themselves.

// ErrInvalid matches every *InvalidError with errors.Is.
var ErrInvalid = errors.New("store: invalid")

// InvalidError is a field of a switch, node or environment that cannot be stored. Field is the
// field's name in the admin API: name, ip, serial, port_count…
type InvalidError struct {
	Kind   string // switch, node or environment
	Name   string
	Field  string
	Reason string
}

func (e *InvalidError) Error() string {
	return fmt.Sprintf("%s %s: %s: %s", e.Kind, label(e.Name), e.Field, e.Reason)
}

func (e *InvalidError) Unwrap() error { return ErrInvalid }

// DuplicateError is a record refused because another one has the same name, address, MAC,
// serial or switch port. It matches ErrDuplicate with errors.Is.
type DuplicateError struct {
	Kind  string // switch, node or environment
	Name  string // the record refused
	Field string // name, ip, mac, serial, port
	What  string // what they share, e.g. "IP 10.0.0.12" or "port 3 of switch sw1"
	Other string // the record that has it
}

func (e *DuplicateError) Error() string {
	if e.Field == "name" {
		return fmt.Sprintf("%s %s exists already", e.Kind, label(e.Other))
	}
	return fmt.Sprintf("%s %s: %s is already %s %s's", e.Kind, label(e.Name), e.What, e.Kind, label(e.Other))
}

func (e *DuplicateError) Unwrap() error { return ErrDuplicate }

// label is a name as it appears in a message: quoted (escaped) unless it is a plain name.
func label(name string) string {
	if name != "" && recordNameRE.MatchString(name) {
		return name
	}
	return strconv.Quote(name)
}

var (
	// recordNameRE: switch and environment names end up in file names and command lines.
	// Letters may be any script's, and inner spaces are allowed: the original's "save as
	// environment" took any name, and named the image after it.
	recordNameRE = regexp.MustCompile(`^[\p{L}\p{N}](?:[\p{L}\p{N} ._+-]{0,61}[\p{L}\p{N}._+-])?$`)
	modelRE      = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9+._-]{0,63}$`)
	// CardDeviceRE: the disks a Pi boots its system from: an SD card (or eMMC), an NVMe
	// drive, a USB drive. Commands on the node name it as is.
	CardDeviceRE = regexp.MustCompile(`^/dev/(mmcblk[0-9]|nvme[0-9]n[0-9]|sd[a-z])$`)
	unixUserRE   = regexp.MustCompile(`^[a-z_][a-z0-9_-]{0,31}$`)
	shellRE      = regexp.MustCompile(`^[A-Za-z0-9/._-]{1,255}$`)
	sha256RE     = regexp.MustCompile(`^[0-9a-f]{64}$`)
)

// Environment limits.
const (
	MaxDescription = 4000
	MaxScriptTest  = 64 << 10
)

// EnvTypes are the environment types, as in the original's environment JSON.
func EnvTypes() []string { return []string{EnvDefault, EnvUser, EnvHidden} }

// ImageFormats are the values of Environment.ImageFormat ("": guessed from the file name).
func ImageFormats() []string {
	return []string{"", image.Raw, image.Gzip, image.XZ, image.Zstd, image.TarGz}
}

func oneOf(v string, set []string) bool {
	for _, s := range set {
		if v == s {
			return true
		}
	}
	return false
}

// checkName applies the one rule of names (names.Check) and then kind's own: a host name
// for a node, a plain file-name-like name for a switch or an environment.
func checkName(kind, name string) error {
	bad := func(reason string) error { return &InvalidError{Kind: kind, Name: name, Field: "name", Reason: reason} }
	var ne *names.Error
	if err := names.Check("it", name); errors.As(err, &ne) {
		return bad(strings.TrimPrefix(ne.Error(), "it "))
	}
	if kind == "node" {
		if err := nodeid.CheckHostName(name); err != nil {
			return bad(err.Error())
		}
		return nil
	}
	if !recordNameRE.MatchString(name) {
		return bad(fmt.Sprintf("%q is not a name: letters, digits, spaces and . _ + -, at most 63, starting with a letter or digit", name))
	}
	return nil
}

// powerFields maps the SNMP fields of powerconf.Config to the switch's.
func powerFields() map[string]string {
	return map[string]string{"Host": "ip", "Port": "snmp_port", "Version": "snmp_version", "Community": "community",
		"V3User": "v3_user", "V3AuthProto": "v3_auth_proto", "V3AuthPass": "v3_auth_pass", "V3PrivProto": "v3_priv_proto",
		"V3PrivPass": "v3_priv_pass", "OID": "oid", "StatusOID": "oid", "OIDOffset": "oid_offset",
		"MasterPort": "master_port", "Ports": "port_count", "Driver": "driver"}
}

// PowerConfig is the power driver's configuration of the switch.
func (sw *Switch) PowerConfig(timeout time.Duration, retries int) powerconf.Config {
	return powerconf.Config{Name: sw.Name, Host: sw.IP, Port: sw.SNMPPort, Version: sw.SNMPVersion,
		Community: sw.Community, V3User: sw.V3User, V3AuthProto: sw.V3AuthProto, V3AuthPass: sw.V3AuthPass,
		V3PrivProto: sw.V3PrivProto, V3PrivPass: sw.V3PrivPass, OID: sw.OID, OIDOffset: sw.OIDOffset,
		MasterPort: sw.MasterPort, Ports: sw.PortCount, Timeout: timeout, Retries: retries, Driver: sw.Driver, Settings: sw.Power}
}

// Validate checks sw and normalizes its SNMP settings as the power driver reads them (the
// version, the SNMPv3 protocols, UDP port 161 for 0). The power driver owns its settings:
// pkg/power validates them.
func (sw *Switch) Validate() error {
	if err := checkName("switch", sw.Name); err != nil {
		return err
	}
	sw.IP, sw.OID = strings.TrimSpace(sw.IP), strings.TrimSpace(sw.OID)
	c, err := sw.PowerConfig(0, 0).Normalize()
	var ce *powerconf.ConfigError
	if errors.As(err, &ce) {
		p := ce.Problems[0]
		field, ok := powerFields()[p.Field]
		if !ok {
			field = p.Field // a Settings path, "command.on": the switch's JSON keys already
		}
		return &InvalidError{Kind: "switch", Name: sw.Name, Field: field, Reason: p.Msg}
	}
	if err != nil {
		return err
	}
	for field, v := range map[string]string{"community": sw.Community, "v3_user": sw.V3User,
		"v3_auth_pass": sw.V3AuthPass, "v3_priv_pass": sw.V3PrivPass} {
		if len(v) > 255 || strings.IndexFunc(v, unicode.IsControl) >= 0 || !utf8.ValidString(v) {
			return &InvalidError{Kind: "switch", Name: sw.Name, Field: field, Reason: "must be one line of text, at most 255 bytes"}
		}
	}
	sw.Driver = c.Driver
	if c.Driver != powerconf.DriverSNMP {
		return nil
	}
	sw.SNMPPort, sw.SNMPVersion = c.Port, c.Version
	if c.Version == "3" {
		sw.V3AuthProto, sw.V3PrivProto = c.V3AuthProto, c.V3PrivProto
	}
	return nil
}

// Validate checks n, on switch sw, and normalizes its addresses and serial. A node may be
// registered without IP, MAC, serial or model (the original's discovery wrote such files);
// it cannot be deployed until its serial is known.
func (n *Node) Validate(sw *Switch) error {
	bad := func(field, format string, a ...any) error {
		return &InvalidError{Kind: "node", Name: n.Name, Field: field, Reason: fmt.Sprintf(format, a...)}
	}
	if err := checkName("node", n.Name); err != nil {
		return err
	}
	switch {
	case n.Port < 1 || n.Port > sw.PortCount:
		return bad("port", "%d is not a port of switch %s (1 to %d)", n.Port, label(sw.Name), sw.PortCount)
	case n.Port == sw.MasterPort:
		return bad("port", "%d is the pimaster's own port on switch %s", n.Port, label(sw.Name))
	}
	if n.IP = strings.TrimSpace(n.IP); n.IP != "" {
		a, err := nodeid.ParseIPv4(n.IP)
		if err != nil {
			return bad("ip", "%v", err)
		}
		n.IP = a.String()
	}
	if n.MAC = strings.TrimSpace(n.MAC); n.MAC != "" {
		m, err := nodeid.NormalizeMAC(n.MAC)
		if err != nil {
			return bad("mac", "%v", err)
		}
		n.MAC = m
	}
	if n.Serial = strings.ToLower(strings.TrimSpace(n.Serial)); n.Serial != "" {
		if err := nodeid.CheckSerial(n.Serial); err != nil {
			return bad("serial", "%v", err)
		}
	}
	if n.Model != "" && !modelRE.MatchString(n.Model) {
		return bad("model", "%q is not a model: letters, digits and + . _ - (like RPI4B or RPI3Bplus)", n.Model)
	}
	if n.PublicIP = strings.TrimSpace(n.PublicIP); n.PublicIP != "" && net.ParseIP(n.PublicIP) == nil && !names.ValidDomain(strings.ToLower(n.PublicIP)) {
		return bad("public_ip", "%q is not an IP address or a host name", n.PublicIP)
	}
	// Below 1024 are the pimaster's own services (its SSH, nginx's HTTP): nginx could not
	// publish a node there.
	if n.PublicPort != 0 && (n.PublicPort < MinPublicPort || n.PublicPort > 65535) {
		return bad("public_port", "%d is not a public port (%d to 65535, 0 for none)", n.PublicPort, MinPublicPort)
	}
	if n.CardDevice = strings.TrimSpace(n.CardDevice); n.CardDevice == "" {
		n.CardDevice = DefaultCardDevice
	} else if !CardDeviceRE.MatchString(n.CardDevice) {
		return bad("card_device", "%q is not a card device: /dev/mmcblk0 (SD card), /dev/nvme0n1 (NVMe), /dev/sda (USB)", n.CardDevice)
	}
	return nil
}

// MinPublicPort is the lowest public port a node may have.
const MinPublicPort = 1024

// DefaultCardDevice is a Pi's SD card.
const DefaultCardDevice = "/dev/mmcblk0"

// CardPartition names partition n of the card device dev: /dev/mmcblk0p2, /dev/nvme0n1p2, /dev/sda2.
func CardPartition(dev string, n int) string {
	if dev != "" && dev[len(dev)-1] >= '0' && dev[len(dev)-1] <= '9' {
		return fmt.Sprintf("%sp%d", dev, n)
	}
	return fmt.Sprintf("%s%d", dev, n)
}

// Validate checks e and normalizes its checksum; an empty type, SSH user or shell gets the
// column's default. An environment without an image file is for boot tests only: it is never
// offered for deployment.
func (e *Environment) Validate() error {
	bad := func(field, format string, a ...any) error {
		return &InvalidError{Kind: "environment", Name: e.Name, Field: field, Reason: fmt.Sprintf(format, a...)}
	}
	if err := checkName("environment", e.Name); err != nil {
		return err
	}
	for _, d := range []struct {
		v   *string
		def string
	}{{&e.Type, EnvDefault}, {&e.SSHUser, "root"}, {&e.Shell, "bash"}, {&e.OSFamily, image.FamilyPlain}} {
		if *d.v == "" {
			*d.v = d.def
		}
	}
	e.ImageSHA256 = strings.ToLower(strings.TrimSpace(e.ImageSHA256))
	switch {
	case !oneOf(e.Type, EnvTypes()):
		return bad("type", "%q is not one of default, user, hidden", e.Type)
	case len(e.Description) > MaxDescription || !utf8.ValidString(e.Description):
		return bad("description", "must be UTF-8 text of at most %d bytes", MaxDescription)
	case e.ImageName != "" && image.CheckName(e.ImageName) != nil:
		return bad("image_name", "%v", image.CheckName(e.ImageName))
	case e.ImageSize < 0:
		return bad("image_size", "%d is negative", e.ImageSize)
	case e.SectorStart < 0:
		return bad("sector_start", "%d is negative", e.SectorStart)
	case !oneOf(e.ImageFormat, ImageFormats()):
		return bad("image_format", "%q is not one of raw, gz, xz, zst, tar.gz", e.ImageFormat)
	case e.ImageSHA256 != "" && !sha256RE.MatchString(e.ImageSHA256):
		return bad("image_sha256", "must be 64 hexadecimal digits")
	case !oneOf(e.DecompressOn, []string{"", "node", "pimaster"}):
		return bad("decompress_on", "%q is not node or pimaster", e.DecompressOn)
	case !unixUserRE.MatchString(e.SSHUser):
		return bad("ssh_user", "%q is not a Unix user name", e.SSHUser)
	case !oneOf(e.OSFamily, image.Families()):
		return bad("os_family", "%q is not one of %s", e.OSFamily, strings.Join(image.Families(), ", "))
	case !shellRE.MatchString(e.Shell):
		return bad("shell", "%q must be a program name or path, like bash or /bin/sh", e.Shell)
	case len(e.ScriptTest) > MaxScriptTest:
		return bad("script_test", "at most %d KiB", MaxScriptTest>>10)
	}
	return nil
}

// Deployable reports whether e has an image to deploy (not a boot-test-only environment).
func (e *Environment) Deployable() bool { return e.ImageName != "" }

// otherNamed returns the name of a row of model other than id where cond holds, or "".
func otherNamed(tx *gorm.DB, model any, id uint, cond string, args ...any) (string, error) {
	var found []string
	err := tx.Model(model).Where("id <> ?", id).Where(cond, args...).Limit(1).Pluck("name", &found).Error
	if err != nil || len(found) == 0 {
		return "", err
	}
	return found[0], nil
}

// check is one uniqueness rule: the rows where cond holds must be none but the record itself.
type check struct {
	field, what, cond string
	args              []any
}

// nameCheck: names are unique whatever their case (as host names, and as on MariaDB).
func nameCheck(name string) check {
	return check{"name", "the name", "LOWER(name) = ?", []any{strings.ToLower(name)}}
}

// firstDuplicate runs checks in order and returns the first one broken.
func firstDuplicate(tx *gorm.DB, model any, kind, name string, id uint, checks []check) error {
	for _, c := range checks {
		other, err := otherNamed(tx, model, id, c.cond, c.args...)
		if err != nil {
			return fmt.Errorf("store: unable to check %s %s: %w", kind, label(name), err)
		}
		if other != "" {
			return &DuplicateError{Kind: kind, Name: name, Field: c.field, What: c.what, Other: other}
		}
	}
	return nil
}

// checkSwitch validates sw and refuses a duplicate name or address; a switch that now has
// fewer ports must still have every node of its on one of them.
func checkSwitch(tx *gorm.DB, sw *Switch) error {
	if err := sw.Validate(); err != nil {
		return err
	}
	checks := []check{nameCheck(sw.Name)}
	if sw.Driver == powerconf.DriverSNMP {
		checks = append(checks, check{"ip", fmt.Sprintf("the address %s, SNMP port %d,", sw.IP, sw.SNMPPort),
			"LOWER(ip) = ? AND snmp_port = ? AND driver = ?", []any{strings.ToLower(sw.IP), sw.SNMPPort, powerconf.DriverSNMP}})
	}
	err := firstDuplicate(tx, &Switch{}, "switch", sw.Name, sw.ID, checks)
	if err != nil || sw.ID == 0 {
		return err
	}
	var out []Node
	if err := tx.Where("switch_id = ? AND (port > ? OR port = ?)", sw.ID, sw.PortCount, sw.MasterPort).Limit(1).Find(&out).Error; err != nil {
		return err
	}
	if len(out) > 0 {
		field := "port_count"
		if out[0].Port == sw.MasterPort {
			field = "master_port"
		}
		return &InvalidError{Kind: "switch", Name: sw.Name, Field: field,
			Reason: fmt.Sprintf("node %s is on port %d: move or delete it first", label(out[0].Name), out[0].Port)}
	}
	return nil
}

// checkNode validates n on its switch and refuses a duplicate name, IP, MAC, serial, port or
// public port.
func checkNode(tx *gorm.DB, n *Node) error {
	var sw Switch
	if err := tx.First(&sw, n.SwitchID).Error; err != nil {
		if errors.Is(err, gorm.ErrRecordNotFound) {
			return &InvalidError{Kind: "node", Name: n.Name, Field: "switch_id", Reason: fmt.Sprintf("there is no switch with id %d", n.SwitchID)}
		}
		return err
	}
	if err := n.Validate(&sw); err != nil {
		return err
	}
	checks := []check{nameCheck(n.Name)}
	for _, c := range []struct{ field, what, v string }{{"ip", "IP", n.IP}, {"mac", "MAC", n.MAC}, {"serial", "serial", n.Serial}} {
		if c.v != "" {
			checks = append(checks, check{c.field, c.what + " " + c.v, c.field + " = ?", []any{c.v}})
		}
	}
	checks = append(checks, check{"port", fmt.Sprintf("port %d of switch %s", n.Port, label(sw.Name)),
		"switch_id = ? AND port = ?", []any{n.SwitchID, n.Port}})
	if n.PublicPort != 0 {
		checks = append(checks, check{"public_port", fmt.Sprintf("public port %d", n.PublicPort), "public_port = ?", []any{n.PublicPort}})
	}
	return firstDuplicate(tx, &Node{}, "node", n.Name, n.ID, checks)
}

// checkEnvironment validates e and refuses a duplicate name.
func checkEnvironment(tx *gorm.DB, e *Environment) error {
	if err := e.Validate(); err != nil {
		return err
	}
	return firstDuplicate(tx, &Environment{}, "environment", e.Name, e.ID, []check{nameCheck(e.Name)})
}
