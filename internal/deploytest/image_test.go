package deploytest

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"debug/buildinfo"
	"debug/elf"
	"encoding/hex"
	"encoding/json"
	"io"
	"maps"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sendguard/sendguard/server"
)

// OCI media types (image-spec v1.1).
const (
	ociIndexType    = "application/vnd.oci.image.index.v1+json"
	ociManifestType = "application/vnd.oci.image.manifest.v1+json"
	ociConfigType   = "application/vnd.oci.image.config.v1+json"
	ociLayerGzType  = "application/vnd.oci.image.layer.v1.tar+gzip"
)

type descriptor struct {
	MediaType   string            `json:"mediaType"`
	Digest      string            `json:"digest"`
	Size        int64             `json:"size"`
	Annotations map[string]string `json:"annotations"`
}

type ociIndex struct {
	SchemaVersion int          `json:"schemaVersion"`
	MediaType     string       `json:"mediaType"`
	Manifests     []descriptor `json:"manifests"`
}

type ociManifest struct {
	SchemaVersion int          `json:"schemaVersion"`
	MediaType     string       `json:"mediaType"`
	Config        descriptor   `json:"config"`
	Layers        []descriptor `json:"layers"`
}

type imageConfig struct {
	Architecture string    `json:"architecture"`
	OS           string    `json:"os"`
	Created      time.Time `json:"created"`
	Config       struct {
		User         string              `json:"User"`
		ExposedPorts map[string]struct{} `json:"ExposedPorts"`
		Env          []string            `json:"Env"`
		Entrypoint   []string            `json:"Entrypoint"`
		Cmd          []string            `json:"Cmd"`
		Volumes      map[string]struct{} `json:"Volumes"`
		WorkingDir   string              `json:"WorkingDir"`
		Labels       map[string]string   `json:"Labels"`
		StopSignal   string              `json:"StopSignal"`
	} `json:"config"`
	RootFS struct {
		Type    string   `json:"type"`
		DiffIDs []string `json:"diff_ids"`
	} `json:"rootfs"`
}

// image is what the OCI layout under dir holds, every blob checked against
// its digest and size.
type image struct {
	manifestDigest string
	manifest       ociManifest
	configBlob     []byte
	config         imageConfig
	layerBlob      []byte // gzip, as stored
}

// readLayout reads the OCI image layout dir/oci, which must hold one image.
// It reads the files itself (not with the library that wrote them), so that
// the check does not share the writer's mistakes.
func readLayout(t *testing.T, dir string) image {
	t.Helper()
	oci := filepath.Join(dir, "oci")
	var layout struct {
		Version string `json:"imageLayoutVersion"`
	}
	readJSON(t, filepath.Join(oci, "oci-layout"), &layout)
	if layout.Version != "1.0.0" {
		t.Fatalf("oci-layout: imageLayoutVersion %q", layout.Version)
	}
	var idx ociIndex
	readJSON(t, filepath.Join(oci, "index.json"), &idx)
	if idx.SchemaVersion != 2 || idx.MediaType != ociIndexType || len(idx.Manifests) != 1 {
		t.Fatalf("index.json: want one manifest in an OCI index, got %+v", idx)
	}
	d := idx.Manifests[0]
	if d.MediaType != ociManifestType || d.Annotations["org.opencontainers.image.ref.name"] != strings.Split(testTag, ":")[1] {
		t.Errorf("index.json: manifest %+v: want an OCI manifest named %q", d, testTag)
	}
	var img image
	img.manifestDigest = d.Digest
	if err := json.Unmarshal(blob(t, oci, d), &img.manifest); err != nil {
		t.Fatal(err)
	}
	m := img.manifest
	if m.SchemaVersion != 2 || m.MediaType != ociManifestType || m.Config.MediaType != ociConfigType {
		t.Errorf("manifest: want OCI media types, got %+v", m)
	}
	if len(m.Layers) != 1 || m.Layers[0].MediaType != ociLayerGzType {
		t.Fatalf("manifest: want one gzip layer on an empty base, got %+v", m.Layers)
	}
	img.configBlob = blob(t, oci, m.Config)
	if err := json.Unmarshal(img.configBlob, &img.config); err != nil {
		t.Fatal(err)
	}
	img.layerBlob = blob(t, oci, m.Layers[0])
	return img
}

// blob reads the blob d names and checks its digest and size.
func blob(t *testing.T, oci string, d descriptor) []byte {
	t.Helper()
	hexDigest, ok := strings.CutPrefix(d.Digest, "sha256:")
	if !ok {
		t.Fatalf("digest %q is not sha256", d.Digest)
	}
	b, err := os.ReadFile(filepath.Join(oci, "blobs", "sha256", hexDigest))
	if err != nil {
		t.Fatal(err)
	}
	if got := sha256Hex(b); got != hexDigest || int64(len(b)) != d.Size {
		t.Fatalf("blob %s: sha256 %s, %d bytes; the descriptor says %d", d.Digest, got, len(b), d.Size)
	}
	return b
}

func readJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// file is one entry of the image's layer.
type file struct {
	typ      byte
	mode     int64
	uid, gid int
	data     []byte
}

// untar reads a gzip'd layer: its entries by path, and its uncompressed bytes.
func untar(t *testing.T, gz []byte) (map[string]file, []byte) {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(gz))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]file{}
	tr := tar.NewReader(bytes.NewReader(raw))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		if _, dup := files[h.Name]; dup {
			t.Errorf("layer: %s twice", h.Name)
		}
		files[h.Name] = file{typ: h.Typeflag, mode: h.Mode, uid: h.Uid, gid: h.Gid, data: data}
	}
	return files, raw
}

// TestImageContents checks the image `make image` wrote: how it runs (entry
// point, user, working directory, ports, volume, environment), that its one
// layer holds the binary just built and nothing else but what is listed here
// (no shell, no package manager, no libc), with their modes and owners, and
// that the docker archive holds the same image.
func TestImageContents(t *testing.T) {
	img := readLayout(t, imageDir)
	c := img.config

	// How it runs.
	if c.OS != "linux" || c.Architecture != runtime.GOARCH {
		t.Errorf("platform %s/%s, want linux/%s", c.OS, c.Architecture, runtime.GOARCH)
	}
	cfg := c.Config
	const bin, conf, data = "/usr/local/bin/sendguard", "/etc/sendguard/sendguard.yaml", "/var/lib/sendguard"
	want := map[string]any{
		"Entrypoint": []string{bin, "serve"},
		"Cmd":        []string{"--config", conf},
		"User":       "65532:65532",
		"WorkingDir": data,
		"Env":        []string{"PATH=/usr/local/bin"},
		"Volumes":    []string{data},
		"StopSignal": "SIGTERM",
	}
	got := map[string]any{
		"Entrypoint": cfg.Entrypoint, "Cmd": cfg.Cmd, "User": cfg.User, "WorkingDir": cfg.WorkingDir,
		"Env": cfg.Env, "Volumes": slices.Sorted(maps.Keys(cfg.Volumes)), "StopSignal": cfg.StopSignal,
	}
	for k, w := range want {
		if !reflect.DeepEqual(got[k], w) {
			t.Errorf("config %s = %v, want %v", k, got[k], w)
		}
	}
	if l := cfg.Labels["org.opencontainers.image.licenses"]; l != "Apache-2.0" {
		t.Errorf("licenses label %q, want Apache-2.0 (LICENSE)", l)
	}

	// The default config the Cmd names: loopback (there are no API keys) on the
	// exposed ports, data in the volume.
	var dc server.Config
	if err := server.LoadConfigFile(filepath.Join(root, "deploy", "image", "sendguard.yaml"), &dc); err != nil {
		t.Fatal(err)
	}
	var ports []string
	for _, addr := range []string{dc.GRPCAddr, dc.HTTPAddr, dc.APIAddr} {
		host, port, err := net.SplitHostPort(addr)
		if err != nil {
			t.Fatal(err)
		}
		if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
			t.Errorf("the image's default config listens on %s: without API keys the server refuses non-loopback addresses", addr)
		}
		ports = append(ports, port+"/tcp")
	}
	if exposed := slices.Sorted(maps.Keys(cfg.ExposedPorts)); !reflect.DeepEqual(exposed, slices.Sorted(slices.Values(ports))) {
		t.Errorf("exposed ports %v, want the default config's %v", exposed, ports)
	}
	if dc.DataDir != "" || len(dc.APIKeys) != 0 {
		t.Errorf("the image's default config sets data_dir %q or api_keys: the data must stay ./data in the working directory (the volume)", dc.DataDir)
	}

	// The layer, entry by entry.
	files, raw := untar(t, img.layerBlob)
	if len(c.RootFS.DiffIDs) != 1 || c.RootFS.DiffIDs[0] != "sha256:"+sha256Hex(raw) {
		t.Errorf("rootfs diff_ids %v, want the uncompressed layer's sha256:%s", c.RootFS.DiffIDs, sha256Hex(raw))
	}
	built, err := os.ReadFile(binary())
	if err != nil {
		t.Fatal(err)
	}
	defaultConfig, err := os.ReadFile(filepath.Join(root, "deploy", "image", "sendguard.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	dir := func(mode int64, uid int) file { return file{typ: tar.TypeDir, mode: mode, uid: uid, gid: uid} }
	reg := func(mode int64, data []byte) file { return file{typ: tar.TypeReg, mode: mode, data: data} }
	wantFiles := map[string]file{
		"etc/":                         dir(0o755, 0),
		"etc/passwd":                   reg(0o444, nil),
		"etc/group":                    reg(0o444, nil),
		"etc/sendguard/":               dir(0o755, 0),
		"etc/sendguard/sendguard.yaml": reg(0o444, defaultConfig),
		"usr/":                         dir(0o755, 0),
		"usr/local/":                   dir(0o755, 0),
		"usr/local/bin/":               dir(0o755, 0),
		"usr/local/bin/sendguard":      reg(0o555, built),
		"var/":                         dir(0o755, 0),
		"var/lib/":                     dir(0o755, 0),
		"var/lib/sendguard/":           dir(0o700, 65532),
	}
	for name, f := range files {
		w, ok := wantFiles[name]
		switch {
		case !ok:
			t.Errorf("layer: unexpected %s (type %c, mode %o)", name, f.typ, f.mode)
		case f.typ != w.typ || f.mode != w.mode || f.uid != w.uid || f.gid != w.gid:
			t.Errorf("layer: %s is type %c mode %o owner %d:%d, want type %c mode %o owner %d:%d", name, f.typ, f.mode, f.uid, f.gid, w.typ, w.mode, w.uid, w.gid)
		case w.data != nil && !bytes.Equal(f.data, w.data):
			t.Errorf("layer: %s (sha256 %s) is not the file built (sha256 %s)", name, sha256Hex(f.data), sha256Hex(w.data))
		}
	}
	for name := range wantFiles {
		if _, ok := files[name]; !ok {
			t.Errorf("layer: %s is missing", name)
		}
	}
	passwd := string(files["etc/passwd"].data)
	if !strings.Contains(passwd, "\nsendguard:x:65532:65532:sendguard:/var/lib/sendguard:/sbin/nologin\n") {
		t.Errorf("/etc/passwd does not name user 65532 sendguard, home the volume, no shell:\n%s", passwd)
	}
	if !strings.Contains(string(files["etc/group"].data), "\nsendguard:x:65532:\n") {
		t.Errorf("/etc/group does not name group 65532:\n%s", files["etc/group"].data)
	}

	checkStaticBinary(t, built)
	checkDockerArchive(t, img)
}

// checkStaticBinary checks that bin needs no libc or loader (the image has
// none) and was built as the Makefile says.
func checkStaticBinary(t *testing.T, bin []byte) {
	t.Helper()
	f, err := elf.NewFile(bytes.NewReader(bin))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Error("the image's binary is dynamically linked")
		}
	}
	info, err := buildinfo.Read(bytes.NewReader(bin))
	if err != nil {
		t.Fatal(err)
	}
	settings := map[string]string{}
	for _, s := range info.Settings {
		settings[s.Key] = s.Value
	}
	if info.Path != "github.com/sendguard/sendguard/cmd/sendguard" || settings["CGO_ENABLED"] != "0" || settings["-trimpath"] != "true" {
		t.Errorf("binary %s built with CGO_ENABLED=%q -trimpath=%q; want cmd/sendguard, CGO_ENABLED=0, -trimpath", info.Path, settings["CGO_ENABLED"], settings["-trimpath"])
	}
}

// checkDockerArchive checks that sendguard-image.tar holds the OCI layout's
// image: the same config and layer bytes, under the tag.
func checkDockerArchive(t *testing.T, img image) {
	t.Helper()
	f, err := os.Open(filepath.Join(imageDir, "sendguard-image.tar"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	entries := map[string][]byte{}
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if entries[h.Name], err = io.ReadAll(tr); err != nil {
			t.Fatal(err)
		}
	}
	var manifest []struct {
		Config   string
		RepoTags []string
		Layers   []string
	}
	if err := json.Unmarshal(entries["manifest.json"], &manifest); err != nil {
		t.Fatalf("docker archive manifest.json: %v", err)
	}
	if len(manifest) != 1 || len(manifest[0].Layers) != 1 || !slices.Equal(manifest[0].RepoTags, []string{testTag}) {
		t.Fatalf("docker archive: want one image of one layer tagged %s, got %+v", testTag, manifest)
	}
	m := manifest[0]
	if !bytes.Equal(entries[m.Config], img.configBlob) || !bytes.Equal(entries[m.Layers[0]], img.layerBlob) {
		t.Error("the docker archive's config or layer differs from the OCI layout's")
	}
}

// TestImageIsReproducible builds the image again from the same tree: the
// digest must not change (a fixed creation time, -trimpath, sorted entries).
func TestImageIsReproducible(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the image a second time")
	}
	dir := t.TempDir()
	cmd := exec.Command("make", "--no-print-directory", "-C", root, "image", "IMAGE_OUT="+dir, "IMAGE_TAG="+testTag)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make image: %v\n%s", err, out)
	}
	first, second := readLayout(t, imageDir), readLayout(t, dir)
	if first.manifestDigest != second.manifestDigest {
		t.Errorf("two builds of one tree gave %s and %s", first.manifestDigest, second.manifestDigest)
	}
	created, err := exec.Command("git", "-C", root, "log", "-1", "--format=%ct").Output()
	if err != nil {
		t.Skipf("no git history to date the image by: %v", err)
	}
	sec, _ := strconv.ParseInt(strings.TrimSpace(string(created)), 10, 64)
	if !first.config.Created.Equal(time.Unix(sec, 0)) {
		t.Errorf("created %v, want the last commit's time %v", first.config.Created, time.Unix(sec, 0).UTC())
	}
}
