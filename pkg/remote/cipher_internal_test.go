package remote

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
)

// TestCipherOrder: AES-GCM first only where the CPU runs it in hardware.
func TestCipherOrder(t *testing.T) {
	if got := cipherOrder(true)[0]; got != ssh.CipherAES128GCM {
		t.Errorf("with AES instructions, first = %s", got)
	}
	if got := cipherOrder(false)[0]; got != ssh.CipherChaCha20Poly1305 {
		t.Errorf("without AES instructions, first = %s", got)
	}
}

// TestNoAESPrefersChaCha: with the CPU's AES instructions turned off (GODEBUG=cpu.aes=off, how
// bench/cpu.sh measures a pimaster without them) ChaCha20-Poly1305 comes first.
func TestNoAESPrefersChaCha(t *testing.T) {
	if os.Getenv("PISEDUCE_CIPHER_CHILD") == "1" {
		fmt.Print(Ciphers()[0])
		return
	}
	if runtime.GOARCH != "amd64" {
		t.Skip("GODEBUG=cpu.aes=off is checked on amd64")
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestNoAESPrefersChaCha$")
	cmd.Env = append(os.Environ(), "PISEDUCE_CIPHER_CHILD=1", "GODEBUG=cpu.aes=off")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("child: %v", err)
	}
	if got := strings.TrimSuffix(strings.TrimSpace(string(out)), "PASS"); !strings.HasPrefix(got, ssh.CipherChaCha20Poly1305) {
		t.Errorf("without AES, first cipher = %q", got)
	}
}
