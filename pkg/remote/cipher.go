package remote

import (
	"runtime"

	"golang.org/x/crypto/ssh"
	"golang.org/x/sys/cpu"
)

// The image is streamed over SSH, so the cipher is most of what pitasks' CPU spends per byte.
// x/crypto/ssh always offers AES-GCM first, and in SSH the client's order decides. On a CPU
// without AES and carry-less multiply instructions (the Raspberry Pi 4 a pimaster often is),
// AES-GCM runs in constant-time software several times slower than ChaCha20-Poly1305; on one
// with them, AES-GCM is the cheaper. BENCHMARKS.md ("The pimaster's CPU") has the numbers.

// hasAESGCM reports whether this CPU has the instructions Go's AES-GCM uses. GODEBUG=cpu.aes=off
// turns it off, as it does for Go's own AES, which is how the benchmark measures a pimaster
// without them on any machine.
func hasAESGCM() bool {
	switch runtime.GOARCH {
	case "amd64", "386":
		return cpu.X86.HasAES && cpu.X86.HasPCLMULQDQ
	case "arm64":
		return cpu.ARM64.HasAES && cpu.ARM64.HasPMULL
	case "s390x":
		return cpu.S390X.HasAESGCM
	case "ppc64le":
		return true // POWER8 and later
	}
	return false // arm (armv7), riscv64, ...: no AES instructions Go uses
}

// Ciphers is the client's cipher preference for this CPU: the faster AEAD first, the other
// second, then the CTR modes for old servers.
func Ciphers() []string {
	return cipherOrder(hasAESGCM())
}

func cipherOrder(aesGCM bool) []string {
	if aesGCM {
		return []string{ssh.CipherAES128GCM, ssh.CipherChaCha20Poly1305, ssh.CipherAES256GCM,
			ssh.CipherAES128CTR, ssh.CipherAES192CTR, ssh.CipherAES256CTR}
	}
	return []string{ssh.CipherChaCha20Poly1305, ssh.CipherAES128GCM, ssh.CipherAES256GCM,
		ssh.CipherAES128CTR, ssh.CipherAES192CTR, ssh.CipherAES256CTR}
}
