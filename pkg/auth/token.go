package auth

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"math/big"
)

// NewToken returns prefix followed by 32 random bytes in URL-safe base64.
func NewToken(prefix string) string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic("auth: no randomness: " + err.Error()) // crypto/rand never fails on Linux
	}
	return prefix + base64.RawURLEncoding.EncodeToString(b)
}

// HashToken is what the database keeps of a token: its hex SHA-256.
func HashToken(token string) string {
	h := sha256.Sum256([]byte(token))
	return hex.EncodeToString(h[:])
}

// passwordAlphabet leaves out look-alike characters (0/O, 1/l/I) and shell-special ones.
const passwordAlphabet = "abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"

// RandomPassword returns n characters drawn uniformly with crypto/rand.
func RandomPassword(n int) string {
	out := make([]byte, n)
	max := big.NewInt(int64(len(passwordAlphabet)))
	for i := range out {
		k, err := rand.Int(rand.Reader, max)
		if err != nil {
			panic("auth: no randomness: " + err.Error())
		}
		out[i] = passwordAlphabet[k.Int64()]
	}
	return string(out)
}

// Signer derives and checks HMAC-SHA256 tags with the session secret.
type Signer struct{ key []byte }

// NewSigner returns a Signer keyed by secret.
func NewSigner(secret string) *Signer {
	k := sha256.Sum256([]byte("piseduce web: " + secret))
	return &Signer{key: k[:]}
}

// Tag returns the URL-safe HMAC of purpose and value.
func (s *Signer) Tag(purpose, value string) string {
	m := hmac.New(sha256.New, s.key)
	m.Write([]byte(purpose))
	m.Write([]byte{0})
	m.Write([]byte(value))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// Check reports in constant time whether tag is the HMAC of purpose and value.
func (s *Signer) Check(purpose, value, tag string) bool {
	want := s.Tag(purpose, value)
	return subtle.ConstantTimeCompare([]byte(want), []byte(tag)) == 1
}
