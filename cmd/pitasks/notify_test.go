package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/piseduce/piseduce/lab/labtest"
	"github.com/piseduce/piseduce/pkg/sdnotify/sdnotifytest"
	"github.com/piseduce/piseduce/pkg/store"
	"github.com/piseduce/piseduce/pkg/store/storetest"
	"github.com/piseduce/piseduce/pkg/testenv"
)

// waitLog waits for a log line containing s.
func waitLog(t *testing.T, out *labtest.Log, s string) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for !strings.Contains(out.String(), s) {
		if time.Now().After(deadline) {
			t.Fatalf("no %q in the log:\n%s", s, labtest.Tail(out.String(), 4000))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestSystemdNotifyAndWatchdog runs pitasks as systemd would (Type=notify, WatchdogSec): it
// says READY=1 once started and feeds the watchdog from its tick loop; when a tick hangs (the
// MariaDB tables locked by another session), feeding stops and the log says why, and it goes
// on once the tick ends; SIGTERM gives STOPPING=1. Its logs are JSON with -log-format json,
// and it exports its own metrics only.
func TestSystemdNotifyAndWatchdog(t *testing.T) {
	url := storetest.URL(t, "mysql")
	ctx := context.Background()
	st, err := store.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	dir := t.TempDir()
	port := testenv.FreePort(t)
	conf := filepath.Join(dir, "seducepp.conf")
	if err := os.WriteFile(conf, []byte(fmt.Sprintf(`[db]
connection_url = %s
[tasks]
tick = @every 1s
stop_grace = 5s
metrics_listen = 127.0.0.1:%d
[cluster]
tftp_root = %s/tftpboot
nfs_boot_dir = %s/tftpboot/rpiboot_uboot
img_dir = %s
ssh_key = %s/id_ed25519
dhcp_hosts_file = %s/dhcp-hosts
dnsmasq_pid_file = %s/dnsmasq.pid
`, url, port, dir, dir, dir, dir, dir, dir)), 0o600); err != nil {
		t.Fatal(err)
	}
	sock := sdnotifytest.Listen(t)
	out := &labtest.Log{}
	defer func() {
		if t.Failed() {
			t.Logf("pitasks output:\n%s", labtest.Tail(out.String(), 8000))
		}
	}()
	cmd := startPitasks(t, out, []string{"NOTIFY_SOCKET=" + sock.Path, "WATCHDOG_USEC=2000000"},
		"-config", conf, "-log-format", "json").cmd

	sock.Expect(t, "READY=1")
	sock.Expect(t, "WATCHDOG=1")
	sock.Expect(t, "WATCHDOG=1")

	// It runs with the unit's capabilities only: CAP_DAC_OVERRIDE (1), CAP_DAC_READ_SEARCH (2)
	// and CAP_KILL (5).
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"CapBnd:\t0000000000000026\n", "CapEff:\t0000000000000026\n"} {
		if !strings.Contains(string(status), want) {
			t.Errorf("pitasks' capabilities: no %q in\n%s", want, status)
		}
	}

	// Its own series, not pifrontend's.
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", port))
	if err != nil {
		t.Fatal(err)
	}
	var body strings.Builder
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		body.WriteString(sc.Text() + "\n")
	}
	resp.Body.Close()
	for _, want := range []string{"piseduce_last_tick_timestamp_seconds ", "piseduce_tick_duration_seconds_count ", "piseduce_build_info{"} {
		if !strings.Contains(body.String(), want) {
			t.Errorf("pitasks' metrics lack %q", want)
		}
	}
	for _, other := range []string{"piseduce_deployments", "piseduce_http_requests_total", "piseduce_reservations_held"} {
		if strings.Contains(body.String(), other) {
			t.Errorf("pitasks exports pifrontend's %s", other)
		}
	}

	// Another session write-locks every table: the next tick hangs on its first query.
	sqlDB, err := storetest.DB(st).DB()
	if err != nil {
		t.Fatal(err)
	}
	conn, err := sqlDB.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var tables []string
	if err := storetest.DB(st).Raw("SHOW TABLES").Scan(&tables).Error; err != nil || len(tables) == 0 {
		t.Fatalf("tables %v: %v", tables, err)
	}
	if _, err := conn.ExecContext(ctx, "LOCK TABLES "+strings.Join(tables, " WRITE, ")+" WRITE"); err != nil {
		t.Fatal(err)
	}
	waitLog(t, out, "systemd watchdog: not fed")
	// Past the feeds sent before the wedge was seen, three more checks of a loop still wedged.
	sock.Drain(t)
	if got := sock.Next(t, 3*time.Second); got != "" {
		t.Errorf("fed while the tick hangs: %q", got)
	}
	if _, err := conn.ExecContext(ctx, "UNLOCK TABLES"); err != nil {
		t.Fatal(err)
	}
	sock.Expect(t, "WATCHDOG=1")
	waitLog(t, out, "systemd watchdog: fed again")

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	sock.Expect(t, "STOPPING=1")
	if err := cmd.Wait(); err != nil {
		t.Errorf("pitasks after SIGTERM: %v", err)
	}

	// Every line is one JSON object; the start names the version.
	started := false
	for _, l := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(l), &rec); err != nil {
			t.Errorf("not a JSON log line: %q", l)
			continue
		}
		if rec["msg"] == "pitasks started" && rec["version"] != nil && rec["level"] == "INFO" {
			started = true
		}
	}
	if !started {
		t.Error("no JSON line for the start with the version")
	}
}

// TestVersionFlag: -version and --version answer without a configuration.
func TestVersionFlag(t *testing.T) {
	for _, flag := range []string{"-version", "--version"} {
		cmd := exec.Command(os.Args[0], "-config", "/nonexistent/seducepp.conf", flag)
		cmd.Env = append(os.Environ(), "PITASKS_AS_MAIN=1")
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.HasPrefix(string(out), "pitasks ") || !strings.Contains(string(out), "(commit ") {
			t.Errorf("pitasks %s: %v\n%s", flag, err, out)
		}
	}
}
