package auth

import (
	"errors"
	"fmt"
	"sync"
	"unicode/utf8"

	"golang.org/x/crypto/bcrypt"
)

// Password length limits: bcrypt reads at most 72 bytes.
const (
	MinPasswordLen = 10
	MaxPasswordLen = 72
)

// bcryptCost is a variable only so that tests can lower it (see SetFastHashingForTests).
var bcryptCost = bcrypt.DefaultCost

// SetFastHashingForTests makes HashPassword cheap; only tests call it.
func SetFastHashingForTests() { bcryptCost = bcrypt.MinCost }

// ValidatePassword checks a new password's length.
func ValidatePassword(pw string) error {
	switch {
	case utf8.RuneCountInString(pw) < MinPasswordLen:
		return fmt.Errorf("the password must have at least %d characters", MinPasswordLen)
	case len(pw) > MaxPasswordLen:
		return fmt.Errorf("the password must have at most %d bytes", MaxPasswordLen)
	}
	return nil
}

// HashPassword returns the bcrypt hash of pw.
func HashPassword(pw string) (string, error) {
	if len(pw) > MaxPasswordLen {
		return "", errors.New("auth: password too long")
	}
	h, err := bcrypt.GenerateFromPassword([]byte(pw), bcryptCost)
	if err != nil {
		return "", fmt.Errorf("auth: hash password: %w", err)
	}
	return string(h), nil
}

// dummyHash is compared against when the user does not exist, so that a login takes the same
// time whether the e-mail is known or not. It is made on first use, at the cost of the
// passwords' hashes (tests lower it before).
var dummyHash = sync.OnceValue(func() []byte {
	h, _ := bcrypt.GenerateFromPassword([]byte("not a real password, only for timing"), bcryptCost)
	return h
})

// CheckPassword reports whether pw matches hash; an empty hash (unknown user) costs the same.
func CheckPassword(hash, pw string) bool {
	if hash == "" || len(pw) > MaxPasswordLen {
		_ = bcrypt.CompareHashAndPassword(dummyHash(), []byte(pw))
		return false
	}
	return bcrypt.CompareHashAndPassword([]byte(hash), []byte(pw)) == nil
}

// oneTimePasswordLen: 20 characters of a 57-letter alphabet, about 116 bits.
const oneTimePasswordLen = 20

// OneTimePassword returns a random password to give someone once (the first admin, a reset by
// an admin or on the pimaster) and its hash to store.
func OneTimePassword() (password, hash string, err error) {
	password = RandomPassword(oneTimePasswordLen)
	hash, err = HashPassword(password)
	return password, hash, err
}
