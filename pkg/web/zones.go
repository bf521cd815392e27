package web

import (
	"sync"
	"time"
	_ "time/tzdata" // the zones browsers name, also on a pimaster without the tzdata package
)

// zones knows the IANA time zones reservations are entered in: it checks the name a browser
// sends and writes times in a zone, naming it. Loaded zones are kept: the resources page
// writes one time per node.
type zones struct {
	mu   sync.Mutex
	locs map[string]*time.Location
}

// load returns the zone called name; "" is UTC.
func (z *zones) load(name string) (*time.Location, error) {
	if name == "" {
		return time.UTC, nil
	}
	z.mu.Lock()
	defer z.mu.Unlock()
	if loc, ok := z.locs[name]; ok {
		return loc, nil
	}
	if name == "Local" || len(name) > 64 { // Local is the server's zone, not a browser's
		return nil, badInput("Unknown time zone %q.", name)
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		return nil, badInput("Unknown time zone %q.", name)
	}
	if z.locs == nil {
		z.locs = map[string]*time.Location{}
	}
	z.locs[name] = loc
	return loc, nil
}

// format writes t in zone, named: "2030-01-31 14:00 Europe/Paris". A zone that does not load
// shows as UTC.
func (z *zones) format(t time.Time, zone string) string {
	if t.IsZero() {
		return "—"
	}
	loc, err := z.load(zone)
	if err != nil || zone == "" {
		return t.UTC().Format("2006-01-02 15:04 UTC")
	}
	return t.In(loc).Format("2006-01-02 15:04 ") + zone
}
