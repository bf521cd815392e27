package names

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestCheck(t *testing.T) {
	ok := []string{"", "node-7", "Zoë Ångström", "José María", "王小明", "Ólafur", "Αλέξανδρος", "محمد", "O'Brien", "emoji 🍓 ok"}
	for _, s := range ok {
		if err := Check("The name", s); err != nil {
			t.Errorf("Check(%q) = %v, want nil", s, err)
		}
	}
	bad := []struct{ s, say string }{
		{"a\x00b", "a control character (U+0000)"},
		{"tab\there", "a control character (U+0009)"},
		{"new\nline", "a control character (U+000A)"},
		{"esc\x1b[31m", "a control character (U+001B)"},
		{"del\x7f", "a control character (U+007F)"},
		{"c1\u0085", "a control character (U+0085)"},
		{"evil\u202Egnp.exe", "a bidirectional control character (U+202E)"},
		{"\u202Aembed", "a bidirectional control character (U+202A)"},
		{"iso\u2066late\u2069", "a bidirectional control character (U+2066)"},
		{"mark\u200F", "a bidirectional control character (U+200F)"},
		{"arabic\u061Cmark", "a bidirectional control character (U+061C)"},
		{"zero\u200Bwidth", "a zero-width character (U+200B)"},
		{"zw\u200Dj", "a zero-width character (U+200D)"},
		{"\uFEFFbom", "a zero-width character (U+FEFF)"},
		{"word\u2060joiner", "a zero-width character (U+2060)"},
		{"soft\u00ADhyphen", "an invisible formatting character (U+00AD)"},
		{"tag\U000E0041", "an invisible formatting character (U+E0041)"},
		{"line\u2028sep", "a line or paragraph separator (U+2028)"},
		{"\u3164", "an invisible filler character (U+3164)"},
		{"bad\xffutf8", "is not valid UTF-8 text"},
		{"\xc3", "is not valid UTF-8 text"},
	}
	for _, tc := range bad {
		err := Check("The token name", tc.s)
		if err == nil || !strings.HasPrefix(err.Error(), "The token name ") || !strings.Contains(err.Error(), tc.say) {
			t.Errorf("Check(%q) = %v, want an error naming the field and saying %q", tc.s, err, tc.say)
		}
		if err != nil && !utf8.ValidString(err.Error()) {
			t.Errorf("Check(%q): the error is not valid UTF-8 itself", tc.s)
		}
	}
}

func TestValidDomain(t *testing.T) {
	for _, d := range []string{"example.com", "pi2.seduce.fr", "a", "x-1.lab"} {
		if !ValidDomain(d) {
			t.Errorf("ValidDomain(%q) = false", d)
		}
	}
	for _, d := range []string{"", "Example.com", "a..b", "-a.b", "a-.b", "a b", "a_b.c", strings.Repeat("a", 64) + ".com", "ex\u202Eample.com"} {
		if ValidDomain(d) {
			t.Errorf("ValidDomain(%q) = true", d)
		}
	}
}
