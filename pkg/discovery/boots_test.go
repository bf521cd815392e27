package discovery

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"
)

// TestBootsWakeTheWaitsOfANodeSeenBooting: a DHCP answer or a TFTP request in dnsmasq's log
// wakes the deployments waiting for that node at once, then after each backoff step; a
// request without an answer (no address yet) and other lines wake nothing.
func TestBootsWakeTheWaitsOfANodeSeenBooting(t *testing.T) {
	log := filepath.Join(t.TempDir(), "dnsmasq.log")
	if err := os.WriteFile(log, []byte("dnsmasq-dhcp[7]: 1 DHCPACK(eth0) 10.10.0.9 b8:27:eb:00:00:09 old\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var asked []string // mac/ip of each lookup
	var woken []uint
	wake := make(chan struct{}, 64)
	b := &Boots{Log: log, Every: 10 * time.Millisecond, Backoff: []time.Duration{50 * time.Millisecond, 100 * time.Millisecond},
		Waiting: func(_ context.Context, mac, ip string) ([]uint, error) {
			mu.Lock()
			defer mu.Unlock()
			asked = append(asked, mac+"/"+ip)
			if ip == "10.10.0.11" {
				return []uint{4}, nil
			}
			return nil, nil
		},
		Wake: func(_ context.Context, id uint) error {
			mu.Lock()
			woken = append(woken, id)
			mu.Unlock()
			wake <- struct{}{}
			return nil
		}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); b.Run(ctx) }()
	defer func() { cancel(); <-done }()
	f, err := os.OpenFile(log, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	// Run follows the log from its end when it starts: another node's answer, until it is
	// looked up, says Run is reading.
	for seen := false; !seen; {
		if _, err := f.WriteString("dnsmasq-dhcp[7]: 1 DHCPACK(eth0) 10.10.0.99 b8:27:eb:00:00:63\n"); err != nil {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
		mu.Lock()
		seen = len(asked) > 0
		mu.Unlock()
	}
	lines := "dnsmasq-dhcp[7]: 2 DHCPDISCOVER(eth0) b8:27:eb:00:00:0b\n" +
		"dnsmasq-dhcp[7]: 2 DHCPOFFER(eth0) 10.10.0.11 b8:27:eb:00:00:0b\n" +
		"dnsmasq-dhcp[7]: 2 DHCPACK(eth0) 10.10.0.11 b8:27:eb:00:00:0b node-1\n" +
		"dnsmasq: something else\n" +
		"dnsmasq-tftp[7]: sent /tftpboot/0badc0de/start.elf to 10.10.0.11\n"
	if _, err := f.WriteString(lines); err != nil {
		t.Fatal(err)
	}
	// Two events, then the two backoff steps after the last: four wakes.
	deadline := time.After(30 * time.Second)
	for range 4 {
		select {
		case <-wake:
		case <-deadline:
			t.Fatal("the node's wait was not woken four times in 30 s")
		}
	}
	// Then no more once the backoff is over: another node's answer, looked up after it, marks
	// the time.
	time.Sleep(200 * time.Millisecond) // the last backoff step is 100 ms after the last event
	if _, err := f.WriteString("dnsmasq-dhcp[7]: 3 DHCPACK(eth0) 10.10.0.98 b8:27:eb:00:00:62\n"); err != nil {
		t.Fatal(err)
	}
	for seen := false; !seen; time.Sleep(10 * time.Millisecond) {
		mu.Lock()
		seen = slices.Contains(asked, "b8:27:eb:00:00:62/10.10.0.98")
		mu.Unlock()
	}
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(woken, []uint{4, 4, 4, 4}) {
		t.Errorf("woken %v, want deployment 4 four times", woken)
	}
	var got []string
	for _, a := range asked {
		if a != "b8:27:eb:00:00:63/10.10.0.99" && a != "b8:27:eb:00:00:62/10.10.0.98" {
			got = append(got, a)
		}
	}
	want := []string{"b8:27:eb:00:00:0b/10.10.0.11", "b8:27:eb:00:00:0b/10.10.0.11", "b8:27:eb:00:00:0b/10.10.0.11", "b8:27:eb:00:00:0b/10.10.0.11"}
	if !slices.Equal(got, want) {
		t.Errorf("looked up %q, want %q: the answer's MAC and address, kept for the TFTP request", got, want)
	}
}
