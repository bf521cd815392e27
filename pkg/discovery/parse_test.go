package discovery

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/piseduce/piseduce/pkg/store"
)

// Lines captured from the lab's dnsmasq 2.90 (log-dhcp, log-facility=<file>); the TFTP root
// was /var/tmp/…/lab/tftpboot, here /tftpboot.
func TestParseLogLine(t *testing.T) {
	cases := []struct {
		line string
		ok   bool
		want LogEvent
	}{
		{"Nov 26 16:06:32 dnsmasq-dhcp[26234]: 1878847814 DHCPDISCOVER(eth0) b8:27:eb:c1:81:ae no address available", true,
			LogEvent{Kind: "dhcp", Msg: "DHCPDISCOVER", Iface: "eth0", MAC: "b8:27:eb:c1:81:ae", Info: "no address available"}},
		{"Nov 26 16:06:24 dnsmasq-dhcp[25397]: 2068421381 DHCPDISCOVER(eth0) dc:a6:32:c5:dc:c9 ", true,
			LogEvent{Kind: "dhcp", Msg: "DHCPDISCOVER", Iface: "eth0", MAC: "dc:a6:32:c5:dc:c9"}},
		{"Nov 26 16:06:24 dnsmasq-dhcp[25397]: 2068421381 DHCPOFFER(eth0) 10.123.0.12 dc:a6:32:c5:dc:c9 ", true,
			LogEvent{Kind: "dhcp", Msg: "DHCPOFFER", Iface: "eth0", IP: "10.123.0.12", MAC: "dc:a6:32:c5:dc:c9"}},
		{"Nov 26 16:06:24 dnsmasq-dhcp[25397]: 2068421381 DHCPREQUEST(eth0) 10.123.0.12 dc:a6:32:c5:dc:c9 ", true,
			LogEvent{Kind: "dhcp", Msg: "DHCPREQUEST", Iface: "eth0", IP: "10.123.0.12", MAC: "dc:a6:32:c5:dc:c9"}},
		{"Nov 26 16:06:24 dnsmasq-dhcp[25397]: 2068421381 DHCPACK(eth0) 10.123.0.12 dc:a6:32:c5:dc:c9 node-2", true,
			LogEvent{Kind: "dhcp", Msg: "DHCPACK", Iface: "eth0", IP: "10.123.0.12", MAC: "dc:a6:32:c5:dc:c9", Info: "node-2"}},
		// Without log-dhcp there is no transaction number.
		{"Nov 26 16:06:32 dnsmasq-dhcp[26234]: DHCPDISCOVER(eth0) B8:27:EB:C1:81:AE no address available", true,
			LogEvent{Kind: "dhcp", Msg: "DHCPDISCOVER", Iface: "eth0", MAC: "b8:27:eb:c1:81:ae", Info: "no address available"}},
		{"Nov 26 16:06:38 dnsmasq-tftp[26234]: file /tftpboot/12c181ae/cmdline.txt not found for 10.123.0.11", true,
			LogEvent{Kind: "tftp", Msg: "not found", Path: "/tftpboot/12c181ae/cmdline.txt", IP: "10.123.0.11"}},
		{"Nov 26 16:06:42 dnsmasq-tftp[26234]: sent /tftpboot/12c181ae/config.txt to 10.123.0.11", true,
			LogEvent{Kind: "tftp", Msg: "sent", Path: "/tftpboot/12c181ae/config.txt", IP: "10.123.0.11"}},
		{"Nov 26 16:06:32 dnsmasq-dhcp[26234]: read /var/tmp/lab/dhcp-hosts", false, LogEvent{}},
		{"Nov 26 16:06:24 dnsmasq-dhcp[25397]: 2068421381 vendor class: PXEClient:Arch:00000:UNDI:002001", false, LogEvent{}},
		{"Nov 26 16:06:24 dnsmasq-dhcp[25397]: 2068421381 sent size: 17 option: 97 client-machine-id  00:3d:f4:e8:ff:68:b2:a6:71:3e:16:aa:65:f6...", false, LogEvent{}},
		{"Nov 26 16:06:24 dnsmasq-dhcp[25397]: 2068421381 tags: known, eth0", false, LogEvent{}},
		{"Nov 26 16:02:53 dnsmasq[21615]: started, version 2.90 DNS disabled", false, LogEvent{}},
		{"", false, LogEvent{}},
	}
	for _, c := range cases {
		got, ok := ParseLogLine(c.line)
		if ok != c.ok || got != c.want {
			t.Errorf("ParseLogLine(%q) = %+v, %v; want %+v, %v", c.line, got, ok, c.want, c.ok)
		}
	}
}

func TestSerialFromPath(t *testing.T) {
	cases := []struct {
		root, path, want string
	}{
		{"/tftpboot", "/tftpboot/12c181ae/cmdline.txt", "12c181ae"},
		{"/tftpboot/", "/tftpboot/12c181ae/overlays/vc4.dtbo", "12c181ae"},
		{"/tftpboot", "/tftpboot/bootcode.bin", ""},       // a Pi 3's first request: no serial
		{"/tftpboot", "/tftpboot/12C181AE/start.elf", ""}, // folders are lower-case
		{"/tftpboot", "/tftpboot/12c181a/start.elf", ""},
		{"/tftpboot", "/srv/12c181ae/start.elf", ""},
		{"/tftpboot", "/tftpboot/../12c181ae/start.elf", ""},
		{"/tftpboot", "/tftpboot/12c181ae", ""},
		{"", "/12c181ae/start.elf", ""},
	}
	for _, c := range cases {
		got, ok := SerialFromPath(c.root, c.path)
		if got != c.want || ok != (c.want != "") {
			t.Errorf("SerialFromPath(%q, %q) = %q, %v; want %q", c.root, c.path, got, ok, c.want)
		}
	}
}

func TestIsPiMAC(t *testing.T) {
	for mac, want := range map[string]bool{"b8:27:eb:c1:81:ae": true, "DC:A6:32:00:00:01": true, "e4:5f:01:aa:bb:cc": true,
		"d8:3a:dd:01:02:03": true, "2c:cf:67:01:02:03": true, "02:00:0a:7b:00:02": false, "b8:27:ec:00:00:00": false, "b8:27:eb": false} {
		if IsPiMAC(mac) != want {
			t.Errorf("IsPiMAC(%q) != %v", mac, want)
		}
	}
}

// The lab's /proc/cpuinfo (tail), and real Pis'.
// TestRevisionCodes: the new-style revision codes of Raspberry Pi's documentation
// (computers/raspberry-pi/revision-codes.adoc) name the model without the Model line.
func TestRevisionCodes(t *testing.T) {
	for model, revs := range map[string][]string{
		"RPI3Bplus": {"a020d3", "a020d4"},
		"RPI4B":     {"a03111", "b03111", "b03112", "b03114", "b03115", "c03111", "c03112", "c03114", "c03115", "d03114", "d03115"},
		"RPI5":      {"b04170", "c04170", "d04170", "b04171", "c04171", "d04171", "e04171"},
		"RPICM5":    {"b04180", "c04180", "d04180", "b041a0", "c041a0", "d041a0"},
		"RPI500":    {"d04190"},
	} {
		for _, r := range revs {
			if got, err := ModelOf("", r); err != nil || got != model {
				t.Errorf("revision %s: %q, %v; want %s", r, got, err, model)
			}
		}
	}
}

func TestParseCPUInfo(t *testing.T) {
	cases := []struct {
		name, in string
		want     CPUInfo
		err      string
	}{
		{"lab Pi 3B+", "processor\t: 3\nCPU revision\t: 4\n\nHardware\t: BCM2835\nRevision\t: a020d3\nSerial\t\t: 0000000012c181ae\nModel\t\t: Raspberry Pi 3 Model B Plus Rev 1.3\n",
			CPUInfo{Serial: "12c181ae", Revision: "a020d3", ModelName: "Raspberry Pi 3 Model B Plus Rev 1.3", Model: "RPI3Bplus"}, ""},
		{"lab Pi 4", "Hardware\t: BCM2711\nRevision\t: c03111\nSerial\t\t: 000000004ec5dcc9\nModel\t\t: Raspberry Pi 4 Model B Rev 1.1\n",
			CPUInfo{Serial: "4ec5dcc9", Revision: "c03111", ModelName: "Raspberry Pi 4 Model B Rev 1.1", Model: "RPI4B"}, ""},
		{"Pi 4 8GB, upper-case serial", "Revision\t: D03114\nSerial\t\t: 10000000ABCDEF12\nModel\t\t: Raspberry Pi 4 Model B Rev 1.4\n",
			CPUInfo{Serial: "abcdef12", Revision: "d03114", ModelName: "Raspberry Pi 4 Model B Rev 1.4", Model: "RPI4B"}, ""},
		{"Pi 3B", "Revision\t: a02082\nSerial\t\t: 00000000c0ffee00\nModel\t\t: Raspberry Pi 3 Model B Rev 1.2\n",
			CPUInfo{Serial: "c0ffee00", Revision: "a02082", ModelName: "Raspberry Pi 3 Model B Rev 1.2", Model: "RPI3B"}, ""},
		{"Pi 5 16GB: no Hardware line, 16 hex digits of serial", "processor\t: 3\nCPU part\t: 0xd0b\n\nRevision\t: e04171\nSerial\t\t: 5212cee48742851b\nModel\t\t: Raspberry Pi 5 Model B Rev 1.1\n",
			CPUInfo{Serial: "8742851b", Revision: "e04171", ModelName: "Raspberry Pi 5 Model B Rev 1.1", Model: "RPI5"}, ""},
		{"no Model line (old kernel): the revision decides", "Revision\t: a020d3\nSerial\t\t: 0000000012c181ae\n",
			CPUInfo{Serial: "12c181ae", Revision: "a020d3", Model: "RPI3Bplus"}, ""},
		{"no serial", "Revision\t: a020d3\nModel\t\t: Raspberry Pi 3 Model B Plus Rev 1.3\n", CPUInfo{}, "no serial"},
		{"not a Pi", "Serial\t\t: 0000000012c181ae\nModel\t\t: Some Board\nRevision\t: 0002\n", CPUInfo{}, "unknown Raspberry Pi model"},
	}
	for _, c := range cases {
		got, err := ParseCPUInfo(c.in)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%s: err = %v, want %q", c.name, err, c.err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("%s: got %+v, %v; want %+v", c.name, got, err, c.want)
		}
	}
}

func TestLogTail(t *testing.T) {
	p := filepath.Join(t.TempDir(), "dnsmasq.log")
	os.WriteFile(p, []byte("Nov 26 16:06:32 dnsmasq-dhcp[1]: 1 DHCPDISCOVER(eth0) b8:27:eb:00:00:01 no address available\n"), 0o644)
	tl := newLogTail(p) // what was there before is not news
	ctx := context.Background()
	match := func(ev LogEvent) bool { return ev.Kind == "dhcp" && IsPiMAC(ev.MAC) }
	if _, err := tl.wait(ctx, 200*time.Millisecond, match); err != errTimeout {
		t.Fatalf("old line matched: %v", err)
	}
	f, _ := os.OpenFile(p, os.O_APPEND|os.O_WRONLY, 0)
	// Half a line, then the rest: only complete lines count.
	f.WriteString("Nov 26 16:06:33 dnsmasq-dhcp[1]: 2 DHCPDISCOVER(eth0) b8:27:eb:00:00:02 no add")
	if _, err := tl.wait(ctx, 150*time.Millisecond, match); err != errTimeout {
		t.Fatalf("half a line matched: %v", err)
	}
	f.WriteString("ress available\n")
	f.Close()
	ev, err := tl.wait(ctx, time.Second, match)
	if err != nil || ev.MAC != "b8:27:eb:00:00:02" || ev.Info != "no address available" {
		t.Fatalf("got %+v, %v", ev, err)
	}
	// Rotated: a new, shorter file is read from its start.
	os.WriteFile(p, []byte("Nov 26 16:06:34 dnsmasq-dhcp[1]: DHCPDISCOVER(eth0) dc:a6:32:00:00:03 \n"), 0o644)
	ev, err = tl.wait(ctx, time.Second, match)
	if err != nil || ev.MAC != "dc:a6:32:00:00:03" {
		t.Fatalf("after rotation: %+v, %v", ev, err)
	}
	// Cancelled.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := tl.wait(cctx, time.Minute, match); err != context.Canceled {
		t.Fatalf("cancelled: %v", err)
	}
}

func TestNextFree(t *testing.T) {
	name, ip, err := nextFree(nil, "10.10.0.11")
	if err != nil || name != "node-1" || ip != "10.10.0.11" {
		t.Fatalf("empty: %s %s %v", name, ip, err)
	}
	nodes := nodesOf([][2]string{{"node-1", "10.10.0.11"}, {"node-3", "10.10.0.13"}, {"Node-2", "10.10.0.12"}})
	name, ip, err = nextFree(nodes, "10.10.0.11")
	if err != nil || name != "node-4" || ip != "10.10.0.14" {
		t.Fatalf("got %s %s %v", name, ip, err)
	}
	name, ip, _ = nextFree(nodesOf([][2]string{{"node-2", "10.10.0.254"}}), "10.10.0.254")
	if name != "node-1" || ip != "10.10.1.1" {
		t.Fatalf("skips .255 and .0: %s %s", name, ip)
	}
	if _, _, err := nextFree(nil, "nope"); err == nil {
		t.Fatal("bad first address accepted")
	}
}

func nodesOf(ns [][2]string) []store.Node {
	var out []store.Node
	for _, n := range ns {
		out = append(out, store.Node{Name: n[0], IP: n[1]})
	}
	return out
}
