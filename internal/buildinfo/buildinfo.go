// Package buildinfo says which build of sendguard is running: its version, the
// VCS revision it was built from and the Go version that built it. The binary
// prints it (`sendguard version`) and the server exports it as the
// sendguard_build_info metric.
//
// The values come from the build itself (runtime/debug.ReadBuildInfo: `go build`
// in a git checkout records the revision and, since Go 1.24, a version derived
// from the tag or commit). A release build sets them with -ldflags (the
// Makefile's build does):
//
//	go build -ldflags "-X github.com/sendguard/sendguard/internal/buildinfo.version=v1.4.0 \
//	  -X github.com/sendguard/sendguard/internal/buildinfo.revision=$(git rev-parse HEAD)"
package buildinfo

import (
	"runtime"
	"runtime/debug"
)

// Set by -ldflags -X; empty means: read the build information.
var (
	version  string
	revision string
)

// Unknown is what a value the build did not record reads as.
const Unknown = "unknown"

// Info describes a build.
type Info struct {
	// Version is the release ("v1.4.0"), Go's pseudo-version of the commit
	// ("v0.0.0-20261205122632-4686c60da3b7+dirty"), or "unknown".
	Version string
	// Revision is the VCS commit ("4686c60da3b7…"), or "unknown".
	Revision string
	// Modified reports a build from a working tree with uncommitted changes.
	Modified bool
	// GoVersion is the Go toolchain that built the binary ("go1.26.8").
	GoVersion string
}

// Get returns this binary's build information.
func Get() Info {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		bi = nil
	}
	return read(bi, version, revision)
}

// read fills an Info from the build information bi (nil when the binary has
// none) and the values set by -ldflags, which win.
func read(bi *debug.BuildInfo, ldVersion, ldRevision string) Info {
	info := Info{Version: ldVersion, Revision: ldRevision, GoVersion: runtime.Version()}
	if bi != nil {
		if bi.GoVersion != "" {
			info.GoVersion = bi.GoVersion
		}
		if v := bi.Main.Version; info.Version == "" && v != "" && v != "(devel)" {
			info.Version = v
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				if info.Revision == "" {
					info.Revision = s.Value
				}
			case "vcs.modified":
				info.Modified = s.Value == "true"
			}
		}
	}
	if info.Version == "" {
		info.Version = Unknown
	}
	if info.Revision == "" {
		info.Revision = Unknown
	}
	return info
}
