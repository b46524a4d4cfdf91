package memlimit

import (
	"os"
	"path/filepath"
	"testing"
)

// fakeRoot makes a filesystem root holding files (path relative to the root →
// contents).
func fakeRoot(t *testing.T, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for p, content := range files {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func TestCgroup(t *testing.T) {
	for _, c := range []struct {
		name  string
		files map[string]string
		want  int64
		ok    bool
	}{
		{"v2 own limit", map[string]string{
			"proc/self/cgroup": "0::/system.slice/sendguard.service\n",
			"sys/fs/cgroup/system.slice/sendguard.service/memory.max": "1073741824\n",
		}, 1 << 30, true},
		{"v2 limit on a parent only", map[string]string{
			"proc/self/cgroup":             "0::/a/b\n",
			"sys/fs/cgroup/a/b/memory.max": "max\n",
			"sys/fs/cgroup/a/memory.max":   "536870912\n",
		}, 512 << 20, true},
		{"v2 the smaller of own and parent", map[string]string{
			"proc/self/cgroup":             "0::/a/b\n",
			"sys/fs/cgroup/a/b/memory.max": "268435456\n",
			"sys/fs/cgroup/a/memory.max":   "536870912\n",
		}, 256 << 20, true},
		{"v2 in a cgroup namespace", map[string]string{
			"proc/self/cgroup":         "0::/\n",
			"sys/fs/cgroup/memory.max": "2147483648\n",
		}, 2 << 30, true},
		{"v2 no limit", map[string]string{
			"proc/self/cgroup":           "0::/a\n",
			"sys/fs/cgroup/a/memory.max": "max\n",
		}, 0, false},
		{"v1 memory controller", map[string]string{
			"proc/self/cgroup": "12:pids:/x\n11:cpu,cpuacct:/y\n10:memory:/docker/abc\n0::/\n",
			"sys/fs/cgroup/memory/docker/abc/memory.limit_in_bytes": "805306368\n",
			"sys/fs/cgroup/memory/memory.limit_in_bytes":            "9223372036854771712\n",
		}, 768 << 20, true},
		{"v1 unlimited", map[string]string{
			"proc/self/cgroup":                           "10:memory:/\n",
			"sys/fs/cgroup/memory/memory.limit_in_bytes": "9223372036854771712\n",
		}, 0, false},
		{"no cgroup files", map[string]string{"proc/self/cgroup": "0::/a\n"}, 0, false},
		{"no /proc", map[string]string{}, 0, false},
		{"garbage", map[string]string{
			"proc/self/cgroup":           "0::/a\nnonsense\n1:memory\n",
			"sys/fs/cgroup/a/memory.max": "lots\n",
		}, 0, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, ok := Cgroup(fakeRoot(t, c.files))
			if got != c.want || ok != c.ok {
				t.Errorf("Cgroup = %d, %v; want %d, %v", got, ok, c.want, c.ok)
			}
		})
	}
}

func TestApplyLeavesGOMEMLIMITAlone(t *testing.T) {
	t.Setenv("GOMEMLIMIT", "512MiB")
	if set, cg := Apply(); set != 0 || cg != 0 {
		t.Errorf("Apply with GOMEMLIMIT set = %d, %d; want 0, 0", set, cg)
	}
}

func FuzzCgroupPaths(f *testing.F) {
	f.Add([]byte("12:pids:/x\n10:memory:/docker/abc\n0::/a/b\n"))
	f.Fuzz(func(t *testing.T, self []byte) {
		v2, v1 := cgroupPaths(self)
		for _, p := range []string{v2, v1} {
			if p != "" && p[0] != '/' {
				t.Errorf("cgroupPaths(%q) gave relative path %q", self, p)
			}
		}
	})
}
