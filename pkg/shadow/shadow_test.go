package shadow_test

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/piseduce/piseduce/pkg/shadow"
	"github.com/piseduce/piseduce/pkg/testenv"
)

// The specification's own test vector, and crypt as OpenSSL computes it for passwords of many
// lengths (the scheme treats each bit of the length differently) and odd characters.
func TestSHA512MatchesCrypt(t *testing.T) {
	got, err := shadow.SHA512("Hello world!", "saltstring")
	want := "$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1"
	if err != nil || got != want {
		t.Fatalf("specification vector: %q %v, want %q", got, err, want)
	}
	openssl := testenv.NeedCommand(t, "openssl")
	for _, pw := range []string{"a", "raspberry", `p4ss 'with" $(quotes) ; and` + "`ticks`", strings.Repeat("long-é-", 20)} {
		for _, salt := range []string{"x", "abcdefghijklmnop", "./AZaz09"} {
			cmd := exec.Command(openssl, "passwd", "-6", "-salt", salt, "-stdin")
			cmd.Stdin = strings.NewReader(pw + "\n")
			out, err := cmd.Output()
			if err != nil {
				t.Fatal(err)
			}
			got, err := shadow.SHA512(pw, salt)
			if err != nil || got != strings.TrimSpace(string(out)) {
				t.Errorf("password %q salt %q: %q %v, openssl %q", pw, salt, got, err, out)
			}
		}
	}
	h1, _ := shadow.Hash("same")
	h2, _ := shadow.Hash("same")
	if h1 == h2 || !strings.HasPrefix(h1, "$6$") || len(h1) != 3+16+1+86 {
		t.Errorf("random salts: %q %q", h1, h2)
	}
	if _, err := shadow.SHA512("x", "a:b"); err == nil {
		t.Error("a salt with : accepted")
	}
}
