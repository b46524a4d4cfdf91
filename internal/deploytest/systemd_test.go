package deploytest

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sendguard/sendguard/server"
)

const unitFile = root + "/deploy/systemd/sendguard.service"

// maxExposure bounds `systemd-analyze security`'s exposure level for the unit
// (0 to 10, where 10 is a unit without any sandboxing, 9.6 here), in tenths.
// The unit scores 1.1 with systemd 252.
const maxExposure = 15

// TestSystemdUnit checks deploy/systemd/sendguard.service: that it sets the
// hardening the README promises, stops later than the server's drain, and
// passes `systemd-analyze verify` (with ExecStart pointed at the built binary,
// since verify wants the executable to exist) without a warning and
// `systemd-analyze security --offline` within maxExposure.
func TestSystemdUnit(t *testing.T) {
	raw, err := os.ReadFile(unitFile)
	if err != nil {
		t.Fatal(err)
	}
	service := unitSection(t, raw, "Service")
	for key, want := range map[string]string{
		"DynamicUser":             "yes",
		"StateDirectory":          "sendguard",
		"WorkingDirectory":        "%S/sendguard",
		"ExecStart":               "/usr/local/bin/sendguard serve --config /etc/sendguard/sendguard.yaml",
		"EnvironmentFile":         "-/etc/sendguard/sendguard.env",
		"ProtectSystem":           "strict",
		"ProtectHome":             "yes",
		"PrivateTmp":              "yes",
		"PrivateDevices":          "yes",
		"NoNewPrivileges":         "yes",
		"CapabilityBoundingSet":   "",
		"RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX",
		"RestrictNamespaces":      "yes",
		"LockPersonality":         "yes",
		"MemoryDenyWriteExecute":  "yes",
		"SystemCallArchitectures": "native",
		"UMask":                   "0077",
		"Restart":                 "on-failure",
	} {
		if got, ok := service[key]; !ok || got[0] != want {
			t.Errorf("[Service] %s=%q, want %q", key, got, want)
		}
	}
	if f := service["SystemCallFilter"]; len(f) == 0 || f[0] != "@system-service" {
		t.Errorf("[Service] SystemCallFilter=%q, want @system-service first", f)
	}
	if len(service["LimitNOFILE"]) == 0 {
		t.Error("[Service] LimitNOFILE is not set")
	}
	stop, err := time.ParseDuration(strings.Join(service["TimeoutStopSec"], ""))
	if grace := server.DefaultConfig().ShutdownGrace; err != nil || stop <= grace {
		t.Errorf("[Service] TimeoutStopSec=%q: want a duration above the server's %v drain (%v)", service["TimeoutStopSec"], grace, err)
	}

	analyze := needTool(t, "systemd-analyze", "systemd")
	// verify looks for ExecStart's executable: point it at the built binary.
	dir := t.TempDir()
	testUnit := filepath.Join(dir, "sendguard.service")
	abs, err := filepath.Abs(binary())
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(testUnit, bytes.ReplaceAll(raw, []byte("/usr/local/bin/sendguard"), []byte(abs)), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(analyze, "verify", testUnit).CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
	out, err = exec.Command(analyze, "security", "--offline=true", "--threshold="+strconv.Itoa(maxExposure), testUnit).CombinedOutput()
	level := regexp.MustCompile(`Overall exposure level for \S+: (\S+ \S+)`).FindSubmatch(out)
	if err != nil || level == nil {
		t.Errorf("systemd-analyze security: exposure over %d tenths, or not reported (%v):\n%s", maxExposure, err, out)
	} else {
		t.Logf("FIGURE systemd-analyze security exposure: %s (bound %d.%d)", level[1], maxExposure/10, maxExposure%10)
	}
}

// unitSection returns the assignments of one section of a unit file, values
// of repeated keys in order.
func unitSection(t *testing.T, unit []byte, name string) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	in := false
	sc := bufio.NewScanner(bytes.NewReader(unit))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || line[0] == '#' || line[0] == ';':
		case line[0] == '[':
			in = line == "["+name+"]"
		case in:
			k, v, ok := strings.Cut(line, "=")
			if !ok {
				t.Fatalf("unit: %q is not key=value", line)
			}
			out[k] = append(out[k], v)
		}
	}
	if len(out) == 0 {
		t.Fatalf("unit: no [%s] section", name)
	}
	return out
}
