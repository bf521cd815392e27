// Package version tells which build of PiSeduce is running: the release version given at link
// time, else the module version Go stamped, and the commit and build date from the VCS stamp.
//
//	go build -ldflags "-X github.com/piseduce/piseduce/pkg/version.version=1.2.0 \
//	                   -X github.com/piseduce/piseduce/pkg/version.date=2025-05-20T10:00:00Z" ./cmd/...
package version

import (
	"fmt"
	"runtime"
	"runtime/debug"
)

// Set only by the linker (-ldflags -X): never written at run time.
var (
	version string // release version, e.g. 1.2.0
	date    string // build date, RFC 3339
)

// Info describes one build.
type Info struct {
	Version   string // release version, module version, or "devel"
	Commit    string // VCS revision, with "-dirty" when built from a modified tree; "unknown" without a stamp
	Date      string // build date (-ldflags), else the commit's date; "unknown" without either
	GoVersion string
}

// Get reads the build's version, from the linker's values first and runtime/debug's build info.
func Get() Info {
	i := Info{Version: version, Date: date, GoVersion: runtime.Version()}
	var commit, modified, commitTime string
	if bi, ok := debug.ReadBuildInfo(); ok {
		if i.Version == "" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			i.Version = bi.Main.Version
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				commit = s.Value
			case "vcs.modified":
				modified = s.Value
			case "vcs.time":
				commitTime = s.Value
			}
		}
	}
	if i.Version == "" {
		i.Version = "devel"
	}
	switch {
	case commit == "":
		i.Commit = "unknown"
	case modified == "true":
		i.Commit = commit + "-dirty"
	default:
		i.Commit = commit
	}
	if i.Date == "" {
		i.Date = commitTime
	}
	if i.Date == "" {
		i.Date = "unknown"
	}
	return i
}

// String is the line --version prints after the program's name.
func (i Info) String() string {
	return fmt.Sprintf("%s (commit %s, built %s, %s)", i.Version, i.Commit, i.Date, i.GoVersion)
}
