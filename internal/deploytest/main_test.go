package deploytest

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// root is the repository's root, from this package's directory.
const root = "../.."

// imageDir is where TestMain's `make image` wrote the binary (sendguard), the
// OCI layout (oci/) and the docker archive (sendguard-image.tar).
var imageDir string

// TestMain builds the image once with `make image`, as a user would: its
// binary is the one every test here starts.
func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "sendguard-deploytest-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	imageDir = dir
	cmd := exec.Command("make", "--no-print-directory", "-C", root, "image", "IMAGE_OUT="+dir, "IMAGE_TAG="+testTag)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		fmt.Fprintf(os.Stderr, "make image: %v\n%s", err, out.Bytes())
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// testTag is the tag the tests' image is built with.
const testTag = "sendguard:deploytest"

// binary is the static sendguard binary `make image` built.
func binary() string { return filepath.Join(imageDir, "sendguard") }

// needTool returns the path of a tool, or skips the test without it (fails
// under SENDGUARD_REQUIRE_DEPLOY_TOOLS=1, as in CI).
func needTool(t *testing.T, name, debianPackage string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err == nil {
		return p
	}
	msg := fmt.Sprintf("%s not found (apt-get install %s)", name, debianPackage)
	if os.Getenv("SENDGUARD_REQUIRE_DEPLOY_TOOLS") != "" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}
