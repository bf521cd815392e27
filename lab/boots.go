package lab

import (
	"bufio"
	"os"
	"strconv"
	"strings"
	"time"
)

// Boot is one boot of a node that got as far as its sshd: at At, the system (nfs or card)
// was up and sshd starting.
type Boot struct {
	At   time.Time
	Mode string
}

// Boots reads the node's boots from its events log ("booted from MODE" lines), oldest first:
// when a node was up, for measuring how soon pitasks saw it.
func (n NodeDesc) Boots() ([]Boot, error) {
	f, err := os.Open(n.EventsLog)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []Boot
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		ts, msg, _ := strings.Cut(sc.Text(), " ")
		mode, ok := strings.CutPrefix(msg, "booted from ")
		if !ok {
			continue
		}
		sec, err := strconv.ParseFloat(ts, 64)
		if err != nil {
			continue
		}
		mode, _, _ = strings.Cut(mode, " ")
		out = append(out, Boot{At: time.Unix(0, int64(sec*1e9)), Mode: mode})
	}
	return out, sc.Err()
}
