package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sendguard/sendguard/internal/serve"
	"github.com/sendguard/sendguard/server"
)

// pki is a test CA with a server and a client certificate, as PEM files.
type pki struct{ ca, serverCert, serverKey, clientCert, clientKey string }

func newPKI(t *testing.T) pki {
	t.Helper()
	dir := t.TempDir()
	write := func(name, typ string, der []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	newKey := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	caKey := newKey()
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "sendguard test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	leaf := func(serial int64, name string, usage x509.ExtKeyUsage) (string, string) {
		k := newKey()
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), DNSNames: []string{name},
			IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, ExtKeyUsage: []x509.ExtKeyUsage{usage}, KeyUsage: x509.KeyUsageDigitalSignature}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &k.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		kder, _ := x509.MarshalECPrivateKey(k)
		return write(name+".crt", "CERTIFICATE", der), write(name+".key", "EC PRIVATE KEY", kder)
	}
	p := pki{ca: write("ca.crt", "CERTIFICATE", caDER)}
	p.serverCert, p.serverKey = leaf(2, "sendguard.test", x509.ExtKeyUsageServerAuth)
	p.clientCert, p.clientKey = leaf(3, "worker", x509.ExtKeyUsageClientAuth)
	return p
}

// TestTLSAndAPIKey: the client commands reach a server that requires mutual TLS
// and API keys, with the flags and SENDGUARD_API_KEY; without them they fail
// with a message that says what is missing, and never print the key.
func TestTLSAndAPIKey(t *testing.T) {
	const key = "sg-test-key-0123456789abcdef"
	certs := newPKI(t)
	cfg := server.DefaultConfig()
	cfg.DataDir = t.TempDir()
	cfg.GRPCAddr, cfg.HTTPAddr, cfg.APIAddr = "127.0.0.1:0", "", ""
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	cfg.TLS = server.TLSConfig{CertFile: certs.serverCert, KeyFile: certs.serverKey, ClientCAFile: certs.ca}
	cfg.APIKeys = []server.APIKey{{Name: "acme-worker", SHA256: server.HashAPIKey(key), Businesses: []string{"acme"}}}
	r, err := serve.Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := r.Server()
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	t.Cleanup(func() {
		stop()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	addr := srv.GRPCAddr()
	tlsFlags := []string{"--addr", addr, "--tls-ca", certs.ca, "--tls-cert", certs.clientCert, "--tls-key", certs.clientKey}
	check := []string{"--business", "acme", "--phone", "+5511987654321", "--timeout", "5s"}

	t.Setenv(envAddr, "")
	t.Setenv(envAPIKey, key)
	stdout, stderr, err := runCmd(t, checkCmd(), append(check, tlsFlags...)...)
	if err != nil || !strings.HasPrefix(stdout, "ALLOW") {
		t.Fatalf("check over mutual TLS with the key: %v\n%s%s", err, stdout, stderr)
	}
	// The name in the certificate, given explicitly.
	if _, _, err := runCmd(t, checkCmd(), append(check, append(tlsFlags, "--tls-server-name", "sendguard.test")...)...); err != nil {
		t.Fatalf("--tls-server-name: %v", err)
	}

	for _, tc := range []struct {
		name string
		env  string
		args []string
		want string
	}{
		{"no key", "", append(check, tlsFlags...), "SENDGUARD_API_KEY"},
		{"wrong key", "not-the-key", append(check, tlsFlags...), "unknown API key"},
		{"other business", key, append([]string{"--business", "beta", "--phone", "+5511987654321"}, tlsFlags...), "PERMISSION_DENIED"},
		{"plaintext", key, append(check, "--addr", addr, "--timeout", "2s"), "unavailable"},
		{"wrong server name", key, append(check, append(tlsFlags, "--tls-server-name", "other.test")...), "unavailable"},
	} {
		t.Setenv(envAPIKey, tc.env)
		stdout, stderr, err := runCmd(t, checkCmd(), tc.args...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q\n%s", tc.name, err, tc.want, stdout)
		}
		if strings.Contains(stdout+stderr+errString(err), key) {
			t.Errorf("%s: the API key is printed", tc.name)
		}
	}

	// validate over TLS: a row of a business the key may not act for is a
	// PERMISSION_DENIED row; the run goes on and completes.
	t.Setenv(envAPIKey, key)
	dir := t.TempDir()
	in := filepath.Join(dir, "a.csv")
	if err := os.WriteFile(in, []byte("phone\n+5511987650001\n+5511987650002\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for business, verdict := range map[string]string{"acme": "ALLOW", "beta": "ERROR"} {
		out := filepath.Join(dir, business+".csv")
		_, stderr, err := runCmd(t, newValidateCmd(validateEnv{exit: func(int) {}, now: time.Now}),
			append([]string{"--business", business, "--in", in, "--out", out}, tlsFlags...)...)
		if err != nil {
			t.Fatalf("validate %s: %v\n%s", business, err, stderr)
		}
		data, _ := os.ReadFile(out)
		lines := strings.Split(strings.TrimSpace(string(data)), "\n")
		if len(lines) != 3 || !strings.Contains(lines[1], ","+verdict+",") || !strings.Contains(lines[2], ","+verdict+",") {
			t.Fatalf("validate %s:\n%s", business, data)
		}
		if verdict == "ERROR" && !strings.Contains(lines[1], "PERMISSION_DENIED") {
			t.Fatalf("validate %s: %s", business, lines[1])
		}
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
