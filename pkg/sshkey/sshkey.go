// Package sshkey checks the SSH public keys users give (one authorized_keys line) without the
// SSH protocol library: pifrontend only stores keys, pitasks writes them to the nodes, and the
// frontend links no SSH package. The check is structural and complete for the key types a user
// may give: the type named twice alike, every field its exact length, no trailing bytes,
// elliptic-curve points on their curve, an RSA modulus of 1024 to 16384 bits with an odd
// exponent. The tests hold it to golang.org/x/crypto/ssh's answers: what this accepts, that
// accepts and writes alike; this is stricter only on weak or odd keys (RSA under 1024 bits,
// integers not in their shortest form) and on DSA keys and certificates, which it refuses.
package sshkey

import (
	"bytes"
	"crypto/ecdh"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"math/big"
	"strings"
)

// Errors: every refusal wraps ErrNotAKey.
var (
	ErrNotAKey     = errors.New("not an SSH public key")
	ErrUnsupported = errors.New("unsupported SSH key type") // e.g. ssh-dss, certificates
)

// curves are the ECDSA curves, by the name in the key type and in the key.
var curves = map[string]ecdh.Curve{"nistp256": ecdh.P256(), "nistp384": ecdh.P384(), "nistp521": ecdh.P521()}

// Parse checks one line "TYPE BASE64 [COMMENT]" (no options) and returns the key as
// "TYPE BASE64", its base64 re-encoded in the standard form, and the comment, trimmed.
func Parse(line string) (key, comment string, err error) {
	f := strings.Fields(line)
	if len(f) < 2 {
		return "", "", ErrNotAKey
	}
	typ := f[0]
	blob, err := base64.StdEncoding.DecodeString(f[1])
	if err != nil {
		return "", "", ErrNotAKey
	}
	if err := check(typ, blob); err != nil {
		return "", "", err
	}
	rest := strings.TrimSpace(line)
	rest = strings.TrimSpace(strings.TrimPrefix(rest, typ))
	rest = strings.TrimSpace(strings.TrimPrefix(rest, f[1]))
	return typ + " " + base64.StdEncoding.EncodeToString(blob), rest, nil
}

// check verifies the wire form of a public key of type typ.
func check(typ string, blob []byte) error {
	r := reader(blob)
	if name, ok := r.str(); !ok || string(name) != typ {
		return ErrNotAKey
	}
	ok := false
	switch typ {
	case "ssh-ed25519":
		ok = r.fixed(32)
	case "sk-ssh-ed25519@openssh.com":
		ok = r.fixed(32) && r.skip()
	case "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521":
		ok = r.point(strings.TrimPrefix(typ, "ecdsa-sha2-"))
	case "sk-ecdsa-sha2-nistp256@openssh.com":
		ok = r.point("nistp256") && r.skip()
	case "ssh-rsa":
		ok = r.rsa()
	default:
		return ErrUnsupported
	}
	if !ok || len(r) > 0 {
		return ErrNotAKey
	}
	return nil
}

// reader consumes SSH wire-format fields (RFC 4251 section 5).
type reader []byte

// str reads a string: a uint32 length and that many bytes.
func (r *reader) str() ([]byte, bool) {
	if len(*r) < 4 {
		return nil, false
	}
	n := binary.BigEndian.Uint32(*r)
	if uint64(n) > uint64(len(*r)-4) {
		return nil, false
	}
	s := (*r)[4 : 4+n]
	*r = (*r)[4+n:]
	return s, true
}

func (r *reader) fixed(n int) bool {
	s, ok := r.str()
	return ok && len(s) == n
}

// skip reads a string of any content (a security key's application).
func (r *reader) skip() bool {
	_, ok := r.str()
	return ok
}

// point reads an ECDSA key's curve name and its uncompressed point, which must be on it.
func (r *reader) point(curve string) bool {
	name, ok := r.str()
	if !ok || string(name) != curve {
		return false
	}
	q, ok := r.str()
	if !ok {
		return false
	}
	_, err := curves[curve].NewPublicKey(q)
	return err == nil
}

// rsa reads the exponent and modulus, positive canonical mpints.
func (r *reader) rsa() bool {
	e, ok := r.mpint()
	if !ok || e.BitLen() > 24 || e.Int64() < 3 || e.Bit(0) == 0 {
		return false
	}
	n, ok := r.mpint()
	return ok && n.BitLen() >= 1024 && n.BitLen() <= 16384
}

func (r *reader) mpint() (*big.Int, bool) {
	s, ok := r.str()
	if !ok || len(s) == 0 || s[0]&0x80 != 0 || len(s) > 1 && s[0] == 0 && s[1]&0x80 == 0 {
		return nil, false // empty, negative, or not in its shortest form
	}
	return new(big.Int).SetBytes(bytes.TrimLeft(s, "\x00")), true
}
