package server

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/sendguard/sendguard/client"
	sgv1 "github.com/sendguard/sendguard/proto/sendguard/v1"
)

const (
	keyAcme   = "key-for-acme-0123456789abcdef0123456789"
	keyGlobex = "key-for-globex-0123456789abcdef01234567"
	keyAdmin  = "key-admin-acme-0123456789abcdef012345678"
)

func authHarness(t *testing.T) *harness {
	return newHarness(t, func(c *Config) {
		c.APIKeys = []APIKey{
			{Name: "acme", SHA256: HashAPIKey(keyAcme), Businesses: []string{"acme"}},
			{Name: "globex", SHA256: HashAPIKey(keyGlobex), Businesses: []string{"globex"}},
			{Name: "acme-admin", SHA256: HashAPIKey(keyAdmin), Businesses: []string{"acme"}, Admin: true},
		}
		c.WebhookSecret = testSecret
	})
}

// calls makes every SendGuard RPC for business b; each returns its error.
func calls(c *client.Client, b string) map[string]func() error {
	ctx := context.Background()
	return map[string]func() error{
		"CheckSend": func() error {
			_, err := c.Check(ctx, &sgv1.CheckSendRequest{BusinessId: b, Phone: brPhone, Category: sgv1.Category_CATEGORY_UTILITY})
			return err
		},
		"ReportResult": func() error {
			_, err := c.Report(ctx, &sgv1.ReportResultRequest{BusinessId: b, Phone: brPhone, MessageId: "w", Status: sgv1.MessageStatus_MESSAGE_STATUS_SENT})
			return err
		},
		"ReportInbound": func() error {
			_, err := c.Inbound(ctx, &sgv1.ReportInboundRequest{BusinessId: b, Phone: brPhone, MessageId: "i"})
			return err
		},
		"GetContact": func() error {
			_, err := c.Contact(ctx, &sgv1.GetContactRequest{BusinessId: b, Phone: brPhone})
			return err
		},
		"SetOptOut": func() error {
			_, err := c.SetOptOut(ctx, &sgv1.SetOptOutRequest{BusinessId: b, Phone: brPhone, OptedOut: true})
			return err
		},
		"ForgetContact": func() error {
			_, err := c.Forget(ctx, &sgv1.ForgetContactRequest{BusinessId: b, Phone: brPhone})
			return err
		},
		"GetPolicy": func() error { _, err := c.Policy(ctx, b); return err },
		"ClearRestriction": func() error {
			_, err := c.API().ClearRestriction(ctx, &sgv1.ClearRestrictionRequest{BusinessId: b})
			return err
		},
		"SetPolicy": func() error {
			_, err := c.SetPolicy(ctx, &sgv1.SetPolicyRequest{BusinessId: b, Policy: &sgv1.Policy{}})
			return err
		},
		"CheckSendBatch": func() error {
			resp, err := c.CheckBatch(ctx, []*sgv1.CheckSendRequest{{BusinessId: b, Phone: brPhone, Category: sgv1.Category_CATEGORY_UTILITY}})
			if err != nil {
				return err
			}
			if e := resp[0].GetError(); e != nil {
				return status.Error(codes.Code(e.GetCode()), e.GetMessage())
			}
			return nil
		},
		"CheckSendStream": func() error {
			st, err := c.CheckStream(ctx)
			if err != nil {
				return err
			}
			// A refused stream may end before the first Send: its status is then
			// what Recv returns (Send only says io.EOF).
			_ = st.Send(&sgv1.CheckSendRequest{BusinessId: b, Phone: brPhone, Category: sgv1.Category_CATEGORY_UTILITY})
			resp, err := st.Recv()
			if err != nil {
				return err
			}
			st.CloseSend()
			if e := resp.GetError(); e != nil {
				return status.Error(codes.Code(e.GetCode()), e.GetMessage())
			}
			return nil
		},
	}
}

var adminRPCs = map[string]bool{"GetPolicy": true, "SetPolicy": true, "ForgetContact": true, "ClearRestriction": true}

func TestTenancy(t *testing.T) {
	h := authHarness(t)
	acme, admin := h.dialKey(t, keyAcme), h.dialKey(t, keyAdmin)
	for name, call := range calls(acme, "globex") {
		if code := status.Code(call()); code != codes.PermissionDenied {
			t.Errorf("acme key, business globex, %s: %v, want PermissionDenied", name, code)
		}
	}
	for name, call := range calls(acme, "acme") {
		want := codes.OK
		if adminRPCs[name] {
			want = codes.PermissionDenied
		}
		if code := status.Code(call()); code != want {
			t.Errorf("acme key, own business, %s: %v, want %v", name, code, want)
		}
	}
	for name, call := range calls(admin, "acme") {
		if err := call(); err != nil {
			t.Errorf("admin key, own business, %s: %v", name, err)
		}
	}
	for name, call := range calls(admin, "globex") {
		if code := status.Code(call()); code != codes.PermissionDenied {
			t.Errorf("admin key of acme, business globex, %s: %v", name, code)
		}
	}
	for _, key := range []string{"", "not-a-key"} {
		for name, call := range calls(h.dialKey(t, key), "acme") {
			if code := status.Code(call()); code != codes.Unauthenticated {
				t.Errorf("key %q, %s: %v, want Unauthenticated", key, name, code)
			}
		}
	}
	// Health stays open.
	if _, err := healthpb.NewHealthClient(h.dialKey(t, "").Conn()).Check(context.Background(), &healthpb.HealthCheckRequest{}); err != nil {
		t.Fatalf("health without a key: %v", err)
	}
}

// A stream mixing businesses: rows of another business are denied one by one and
// the stream goes on.
func TestTenancyStreamRows(t *testing.T) {
	h := authHarness(t)
	st, err := h.dialKey(t, keyAcme).CheckStream(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for i, b := range []string{"acme", "globex", "acme"} {
		if err := st.Send(&sgv1.CheckSendRequest{RequestId: b, BusinessId: b, Phone: brPhone, Category: sgv1.Category_CATEGORY_UTILITY}); err != nil {
			t.Fatal(err)
		}
		resp, err := st.Recv()
		if err != nil {
			t.Fatal(err)
		}
		denied := codes.Code(resp.GetError().GetCode()) == codes.PermissionDenied
		if denied != (i == 1) || resp.GetRequestId() != b {
			t.Fatalf("row %d: %v", i, resp)
		}
	}
	st.CloseSend()
	if _, err := st.Recv(); err != io.EOF {
		t.Fatalf("end: %v", err)
	}
}

// With API keys, a webhook cannot write to a business no mapping names.
func TestTenancyWebhookMapping(t *testing.T) {
	h := authHarness(t)
	b := body(t, "999", statuses(newStatus("wamid.1", "failed", t0, "5511987654321", 131050)))
	if code := postSigned(t, h.srv.HTTPHandler(), b); code != 200 {
		t.Fatal(code)
	}
	if got := testCounter(t, h, "sendguard_webhook_skipped_total", "unmapped_phone_number_id"); got != 1 {
		t.Fatalf("unmapped id not skipped: %v", got)
	}
}

func TestRefusesNetworkWithoutKeys(t *testing.T) {
	for _, addr := range []string{"0.0.0.0:0", ":50051", "10.1.2.3:50051"} {
		cfg := DefaultConfig()
		cfg.DataDir = t.TempDir()
		cfg.GRPCAddr, cfg.HTTPAddr = addr, "127.0.0.1:0"
		cfg.Logger = discardLogger()
		_, err := newServer(t, cfg)
		if err == nil || !strings.Contains(err.Error(), "no API keys are configured") {
			t.Errorf("%s: %v", addr, err)
		}
		cfg.GRPCAddr, cfg.APIAddr = "127.0.0.1:0", addr
		if _, err := newServer(t, cfg); err == nil || !strings.Contains(err.Error(), "api address "+addr) {
			t.Errorf("api on %s: %v", addr, err)
		}
	}
}

// writeCerts makes a CA, a server certificate for 127.0.0.1 and a client
// certificate, as PEM files in dir.
func writeCerts(t *testing.T, dir string) (caFile, certFile, keyFile, clientCert, clientKey string) {
	t.Helper()
	newKey := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	write := func(name, typ string, der []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	caKey := newKey()
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"}, IsCA: true,
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	leaf := func(serial int64, usage x509.ExtKeyUsage, ip bool) ([]byte, []byte) {
		k := newKey()
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: "leaf"},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), ExtKeyUsage: []x509.ExtKeyUsage{usage},
			KeyUsage: x509.KeyUsageDigitalSignature}
		if ip {
			tmpl.IPAddresses = []net.IP{net.ParseIP("127.0.0.1")}
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &k.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		kb, _ := x509.MarshalECPrivateKey(k)
		return der, kb
	}
	sDER, sKey := leaf(2, x509.ExtKeyUsageServerAuth, true)
	cDER, cKey := leaf(3, x509.ExtKeyUsageClientAuth, false)
	return write("ca.pem", "CERTIFICATE", caDER), write("server.pem", "CERTIFICATE", sDER), write("server.key", "EC PRIVATE KEY", sKey),
		write("client.pem", "CERTIFICATE", cDER), write("client.key", "EC PRIVATE KEY", cKey)
}

func TestMutualTLS(t *testing.T) {
	dir := t.TempDir()
	caFile, certFile, keyFile, clientCert, clientKey := writeCerts(t, dir)
	srv := runServer(t, func(c *Config) { c.TLS = TLSConfig{CertFile: certFile, KeyFile: keyFile, ClientCAFile: caFile} })

	pool := x509.NewCertPool()
	caPEM, _ := os.ReadFile(caFile)
	pool.AppendCertsFromPEM(caPEM)
	try := func(tc *tls.Config) error {
		c, err := client.Dial(srv.GRPCAddr(), client.Options{TLS: tc, Timeout: 5 * time.Second})
		if err != nil {
			return err
		}
		defer c.Close()
		_, err = c.Policy(context.Background(), "acme")
		return err
	}
	if err := try(&tls.Config{RootCAs: pool}); err == nil {
		t.Fatal("a client without a certificate was let in")
	}
	pair, err := tls.LoadX509KeyPair(clientCert, clientKey)
	if err != nil {
		t.Fatal(err)
	}
	if err := try(&tls.Config{RootCAs: pool, Certificates: []tls.Certificate{pair}}); err != nil {
		t.Fatalf("client with a certificate: %v", err)
	}
	if _, err := client.Dial(srv.GRPCAddr(), client.Options{}); err == nil {
		t.Fatal("client.Dial without TLS or Insecure must refuse")
	}
	// The API port serves the same certificate and asks for the same client
	// certificates.
	get := func(tc *tls.Config) error {
		hc := &http.Client{Transport: &http.Transport{TLSClientConfig: tc}, Timeout: 5 * time.Second}
		resp, err := hc.Post("https://"+srv.APIAddr()+"/sendguard.v1.SendGuard/GetPolicy", "application/json", strings.NewReader(`{"business_id":"acme"}`))
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return errors.New(resp.Status)
		}
		return nil
	}
	if err := get(&tls.Config{RootCAs: pool}); err == nil {
		t.Fatal("API: a client without a certificate was let in")
	}
	if err := get(&tls.Config{RootCAs: pool, Certificates: []tls.Certificate{pair}}); err != nil {
		t.Fatalf("API: client with a certificate: %v", err)
	}
}

func TestBackupNeedsAnAdminKeyForAll(t *testing.T) {
	h := newHarness(t, func(c *Config) {
		c.APIKeys = []APIKey{
			{Name: "acme-admin", SHA256: HashAPIKey(keyAdmin), Businesses: []string{"acme"}, Admin: true},
			{Name: "root", SHA256: HashAPIKey(keyGlobex), Businesses: []string{"*"}, Admin: true},
		}
	})
	api, err := h.srv.APIHandler()
	if err != nil {
		t.Fatal(err)
	}
	for key, want := range map[string]int{"": 403, keyAdmin: 403, keyGlobex: 200} {
		req := httptest.NewRequest(http.MethodGet, "/admin/backup", http.NoBody)
		if key != "" {
			req.Header.Set("Authorization", "Bearer "+key)
		}
		rec := httptest.NewRecorder()
		api.ServeHTTP(rec, req)
		if rec.Code != want {
			t.Errorf("key %q: %d, want %d", key, rec.Code, want)
		}
		// The webhook port's old path says where the backup went, to anyone.
		rec = httptest.NewRecorder()
		h.srv.HTTPHandler().ServeHTTP(rec, req)
		if rec.Code != http.StatusGone || !strings.Contains(rec.Body.String(), "--api-addr") {
			t.Errorf("key %q on the webhook port: %d %q, want 410 naming --api-addr", key, rec.Code, rec.Body)
		}
	}
}
