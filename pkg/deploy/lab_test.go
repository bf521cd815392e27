package deploy_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/piseduce/piseduce/lab"
	"github.com/piseduce/piseduce/lab/deploytest"
	"github.com/piseduce/piseduce/pkg/engine"
	"github.com/piseduce/piseduce/pkg/netboot"
	"github.com/piseduce/piseduce/pkg/process"
	"github.com/piseduce/piseduce/pkg/remote"
	"github.com/piseduce/piseduce/pkg/store"
)

// dialAs logs into a deployed node as user, checking its host key against the one pitasks
// pinned.
func dialAs(h *deploytest.Harness, n store.Node, user string, auth ssh.AuthMethod) (*ssh.Client, error) {
	key, found, err := h.Store.HostKey(context.Background(), remote.RoleSystem, n.ID)
	if err != nil || !found {
		return nil, fmt.Errorf("no pinned host key for %s: %v", n.Name, err)
	}
	pk, err := remote.ParseKey(key)
	if err != nil {
		return nil, err
	}
	return ssh.Dial("tcp", net.JoinHostPort(n.IP, "22"), &ssh.ClientConfig{User: user, Auth: []ssh.AuthMethod{auth},
		HostKeyCallback: ssh.FixedHostKey(pk), Timeout: 5 * time.Second})
}

func output(c *ssh.Client, cmd string) (string, error) {
	s, err := c.NewSession()
	if err != nil {
		return "", err
	}
	defer s.Close()
	out, err := s.CombinedOutput(cmd)
	return strings.TrimSpace(string(out)), err
}

// cardFile reads a file from the ext4 root partition of a node's card file, with debugfs:
// proof that the deployment wrote the card itself.
func cardFile(h *deploytest.Harness, n store.Node, path string) string {
	h.T.Helper()
	nd := h.Lab.Desc.Node(n.Name)
	off := h.Lab.Desc.Image.SectorStart * 512
	out, err := exec.Command("debugfs", "-R", "cat "+path, fmt.Sprintf("%s?offset=%d", nd.Card, off)).Output()
	if err != nil {
		h.T.Fatalf("debugfs %s on %s: %v", path, n.Name, err)
	}
	return string(out)
}

// TestDeployThreeLabNodesEndToEnd deploys three nodes at once, one copy at a time
// (max_copying 1), and checks what each user gets, then destroys them.
func TestDeployThreeLabNodesEndToEnd(t *testing.T) {
	h := deploytest.StartWith(t, lab.Options{Nodes: 3}, deploytest.Config{MaxCopying: 1})
	deployKey := deploytest.NewKey(t)
	password := `p4ss 'with" $(quotes) ; and` + "`ticks`"
	script := "#!/bin/bash\nset -e\necho \"hello from $(hostname)\" | tee /home/pi/hello.txt\nid -un\n"
	msrv := httptest.NewServer(h.Metrics.Handler()) // pitasks' /metrics
	defer msrv.Close()
	before := scrapeMetrics(t, msrv.URL)
	t0 := time.Now()
	ds := h.Deploy(h.Nodes, deploytest.Request{SizeMiB: 200, Password: password, Key: deployKey, Script: script})
	h.RunUntil(ds, 4*time.Minute, "deployed")
	took := time.Since(t0)
	t.Logf("3 nodes deployed in %s", took.Round(100*time.Millisecond))
	after := scrapeMetrics(t, msrv.URL)
	checkMetricsMoved(t, before, after)
	checkCopiesTookTurns(t, h, ds)
	var copied int64
	for _, d := range ds {
		copied += h.Load(d.ID).BytesTotal
	}
	if got := after[`piseduce_copy_bytes_total`]; got < float64(copied) || copied == 0 {
		t.Errorf("metrics: piseduce_copy_bytes_total = %v, want at least the %d bytes of the three images", got, copied)
	}

	for i, n := range h.Nodes {
		d := h.Load(ds[i].ID)
		if d.BytesDone != d.BytesTotal || d.BytesTotal == 0 {
			t.Errorf("%s: progress %d/%d", n.Name, d.BytesDone, d.BytesTotal)
		}
		if !strings.Contains(d.ScriptOutput, "hello from "+n.Name) || !strings.Contains(d.ScriptOutput, "exit status 0") {
			t.Errorf("%s: script output %q", n.Name, d.ScriptOutput)
		}
		// As the user would: the environment's account, with the account key and with the
		// deployment key, then with the password.
		for _, k := range []ssh.Signer{h.UserKey, deployKey} {
			c, err := dialAs(h, n, lab.ImageUser, ssh.PublicKeys(k))
			if err != nil {
				t.Fatalf("%s: ssh as pi: %v", n.Name, err)
			}
			if got, _ := output(c, "hostname"); got != n.Name {
				t.Errorf("%s: hostname %q", n.Name, got)
			}
			if got, _ := output(c, "cat /home/pi/hello.txt"); got != "hello from "+n.Name {
				t.Errorf("%s: init script file %q", n.Name, got)
			}
			if got, _ := output(c, "cat /var/log/piseduce-init.log"); !strings.Contains(got, "hello from "+n.Name) {
				t.Errorf("%s: init log on the node %q", n.Name, got)
			}
			c.Close()
		}
		c, err := dialAs(h, n, lab.ImageUser, ssh.Password(password))
		if err != nil {
			t.Fatalf("%s: the OS password does not work: %v", n.Name, err)
		}
		c.Close()
		if _, err := dialAs(h, n, lab.ImageUser, ssh.Password(lab.ImagePassword)); err == nil {
			t.Errorf("%s: the image's default password still works", n.Name)
		}
		root, err := dialAs(h, n, "root", ssh.PublicKeys(mustSigner(t, h.Lab.Desc.PimasterKey)))
		if err != nil {
			t.Fatal(err)
		}
		if got, _ := output(root, "blockdev --getsz /dev/mmcblk0p2"); got != strconv.Itoa(200*2048) {
			t.Errorf("%s: root partition is %s sectors, want 200 MiB", n.Name, got)
		}
		if got, _ := output(root, "df -k / | tail -1 | awk '{print $2}'"); got == "" {
			t.Errorf("%s: df: %q", n.Name, got)
		}
		root.Close()
	}

	// Destroy: powered off, free, TFTP folders cleared.
	for _, d := range ds {
		if err := h.Store.RequestProcess(context.Background(), d.ID, process.Destroy); err != nil {
			t.Fatal(err)
		}
	}
	h.RunUntil(ds, time.Minute, "destroyed")
	for _, n := range h.Nodes {
		on, err := h.Lab.Switch().PortOn(n.Port)
		if err != nil || on {
			t.Errorf("%s: port still on after destroy (%v)", n.Name, err)
		}
		if m, _ := h.TFTP.Mode(n.Serial); m != netboot.ModeNone {
			t.Errorf("%s: TFTP folder left in mode %s", n.Name, m)
		}
	}
	// On the cards themselves, once the nodes are off (their file systems are unmounted).
	for _, n := range h.Nodes {
		if got := strings.TrimSpace(cardFile(h, n, "/etc/hostname")); got != n.Name {
			t.Errorf("%s: /etc/hostname on the card is %q", n.Name, got)
		}
		if got := cardFile(h, n, "/home/pi/hello.txt"); !strings.Contains(got, "hello from "+n.Name) {
			t.Errorf("%s: hello.txt on the card is %q", n.Name, got)
		}
		if got := cardFile(h, n, "/etc/shadow"); strings.Contains(got, password) {
			t.Errorf("%s: the password is stored in clear", n.Name)
		}
	}
}

func mustSigner(t *testing.T, path string) ssh.Signer {
	s, err := remote.LoadOrCreateKey(path)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// scrapeMetrics GETs a /metrics URL and returns every sample by its exposition key.
func scrapeMetrics(t *testing.T, url string) map[string]float64 {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("scrape %s: %v %s", url, err, resp.Status)
	}
	out := map[string]float64{}
	for _, line := range strings.Split(string(b), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("bad sample %q", line)
		}
		out[line[:i]] = v
	}
	return out
}

// checkMetricsMoved: three lab nodes deployed, as pitasks' /metrics tells it.
func checkMetricsMoved(t *testing.T, before, after map[string]float64) {
	t.Helper()
	for _, c := range []struct {
		key     string
		from    float64 // the value before
		atLeast float64 // the least value after
	}{
		{`piseduce_last_tick_timestamp_seconds`, 0, float64(time.Now().Add(-time.Minute).Unix())},
		{`piseduce_state_duration_seconds_count{outcome="done",process="deploy",state="env_copy"}`, 0, 3},
		{`piseduce_state_duration_seconds_count{outcome="done",process="deploy",state="user_script"}`, 0, 3},
		{`piseduce_tick_duration_seconds_count`, 0, 2},
	} {
		t.Logf("metrics: %s %v → %v", c.key, before[c.key], after[c.key])
		if before[c.key] != c.from || after[c.key] < c.atLeast {
			t.Errorf("metrics: %s went %v → %v, want %v → at least %v", c.key, before[c.key], after[c.key], c.from, c.atLeast)
		}
	}
}

// checkCopiesTookTurns checks that no two env_copy steps copied at once (max_copying 1) and
// that the nodes that found the slot taken waited (engine.Wait), their state's clock stopped.
func checkCopiesTookTurns(t *testing.T, h *deploytest.Harness, ds []store.Deployment) {
	t.Helper()
	var copies []deploytest.Call
	waits := 0
	for _, d := range ds {
		for _, c := range h.Calls(d.ID) {
			switch {
			case c.State != process.EnvCopy || c.Post:
			case engine.IsWait(c.Err):
				waits++
			case c.Err == nil:
				copies = append(copies, c)
			}
		}
	}
	if len(copies) != len(ds) {
		t.Fatalf("%d env_copy steps copied, want %d", len(copies), len(ds))
	}
	slices.SortFunc(copies, func(a, b deploytest.Call) int { return a.Start.Compare(b.Start) })
	// A copy's step call starts before it takes the slot and ends after it gives it back:
	// the next may start within that return, never during the copy.
	const slack = time.Second
	for i := 1; i < len(copies); i++ {
		if overlap := copies[i-1].End.Sub(copies[i].Start); overlap > slack {
			t.Errorf("deployment %d copied during deployment %d's copy (%s at once), with max_copying 1",
				copies[i].Deployment, copies[i-1].Deployment, overlap.Round(time.Millisecond))
		}
	}
	t.Logf("copies one at a time: %d, the others waited %d times; each copy took %v", len(copies), waits, func() (out []time.Duration) {
		for _, c := range copies {
			out = append(out, c.End.Sub(c.Start).Round(time.Millisecond))
		}
		return out
	}())
	if waits == 0 {
		t.Error("no node waited for a copy slot: the nodes did not reach env_copy together")
	}
	for _, d := range ds {
		if got := h.Load(d.ID); got.WaitingSince != nil || got.WaitingFor != "" {
			t.Errorf("deployment %d: deployed, still waiting since %v for %q", d.ID, got.WaitingSince, got.WaitingFor)
		}
		for _, ev := range h.Events(d.ID) {
			if ev.State == process.EnvCopy && ev.Outcome != store.OutcomeDone {
				t.Errorf("deployment %d: env_copy %s: %s (a wait for a slot is not a failure)", d.ID, ev.Outcome, ev.Message)
			}
		}
	}
}
