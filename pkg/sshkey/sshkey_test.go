package sshkey_test

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/piseduce/piseduce/pkg/sshkey"
)

// theirs is x/crypto/ssh's answer for the same line: the key as it writes it, and the comment.
func theirs(line string) (string, string, bool) {
	pk, comment, options, rest, err := ssh.ParseAuthorizedKey([]byte(line))
	if err != nil || len(options) > 0 || len(strings.TrimSpace(string(rest))) > 0 {
		return "", "", false
	}
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(pk))), comment, true
}

// agrees fails t when Parse accepts a line x/crypto/ssh refuses, or reads it differently.
func agrees(t *testing.T, line string) bool {
	t.Helper()
	key, comment, err := sshkey.Parse(line)
	if err != nil {
		if !errors.Is(err, sshkey.ErrNotAKey) && !errors.Is(err, sshkey.ErrUnsupported) {
			t.Errorf("Parse(%q): error %v of no kind", line, err)
		}
		return false
	}
	tkey, tcomment, ok := theirs(line)
	if !ok || key != tkey || comment != strings.TrimSpace(tcomment) {
		t.Errorf("Parse(%q) = %q, %q; x/crypto/ssh: %q, %q, %t", line, key, comment, tkey, tcomment, ok)
	}
	return true
}

func realKeys(t *testing.T) []string {
	var pubs []any
	for _, c := range []elliptic.Curve{elliptic.P256(), elliptic.P384(), elliptic.P521()} {
		k, err := ecdsa.GenerateKey(c, rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		pubs = append(pubs, &k.PublicKey)
	}
	for _, bits := range []int{2048, 3072} {
		k, err := rsa.GenerateKey(rand.Reader, bits)
		if err != nil {
			t.Fatal(err)
		}
		pubs = append(pubs, &k.PublicKey)
	}
	ed, _, _ := ed25519.GenerateKey(rand.Reader)
	pubs = append(pubs, ed)
	var lines []string
	for _, p := range pubs {
		pk, err := ssh.NewPublicKey(p)
		if err != nil {
			t.Fatal(err)
		}
		lines = append(lines, strings.TrimSpace(string(ssh.MarshalAuthorizedKey(pk)))+" alice@laptop")
	}
	// Security keys (FIDO), as OpenSSH writes them: the key, then the application.
	w := func(parts ...[]byte) string {
		var b []byte
		for _, p := range parts {
			b = append(b, byte(len(p)>>24), byte(len(p)>>16), byte(len(p)>>8), byte(len(p)))
			b = append(b, p...)
		}
		return base64.StdEncoding.EncodeToString(b)
	}
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	point, _ := ec.PublicKey.Bytes()
	lines = append(lines,
		"sk-ssh-ed25519@openssh.com "+w([]byte("sk-ssh-ed25519@openssh.com"), ed, []byte("ssh:"))+" yubikey",
		"sk-ecdsa-sha2-nistp256@openssh.com "+w([]byte("sk-ecdsa-sha2-nistp256@openssh.com"), []byte("nistp256"), point, []byte("ssh:")))
	// And ssh-keygen's own, where there is one.
	if keygen, err := exec.LookPath("ssh-keygen"); err == nil {
		dir := t.TempDir()
		for _, kt := range []string{"ed25519", "ecdsa", "rsa"} {
			path := filepath.Join(dir, kt)
			if out, err := exec.Command(keygen, "-q", "-t", kt, "-N", "", "-C", "bob@desk", "-f", path).CombinedOutput(); err != nil {
				t.Fatalf("ssh-keygen: %v %s", err, out)
			}
			pub, err := os.ReadFile(path + ".pub")
			if err != nil {
				t.Fatal(err)
			}
			lines = append(lines, strings.TrimSpace(string(pub)))
		}
	}
	return lines
}

// TestRealKeysAccepted: every kind of key users have is accepted, and read as x/crypto/ssh
// reads it.
func TestRealKeysAccepted(t *testing.T) {
	for _, line := range realKeys(t) {
		if !agrees(t, line) {
			t.Errorf("refused a real key: %q", line)
		}
	}
}

// TestMangledKeysRefused: each byte of each real key changed, and the key cut short or
// lengthened: what Parse accepts, x/crypto/ssh accepts and reads alike; a changed type or a
// cut key is refused.
func TestMangledKeysRefused(t *testing.T) {
	for _, line := range realKeys(t) {
		f := strings.Fields(line)
		blob, _ := base64.StdEncoding.DecodeString(f[1])
		for i := range blob {
			for _, x := range []byte{0x01, 0x80, 0xff} {
				b := append([]byte(nil), blob...)
				b[i] ^= x
				agrees(t, f[0]+" "+base64.StdEncoding.EncodeToString(b))
			}
		}
		for _, b := range [][]byte{blob[:len(blob)-1], append(append([]byte(nil), blob...), 0)} {
			if agrees(t, f[0]+" "+base64.StdEncoding.EncodeToString(b)) {
				t.Errorf("accepted %s cut or lengthened", f[0])
			}
		}
		for _, bad := range []string{
			"ssh-ed25519", f[0] + " " + f[1][:len(f[1])-4], f[0] + " !" + f[1], "ssh-rsa " + f[1], "ssh-dss " + f[1],
			`command="/bin/sh" ` + line,
		} {
			if bad != f[0]+" "+f[1] && agrees(t, bad) {
				t.Errorf("accepted %q", bad)
			}
		}
	}
}

// FuzzParse: Parse never accepts what x/crypto/ssh refuses, nor reads a line differently.
func FuzzParse(f *testing.F) {
	for _, line := range []string{
		"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGc3cWhFAUkn0JqP1yv5aLWzYr5Kq5Cr2z1CkxTF0Hbd a@b",
		"ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBA==", "", "ssh-rsa AAAA",
	} {
		f.Add(line)
	}
	f.Fuzz(func(t *testing.T, line string) { agrees(t, line) })
}
