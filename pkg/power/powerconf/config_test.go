package powerconf_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/piseduce/piseduce/pkg/power/powerconf"
)

// TestNormalize: defaults filled in, every problem named by its field, and no secret in the
// error (the store, the import and the web show it as it is).
func TestNormalize(t *testing.T) {
	c, err := powerconf.Config{Host: "10.0.0.2", Community: "x", Ports: 8}.Normalize()
	if err != nil {
		t.Fatal(err)
	}
	if c.Driver != powerconf.DriverSNMP || c.Port != powerconf.DefaultPort || c.OID != powerconf.PethPsePortAdminEnable || c.Name != "10.0.0.2" {
		t.Errorf("defaults: %v", c)
	}
	_, err = powerconf.Config{Name: "sw", Host: "10.0.0.2", Version: "3", V3User: "u", V3AuthPass: "s3cret", Ports: 0}.Normalize()
	var ce *powerconf.ConfigError
	if !errors.As(err, &ce) || !errors.Is(err, powerconf.ErrConfig) {
		t.Fatalf("want a *ConfigError of kind ErrConfig, got %v", err)
	}
	fields := map[string]bool{}
	for _, p := range ce.Problems {
		fields[p.Field] = true
	}
	if !fields["Ports"] || !fields["V3AuthPass"] {
		t.Errorf("problems %+v, want Ports and V3AuthPass named", ce.Problems)
	}
	if strings.Contains(err.Error(), "s3cret") {
		t.Errorf("the error shows the password: %v", err)
	}
	if _, err := (powerconf.Config{Name: "hub", Driver: "command", Ports: 4,
		Settings: powerconf.Settings{Command: powerconf.Command{On: []string{"uhubctl"}}}}).Normalize(); err == nil ||
		!strings.Contains(err.Error(), "absolute") {
		t.Errorf("a relative program and missing commands: %v", err)
	}
}
