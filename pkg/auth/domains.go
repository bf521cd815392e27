package auth

import (
	"errors"
	"net/mail"
	"strings"

	"github.com/piseduce/piseduce/pkg/names"
)

// ParseDomains reads the admin's sign-up filter: domains separated by spaces, commas or new
// lines, lower-cased, a leading "@" or "." dropped, duplicates removed.
func ParseDomains(text string) []string {
	var out []string
	seen := map[string]bool{}
	for _, f := range strings.FieldsFunc(text, func(r rune) bool { return r == ',' || r == ';' || r == ' ' || r == '\n' || r == '\r' || r == '\t' }) {
		d := strings.TrimLeft(strings.ToLower(strings.TrimSpace(f)), "@.")
		if d != "" && !seen[d] {
			seen[d] = true
			out = append(out, d)
		}
	}
	return out
}

// ParseEmail checks that s is a bare address (no display name, one @, a valid domain) and
// returns it lower-cased.
func ParseEmail(s string) (string, error) {
	s = strings.TrimSpace(s)
	a, err := mail.ParseAddress(s)
	if err != nil || a.Address != s || a.Name != "" || len(s) > 254 {
		return "", errors.New("enter a valid e-mail address, like name@example.com")
	}
	local, domain, ok := strings.Cut(strings.ToLower(s), "@")
	if !ok || local == "" || strings.Contains(domain, "@") || !names.ValidDomain(domain) || !strings.Contains(domain, ".") {
		return "", errors.New("enter a valid e-mail address, like name@example.com")
	}
	if strings.HasSuffix(domain, ".invalid") || domain == "invalid" {
		return "", errors.New("this e-mail domain cannot be used")
	}
	return local + "@" + domain, nil
}

// EmailAllowed reports whether the domain of email passes the filter. A filter entry matches
// its own domain and its subdomains, always at a label boundary: "example.com" lets in
// a@example.com and a@lab.example.com, never a@evil-example.com or a@example.com.evil.org.
// An empty filter lets everyone in.
func EmailAllowed(email string, domains []string) bool {
	if len(domains) == 0 {
		return true
	}
	_, domain, ok := strings.Cut(strings.ToLower(email), "@")
	if !ok {
		return false
	}
	for _, d := range domains {
		if domain == d || strings.HasSuffix(domain, "."+d) {
			return true
		}
	}
	return false
}
