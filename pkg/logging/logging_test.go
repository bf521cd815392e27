package logging

import (
	"bytes"
	"encoding/json"
	"flag"
	"strings"
	"testing"
)

func TestFormats(t *testing.T) {
	var buf bytes.Buffer
	log, err := New(&buf, "warn", "json")
	if err != nil {
		t.Fatal(err)
	}
	log.Info("hidden")
	log.Warn("shown", "node", "node-1")
	var rec map[string]any
	if err := json.Unmarshal(buf.Bytes(), &rec); err != nil {
		t.Fatalf("not one JSON object: %q: %v", buf.String(), err)
	}
	if rec["msg"] != "shown" || rec["node"] != "node-1" || rec["level"] != "WARN" {
		t.Errorf("record %v", rec)
	}

	buf.Reset()
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	f := AddFlags(fs)
	if err := fs.Parse([]string{"-log-level", "debug"}); err != nil {
		t.Fatal(err)
	}
	if log, err = f.Logger(&buf); err != nil {
		t.Fatal(err)
	}
	log.Debug("polling", "node", "node-2")
	if got := buf.String(); !strings.Contains(got, "level=DEBUG msg=polling node=node-2") {
		t.Errorf("text line %q", got)
	}

	for _, c := range []struct{ level, format, flag string }{{"loud", "text", "-log-level"}, {"info", "xml", "-log-format"}} {
		if _, err := New(&buf, c.level, c.format); err == nil || !strings.HasPrefix(err.Error(), c.flag) {
			t.Errorf("New(%q, %q): %v, want an error naming %s", c.level, c.format, err, c.flag)
		}
	}
}
