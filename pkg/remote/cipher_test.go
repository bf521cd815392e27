package remote_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/piseduce/piseduce/pkg/remote"
	"github.com/piseduce/piseduce/pkg/remote/internal/sshdtest"
)

// TestCiphersAreSecure: the preference holds only ciphers x/crypto/ssh counts as secure, both
// AEADs first.
func TestCiphersAreSecure(t *testing.T) {
	got := remote.Ciphers()
	secure := ssh.SupportedAlgorithms().Ciphers
	for _, c := range got {
		if !slices.Contains(secure, c) {
			t.Errorf("cipher %s is not among x/crypto/ssh's secure ones %v", c, secure)
		}
	}
	if len(got) < 2 || !slices.Contains(got[:2], ssh.CipherAES128GCM) || !slices.Contains(got[:2], ssh.CipherChaCha20Poly1305) {
		t.Errorf("Ciphers() = %v, want AES-128-GCM and ChaCha20-Poly1305 first", got)
	}
}

// TestDialNegotiatesCiphers: against a real OpenSSH server the CPU's first choice is what the
// image is sent with, and a server that offers only an older cipher is still reached.
func TestDialNegotiatesCiphers(t *testing.T) {
	for _, tc := range []struct {
		name   string
		sshd   []string
		dialer []string
		want   string
	}{
		{"this CPU's choice", nil, nil, remote.Ciphers()[0]},
		{"the other AEAD", nil, []string{ssh.CipherChaCha20Poly1305, ssh.CipherAES128GCM}, ssh.CipherChaCha20Poly1305},
		{"an old server", []string{"Ciphers aes256-ctr"}, nil, ssh.CipherAES256CTR},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := sshdtest.StartWith(t, sshdtest.Config{ExtraConfig: tc.sshd})
			d := &remote.Dialer{Signer: srv.Signer, Timeout: time.Minute, Keys: remote.StaticHostKey(srv.HostKey), Ciphers: tc.dialer}
			c, err := d.Dial(context.Background(), remote.Target{Addr: srv.Addr, Role: remote.RoleSystem, NodeID: 1})
			if err != nil {
				t.Fatalf("dial: %v", err)
			}
			defer c.Close()
			if got := c.Cipher(); got != tc.want {
				t.Errorf("negotiated %q, want %q", got, tc.want)
			}
			if out, err := c.Output(context.Background(), "echo", "ok"); err != nil || string(out) != "ok\n" {
				t.Errorf("echo ok = %q, %v", out, err)
			}
		})
	}
}
