package web

import (
	"context"
	"fmt"
	"html"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// TestOneValidator: the admin API and the admin forms refuse what the store refuses, with the
// same words: duplicates naming both records, serials and MACs netboot and dnsmasq cannot
// use, switch settings the power driver would refuse.
func TestOneValidator(t *testing.T) {
	f := newFixture(t)
	admin := f.as("admin")
	api := func(method, path string, body any, code int, says string) {
		t.Helper()
		res := f.api("admin", method, path, body)
		if res.Code != code || !strings.Contains(res.Body.String(), says) {
			t.Errorf("%s %s %v: %d %s; want %d saying %q", method, path, body, res.Code, res.Body.String(), code, says)
		}
	}
	form := func(path string, values url.Values, code int, says string) {
		t.Helper()
		res := admin.post(path, values)
		if body := html.UnescapeString(res.Body.String()); res.Code != code || !strings.Contains(body, says) {
			t.Errorf("POST %s %v: %d; want %d saying %q", path, values, res.Code, code, says)
		}
	}
	node := func(extra map[string]any) map[string]any {
		n := map[string]any{"name": "node-7", "switch_id": f.sw2.ID, "port": 1}
		for k, v := range extra {
			n[k] = v
		}
		return n
	}
	before := f.fingerprint()
	api(http.MethodPost, "/api/v1/admin/nodes", node(map[string]any{"ip": "10.10.0.1"}), http.StatusConflict,
		"Node node-7: IP 10.10.0.1 is already node node-1's.")
	api(http.MethodPost, "/api/v1/admin/nodes", node(map[string]any{"serial": "0000ABC2"}), http.StatusConflict,
		"Node node-7: serial 0000abc2 is already node node-2's.")
	api(http.MethodPost, "/api/v1/admin/nodes", node(map[string]any{"port": 3, "switch_id": f.sw.ID}), http.StatusConflict,
		"Node node-7: port 3 of switch sw1 is already node node-3's.")
	api(http.MethodPost, "/api/v1/admin/nodes", node(map[string]any{"name": "Node-1"}), http.StatusConflict, "Node node-1 exists already.")
	api(http.MethodPost, "/api/v1/admin/nodes", node(map[string]any{"serial": "10000000a67c64b3"}), http.StatusBadRequest,
		"serial: \\\"10000000a67c64b3\\\" is not a node serial: the last 8 hex digits")
	api(http.MethodPost, "/api/v1/admin/nodes", node(map[string]any{"mac": "ff:ff:ff:ff:ff:ff"}), http.StatusBadRequest,
		"not the address of one network card")
	api(http.MethodPost, "/api/v1/admin/nodes", node(map[string]any{"name": "node_7"}), http.StatusBadRequest, "is not a host name")
	api(http.MethodPost, "/api/v1/admin/nodes", node(map[string]any{"switch_id": 99}), http.StatusBadRequest, "there is no switch with id 99")
	form("/admin/nodes", url.Values{"name": {"node-7"}, "switch": {fmt.Sprint(f.sw2.ID)}, "port": {"1"}, "ip": {"10.10.0.2"}},
		http.StatusConflict, "Node node-7: IP 10.10.0.2 is already node node-2's.")
	form("/admin/nodes", url.Values{"name": {"node-7"}, "switch": {fmt.Sprint(f.sw2.ID)}, "port": {"1"}, "serial": {"a67c64b"}},
		http.StatusBadRequest, `is not a node serial`)
	api(http.MethodPost, "/api/v1/admin/nodes", node(map[string]any{"card_device": "/dev/nvme0n1p2"}), http.StatusBadRequest,
		"card_device: \\\"/dev/nvme0n1p2\\\" is not a card device")
	form("/admin/nodes", url.Values{"name": {"node-7"}, "switch": {fmt.Sprint(f.sw2.ID)}, "port": {"1"}, "card_device": {"/dev/sda $(reboot)"}},
		http.StatusBadRequest, `is not a card device`)

	sw := map[string]any{"name": "sw3", "ip": "192.0.2.30", "community": "private", "port_count": 8, "oid": ".1.3.6.1.2.1.105.1.1.1.3.1"}
	with := func(k string, v any) map[string]any {
		m := map[string]any{}
		for a, b := range sw {
			m[a] = b
		}
		m[k] = v
		return m
	}
	api(http.MethodPost, "/api/v1/admin/switches", with("ip", "192.0.2.10"), http.StatusConflict,
		"Switch sw3: the address 192.0.2.10, SNMP port 161, is already switch sw1's.")
	api(http.MethodPost, "/api/v1/admin/switches", with("port_count", 2000), http.StatusBadRequest, "ports must be from 1 to 1024")
	v3 := with("snmp_version", "3")
	v3["v3_user"], v3["v3_auth_pass"] = "admin", "short"
	api(http.MethodPost, "/api/v1/admin/switches", v3, http.StatusBadRequest, "v3 auth password must have at least 8 characters")
	form("/admin/switches", url.Values{"name": {"sw3"}, "ip": {"192.0.2.30"}, "snmp_version": {"3"}, "v3_user": {"admin"},
		"v3_auth_pass": {"short"}, "port_count": {"8"}, "oid": {".1.3.6.1.2.1.105.1.1.1.3.1"}},
		http.StatusBadRequest, "v3 auth password must have at least 8 characters")
	api(http.MethodPost, "/api/v1/admin/environments", map[string]any{"name": "evil\u202egpj", "image_name": "e.img"}, http.StatusBadRequest,
		"name: holds a bidirectional control character (U+202E)")
	api(http.MethodPost, "/api/v1/admin/environments", map[string]any{"name": "RASPIOS-LITE", "image_name": "e.img"}, http.StatusConflict,
		"Environment raspios-lite exists already.")
	api(http.MethodPost, "/api/v1/admin/environments", map[string]any{"name": "win", "image_name": "w.img", "os_family": "windows"},
		http.StatusBadRequest, `os_family: \"windows\" is not one of plain, raspios-firstboot, cloud-init`)
	form("/admin/environments", url.Values{"name": {"win"}, "image_name": {"w.img"}, "os_family": {"windows"}, "ssh_user": {"pi"},
		"shell": {"bash"}}, http.StatusBadRequest, "is not one of plain, raspios-firstboot, cloud-init")
	if f.fingerprint() != before {
		t.Fatal("a refused request changed the database")
	}
	// The OS family, set by the API or the form, as the other shows it.
	api(http.MethodPost, "/api/v1/admin/environments", map[string]any{"name": "ubuntu", "image_name": "u.img.xz", "os_family": "cloud-init"},
		http.StatusCreated, `"os_family":"cloud-init"`)
	form("/admin/environments", url.Values{"name": {"rpi"}, "image_name": {"r.img.xz"}, "os_family": {"raspios-firstboot"},
		"ssh_user": {"pi"}, "shell": {"bash"}}, http.StatusSeeOther, "")
	api(http.MethodGet, "/api/v1/admin/environments", nil, http.StatusOK, `"name":"rpi","type":"default","description":"",`+
		`"image_name":"r.img.xz","image_size":0,"image_format":"","image_sha256":"","decompress_on":"","sector_start":0,`+
		`"ssh_user":"pi","shell":"bash","os_family":"raspios-firstboot"`)
	// What one accepts, the other does too: 1000 ports (the web refused more than 256).
	api(http.MethodPost, "/api/v1/admin/switches", with("port_count", 1000), http.StatusCreated, `"port_count":1000`)
	form("/admin/switches", url.Values{"name": {"sw4"}, "ip": {"192.0.2.40"}, "community": {"private"}, "port_count": {"1000"},
		"oid": {".1.3.6.1.2.1.105.1.1.1.3.1"}}, http.StatusSeeOther, "")
	api(http.MethodPost, "/api/v1/admin/nodes", node(map[string]any{"public_ip": "pi7.example.org", "public_port": 22007}), http.StatusCreated,
		`"public_ip":"pi7.example.org","public_port":22007,"card_device":"/dev/mmcblk0"`)
	form("/admin/nodes", url.Values{"name": {"node-8"}, "switch": {fmt.Sprint(f.sw2.ID)}, "port": {"2"}, "card_device": {"/dev/nvme0n1"}},
		http.StatusSeeOther, "")
	if n, err := f.st.NodeByName(context.Background(), "node-8"); err != nil || n.CardDevice != "/dev/nvme0n1" {
		t.Errorf("node-8 saved from the form: %+v %v", n, err)
	}
}

// TestNamesRefuseInvisibleCharacters: every name a person types is checked by one rule.
func TestNamesRefuseInvisibleCharacters(t *testing.T) {
	f := newFixture(t)
	alice := f.as("user")
	before := f.fingerprint()
	for _, tc := range []struct {
		path string
		form url.Values
		says string
	}{
		{"/account/tokens", url.Values{"name": {"ci\u202etoken"}}, "The token name holds a bidirectional control character (U+202E)"},
		{"/account/tokens", url.Values{"name": {"ci\u200btoken"}}, "The token name holds a zero-width character (U+200B)"},
		{fmt.Sprintf("/reservations/%d/deploy", f.r3.ID), url.Values{"name": {"exp\x07"}, "environment": {fmt.Sprint(f.env.ID)},
			"system_size": {"0"}}, "The deployment name holds a control character (U+0007)"},
		{fmt.Sprintf("/reservations/%d/deploy", f.r3.ID), url.Values{"name": {"exp\xff"}, "environment": {fmt.Sprint(f.env.ID)},
			"system_size": {"0"}}, "The deployment name is not valid UTF-8 text"},
	} {
		res := alice.post(tc.path, tc.form)
		body := html.UnescapeString(res.Body.String())
		if loc := res.Header().Get("Location"); loc != "" {
			body += html.UnescapeString(alice.get(loc).Body.String())
		}
		if res.Code >= 500 || !strings.Contains(body, tc.says) {
			t.Errorf("POST %s %q: %d; want a page saying %q", tc.path, tc.form, res.Code, tc.says)
		}
	}
	signup := f.browser()
	signup.get("/signup")
	res := signup.post("/signup", url.Values{"email": {"zed@example.com"}, "first_name": {"Ze\u2066d"}, "last_name": {"Z"},
		"password": {"a long enough passphrase"}})
	if body := html.UnescapeString(res.Body.String()); res.Code != http.StatusBadRequest || !strings.Contains(body, "First name holds a bidirectional control character (U+2066)") {
		t.Errorf("signup: %d", res.Code)
	}
	res = f.api("user", http.MethodPost, "/api/v1/deployments", map[string]any{"reservation_id": f.r3.ID, "name": "x\u200dy",
		"environment_id": f.env.ID})
	if res.Code != http.StatusBadRequest || !strings.Contains(res.Body.String(), "zero-width character (U+200D)") {
		t.Errorf("API deployment name: %d %s", res.Code, res.Body.String())
	}
	if f.fingerprint() != before {
		t.Fatal("a refused name changed the database")
	}
}

// TestCommandSwitch: a switch driven by commands is added from the form (one argument per
// line) and from the API (argv lists), refused with the field named by the same validation,
// and shown back in the edit form and the API.
func TestCommandSwitch(t *testing.T) {
	f := newFixture(t)
	admin := f.as("admin")
	ctx := context.Background()
	lines := func(argv ...string) string { return strings.Join(argv, "\r\n") + "\r\n\r\n" }
	form := url.Values{"name": {"hub1"}, "driver": {"command"}, "port_count": {"4"}, "master_port": {"0"},
		"command_on":         {lines("/usr/sbin/uhubctl", "-l", "1-1", "-p", "{port}", "-a", "on")},
		"command_off":        {lines("/usr/sbin/uhubctl", "-l", "1-1", "-p", "{port}", "-a", "off")},
		"command_status":     {lines("/usr/local/bin/hub state", "{port}")},
		"command_status_on":  {`Port {port}: \S+ power`},
		"command_status_off": {`Port {port}: \S+ off`},
		"command_timeout":    {"10"}}
	bad := url.Values{}
	for k, v := range form {
		bad[k] = v
	}
	bad["command_off"] = []string{lines("uhubctl", "-a", "off")}
	res := admin.post("/admin/switches", bad)
	if body := html.UnescapeString(res.Body.String()); res.Code != http.StatusBadRequest ||
		!strings.Contains(body, `command.off: the program "uhubctl" must be an absolute`) || !strings.Contains(body, "/usr/local/bin/hub state") {
		t.Fatalf("a relative program: %d, want 400 naming command.off and keeping the form", res.Code)
	}
	if res := admin.post("/admin/switches", form); res.Code != http.StatusSeeOther {
		t.Fatalf("add: %d %s", res.Code, res.Body.String())
	}
	sw, err := f.st.SwitchByName(ctx, "hub1")
	if err != nil {
		t.Fatal(err)
	}
	k := sw.Power.Command
	if sw.Driver != "command" || strings.Join(k.On, "|") != "/usr/sbin/uhubctl|-l|1-1|-p|{port}|-a|on" ||
		strings.Join(k.Status, "|") != "/usr/local/bin/hub state|{port}" || k.StatusOff != `Port {port}: \S+ off` || k.Timeout != 10 {
		t.Fatalf("stored %s %+v", sw.Driver, k)
	}
	edit := html.UnescapeString(admin.get(fmt.Sprintf("/admin/switches/%d/edit", sw.ID)).Body.String())
	if !strings.Contains(edit, `<option value="command" selected>`) || !strings.Contains(edit, "/usr/sbin/uhubctl\n-l\n1-1\n-p\n{port}\n-a\non</textarea>") {
		t.Fatalf("the edit form does not show the commands:\n%s", edit)
	}

	// The API takes and gives argv lists; a second hub may share the first one's (empty) address.
	hub2 := map[string]any{"name": "hub2", "driver": "command", "port_count": 4, "command": map[string]any{
		"on": k.On, "off": k.Off, "status": []string{"/usr/sbin/uhubctl", "-p", "{port}"}}}
	res = f.api("admin", http.MethodPost, "/api/v1/admin/switches", hub2)
	if res.Code != http.StatusCreated || !strings.Contains(res.Body.String(), `"driver":"command"`) ||
		!strings.Contains(res.Body.String(), `"status":["/usr/sbin/uhubctl","-p","{port}"]`) {
		t.Fatalf("API add: %d %s", res.Code, res.Body.String())
	}
	hub2["command"].(map[string]any)["status_on"] = "("
	hub2["name"] = "hub3"
	res = f.api("admin", http.MethodPost, "/api/v1/admin/switches", hub2)
	if res.Code != http.StatusBadRequest || !strings.Contains(res.Body.String(), "command.status_on: give both status_on and status_off") {
		t.Fatalf("API with one regexp: %d %s", res.Code, res.Body.String())
	}
}
