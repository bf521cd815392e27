package config

import (
	"bufio"
	"fmt"
	"io"
	"strings"
)

// entry is one key = value line of an INI file, with where it came from for error messages.
type entry struct {
	section, key, value string
	line                int
}

// parseINI reads the INI dialect of seducepp.conf: [section] headers, key = value (or key: value)
// lines, full-line comments starting with # or ;. Keys are case-insensitive. A key outside any
// section, a line that is neither, or a key given twice in a section is an error naming the line.
func parseINI(name string, r io.Reader) ([]entry, error) {
	var (
		out     []entry
		section string
		seen    = map[string]int{}
	)
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if n == 1 {
			line = strings.TrimPrefix(line, "\ufeff")
		}
		if line == "" || line[0] == '#' || line[0] == ';' {
			continue
		}
		if line[0] == '[' {
			if !strings.HasSuffix(line, "]") {
				return nil, fmt.Errorf("%s:%d: section header %q has no closing ]", name, n, line)
			}
			section = strings.ToLower(strings.TrimSpace(line[1 : len(line)-1]))
			if section == "" {
				return nil, fmt.Errorf("%s:%d: empty section name", name, n)
			}
			continue
		}
		i := strings.IndexAny(line, "=:")
		if i <= 0 {
			return nil, fmt.Errorf("%s:%d: want key = value, got %q", name, n, line)
		}
		key := strings.ToLower(strings.TrimSpace(line[:i]))
		if section == "" {
			return nil, fmt.Errorf("%s:%d: key %q is outside any [section]", name, n, key)
		}
		id := section + "." + key
		if prev, dup := seen[id]; dup {
			return nil, fmt.Errorf("%s:%d: %s given twice (first on line %d)", name, n, id, prev)
		}
		seen[id] = n
		out = append(out, entry{section: section, key: key, value: strings.TrimSpace(line[i+1:]), line: n})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return out, nil
}
