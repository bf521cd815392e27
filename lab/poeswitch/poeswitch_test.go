package poeswitch_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/piseduce/piseduce/lab/poeswitch"
	"github.com/piseduce/piseduce/pkg/testenv"
)

func startSwitch(t *testing.T, o poeswitch.Options) *poeswitch.Switch {
	t.Helper()
	testenv.NeedCommand(t, "snmpd", "snmpget", "snmpset", "snmpwalk")
	if o.Dir == "" {
		o.Dir = t.TempDir()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	sw, err := poeswitch.Start(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := sw.Stop(); err != nil {
			t.Error(err)
		}
	})
	return sw
}

// snmp runs one net-snmp command line tool against the switch (argv, no shell).
func snmp(t *testing.T, sw *poeswitch.Switch, tool string, args ...string) (string, error) {
	t.Helper()
	argv := append([]string{"-v2c", "-c", sw.Community(), "-On", "-Oe", "-t", "2", "-r", "1", "-m", "", "udp:" + sw.Addr()}, args...)
	cmd := exec.Command(tool, argv...)
	cmd.Env = append(os.Environ(), "SNMPCONFPATH="+t.TempDir(), "MIBS=", "SNMP_PERSISTENT_DIR="+t.TempDir())
	out, err := cmd.CombinedOutput()
	var keep []string
	for _, l := range strings.Split(string(out), "\n") {
		if !strings.HasPrefix(l, "Created directory:") { // net-snmp's notice about its (temporary) persistent dir
			keep = append(keep, l)
		}
	}
	return strings.TrimSpace(strings.Join(keep, "\n")), err
}

func adminOID(sw *poeswitch.Switch, port int) string {
	return sw.OIDBase() + "." + strconv.Itoa(sw.Offset()+port)
}

func statusOID(sw *poeswitch.Switch, port int) string {
	return poeswitch.StatusOID + "." + strconv.Itoa(sw.Offset()+port)
}

func TestSetGetWalk(t *testing.T) {
	for _, offset := range []int{0, 48} {
		t.Run("offset"+strconv.Itoa(offset), func(t *testing.T) {
			sw := startSwitch(t, poeswitch.Options{Ports: 4, Offset: offset, Community: "rwsecret"})
			if !strings.HasPrefix(sw.Addr(), "127.0.0.1:") {
				t.Fatalf("Addr %q", sw.Addr())
			}
			steps := []struct {
				port int
				on   bool
			}{{1, true}, {3, true}, {1, false}, {4, true}, {4, false}}
			for _, st := range steps {
				v := "2"
				if st.on {
					v = "1"
				}
				if out, err := snmp(t, sw, "snmpset", adminOID(sw, st.port), "i", v); err != nil {
					t.Fatalf("snmpset port %d=%s: %v: %s", st.port, v, err, out)
				}
				on, err := sw.PortOn(st.port)
				if err != nil || on != st.on {
					t.Fatalf("port %d state file: on=%v err=%v, want %v", st.port, on, err, st.on)
				}
				wantAdmin, wantStatus := "INTEGER: 2", "INTEGER: 1"
				if st.on {
					wantAdmin, wantStatus = "INTEGER: 1", "INTEGER: 3"
				}
				out, err := snmp(t, sw, "snmpget", adminOID(sw, st.port), statusOID(sw, st.port))
				if err != nil || !strings.Contains(out, adminOID(sw, st.port)+" = "+wantAdmin) ||
					!strings.Contains(out, statusOID(sw, st.port)+" = "+wantStatus) {
					t.Fatalf("snmpget port %d: %v\n%s", st.port, err, out)
				}
			}
			// Direct state-file writes are seen over SNMP.
			if err := sw.SetPort(2, true); err != nil {
				t.Fatal(err)
			}
			out, err := snmp(t, sw, "snmpwalk", poeswitch.EntryOID)
			if err != nil {
				t.Fatalf("snmpwalk: %v: %s", err, out)
			}
			lines := strings.Split(out, "\n")
			want := []string{
				adminOID(sw, 1) + " = INTEGER: 2", adminOID(sw, 2) + " = INTEGER: 1",
				adminOID(sw, 3) + " = INTEGER: 1", adminOID(sw, 4) + " = INTEGER: 2",
				statusOID(sw, 1) + " = INTEGER: 1", statusOID(sw, 2) + " = INTEGER: 3",
				statusOID(sw, 3) + " = INTEGER: 3", statusOID(sw, 4) + " = INTEGER: 1",
			}
			if strings.Join(lines, "\n") != strings.Join(want, "\n") {
				t.Fatalf("walk:\n%s\nwant:\n%s", out, strings.Join(want, "\n"))
			}
		})
	}
}

func TestErrors(t *testing.T) {
	sw := startSwitch(t, poeswitch.Options{Ports: 2, Offset: 48})
	cases := []struct {
		name string
		tool string
		args []string
		want string
	}{
		{"wrong value", "snmpset", []string{adminOID(sw, 1), "i", "7"}, "wrongValue"},
		{"wrong type", "snmpset", []string{adminOID(sw, 1), "s", "on"}, "wrongType"},
		{"status not writable", "snmpset", []string{statusOID(sw, 1), "i", "3"}, "notWritable"},
		{"set port beyond range", "snmpset", []string{adminOID(sw, 3), "i", "1"}, "notWritable"},
		{"get port beyond range", "snmpget", []string{adminOID(sw, 3)}, "No Such Instance"},
		{"get port below offset", "snmpget", []string{sw.OIDBase() + ".48"}, "No Such Instance"},
		{"get other column", "snmpget", []string{poeswitch.EntryOID + ".4.1.49"}, "No Such Instance"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out, _ := snmp(t, sw, c.tool, c.args...)
			if !strings.Contains(out, c.want) {
				t.Fatalf("%s %v: got %q, want it to mention %q", c.tool, c.args, out, c.want)
			}
			for p := 1; p <= 2; p++ {
				if on, err := sw.PortOn(p); err != nil || on {
					t.Fatalf("port %d changed by a failed request: on=%v err=%v", p, on, err)
				}
			}
		})
	}
	// The handler survived all of that (a handler exiting on snmpd's blank line would make this fail).
	if out, err := snmp(t, sw, "snmpset", adminOID(sw, 2), "i", "1"); err != nil {
		t.Fatalf("set after errors: %v: %s", err, out)
	}
	if on, _ := sw.PortOn(2); !on {
		t.Fatal("port 2 not on")
	}
}

func TestV3User(t *testing.T) {
	dir := t.TempDir()
	sw := startSwitch(t, poeswitch.Options{Dir: dir, Ports: 2, V3User: "poeadmin", V3AuthPass: "authpass123", V3PrivPass: "privpass123"})
	run := func(auth string) (string, error) {
		cmd := exec.Command("snmpset", "-v3", "-l", "authPriv", "-u", "poeadmin", "-a", "SHA", "-A", auth,
			"-x", "AES", "-X", "privpass123", "-On", "-t", "1", "-r", "0", "-m", "", "udp:"+sw.Addr(), adminOID(sw, 2), "i", "1")
		cmd.Env = append(os.Environ(), "SNMPCONFPATH="+t.TempDir(), "MIBS=", "SNMP_PERSISTENT_DIR="+t.TempDir())
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	if out, err := run("wrongpass1"); err == nil {
		t.Fatalf("wrong auth password accepted: %s", out)
	}
	if on, _ := sw.PortOn(2); on {
		t.Fatal("port switched with a wrong password")
	}
	if out, err := run("authpass123"); err != nil {
		t.Fatalf("v3 set: %v: %s", err, out)
	}
	if on, _ := sw.PortOn(2); !on {
		t.Fatal("port 2 not on after v3 set")
	}
	// Nothing persistent outside Dir: snmpd's persistent store is under Dir.
	if _, err := os.Stat(filepath.Join(dir, "persist")); err != nil {
		t.Fatal(err)
	}
}

func TestStopStale(t *testing.T) {
	testenv.NeedCommand(t, "snmpd")
	dir := t.TempDir()
	sw, err := poeswitch.Start(context.Background(), poeswitch.Options{Dir: dir, Ports: 1})
	if err != nil {
		t.Fatal(err)
	}
	pid := sw.PID()
	// Pretend the run crashed: the Switch is forgotten, only the pid file remains.
	if err := poeswitch.StopStale(dir); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for syscall.Kill(pid, 0) == nil && time.Now().Before(deadline) {
		// still a zombie until the Switch's own Wait reaps it
		if b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat"); err != nil || strings.Contains(string(b), ") Z ") {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat"); err == nil && !strings.Contains(string(b), ") Z ") {
		t.Fatalf("snmpd %d still running after StopStale", pid)
	}
	if err := sw.Stop(); err != nil {
		t.Fatal(err)
	}
	// A new switch can start in the same dir.
	sw2 := startSwitch(t, poeswitch.Options{Dir: dir, Ports: 1})
	if err := sw2.SetPort(1, true); err != nil {
		t.Fatal(err)
	}
}

func TestOnlyLoopback(t *testing.T) {
	_, err := poeswitch.Start(context.Background(), poeswitch.Options{Dir: t.TempDir(), Addr: "0.0.0.0:1161"})
	if err == nil || !strings.Contains(err.Error(), "127.0.0.1") {
		t.Fatalf("got %v", err)
	}
}
