package deploy

import (
	"strings"
	"testing"
)

func TestWithHash(t *testing.T) {
	in := "root:*:19000:0:99999:7:::\npi:$6$old$x:19000:0:99999:7:::\nsshd:*:19000:0:99999:7:::\n"
	got, err := withHash(in, "pi", "$6$new$y")
	want := "root:*:19000:0:99999:7:::\npi:$6$new$y:19000:0:99999:7:::\nsshd:*:19000:0:99999:7:::\n"
	if err != nil || got != want {
		t.Errorf("withHash = %q, %v; want %q", got, err, want)
	}
	if _, err := withHash(in, "p", "h"); err == nil || !strings.Contains(err.Error(), `"p"`) {
		t.Errorf("a user with no entry: %v", err)
	}
}

func TestFindAccount(t *testing.T) {
	passwd := "root:x:0:0:root:/root:/bin/sh\nbroken line\npi:x:1000:1000:,,,:/home/pi:/bin/bash\nodd:x:1001:1001::rel:/bin/sh\n"
	a, err := findAccount(passwd, func(f []string) bool { return f[2] == "1000" })
	if err != nil || a != (account{name: "pi", uid: "1000", gid: "1000", home: "/home/pi"}) {
		t.Errorf("uid 1000: %+v %v", a, err)
	}
	if a, err := findAccount(passwd, func(f []string) bool { return f[0] == "nobody" }); err != nil || a.name != "" {
		t.Errorf("missing user: %+v %v", a, err)
	}
	if _, err := findAccount(passwd, func(f []string) bool { return f[0] == "odd" }); err == nil {
		t.Error("a relative home accepted")
	}
}
