package server

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/sendguard/sendguard/client"
	sgv1 "github.com/sendguard/sendguard/proto/sendguard/v1"
	"github.com/sendguard/sendguard/storage"
	"github.com/sendguard/sendguard/storage/badger"
	"github.com/sendguard/sendguard/validator"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// panicStore panics on reads, to prove the recovery interceptor.
type panicStore struct{ storage.Store }

func (panicStore) GetContact(context.Context, storage.ContactKey) (storage.Contact, error) {
	panic("secret internal detail")
}

func TestPanicIsInternalWithoutDetail(t *testing.T) {
	st, err := badger.Open(badger.Options{InMemory: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	h := newHarness(t, func(c *Config) { c.Store = panicStore{st} })
	_, err = h.c.Check(context.Background(), marketing(brPhone))
	if status.Code(err) != codes.Internal || strings.Contains(err.Error(), "secret") {
		t.Fatalf("got %v, want Internal without the panic text", err)
	}
	// The server survives and answers other calls.
	if _, err := h.c.Policy(context.Background(), "acme"); err != nil {
		t.Fatal(err)
	}
}

// TestRunDrainsStreams: stopping the server lets an open stream finish, then closes
// the store.
func TestRunDrainsStreams(t *testing.T) {
	cfg := DefaultConfig()
	cfg.DataDir = t.TempDir()
	cfg.GRPCAddr, cfg.HTTPAddr, cfg.APIAddr = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
	cfg.Logger = discardLogger()
	srv, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	c, err := client.Dial(srv.GRPCAddr(), client.Options{Insecure: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	stream, err := c.CheckStream(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	send := func(id string) {
		t.Helper()
		if err := stream.Send(&sgv1.CheckSendRequest{RequestId: id, BusinessId: "acme", Phone: brPhone, Category: sgv1.Category_CATEGORY_UTILITY}); err != nil {
			t.Fatal(err)
		}
		resp, err := stream.Recv()
		if err != nil || resp.RequestId != id {
			t.Fatalf("row %s: %v %v", id, resp, err)
		}
	}
	send("before")
	cancel() // SIGTERM
	time.Sleep(100 * time.Millisecond)
	select {
	case err := <-done:
		t.Fatalf("Run returned with a stream open: %v", err)
	default:
	}
	send("during drain")
	if err := stream.CloseSend(); err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Recv(); err == nil {
		t.Fatal("stream not ended")
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("Run did not return after the stream ended")
	}
	// The store is closed: reopening the directory works.
	st, err := badger.Open(badger.Options{Dir: cfg.DataDir})
	if err != nil {
		t.Fatalf("store not closed: %v", err)
	}
	st.Close()
}

func TestNewRejectsBadAddress(t *testing.T) {
	cfg := DefaultConfig()
	cfg.GRPCAddr = "not an address"
	cfg.DataDir = t.TempDir()
	if _, err := New(cfg); err == nil || !strings.Contains(err.Error(), "grpc address") {
		t.Fatalf("bad address accepted: %v", err)
	}
}

func TestLoadConfigFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sendguard.yaml")
	err := os.WriteFile(path, []byte(`
grpc_addr: 127.0.0.1:6000
default_region: br
phone_number_ids: {"106540352242922": acme}
policy:
  frequency_caps: [{count: 2, window: 12h}]
  ecosystem_cooldown: 48h
  undeliverable_backoff: [1d, 3d]
  quiet_hours: {start: "21:00", end: "08:00"}
  blocked_regions: [us, ca]
  require_opt_in: true
  shadow_rules: [frequency_cap]
`), 0o600)
	if err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	if err := LoadConfigFile(path, &cfg); err != nil {
		t.Fatal(err)
	}
	p := cfg.Defaults
	if cfg.GRPCAddr != "127.0.0.1:6000" || cfg.DefaultRegion != "BR" || cfg.PhoneNumberIDs["106540352242922"] != "acme" {
		t.Fatalf("addresses: %+v", cfg)
	}
	want := validator.Defaults()
	want.FrequencyCaps = []validator.Cap{{Count: 2, Window: 12 * time.Hour}}
	want.EcosystemCooldown = 48 * time.Hour
	want.UndeliverableBackoff = []time.Duration{24 * time.Hour, 72 * time.Hour}
	want.QuietHours = &validator.QuietHours{Start: 21 * 60, End: 8 * 60}
	want.BlockedRegions = []string{"US", "CA"}
	want.RequireOptIn = true
	want.ShadowRules = []sgv1.Rule{sgv1.Rule_RULE_FREQUENCY_CAP}
	if got, w := policyProto(p).String(), policyProto(want).String(); got != w {
		t.Fatalf("policy\n got %s\nwant %s", got, w)
	}
	for _, bad := range []string{"policy: {ecosystem_cooldown: soon}", "policy: {shadow_rules: [nope]}", "unknown_key: 1", "policy: {quiet_hours: {start: '9', end: '10:00'}}"} {
		if err := os.WriteFile(path, []byte(bad), 0o600); err != nil {
			t.Fatal(err)
		}
		c := DefaultConfig()
		if err := LoadConfigFile(path, &c); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
