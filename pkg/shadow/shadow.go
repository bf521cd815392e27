// Package shadow makes password hashes as /etc/shadow holds them: SHA-512 crypt ("$6$"), the
// scheme of Debian, Raspberry Pi OS and Ubuntu, which chpasswd -e, userconf.txt and
// cloud-init's hashed_passwd take as they are. The password never leaves this process in
// clear, and no program on the node is needed to hash it.
package shadow

import (
	"crypto/rand"
	"crypto/sha512"
	"errors"
	"strings"
)

// itoa64 is crypt's base-64 alphabet.
const itoa64 = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// rounds is the scheme's default (then not written in the hash).
const rounds = 5000

// Hash returns the SHA-512 crypt hash of password with a random 16-character salt.
func Hash(password string) (string, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	salt := make([]byte, 16)
	for i, c := range b {
		salt[i] = itoa64[int(c)%len(itoa64)]
	}
	return SHA512(password, string(salt))
}

// SHA512 returns "$6$salt$hash" for password, as crypt(3) does with 5000 rounds (Ulrich
// Drepper's "Unix crypt using SHA-256 and SHA-512" specification).
func SHA512(password, salt string) (string, error) {
	if len(salt) > 16 {
		salt = salt[:16]
	}
	if strings.ContainsAny(salt, "$:\n") {
		return "", errors.New("shadow: the salt may not hold $, : or a new line")
	}
	key, s := []byte(password), []byte(salt)
	b := sha512.New()
	b.Write(key)
	b.Write(s)
	b.Write(key)
	sumB := b.Sum(nil)

	a := sha512.New()
	a.Write(key)
	a.Write(s)
	a.Write(repeat(sumB, len(key)))
	for n := len(key); n > 0; n >>= 1 {
		if n&1 != 0 {
			a.Write(sumB)
		} else {
			a.Write(key)
		}
	}
	sumA := a.Sum(nil)

	dp := sha512.New()
	for range key {
		dp.Write(key)
	}
	p := repeat(dp.Sum(nil), len(key))

	ds := sha512.New()
	for i := 0; i < 16+int(sumA[0]); i++ {
		ds.Write(s)
	}
	sp := repeat(ds.Sum(nil), len(s))

	c := sumA
	for i := 0; i < rounds; i++ {
		h := sha512.New()
		if i&1 != 0 {
			h.Write(p)
		} else {
			h.Write(c)
		}
		if i%3 != 0 {
			h.Write(sp)
		}
		if i%7 != 0 {
			h.Write(p)
		}
		if i&1 != 0 {
			h.Write(c)
		} else {
			h.Write(p)
		}
		c = h.Sum(nil)
	}

	var out strings.Builder
	out.WriteString("$6$" + salt + "$")
	enc := func(b2, b1, b0 byte, n int) {
		w := uint(b2)<<16 | uint(b1)<<8 | uint(b0)
		for ; n > 0; n-- {
			out.WriteByte(itoa64[w&0x3f])
			w >>= 6
		}
	}
	for i := 0; i < 21; i++ { // the specification's byte order: (0,21,42), (22,43,1), (44,2,23)…
		x, y, z := i, i+21, i+42
		switch i % 3 {
		case 1:
			x, y, z = i+21, i+42, i
		case 2:
			x, y, z = i+42, i, i+21
		}
		enc(c[x], c[y], c[z], 4)
	}
	enc(0, 0, c[63], 2)
	return out.String(), nil
}

// repeat is b repeated, cut to n bytes.
func repeat(b []byte, n int) []byte {
	out := make([]byte, 0, n)
	for len(out) < n {
		out = append(out, b[:min(len(b), n-len(out))]...)
	}
	return out
}
