package store_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/piseduce/piseduce/pkg/power/powerconf"
	"github.com/piseduce/piseduce/pkg/store"
	"github.com/piseduce/piseduce/pkg/store/storetest"
)

func okSwitch() store.Switch {
	return store.Switch{Name: "sw1", IP: "192.0.2.10", Community: "private", PortCount: 8, MasterPort: 8,
		OID: "1.3.6.1.2.1.105.1.1.1.3.1", OIDOffset: 48}
}

// TestValidate: the one validation, field by field, with the field named and the value
// normalized as it is stored.
func TestValidate(t *testing.T) {
	sw := okSwitch()
	if err := sw.Validate(); err != nil {
		t.Fatal(err)
	}
	if sw.SNMPPort != 161 || sw.SNMPVersion != "2c" {
		t.Errorf("switch not normalized: %+v", sw)
	}
	v3 := okSwitch()
	v3.SNMPVersion, v3.V3User, v3.V3AuthPass, v3.V3PrivProto, v3.V3PrivPass = "v3", "admin", "authpass1", "aes256", "privpass1"
	if err := v3.Validate(); err != nil || v3.SNMPVersion != "3" || v3.V3AuthProto != "SHA" || v3.V3PrivProto != "AES256" {
		t.Errorf("SNMPv3 switch: %v %+v", err, v3)
	}
	switches := []struct {
		change      func(*store.Switch)
		field, says string
	}{
		{func(s *store.Switch) { s.Name = "a/b" }, "name", "is not a name"},
		{func(s *store.Switch) { s.Name = "sw\u202e1" }, "name", "bidirectional control character (U+202E)"},
		{func(s *store.Switch) { s.IP = "10.0.0.1; reboot" }, "ip", "is not an IP address or a host name"},
		{func(s *store.Switch) { s.PortCount = 1025 }, "port_count", "ports must be from 1 to 1024"},
		{func(s *store.Switch) { s.PortCount = 0 }, "port_count", "ports must be from 1 to 1024"},
		{func(s *store.Switch) { s.MasterPort = 9 }, "master_port", "master port 9 out of range 0..8"},
		{func(s *store.Switch) { s.OID = "1.3.6.x" }, "oid", "is not a numeric OID"},
		{func(s *store.Switch) { s.OID = "1.3.6.1.4.1.9.9.402.1.2.1.1.1" }, "oid", "status oid is empty and cannot be derived"},
		{func(s *store.Switch) { s.OIDOffset = -1 }, "oid_offset", "negative"},
		{func(s *store.Switch) { s.SNMPPort = 70000 }, "snmp_port", "out of range"},
		{func(s *store.Switch) { s.Community = "" }, "community", "needs a community"},
		{func(s *store.Switch) { s.Community = "a\nb" }, "community", "one line of text"},
		// What the web form once accepted and the power driver refused.
		{func(s *store.Switch) { s.SNMPVersion, s.V3User, s.V3AuthPass = "3", "admin", "short" }, "v3_auth_pass", "at least 8 characters"},
		{func(s *store.Switch) {
			s.SNMPVersion, s.V3User, s.V3AuthProto, s.V3AuthPass = "3", "admin", "SHA999", "longenough"
		}, "v3_auth_proto", "unknown v3 auth protocol"},
		{func(s *store.Switch) { s.SNMPVersion, s.V3User, s.V3PrivPass = "3", "admin", "longenough" }, "v3_priv_proto", "privacy needs authentication"},
		{func(s *store.Switch) { s.SNMPVersion = "3" }, "v3_user", "needs a user"},
		{func(s *store.Switch) { s.SNMPVersion = "1" }, "snmp_version", "unsupported SNMP version"},
	}
	for _, tc := range switches {
		s := okSwitch()
		s.Community = "s3cret-community"
		tc.change(&s)
		err := s.Validate()
		var ie *store.InvalidError
		if !errors.As(err, &ie) || ie.Field != tc.field || !strings.Contains(ie.Reason, tc.says) || !errors.Is(err, store.ErrInvalid) {
			t.Errorf("switch %+v: %v, want field %s saying %q", s, err, tc.field, tc.says)
		}
		if err != nil && strings.Contains(err.Error(), "s3cret") {
			t.Errorf("a secret in the error: %v", err)
		}
	}

	n := store.Node{Name: "node-1", Port: 1, IP: " 10.0.0.11", MAC: "B8-27-EB-00-00-01", Serial: "A67C64B1", Model: "RPI4B",
		PublicIP: "pi1.example.org", PublicPort: 22001}
	if err := n.Validate(&sw); err != nil {
		t.Fatal(err)
	}
	if n.IP != "10.0.0.11" || n.MAC != "b8:27:eb:00:00:01" || n.Serial != "a67c64b1" || n.CardDevice != store.DefaultCardDevice {
		t.Errorf("node not normalized: %+v", n)
	}
	if err := (&store.Node{Name: "node-2", Port: 2}).Validate(&sw); err != nil {
		t.Errorf("a node without IP, MAC, serial and model (the original's discovery wrote such): %v", err)
	}
	nodes := []struct {
		change      func(*store.Node)
		field, says string
	}{
		{func(n *store.Node) { n.Name = "node_1" }, "name", "is not a host name"},
		{func(n *store.Node) { n.Name = "node-1.lab" }, "name", "is not a host name"},
		{func(n *store.Node) { n.Name = "node\u200b1" }, "name", "zero-width character (U+200B)"},
		{func(n *store.Node) { n.Name = "node-\xff" }, "name", "is not valid UTF-8"},
		{func(n *store.Node) { n.Port = 9 }, "port", "9 is not a port of switch sw1 (1 to 8)"},
		{func(n *store.Node) { n.Port = 8 }, "port", "the pimaster's own port"},
		{func(n *store.Node) { n.IP = "10.0.0.300" }, "ip", "is not an IPv4 address"},
		{func(n *store.Node) { n.IP = "fe80::1" }, "ip", "is not an IPv4 address"},
		{func(n *store.Node) { n.MAC = "b8:27:eb:00:00" }, "mac", "is not a MAC address"},
		{func(n *store.Node) { n.MAC = "01:00:5e:00:00:01" }, "mac", "not the address of one network card"},
		{func(n *store.Node) { n.MAC = "b8:27:eb:00:00:01,node-9,10.0.0.9" }, "mac", "is not a MAC address"},
		// netboot names a TFTP folder after the last 8 hex digits, nothing else.
		{func(n *store.Node) { n.Serial = "10000000a67c64b1" }, "serial", "the last 8 hex digits"},
		{func(n *store.Node) { n.Serial = "a67c64b" }, "serial", "is not a node serial"},
		{func(n *store.Node) { n.Serial = "../../etc" }, "serial", "is not a node serial"},
		{func(n *store.Node) { n.Model = "RPI 4" }, "model", "is not a model"},
		{func(n *store.Node) { n.PublicIP = "pi1 example" }, "public_ip", "is not an IP address or a host name"},
		{func(n *store.Node) { n.PublicPort = 65536 }, "public_port", "is not a public port (1024 to 65535, 0 for none)"},
		{func(n *store.Node) { n.PublicPort = 22 }, "public_port", "is not a public port"},
		{func(n *store.Node) { n.PublicPort = -1 }, "public_port", "is not a public port"},
		// Named as is in the commands run on the node: a disk, nothing else.
		{func(n *store.Node) { n.CardDevice = "/dev/mmcblk0p2" }, "card_device", "is not a card device"},
		{func(n *store.Node) { n.CardDevice = "/dev/mmcblk0;reboot" }, "card_device", "is not a card device"},
		{func(n *store.Node) { n.CardDevice = "mmcblk0" }, "card_device", "is not a card device"},
		{func(n *store.Node) { n.CardDevice = "/dev/../dev/sda" }, "card_device", "is not a card device"},
	}
	for _, tc := range nodes {
		n := store.Node{Name: "node-1", Port: 1}
		tc.change(&n)
		err := n.Validate(&sw)
		var ie *store.InvalidError
		if !errors.As(err, &ie) || ie.Field != tc.field || !strings.Contains(ie.Reason, tc.says) {
			t.Errorf("node %+v: %v, want field %s saying %q", n, err, tc.field, tc.says)
		}
	}

	e := store.Environment{Name: "my env", ImageName: "my env.img.gz", ImageSHA256: strings.Repeat("AB", 32)}
	if err := e.Validate(); err != nil {
		t.Fatal(err)
	}
	if e.Type != store.EnvDefault || e.SSHUser != "root" || e.Shell != "bash" || e.ImageSHA256 != strings.Repeat("ab", 32) {
		t.Errorf("environment not normalized: %+v", e)
	}
	if err := (&store.Environment{Name: "boot_test"}).Validate(); err != nil {
		t.Errorf("an environment without an image (the original's boot_test): %v", err)
	}
	envs := []struct {
		change      func(*store.Environment)
		field, says string
	}{
		{func(e *store.Environment) { e.Name = "" }, "name", "is not a name"},
		{func(e *store.Environment) { e.Name = "env " }, "name", "is not a name"},
		{func(e *store.Environment) { e.Name = "a\u2066b" }, "name", "bidirectional control character"},
		{func(e *store.Environment) { e.Type = "public" }, "type", "is not one of default, user, hidden"},
		{func(e *store.Environment) { e.ImageName = "../../etc/shadow" }, "image_name", "is not a plain file name"},
		{func(e *store.Environment) { e.ImageName = "sub/x.img" }, "image_name", "is not a plain file name"},
		{func(e *store.Environment) { e.ImageName = ".hidden.img" }, "image_name", "is not a plain file name"},
		{func(e *store.Environment) { e.ImageSize = -1 }, "image_size", "negative"},
		{func(e *store.Environment) { e.ImageFormat = "zip" }, "image_format", "is not one of"},
		{func(e *store.Environment) { e.ImageSHA256 = "abc" }, "image_sha256", "64 hexadecimal digits"},
		{func(e *store.Environment) { e.DecompressOn = "cloud" }, "decompress_on", "is not node or pimaster"},
		{func(e *store.Environment) { e.SSHUser = "pi; rm" }, "ssh_user", "is not a Unix user name"},
		{func(e *store.Environment) { e.Shell = "bash -c id" }, "shell", "must be a program name or path"},
		{func(e *store.Environment) { e.Description = strings.Repeat("x", 4001) }, "description", "at most 4000"},
		{func(e *store.Environment) { e.ScriptTest = strings.Repeat("x", 65<<10) }, "script_test", "at most 64 KiB"},
	}
	for _, tc := range envs {
		e := store.Environment{Name: "env", ImageName: "x.img"}
		tc.change(&e)
		err := e.Validate()
		var ie *store.InvalidError
		if !errors.As(err, &ie) || ie.Field != tc.field || !strings.Contains(ie.Reason, tc.says) {
			t.Errorf("environment %.80q: %v, want field %s saying %q", fmt.Sprintf("%+v", e), err, tc.field, tc.says)
		}
	}
}

// TestDuplicatesRefused: every path stores through Create…/Update…, which refuse a duplicate
// naming both records; empty IPs, MACs and serials never collide; the database's unique
// indexes refuse what gets past the checks.
func TestDuplicatesRefused(t *testing.T) {
	forEachDialect(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		sw := okSwitch()
		check(t, s.CreateSwitch(ctx, &sw))
		n1 := store.Node{Name: "node-1", SwitchID: sw.ID, Port: 1, IP: "10.0.0.11", MAC: "b8:27:eb:00:00:01", Serial: "a67c64b1", PublicPort: 22001}
		check(t, s.CreateNode(ctx, &n1))
		for _, tc := range []struct {
			n    store.Node
			want string
		}{
			{store.Node{Name: "node-2", Port: 2, IP: "10.0.0.11"}, "node node-2: IP 10.0.0.11 is already node node-1's"},
			{store.Node{Name: "node-2", Port: 2, MAC: "B8:27:EB:00:00:01"}, "node node-2: MAC b8:27:eb:00:00:01 is already node node-1's"},
			{store.Node{Name: "node-2", Port: 2, Serial: "A67C64B1"}, "node node-2: serial a67c64b1 is already node node-1's"},
			{store.Node{Name: "node-2", Port: 1}, "node node-2: port 1 of switch sw1 is already node node-1's"},
			{store.Node{Name: "node-2", Port: 2, PublicPort: 22001}, "node node-2: public port 22001 is already node node-1's"},
			{store.Node{Name: "NODE-1", Port: 2}, "node node-1 exists already"},
		} {
			n := tc.n
			n.SwitchID = sw.ID
			err := s.CreateNode(ctx, &n)
			var de *store.DuplicateError
			if !errors.As(err, &de) || err.Error() != tc.want || !errors.Is(err, store.ErrDuplicate) {
				t.Errorf("create %+v: %v, want %q", tc.n, err, tc.want)
			}
		}
		// Unknown addresses, serials and public ports (0) do not collide.
		n2 := store.Node{Name: "node-2", SwitchID: sw.ID, Port: 2}
		n3 := store.Node{Name: "node-3", SwitchID: sw.ID, Port: 3}
		check(t, s.CreateNode(ctx, &n2))
		check(t, s.CreateNode(ctx, &n3))
		// An update is checked against the others, not against itself.
		check(t, s.UpdateNode(ctx, &n1))
		n3.IP = "10.0.0.11"
		if err := s.UpdateNode(ctx, &n3); err == nil || err.Error() != "node node-3: IP 10.0.0.11 is already node node-1's" {
			t.Errorf("update onto node-1's IP: %v", err)
		}
		// Switches: name (whatever its case), and address with SNMP port (0 is 161).
		sw2 := okSwitch()
		sw2.Name, sw2.SNMPPort = "sw2", 161
		if err := s.CreateSwitch(ctx, &sw2); err == nil || err.Error() != "switch sw2: the address 192.0.2.10, SNMP port 161, is already switch sw1's" {
			t.Errorf("second switch at the same address: %v", err)
		}
		sw2.Name, sw2.IP = "SW1", "192.0.2.11"
		if err := s.CreateSwitch(ctx, &sw2); err == nil || err.Error() != "switch sw1 exists already" {
			t.Errorf("switch name in other case: %v", err)
		}
		sw2.Name, sw2.SNMPPort = "sw2", 1161
		sw2.IP = "192.0.2.10"
		check(t, s.CreateSwitch(ctx, &sw2)) // same address, another SNMP port: another agent
		// Command switches have no SNMP agent: two USB hubs on one host may share its address.
		for _, name := range []string{"hub1", "hub2"} {
			argv := []string{"/usr/sbin/uhubctl", "-p", "{port}"}
			hub := store.Switch{Name: name, IP: "192.0.2.10", SNMPPort: 161, PortCount: 4, Driver: powerconf.DriverCommand,
				Power: powerconf.Settings{Command: powerconf.Command{On: argv, Off: argv, Status: argv}}}
			check(t, s.CreateSwitch(ctx, &hub))
		}
		// The database itself keys SNMP switches' addresses.
		dup := okSwitch()
		dup.Name, dup.SNMPPort, dup.SNMPVersion, dup.Driver = "sw9", 161, "2c", powerconf.DriverSNMP
		if err := storetest.DB(s).Create(&dup).Error; err == nil {
			t.Error("the database took a second SNMP switch at 192.0.2.10:161")
		}
		e := store.Environment{Name: "raspios", ImageName: "r.img"}
		check(t, s.CreateEnvironment(ctx, &e))
		if err := s.CreateEnvironment(ctx, &store.Environment{Name: "RaspiOS", ImageName: "r2.img"}); err == nil || err.Error() != "environment raspios exists already" {
			t.Errorf("environment name in other case: %v", err)
		}

		// The last line of defence: rows written past the checks.
		if err := storetest.DB(s).Create(&store.Node{Name: "node-9", SwitchID: sw.ID, Port: 5, IP: "10.0.0.11"}).Error; err == nil {
			t.Error("the database took a second node with IP 10.0.0.11")
		}
		if err := storetest.DB(s).Create(&store.Node{Name: "node-9", SwitchID: sw.ID, Port: 5, MAC: "b8:27:eb:00:00:01"}).Error; err == nil {
			t.Error("the database took a second node with one MAC")
		}
		if err := storetest.DB(s).Create(&store.Node{Name: "node-9", SwitchID: sw.ID, Port: 5, Serial: "a67c64b1"}).Error; err == nil {
			t.Error("the database took a second node with one serial")
		}
		if err := storetest.DB(s).Create(&store.Switch{Name: "sw9", IP: "192.0.2.10", SNMPPort: 161, OID: "1.3", PortCount: 1}).Error; err == nil {
			t.Error("the database took a second switch at one address")
		}
		for i := 5; i <= 6; i++ {
			check(t, storetest.DB(s).Create(&store.Node{Name: fmt.Sprintf("node-%d", i), SwitchID: sw.ID, Port: i}).Error)
		}
	})
}

// TestSwitchKeepsItsNodes: a switch cannot lose the port one of its nodes is on.
func TestSwitchKeepsItsNodes(t *testing.T) {
	forEachDialect(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		sw := okSwitch()
		check(t, s.CreateSwitch(ctx, &sw))
		check(t, s.CreateNode(ctx, &store.Node{Name: "node-7", SwitchID: sw.ID, Port: 7}))
		sw.PortCount, sw.MasterPort = 6, 0
		if err := s.UpdateSwitch(ctx, &sw); err == nil || err.Error() != "switch sw1: port_count: node node-7 is on port 7: move or delete it first" {
			t.Errorf("fewer ports: %v", err)
		}
		sw.PortCount, sw.MasterPort = 8, 7
		if err := s.UpdateSwitch(ctx, &sw); err == nil || !strings.Contains(err.Error(), "master_port: node node-7 is on port 7") {
			t.Errorf("master port onto a node: %v", err)
		}
	})
}

// TestOpenReportsDuplicates: a database that already holds duplicates (written before this
// version) opens, says which rows to fix, and gets its unique index once they are fixed.
func TestOpenReportsDuplicates(t *testing.T) {
	for _, dialect := range storetest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			ctx := context.Background()
			url := storetest.URL(t, dialect)
			s, err := store.Open(ctx, url)
			check(t, err)
			sw := okSwitch()
			check(t, s.CreateSwitch(ctx, &sw))
			drop := "DROP INDEX uq_nodes_ip"
			if dialect == "mysql" {
				drop += " ON nodes"
			}
			check(t, storetest.DB(s).Exec(drop).Error)
			check(t, storetest.DB(s).Create(&store.Node{Name: "node-a", SwitchID: sw.ID, Port: 1, IP: "10.0.0.5"}).Error)
			check(t, storetest.DB(s).Create(&store.Node{Name: "node-b", SwitchID: sw.ID, Port: 2, IP: "10.0.0.5"}).Error)
			s.Close()

			s, err = store.Open(ctx, url)
			check(t, err)
			if len(s.Warnings) != 1 || !strings.Contains(s.Warnings[0], "nodes node-a and node-b share ip 10.0.0.5") {
				t.Fatalf("warnings: %q", s.Warnings)
			}
			check(t, storetest.DB(s).Exec("UPDATE nodes SET ip = '10.0.0.6' WHERE name = 'node-b'").Error)
			s.Close()

			s, err = store.Open(ctx, url)
			check(t, err)
			defer s.Close()
			if len(s.Warnings) != 0 {
				t.Fatalf("warnings after the fix: %q", s.Warnings)
			}
			if err := storetest.DB(s).Create(&store.Node{Name: "node-c", SwitchID: sw.ID, Port: 3, IP: "10.0.0.5"}).Error; err == nil {
				t.Fatal("no unique index on the IP after the fix")
			}
		})
	}
}

// TestWhatCannotBeDeployed: a node whose serial is unknown cannot be deployed or boot-tested;
// an environment without an image is never offered nor deployed; the original's user
// environments (no owner) are offered to everyone, as there.
func TestWhatCannotBeDeployed(t *testing.T) {
	forEachDialect(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		c := seedWeb(t, s, 2, 0)
		noSerial := store.Node{Name: "node-3", SwitchID: c.sw.ID, Port: 3}
		check(t, s.CreateNode(ctx, &noSerial))
		bootTest := store.Environment{Name: "boot_test"}
		check(t, s.CreateEnvironment(ctx, &bootTest))
		shared := store.Environment{Name: "saved by someone", Type: store.EnvUser, ImageName: "saved by someone.img.gz"}
		check(t, s.CreateEnvironment(ctx, &shared))
		others := store.Environment{Name: "bobs", Type: store.EnvUser, OwnerID: c.bob.ID, ImageName: "bobs.img"}
		check(t, s.CreateEnvironment(ctx, &others))

		es, err := s.VisibleEnvironments(ctx, c.alice.ID, false)
		check(t, err)
		var got []string
		for _, e := range es {
			got = append(got, e.Name)
		}
		if strings.Join(got, ",") != "raspios,saved by someone" {
			t.Errorf("alice is offered %q", got)
		}
		if es, _ := s.VisibleEnvironments(ctx, c.alice.ID, true); len(es) != 3 {
			t.Errorf("an admin is offered %d environments, want 3 (never boot_test)", len(es))
		}

		now := time.Now().UTC()
		r, err := s.CreateReservation(ctx, store.ReservationRequest{UserID: c.alice.ID, NodeIDs: []uint{c.nodes[0].ID, noSerial.ID},
			StartsAt: now, EndsAt: now.Add(time.Hour)}, now)
		check(t, err)
		_, err = s.DeployReservation(ctx, r.ID, store.Deployment{EnvironmentID: c.env.ID}, now)
		var ce *store.ConflictError
		if !errors.As(err, &ce) || strings.Join(ce.Nodes, ",") != "node-3" || !strings.Contains(ce.Reason, "serial not known yet") {
			t.Errorf("deploying a node without serial: %v", err)
		}
		r2, err := s.CreateReservation(ctx, store.ReservationRequest{UserID: c.alice.ID, NodeIDs: []uint{c.nodes[1].ID},
			StartsAt: now, EndsAt: now.Add(time.Hour)}, now)
		check(t, err)
		if _, err := s.DeployReservation(ctx, r2.ID, store.Deployment{EnvironmentID: bootTest.ID}, now); !errors.As(err, &ce) ||
			!strings.Contains(ce.Reason, "environment boot_test has no image") {
			t.Errorf("deploying boot_test: %v", err)
		}
		ds, err := s.DeployReservation(ctx, r2.ID, store.Deployment{EnvironmentID: shared.ID}, now)
		check(t, err)
		// Once the serial is known, the node can be deployed.
		noSerial.Serial = "a0b1c2d3"
		check(t, s.UpdateNode(ctx, &noSerial))
		if _, err := s.DeployReservation(ctx, r.ID, store.Deployment{EnvironmentID: c.env.ID}, now); err != nil {
			t.Errorf("deploying once the serial is known: %v", err)
		}
		// Asking to redeploy with an environment that lost its image is refused too.
		shared.ImageName = ""
		check(t, s.UpdateEnvironment(ctx, &shared))
		if err := s.RequestProcess(ctx, ds[0].ID, "deploy"); !errors.As(err, &ce) {
			t.Errorf("redeploying an environment without image: %v", err)
		}
	})
}

// TestNamesSortByNumber: node-10 comes after node-9 wherever a list is ordered by name.
func TestNamesSortByNumber(t *testing.T) {
	forEachDialect(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		sw := okSwitch()
		sw.PortCount, sw.MasterPort = 16, 0
		check(t, s.CreateSwitch(ctx, &sw))
		for _, name := range []string{"sw10", "sw9"} {
			o := okSwitch()
			o.Name, o.IP = name, "192.0.2.1"+name[2:]
			check(t, s.CreateSwitch(ctx, &o))
		}
		user := store.User{Email: "u@example.com", PasswordHash: "x", Authorized: true}
		check(t, s.CreateUser(ctx, &user))
		var ids []uint
		for i, p := range []int{11, 2, 10, 1, 9} { // created out of order
			n := store.Node{Name: fmt.Sprintf("node-%d", p), SwitchID: sw.ID, Port: i + 1, Serial: fmt.Sprintf("%08x", p)}
			check(t, s.CreateNode(ctx, &n))
			ids = append(ids, n.ID)
		}
		for _, name := range []string{"env-10", "env-9"} {
			check(t, s.CreateEnvironment(ctx, &store.Environment{Name: name, ImageName: name + ".img"}))
		}
		now := time.Now().UTC()
		r, err := s.CreateReservation(ctx, store.ReservationRequest{UserID: user.ID, NodeIDs: ids, StartsAt: now, EndsAt: now.Add(time.Hour)}, now)
		check(t, err)
		es, _ := s.Environments(ctx)
		_, err = s.DeployReservation(ctx, r.ID, store.Deployment{EnvironmentID: es[0].ID}, now)
		check(t, err)

		want := "node-1,node-2,node-9,node-10,node-11"
		names := func(ns []store.Node) string {
			var out []string
			for _, n := range ns {
				out = append(out, n.Name)
			}
			return strings.Join(out, ",")
		}
		r, _ = s.Reservation(ctx, r.ID)
		if got := names(r.Nodes); got != want {
			t.Errorf("reservation: %s", got)
		}
		rs, _ := s.UserReservations(ctx, user.ID, now.Add(-time.Hour))
		if got := names(rs[0].Nodes); got != want {
			t.Errorf("user reservations: %s", got)
		}
		ds, _ := s.Deployments(ctx, store.DeploymentFilter{UserID: user.ID})
		var dn []store.Node
		for _, d := range ds {
			dn = append(dn, d.Node)
		}
		if got := names(dn); got != want {
			t.Errorf("deployments: %s", got)
		}
		sws, _ := s.Switches(ctx)
		if sws[0].Name != "sw1" || sws[1].Name != "sw9" || sws[2].Name != "sw10" {
			t.Errorf("switches: %s, %s, %s", sws[0].Name, sws[1].Name, sws[2].Name)
		}
		if es[0].Name != "env-9" || es[1].Name != "env-10" {
			t.Errorf("environments: %s, %s", es[0].Name, es[1].Name)
		}
	})
}

func TestCardDevices(t *testing.T) {
	sw := okSwitch()
	for dev, p2 := range map[string]string{"/dev/mmcblk0": "/dev/mmcblk0p2", "/dev/nvme0n1": "/dev/nvme0n1p2", "/dev/sda": "/dev/sda2"} {
		n := store.Node{Name: "node-1", Port: 1, CardDevice: " " + dev}
		if err := n.Validate(&sw); err != nil || n.CardDevice != dev {
			t.Errorf("card device %q: %v, %q", dev, err, n.CardDevice)
		}
		if got := store.CardPartition(dev, 2); got != p2 {
			t.Errorf("CardPartition(%s, 2) = %s, want %s", dev, got, p2)
		}
	}
}
