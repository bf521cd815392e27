package remote

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/crypto/ssh"
)

// keyComment is written in the public half of the pimaster's key.
const keyComment = "piseduce-pimaster"

// LoadOrCreateKey returns the SSH key stored at path (an OpenSSH private key) and creates an
// ed25519 one if the file does not exist. The private key is written with mode 0600 (its folder
// 0700 if created); path+".pub" receives the public key as an authorized_keys line, rewritten
// when missing. A key file readable by group or others is refused, as OpenSSH does.
func LoadOrCreateKey(path string) (ssh.Signer, error) {
	signer, err := loadKey(path)
	if errors.Is(err, fs.ErrNotExist) {
		signer, err = createKey(path)
	}
	if err != nil {
		return nil, err
	}
	pubPath := path + ".pub"
	want := authorizedLine(signer.PublicKey(), keyComment)
	if got, err := os.ReadFile(pubPath); err == nil && sameKeyLine(string(got), signer.PublicKey()) {
		return signer, nil
	}
	if err := writeFileAtomic(pubPath, []byte(want), 0o644); err != nil {
		return nil, fmt.Errorf("remote: write public key: %w", err)
	}
	return signer, nil
}

func loadKey(path string) (ssh.Signer, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err // keeps fs.ErrNotExist visible to the caller
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("remote: key %s: %w", path, err)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("remote: key %s has mode %04o: it must not be accessible by group or others (chmod 600)", path, st.Mode().Perm())
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("remote: read key %s: %w", path, err)
	}
	signer, err := ssh.ParsePrivateKey(data)
	if err != nil {
		// Never echo the file's content: it is a secret.
		return nil, fmt.Errorf("remote: parse key %s: %w", path, err)
	}
	return signer, nil
}

func createKey(path string) (ssh.Signer, error) {
	pemBytes, signer, err := newKey(keyComment)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("remote: create key folder: %w", err)
	}
	if err := writeFileAtomic(path, pemBytes, 0o600); err != nil {
		return nil, fmt.Errorf("remote: write key: %w", err)
	}
	return signer, nil
}

// NewHostKey makes an ed25519 key for a system's sshd: the private key as an OpenSSH key
// file (PEM) and the public key. The pimaster makes the deployed systems' keys itself so that
// it knows each one before the system first answers.
func NewHostKey(comment string) (private []byte, public ssh.PublicKey, err error) {
	private, signer, err := newKey(comment)
	if err != nil {
		return nil, nil, err
	}
	return private, signer.PublicKey(), nil
}

// newKey makes an ed25519 key: its OpenSSH PEM encoding and its signer.
func newKey(comment string) ([]byte, ssh.Signer, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("remote: generate key: %w", err)
	}
	block, err := ssh.MarshalPrivateKey(priv, comment)
	if err != nil {
		return nil, nil, fmt.Errorf("remote: encode key: %w", err)
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		return nil, nil, fmt.Errorf("remote: key signer: %w", err)
	}
	return pem.EncodeToMemory(block), signer, nil
}

// writeFileAtomic writes data to a temporary file beside path, then renames it into place, so a
// crash never leaves a half-written key.
func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// authorizedLine formats key as an authorized_keys line ending in a newline.
func authorizedLine(key ssh.PublicKey, comment string) string {
	line := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(key)))
	if comment != "" {
		line += " " + comment
	}
	return line + "\n"
}

func sameKeyLine(line string, key ssh.PublicKey) bool {
	got, _, _, _, err := ssh.ParseAuthorizedKey([]byte(line))
	return err == nil && keysEqual(got, key)
}

// AuthorizedKey formats key in authorized_keys format ("ssh-ed25519 AAAA…"), without comment
// or newline: the form HostKeyStore stores.
func AuthorizedKey(key ssh.PublicKey) string {
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(key)))
}

// ParseKey parses one public key in authorized_keys format (options and comment allowed).
func ParseKey(s string) (ssh.PublicKey, error) {
	key, _, _, _, err := ssh.ParseAuthorizedKey([]byte(s))
	if err != nil {
		return nil, fmt.Errorf("remote: parse public key: %w", err)
	}
	return key, nil
}
