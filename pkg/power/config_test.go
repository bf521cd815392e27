package power_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/piseduce/piseduce/pkg/power"
	"github.com/piseduce/piseduce/pkg/power/powerconf"
)

func TestConfigStringRedactsSecrets(t *testing.T) {
	c := powerconf.Config{Name: "sw1", Host: "10.0.0.2", Community: "c0mmunity-XYZ", Version: "3", V3User: "admin",
		V3AuthPass: "authpass-XYZ", V3PrivPass: "privpass-XYZ", Ports: 8}
	p, err := power.NewSNMP(c)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{
		c.String(), fmt.Sprint(c), fmt.Sprintf("%v", c), fmt.Sprintf("%+v", c), fmt.Sprintf("%#v", c),
		fmt.Sprintf("%s", &c), fmt.Sprintf("%v", []powerconf.Config{c}), fmt.Sprintf("%+v", p.Config()),
	} {
		for _, secret := range []string{"c0mmunity-XYZ", "authpass-XYZ", "privpass-XYZ"} {
			if strings.Contains(s, secret) {
				t.Errorf("secret %q printed: %s", secret, s)
			}
		}
		if !strings.Contains(s, "<secret>") || !strings.Contains(s, `"10.0.0.2"`) || !strings.Contains(s, `"admin"`) {
			t.Errorf("want redacted secrets and visible host/user: %s", s)
		}
	}
}

func TestNewSNMPValidation(t *testing.T) {
	ok := powerconf.Config{Name: "sw", Host: "127.0.0.1", Community: "private", Ports: 8}
	cases := []struct {
		name   string
		change func(*powerconf.Config)
		errSay string // "" = valid
	}{
		{"minimal v2c", func(c *powerconf.Config) {}, ""},
		{"no host", func(c *powerconf.Config) { c.Host = "" }, "host is empty"},
		{"no community", func(c *powerconf.Config) { c.Community = "" }, "needs a community"},
		{"bad version", func(c *powerconf.Config) { c.Version = "1" }, `unsupported SNMP version "1"`},
		{"no ports", func(c *powerconf.Config) { c.Ports = 0 }, "ports must be from 1 to 1024 (got 0)"},
		{"master out of range", func(c *powerconf.Config) { c.MasterPort = 9 }, "master port 9 out of range"},
		{"bad oid", func(c *powerconf.Config) { c.OID = "1.3.x" }, "is not a numeric OID"},
		{"vendor oid without status oid", func(c *powerconf.Config) { c.OID = ".1.3.6.1.4.1.9.9.402.1.2.1.1.1" }, "status oid is empty"},
		{"vendor oid with status oid", func(c *powerconf.Config) {
			c.OID, c.StatusOID = ".1.3.6.1.4.1.9.9.402.1.2.1.1.1", ".1.3.6.1.4.1.9.9.402.1.2.1.1.2"
		}, ""},
		{"negative offset", func(c *powerconf.Config) { c.OIDOffset = -1 }, "offset -1 is negative"},
		{"offset past the last OID arc", func(c *powerconf.Config) { c.OIDOffset = 1 << 32 }, "oid offset 4294967296 is too big (at most 4294967287)"},
		{"too many ports", func(c *powerconf.Config) { c.Ports = 1025 }, "ports must be from 1 to 1024 (got 1025)"},
		{"host with a space", func(c *powerconf.Config) { c.Host = "10.0.0.1 -c x" }, `host "10.0.0.1 -c x" is not an IP address or a host name`},
		{"host name", func(c *powerconf.Config) { c.Host = "poe-1.lab.example" }, ""},
		{"bad udp port", func(c *powerconf.Config) { c.Port = 70000 }, "port 70000 out of range"},
		{"negative retries", func(c *powerconf.Config) { c.Retries = -1 }, "retries -1"},
		{"negative timeout", func(c *powerconf.Config) { c.Timeout = -time.Second }, "timeout -1s"},
		{"v3 ok", func(c *powerconf.Config) {
			c.Version, c.V3User, c.V3AuthPass, c.V3PrivPass = "3", "u", "12345678", "abcdefgh"
		}, ""},
		{"v3 no user", func(c *powerconf.Config) { c.Version = "3" }, "needs a user"},
		{"v3 short password", func(c *powerconf.Config) { c.Version, c.V3User, c.V3AuthPass = "3", "u", "short" }, "at least 8 characters"},
		{"v3 bad auth proto", func(c *powerconf.Config) {
			c.Version, c.V3User, c.V3AuthProto, c.V3AuthPass = "3", "u", "SHA999", "12345678"
		}, `unknown v3 auth protocol "SHA999"`},
		{"v3 priv without auth", func(c *powerconf.Config) { c.Version, c.V3User, c.V3PrivPass = "3", "u", "12345678" }, "privacy needs authentication"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := ok
			c.Community = "s3cret-community"
			tc.change(&c)
			p, err := power.NewSNMP(c)
			if tc.errSay == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !errors.Is(err, powerconf.ErrConfig) || !strings.Contains(err.Error(), tc.errSay) {
				t.Fatalf("NewSNMP = %v, %v; want ErrConfig saying %q", p, err, tc.errSay)
			}
			if !strings.Contains(err.Error(), `switch sw`) || strings.Contains(err.Error(), "s3cret") {
				t.Fatalf("error should name the switch and no secret: %v", err)
			}
			var ce *powerconf.ConfigError
			if !errors.As(err, &ce) || len(ce.Problems) == 0 || ce.Problems[0].Field == "" {
				t.Fatalf("error should list the problems by field: %#v", err)
			}
		})
	}
}

func TestDefaults(t *testing.T) {
	p, err := power.NewSNMP(powerconf.Config{Host: "127.0.0.1", Community: "x", Ports: 8, OIDOffset: 48})
	if err != nil {
		t.Fatal(err)
	}
	c := p.Config()
	if c.Port != 161 || c.Version != "2c" || c.Timeout != powerconf.DefaultTimeout || c.Name != "127.0.0.1" {
		t.Errorf("defaults: %v", c)
	}
	if got := p.AdminOID(1); got != ".1.3.6.1.2.1.105.1.1.1.3.1.49" {
		t.Errorf("AdminOID(1) = %s", got)
	}
	if got := p.StatusOID(8); got != ".1.3.6.1.2.1.105.1.1.1.6.1.56" {
		t.Errorf("StatusOID(8) = %s", got)
	}
}
