// Package names checks the names people give things (nodes, switches, environments,
// deployments, API tokens, their own first and last names): text shown to other people and
// written to logs, which must read as what it is.
package names

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Error says why a name was refused; Field names what was being named.
type Error struct {
	Field  string
	Reason string
}

func (e *Error) Error() string { return e.Field + " " + e.Reason }

// Check refuses, with an error naming field, a name that is not valid UTF-8 or holds a
// character that changes how the text reads without being seen: a control character, a
// bidirectional override, isolate or mark, a zero-width or other invisible formatting
// character, a line or paragraph separator, an invisible filler letter.
func Check(field, s string) error {
	if !utf8.ValidString(s) {
		return &Error{Field: field, Reason: "is not valid UTF-8 text"}
	}
	for _, r := range s {
		if what := hidden(r); what != "" {
			return &Error{Field: field, Reason: fmt.Sprintf("holds %s (U+%04X), which is not allowed in a name", what, r)}
		}
	}
	return nil
}

// hidden names the kind of r when it is a character a name may not hold, else "".
func hidden(r rune) string {
	switch {
	case unicode.IsControl(r):
		return "a control character"
	case r == 0x061C, r == 0x200E, r == 0x200F, r >= 0x202A && r <= 0x202E, r >= 0x2066 && r <= 0x2069:
		return "a bidirectional control character"
	case r >= 0x200B && r <= 0x200D, r == 0x2060, r == 0xFEFF, r == 0x180E:
		return "a zero-width character"
	case unicode.In(r, unicode.Zl, unicode.Zp):
		return "a line or paragraph separator"
	case unicode.Is(unicode.Cf, r):
		return "an invisible formatting character"
	case r == 0x115F, r == 0x1160, r == 0x3164, r == 0xFFA0:
		return "an invisible filler character"
	}
	return ""
}

// ValidDomain reports whether d looks like a lower-case DNS name (letters, digits, hyphens,
// dots).
func ValidDomain(d string) bool {
	if d == "" || len(d) > 253 {
		return false
	}
	for _, label := range strings.Split(d, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, c := range label {
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}
