// Package auth holds the web's security primitives: bcrypt passwords, random tokens stored as
// SHA-256, HMAC-derived CSRF tokens, a login rate limiter, the sign-up domain filter and the
// e-mail sender.
package auth
