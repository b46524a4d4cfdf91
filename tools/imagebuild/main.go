// Command imagebuild writes sendguard's OCI image from a static binary, without
// a container engine or a registry: one layer on an empty base (the binary, a
// passwd and group naming the sendguard user, the image's default config and
// the data directory), written as an OCI image layout and as a docker-archive
// tarball (`podman load`, `docker load`). `make image` runs it; the same inputs
// give the same digests.
package main

import (
	"archive/tar"
	"bytes"
	"debug/elf"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// What the image holds and how it runs. internal/deploytest checks each of these
// against the written image, and README ("Deploying") documents them.
const (
	binaryPath   = "/usr/local/bin/sendguard"
	configPath   = "/etc/sendguard/sendguard.yaml"
	dataVolume   = "/var/lib/sendguard"
	uid          = 65532
	userName     = "sendguard"
	grpcPort     = "50051/tcp"
	httpPort     = "8080/tcp"
	apiPort      = "8081/tcp"
	imageLicense = "Apache-2.0"
)

func main() {
	var o options
	flag.StringVar(&o.binary, "binary", "", "the static sendguard binary to put in the image")
	flag.StringVar(&o.config, "config", "", "the image's default config file (deploy/image/sendguard.yaml)")
	flag.StringVar(&o.out, "out", "", "output directory: OUT/oci (an OCI image layout) and OUT/sendguard-image.tar (docker-archive)")
	flag.StringVar(&o.tag, "tag", "sendguard:dev", "the image's name and tag in both outputs")
	flag.Int64Var(&o.created, "created", 0, "creation time, Unix seconds (the last commit's, for reproducible images)")
	flag.StringVar(&o.version, "version", "", "org.opencontainers.image.version label")
	flag.StringVar(&o.revision, "revision", "", "org.opencontainers.image.revision label (the commit)")
	flag.Parse()
	if err := o.build(); err != nil {
		fmt.Fprintln(os.Stderr, "imagebuild:", err)
		os.Exit(1)
	}
}

type options struct {
	binary, config, out, tag string
	created                  int64
	version, revision        string
}

func (o *options) build() error {
	if o.binary == "" || o.config == "" || o.out == "" {
		return errors.New("--binary, --config and --out are required")
	}
	tag, err := name.NewTag(o.tag, name.WithDefaultRegistry(""))
	if err != nil {
		return fmt.Errorf("--tag: %w", err)
	}
	bin, err := os.ReadFile(o.binary)
	if err != nil {
		return err
	}
	arch, err := elfArch(bin)
	if err != nil {
		return fmt.Errorf("%s: %w", o.binary, err)
	}
	cfgFile, err := os.ReadFile(o.config)
	if err != nil {
		return err
	}
	created := time.Unix(o.created, 0).UTC()
	layerTar, err := rootfs(bin, cfgFile, created)
	if err != nil {
		return err
	}
	img, err := image(layerTar, arch, created, o.labels())
	if err != nil {
		return err
	}
	return write(img, tag, o.out)
}

func (o *options) labels() map[string]string {
	l := map[string]string{
		"org.opencontainers.image.title":       "sendguard",
		"org.opencontainers.image.description": "Ask before every WhatsApp send: ALLOW, DEFER or DENY, from each number's history",
		"org.opencontainers.image.licenses":    imageLicense,
	}
	if o.version != "" {
		l["org.opencontainers.image.version"] = o.version
	}
	if o.revision != "" {
		l["org.opencontainers.image.revision"] = o.revision
	}
	return l
}

// elfArch is the OCI architecture of a Linux ELF binary, which must be static:
// the image has no dynamic loader or libc.
func elfArch(bin []byte) (string, error) {
	f, err := elf.NewFile(bytes.NewReader(bin))
	if err != nil {
		return "", err
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return "", errors.New("the binary is dynamically linked: build it with CGO_ENABLED=0")
		}
	}
	switch f.Machine {
	case elf.EM_X86_64:
		return "amd64", nil
	case elf.EM_AARCH64:
		return "arm64", nil
	}
	return "", fmt.Errorf("unsupported machine %v", f.Machine)
}

// entry is one file or directory of the layer.
type entry struct {
	path     string
	mode     int64
	uid      int
	dir      bool
	contents []byte
}

// rootfs is the image's only layer, as an uncompressed tar: every entry owned
// by root and read-only but the data directory, which belongs to the sendguard
// user alone.
func rootfs(bin, config []byte, mtime time.Time) ([]byte, error) {
	passwd := fmt.Sprintf("root:x:0:0:root:/root:/sbin/nologin\n%s:x:%d:%d:%s:%s:/sbin/nologin\n", userName, uid, uid, userName, dataVolume)
	group := fmt.Sprintf("root:x:0:\n%s:x:%d:\n", userName, uid)
	entries := []entry{
		{path: "etc/", mode: 0o755, dir: true},
		{path: "etc/group", mode: 0o444, contents: []byte(group)},
		{path: "etc/passwd", mode: 0o444, contents: []byte(passwd)},
		{path: "etc/sendguard/", mode: 0o755, dir: true},
		{path: configPath[1:], mode: 0o444, contents: config},
		{path: "usr/", mode: 0o755, dir: true},
		{path: "usr/local/", mode: 0o755, dir: true},
		{path: "usr/local/bin/", mode: 0o755, dir: true},
		{path: binaryPath[1:], mode: 0o555, contents: bin},
		{path: "var/", mode: 0o755, dir: true},
		{path: "var/lib/", mode: 0o755, dir: true},
		{path: dataVolume[1:] + "/", mode: 0o700, uid: uid, dir: true},
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := &tar.Header{
			Name: e.path, Mode: e.mode, Uid: e.uid, Gid: e.uid,
			ModTime: mtime, Format: tar.FormatPAX, Typeflag: tar.TypeReg, Size: int64(len(e.contents)),
		}
		if e.dir {
			h.Typeflag, h.Size = tar.TypeDir, 0
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if _, err := tw.Write(e.contents); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// image puts the layer on an empty base, with OCI media types and the config
// that runs `sendguard serve` as the sendguard user.
func image(layerTar []byte, arch string, created time.Time, labels map[string]string) (v1.Image, error) {
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerTar)), nil
	}, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return nil, err
	}
	base := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
	img, err := mutate.Append(base, mutate.Addendum{
		Layer: layer,
		History: v1.History{
			Created:   v1.Time{Time: created},
			CreatedBy: "make image (tools/imagebuild): " + binaryPath + ", /etc/passwd, /etc/group, " + configPath + ", " + dataVolume,
		},
	})
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.Created = v1.Time{Time: created}
	cf.OS, cf.Architecture = "linux", arch
	cf.Config = v1.Config{
		Entrypoint:   []string{binaryPath, "serve"},
		Cmd:          []string{"--config", configPath},
		User:         fmt.Sprintf("%d:%d", uid, uid),
		WorkingDir:   dataVolume,
		Env:          []string{"PATH=/usr/local/bin"},
		ExposedPorts: map[string]struct{}{grpcPort: {}, httpPort: {}, apiPort: {}},
		Volumes:      map[string]struct{}{dataVolume: {}},
		Labels:       labels,
		StopSignal:   "SIGTERM",
	}
	return mutate.ConfigFile(img, cf)
}

// write puts img in out/oci (an OCI layout holding only it, annotated with its
// tag) and out/sendguard-image.tar (docker-archive), replacing earlier ones.
func write(img v1.Image, tag name.Tag, out string) error {
	dir := filepath.Join(out, "oci")
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		return err
	}
	if err := p.AppendImage(img, layout.WithAnnotations(map[string]string{
		"org.opencontainers.image.ref.name": tag.TagStr(),
		"io.containerd.image.name":          tag.String(),
	})); err != nil {
		return err
	}
	archive := filepath.Join(out, "sendguard-image.tar")
	if err := tarball.WriteToFile(archive, tag, img); err != nil {
		return err
	}
	d, err := img.Digest()
	if err != nil {
		return err
	}
	fmt.Printf("image %s %s\n  OCI layout   %s\n  docker-archive %s (podman load -i / docker load -i)\n", tag, d, dir, archive)
	return nil
}
