// Package auth holds the web's security primitives: bcrypt passwords and the gate that bounds
// how many are hashed at once, random tokens stored as SHA-256, HMAC-derived CSRF tokens, the
// login throttle and the sign-up rate limiter, the sign-up domain filter and the e-mail sender.
package auth
