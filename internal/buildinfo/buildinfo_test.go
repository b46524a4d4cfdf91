package buildinfo

import (
	"runtime"
	"runtime/debug"
	"testing"
)

func TestRead(t *testing.T) {
	stamped := &debug.BuildInfo{
		GoVersion: "go1.26.8",
		Main:      debug.Module{Path: "github.com/sendguard/sendguard", Version: "v0.0.0-20261205122632-4686c60da3b7+dirty"},
		Settings: []debug.BuildSetting{
			{Key: "vcs", Value: "git"},
			{Key: "vcs.revision", Value: "4686c60da3b790a2498d66003beeb2414148c14d"},
			{Key: "vcs.modified", Value: "true"},
		},
	}
	tests := []struct {
		name             string
		bi               *debug.BuildInfo
		ldVersion, ldRev string
		want             Info
	}{
		{"go build in a checkout", stamped, "", "",
			Info{Version: "v0.0.0-20261205122632-4686c60da3b7+dirty", Revision: "4686c60da3b790a2498d66003beeb2414148c14d", Modified: true, GoVersion: "go1.26.8"}},
		{"-ldflags win", stamped, "v1.4.0", "abc123",
			Info{Version: "v1.4.0", Revision: "abc123", Modified: true, GoVersion: "go1.26.8"}},
		{"no VCS information (go test, a tarball)", &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "(devel)"}}, "", "",
			Info{Version: Unknown, Revision: Unknown, GoVersion: "go1.26.8"}},
		{"no build information at all", nil, "", "",
			Info{Version: Unknown, Revision: Unknown, GoVersion: runtime.Version()}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := read(tc.bi, tc.ldVersion, tc.ldRev); got != tc.want {
				t.Errorf("got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}
