package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"flag"
	"io"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/sendguard/sendguard/client"
	sgv1 "github.com/sendguard/sendguard/proto/sendguard/v1"
	"github.com/sendguard/sendguard/server"
	"github.com/sendguard/sendguard/storage/badger"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// goldenT0 is the in-process server's clock in the golden tests: a Friday, 10:00 UTC
// (07:00 in São Paulo, the time zone the goldens are printed in).
var goldenT0 = time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)

const goldenZone = "America/Sao_Paulo"

// inproc is a sendguard server in the test process, on a loopback port, with a
// clock that stands still.
type inproc struct {
	addr string
	c    *client.Client
	srv  *server.Server
}

func startInProcess(t *testing.T, now time.Time) *inproc {
	t.Helper()
	st, err := badger.Open(badger.Options{InMemory: true})
	if err != nil {
		t.Fatal(err)
	}
	cfg := server.DefaultConfig()
	cfg.HashSecret = []byte("sendguard-test-secret")
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	cfg.Now = func() time.Time { return now }
	srv, err := server.New(st, cfg)
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.GRPCServer().Serve(lis) }()
	c, err := client.Dial(lis.Addr().String(), client.Options{Insecure: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.Close()
		srv.GRPCServer().Stop()
		st.Close()
	})
	return &inproc{addr: lis.Addr().String(), c: c, srv: srv}
}

// runCmd runs one subcommand in the test process and returns what it printed.
func runCmd(t *testing.T, cmd *cobra.Command, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errb bytes.Buffer
	cmd.SetArgs(args)
	cmd.SetOut(&out)
	cmd.SetErr(&errb)
	cmd.SetIn(strings.NewReader(""))
	cmd.SilenceUsage, cmd.SilenceErrors = true, true
	err = cmd.ExecuteContext(context.Background())
	return out.String(), errb.String(), err
}

// testdata is the golden files' folder, found before any test changes directory.
var testdata = func() string {
	wd, err := os.Getwd()
	if err != nil {
		panic(err)
	}
	return filepath.Join(wd, "testdata")
}()

// golden compares got with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join(testdata, name)
	if *update {
		if err := os.MkdirAll(testdata, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -run %s -update to create it)", err, t.Name())
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file (go test -run %s -update rewrites it); got:\n%s\nwant:\n%s", path, t.Name(), got, want)
	}
}

func TestParseTime(t *testing.T) {
	sp, err := time.LoadLocation(goldenZone)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		in   string
		want time.Time
	}{
		{"2026-11-27T10:00:00Z", now},
		{"2026-11-27T07:00:00-03:00", now},
		{"2026-11-27T10:00:00.5Z", now.Add(500 * time.Millisecond)},
		{"2026-11-27 07:00", now},
		{"2026-11-27T07:00:30", now.Add(30 * time.Second)},
		{"2026-11-27 07:00:30", now.Add(30 * time.Second)},
		{"2026-11-28", time.Date(2026, 11, 28, 0, 0, 0, 0, sp)},
		{"now", now},
		{" NOW ", now},
		{"+2h", now.Add(2 * time.Hour)},
		{"+90m", now.Add(90 * time.Minute)},
		{"-30m", now.Add(-30 * time.Minute)},
		{"+1d", now.Add(24 * time.Hour)},
		{"+1d12h", now.Add(36 * time.Hour)},
		{"+0s", now},
	} {
		got, err := parseTime(tc.in, now, sp)
		if err != nil || !got.Equal(tc.want) {
			t.Errorf("parseTime(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
	for _, bad := range []string{"", "tomorrow", "+", "+2", "+-2h", "+xd", "2026-13-01", "27/11/2026", "+1d-2h", "2026-11-27T25:00:00Z"} {
		if got, err := parseTime(bad, now, sp); err == nil {
			t.Errorf("parseTime(%q) = %v; want an error", bad, got)
		}
	}
}

func TestParseCategoryAndStatus(t *testing.T) {
	for in, want := range map[string]sgv1.Category{
		"marketing": sgv1.Category_CATEGORY_MARKETING, "MARKETING": sgv1.Category_CATEGORY_MARKETING,
		"CATEGORY_UTILITY": sgv1.Category_CATEGORY_UTILITY, "auth": sgv1.Category_CATEGORY_AUTHENTICATION,
		"Authentication": sgv1.Category_CATEGORY_AUTHENTICATION,
		" service ":      sgv1.Category_CATEGORY_SERVICE, //nolint:gocritic // mapKey: the spaces are the input under test
	} {
		if got, err := parseCategory(in); err != nil || got != want {
			t.Errorf("parseCategory(%q) = %v, %v", in, got, err)
		}
	}
	for _, bad := range []string{"", "unspecified", "CATEGORY_UNSPECIFIED", "promo"} {
		if _, err := parseCategory(bad); err == nil {
			t.Errorf("parseCategory(%q): no error", bad)
		}
	}
	for in, want := range map[string]sgv1.MessageStatus{
		"sent": sgv1.MessageStatus_MESSAGE_STATUS_SENT, "FAILED": sgv1.MessageStatus_MESSAGE_STATUS_FAILED,
		"MESSAGE_STATUS_READ": sgv1.MessageStatus_MESSAGE_STATUS_READ,
	} {
		if got, err := parseStatus(in); err != nil || got != want {
			t.Errorf("parseStatus(%q) = %v, %v", in, got, err)
		}
	}
	if _, err := parseStatus("bounced"); err == nil {
		t.Error("parseStatus(bounced): no error")
	}
}

// writeCert writes a self-signed certificate and its key as PEM files.
func writeCert(t *testing.T, dir, name string) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, DNSNames: []string{name},
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

// TestClientFlags: no TLS flag is plaintext; any TLS flag is TLS, with the CA, the
// client certificate and the server name given; the API key comes from the
// environment unless the flag is set, and the address too.
func TestClientFlags(t *testing.T) {
	dir := t.TempDir()
	caFile, _ := writeCert(t, dir, "ca")
	certFile, keyFile := writeCert(t, dir, "client")
	parse := func(args ...string) (*clientFlags, error) {
		cmd := &cobra.Command{Use: "x", RunE: func(*cobra.Command, []string) error { return nil }}
		cf := addClientFlags(cmd)
		if err := cmd.ParseFlags(args); err != nil {
			return nil, err
		}
		cf.resolve(cmd.Flags())
		return cf, nil
	}

	t.Setenv(envAddr, "")
	t.Setenv(envAPIKey, "")
	cf, _ := parse()
	o, err := cf.options()
	if err != nil || !o.Insecure || o.TLS != nil || o.APIKey != "" || cf.addr != defaultAddr {
		t.Fatalf("defaults: %+v %v addr %s", o, err, cf.addr)
	}

	t.Setenv(envAddr, "10.0.0.1:7000")
	t.Setenv(envAPIKey, "from-env")
	cf, _ = parse()
	if o, _ = cf.options(); cf.addr != "10.0.0.1:7000" || o.APIKey != "from-env" {
		t.Fatalf("environment: addr %s key %q", cf.addr, o.APIKey)
	}
	cf, _ = parse("--addr", "127.0.0.1:9", "--api-key", "from-flag")
	if o, _ = cf.options(); cf.addr != "127.0.0.1:9" || o.APIKey != "from-flag" {
		t.Fatalf("flags win: addr %s key %q", cf.addr, o.APIKey)
	}

	cf, _ = parse("--tls-ca", caFile, "--tls-cert", certFile, "--tls-key", keyFile, "--tls-server-name", "sendguard.internal")
	o, err = cf.options()
	if err != nil || o.Insecure || o.TLS == nil || o.TLS.RootCAs == nil || len(o.TLS.Certificates) != 1 || o.TLS.ServerName != "sendguard.internal" {
		t.Fatalf("TLS: %+v %v", o, err)
	}
	cf, _ = parse("--tls-server-name", "x")
	if o, err = cf.options(); err != nil || o.TLS == nil || o.TLS.RootCAs != nil {
		t.Fatalf("--tls-server-name alone is TLS with the system roots: %+v %v", o, err)
	}
	for _, bad := range [][]string{
		{"--tls-cert", certFile},
		{"--tls-ca", filepath.Join(dir, "missing.pem")},
		{"--tls-ca", keyFile},
	} {
		cf, _ = parse(bad...)
		if _, err := cf.options(); err == nil {
			t.Errorf("%v: no error", bad)
		}
	}
}

// TestAPIKeyNeverPrinted: the key is in no help text and no error message.
func TestAPIKeyNeverPrinted(t *testing.T) {
	const key = "sk-test-5f1c0ffee"
	t.Setenv(envAPIKey, key)
	t.Setenv(envAddr, "")
	for _, mk := range clientCmds() {
		stdout, stderr, _ := runCmd(t, mk, "--help")
		if strings.Contains(stdout+stderr, key) {
			t.Errorf("%s --help prints the API key", mk.Name())
		}
	}
	// A call that fails (nothing listens on the port) does not print it either.
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	lis.Close()
	stdout, stderr, err := runCmd(t, checkCmd(), "--addr", addr, "--business", "acme", "--phone", "+5511987654321", "--timeout", "2s")
	if err == nil || strings.Contains(stdout+stderr+err.Error(), key) || !strings.Contains(err.Error(), "unavailable") {
		t.Fatalf("check against a closed port: %v\n%s%s", err, stdout, stderr)
	}
}

// shellJoin prints arguments as a shell would take them back.
func shellJoin(args []string) string {
	out := make([]string, len(args))
	for i, a := range args {
		if a == "" || strings.ContainsAny(a, " \t'\"$") {
			a = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
		out[i] = a
	}
	return strings.Join(out, " ")
}
