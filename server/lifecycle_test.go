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
	h := newHarnessOn(t, func(storage.Store, Config) storage.Store { return panicStore{st} })
	_, err = h.c.Check(context.Background(), marketing(brPhone))
	if status.Code(err) != codes.Internal || strings.Contains(err.Error(), "secret") {
		t.Fatalf("got %v, want Internal without the panic text", err)
	}
	// The server survives and answers other calls.
	if _, err := h.c.Policy(context.Background(), "acme"); err != nil {
		t.Fatal(err)
	}
}

func TestNewRejectsBadAddress(t *testing.T) {
	cfg := DefaultConfig()
	cfg.GRPCAddr = "not an address"
	cfg.DataDir = t.TempDir()
	if _, err := newServer(t, cfg); err == nil || !strings.Contains(err.Error(), "grpc address") {
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
