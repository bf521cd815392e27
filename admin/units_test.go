package admin

import (
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/piseduce/piseduce/pkg/testenv"
)

// TestUnitsHardening: both units are Type=notify with a watchdog, allow only the system calls
// of an ordinary service, pitasks keeps only the capabilities it needs, and systemd's own
// exposure score of each is the one README.md states (and stays low).
func TestUnitsHardening(t *testing.T) {
	analyze := testenv.NeedCommand(t, "systemd-analyze")
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		unit  string
		caps  []string
		limit float64
	}{
		{"pitasks.service", []string{"CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_KILL"}, 2.5},
		{"pifrontend.service", nil, 1.5},
	} {
		k := unitKeys(t, c.unit)
		if w := k["Service.WatchdogSec"]; len(w) != 1 || w[0] == "" || w[0] == "0" {
			t.Errorf("%s: WatchdogSec=%q", c.unit, w)
		}
		if !slices.Contains(k["Service.SystemCallFilter"], "@system-service") {
			t.Errorf("%s: SystemCallFilter=%q lacks @system-service", c.unit, k["Service.SystemCallFilter"])
		}
		caps := strings.Fields(strings.Join(k["Service.CapabilityBoundingSet"], " "))
		slices.Sort(caps)
		if !slices.Equal(caps, c.caps) {
			t.Errorf("%s: CapabilityBoundingSet %q, want %q", c.unit, caps, c.caps)
		}

		out, err := exec.Command(analyze, "security", "--offline=true", "--no-pager", c.unit).CombinedOutput()
		if err != nil {
			t.Fatalf("systemd-analyze security %s: %v\n%s", c.unit, err, out)
		}
		m := regexp.MustCompile(`Overall exposure level for ` + regexp.QuoteMeta(c.unit) + `: (\d+\.\d)`).FindSubmatch(out)
		if m == nil {
			t.Fatalf("systemd-analyze security %s: no overall exposure level in\n%s", c.unit, out)
		}
		score, _ := strconv.ParseFloat(string(m[1]), 64)
		t.Logf("%s: exposure %.1f", c.unit, score)
		if score > c.limit {
			t.Errorf("%s: exposure %.1f, above %.1f", c.unit, score, c.limit)
		}
		if want := "| `" + c.unit + "` | " + string(m[1]) + " "; !strings.Contains(string(readme), want) {
			t.Errorf("README.md does not state the score of %s: no %q", c.unit, want)
		}
	}
}
