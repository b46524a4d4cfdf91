package server

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	sgv1 "github.com/sendguard/sendguard/proto/sendguard/v1"
	"github.com/sendguard/sendguard/storage"
	"github.com/sendguard/sendguard/storage/badger"
)

// nearlyFull is a store whose disk the test fills and empties: while full it
// refuses every update that writes something, as Badger's space guard does
// (an update that writes nothing, such as a duplicate, goes through).
type nearlyFull struct {
	storage.Store
	full atomic.Bool
}

var errFullDisk = fmt.Errorf("%w: %w: writes are refused until space is freed", storage.ErrUnavailable, storage.ErrNoSpace)

func (f *nearlyFull) Space() (storage.Space, bool) {
	return storage.Space{Free: 10 << 20, Headroom: 100 << 20, Writable: !f.full.Load()}, true
}

func (f *nearlyFull) UpdateContact(ctx context.Context, k storage.ContactKey, dedup string, fn func(*storage.Contact) (storage.Write, error)) error {
	return f.Store.UpdateContact(ctx, k, dedup, func(c *storage.Contact) (storage.Write, error) {
		w, err := fn(c)
		if err == nil && (w.Rel || w.Facts) && f.full.Load() {
			return storage.Write{}, errFullDisk
		}
		return w, err
	})
}

func (f *nearlyFull) UpdateContacts(ctx context.Context, updates []storage.ContactUpdate) ([]error, error) {
	if f.full.Load() {
		return nil, errFullDisk
	}
	return f.Store.UpdateContacts(ctx, updates)
}

// TestDiskNearlyFull: a write refused for a nearly full disk is UNAVAILABLE with
// a message that says so, and not a store failure: reads go on, the main health
// service stays SERVING while sendguard.v1.SendGuard.writes goes NOT_SERVING,
// /healthz stays 200 and /healthz/writes is 503, the webhook answers 503 so that
// Meta retries; all of it comes back once space is freed.
func TestDiskNearlyFull(t *testing.T) {
	var fs *nearlyFull
	h := newHarnessOn(t, func(st storage.Store, _ Config) storage.Store { fs = &nearlyFull{Store: st}; return fs },
		func(c *Config) { c.WebhookSecret = testSecret })
	ctx := context.Background()
	hd := h.srv.HTTPHandler()
	health := healthpb.NewHealthClient(h.c.Conn())
	serving := func(name string) healthpb.HealthCheckResponse_ServingStatus {
		t.Helper()
		resp, err := health.Check(ctx, &healthpb.HealthCheckRequest{Service: name})
		if err != nil {
			t.Fatal(err)
		}
		return resp.GetStatus()
	}
	waitFor := func(name string, want healthpb.HealthCheckResponse_ServingStatus) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second) // the server looks every 250 ms
		for serving(name) != want {
			if time.Now().After(deadline) {
				t.Fatalf("health %s did not become %v within 10s", name, want)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	get := func(path string) (int, string) {
		t.Helper()
		rec := httptest.NewRecorder()
		hd.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, http.NoBody))
		b, _ := io.ReadAll(rec.Body)
		return rec.Code, string(b)
	}
	metric := func(name string) string {
		t.Helper()
		_, text := get("/metrics")
		for _, line := range strings.Split(text, "\n") {
			if v, ok := strings.CutPrefix(line, name+" "); ok {
				return v
			}
		}
		t.Fatalf("no %s in /metrics", name)
		return ""
	}
	reserve := &sgv1.CheckSendRequest{BusinessId: "acme", Phone: brPhone, Category: sgv1.Category_CATEGORY_UTILITY,
		Reserve: true, MessageRef: "m-1"}
	h.check(t, reserve) // reserved while the disk has room
	if serving(writesServiceName) != healthpb.HealthCheckResponse_SERVING || metric("sendguard_store_writable") != "1" {
		t.Fatal("writes not SERVING at start")
	}

	fs.full.Store(true)
	waitFor(writesServiceName, healthpb.HealthCheckResponse_NOT_SERVING)
	want := "storage unavailable: the disk is nearly full; writes are refused until space is freed (reads go on); retry with backoff"
	_, err := h.c.Report(ctx, failed(brPhone, 131049, t0))
	if status.Code(err) != codes.Unavailable || status.Convert(err).Message() != want {
		t.Fatalf("ReportResult on a nearly full disk: %v", err)
	}
	_, err = h.c.Check(ctx, &sgv1.CheckSendRequest{BusinessId: "acme", Phone: brPhone, Category: sgv1.Category_CATEGORY_UTILITY,
		Reserve: true, MessageRef: "m-2"})
	if status.Code(err) != codes.Unavailable {
		t.Fatalf("a new reservation on a nearly full disk: %v", err)
	}
	if _, err := h.c.SetOptOut(ctx, &sgv1.SetOptOutRequest{BusinessId: "acme", Phone: brPhone, OptedOut: true}); status.Code(err) != codes.Unavailable {
		t.Fatalf("SetOptOut on a nearly full disk: %v", err)
	}
	if code := postSigned(t, hd, body(t, pnid, statuses(newStatus("w", "failed", t0, "5511987654321", 131050)))); code != http.StatusServiceUnavailable {
		t.Fatalf("webhook on a nearly full disk: %d, want 503 so that Meta retries", code)
	}
	// Reads go on, and so does what writes nothing: the same reservation again.
	if resp := h.check(t, marketing(brPhone)); resp.GetVerdict() != allow {
		t.Fatalf("a check on a nearly full disk: %v", resp)
	}
	if resp := h.check(t, reserve); !resp.GetDuplicate() {
		t.Fatalf("a repeated reservation on a nearly full disk: %v", resp)
	}
	if _, err := h.c.Contact(ctx, &sgv1.GetContactRequest{BusinessId: "acme", Phone: brPhone}); err != nil {
		t.Fatalf("GetContact on a nearly full disk: %v", err)
	}
	if got := serving(serviceName); got != healthpb.HealthCheckResponse_SERVING || h.srv.unhealthy.Load() {
		t.Fatalf("main health on a nearly full disk: %v (unhealthy %v): refused writes were taken for a store failure", got, h.srv.unhealthy.Load())
	}
	if code, text := get("/healthz"); code != http.StatusOK || !strings.Contains(text, "writes refused") {
		t.Fatalf("/healthz on a nearly full disk: %d %q", code, text)
	}
	if code, text := get("/healthz/writes"); code != http.StatusServiceUnavailable || !strings.Contains(text, "disk is nearly full") {
		t.Fatalf("/healthz/writes on a nearly full disk: %d %q", code, text)
	}
	if metric("sendguard_store_writable") != "0" || metric("sendguard_disk_free_bytes") != "1.048576e+07" || metric("sendguard_disk_headroom_bytes") != "1.048576e+08" {
		t.Fatal("gauges on a nearly full disk")
	}

	fs.full.Store(false)
	waitFor(writesServiceName, healthpb.HealthCheckResponse_SERVING)
	h.report(t, failed(brPhone, 131049, t0))
	if code, text := get("/healthz/writes"); code != http.StatusOK || text != "ok\n" {
		t.Fatalf("/healthz/writes after space was freed: %d %q", code, text)
	}
	if code, text := get("/healthz"); code != http.StatusOK || text != "ok\n" {
		t.Fatalf("/healthz after space was freed: %d %q", code, text)
	}
}

// TestStoreDownStopsWrites: a failing store takes the writes service down with
// the others, and brings it back with them.
func TestStoreDownStopsWrites(t *testing.T) {
	h := newHarness(t)
	h.srv.setServing(false)
	h.srv.setDiskFull(true)
	h.srv.setServing(true) // the store answers again, the disk is still full
	check := func(name string, want healthpb.HealthCheckResponse_ServingStatus) {
		t.Helper()
		resp, err := h.srv.health.Check(context.Background(), &healthpb.HealthCheckRequest{Service: name})
		if err != nil || resp.GetStatus() != want {
			t.Fatalf("%s: %v %v, want %v", name, resp.GetStatus(), err, want)
		}
	}
	check(serviceName, healthpb.HealthCheckResponse_SERVING)
	check(writesServiceName, healthpb.HealthCheckResponse_NOT_SERVING)
	h.srv.setDiskFull(false)
	check(writesServiceName, healthpb.HealthCheckResponse_SERVING)
	h.srv.setServing(false)
	check(writesServiceName, healthpb.HealthCheckResponse_NOT_SERVING)
}

// TestDiskHeadroomReachesBadger: disk_headroom from the config file is the
// headroom of the Badger store the runner opens (here larger than any disk, so
// writes are refused from the start and reads go on).
func TestDiskHeadroomReachesBadger(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sendguard.yaml")
	if err := os.WriteFile(path, []byte("disk_headroom: 1000TiB\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	if err := LoadConfigFile(path, &cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.DiskHeadroom != 1000<<40 {
		t.Fatalf("disk_headroom: %d", cfg.DiskHeadroom)
	}
	// The runner opens Badger with the config's headroom (internal/serve's
	// TestDiskHeadroomReachesBadger checks that it does).
	st, err := badger.Open(badger.Options{Dir: t.TempDir(), Logger: discardLogger(), DiskHeadroom: cfg.DiskHeadroom})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	sp, ok := st.Space()
	if !ok {
		t.Skip("this system's Badger store does not watch its disk")
	}
	if sp.Writable || sp.Headroom != 1000<<40 {
		t.Fatalf("Space with a 1000 TiB headroom: %+v", sp)
	}
	h := newHarnessOn(t, func(storage.Store, Config) storage.Store { return st })
	if _, err := h.c.Report(context.Background(), failed(brPhone, 131049, t0)); status.Code(err) != codes.Unavailable {
		t.Fatalf("ReportResult under a 1000 TiB headroom: %v", err)
	}
	h.check(t, marketing(brPhone))
}

func TestDiskHeadroomConfig(t *testing.T) {
	for _, c := range []struct {
		in   string
		want int64
		ok   bool
	}{
		{"0", 0, true},
		{"1048576", 1 << 20, true},
		{"512MiB", 512 << 20, true},
		{"2 GiB", 2 << 30, true},
		{"1GB", 1e9, true},
		{"300KB", 300e3, true},
		{"10B", 10, true},
		{"", 0, false},
		{"lots", 0, false},
		{"-1", 0, false},
		{"1.5GiB", 0, false},
		{"5mib", 0, false},
		{"9000000TiB", 0, false},
	} {
		got, err := ParseSize(c.in)
		if (err == nil) != c.ok || got != c.want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d, ok %v", c.in, got, err, c.want, c.ok)
		}
	}
	for name, mutate := range map[string]func(*Config){
		"negative":       func(c *Config) { c.DiskHeadroom = -1 },
		"set with Redis": func(c *Config) { c.DiskHeadroom = 1 << 30; c.StoreURL = "redis://127.0.0.1:6379" },
	} {
		c := DefaultConfig()
		mutate(&c)
		if err := c.validate(); err == nil || !strings.Contains(err.Error(), "disk_headroom") {
			t.Errorf("%s: %v", name, err)
		}
	}
	path := filepath.Join(t.TempDir(), "sendguard.yaml")
	if err := os.WriteFile(path, []byte("disk_headroom: plenty\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c := DefaultConfig()
	if err := LoadConfigFile(path, &c); err == nil || !strings.Contains(err.Error(), "disk_headroom") {
		t.Fatalf("disk_headroom: plenty: %v", err)
	}
}

// TestDiskNearlyFullBatchedReservations: on a nearly full disk, a lane's batch
// of reservations is refused whole by the store, and each row then goes alone:
// one whose update writes nothing (here a DEFER, and a repeated reservation)
// gets the answer it gets alone, and only the one that writes is refused, as
// CheckSend answers them. Then the same rows over a real stream.
func TestDiskNearlyFullBatchedReservations(t *testing.T) {
	var fs *nearlyFull
	h := newHarnessOn(t, func(st storage.Store, _ Config) storage.Store { fs = &nearlyFull{Store: st}; return fs })
	ctx := context.Background()
	reserve := func(id, phone, ref string) *sgv1.CheckSendRequest {
		r := marketing(phone)
		r.RequestId, r.Reserve, r.MessageRef = id, true, ref
		return r
	}
	const other = "+5511912345678"
	if resp := h.check(t, reserve("first", brPhone, "m-1")); resp.GetVerdict() != allow {
		t.Fatalf("first reservation: %v", resp)
	}
	fs.full.Store(true)
	reqs := []*sgv1.CheckSendRequest{
		reserve("again", brPhone, "m-2"), // deferred by m-1's send: writes nothing
		reserve("new", other, "o-1"),     // would be allowed: its write is refused
	}
	// The answers each row gets alone, by CheckSend.
	again, err := h.c.Check(ctx, reqs[0])
	if err != nil || again.GetVerdict() != deferV {
		t.Fatalf("CheckSend of a deferred reservation on a nearly full disk: %v %v", again, err)
	}
	if _, err := h.c.Check(ctx, reqs[1]); status.Code(err) != codes.Unavailable {
		t.Fatalf("CheckSend of a new reservation on a nearly full disk: %v", err)
	}

	// Decided as one lane's batch (deterministic: both rows are held together).
	rows := make([]*streamRow, len(reqs))
	for i, req := range reqs {
		rows[i] = &streamRow{req: req, done: make(chan struct{}, 1)}
	}
	var batch laneBatch
	h.srv.decideRows(ctx, rows, &batch)
	if got := rows[0].resp; got.GetError() != nil || got.GetVerdict() != deferV || !proto.Equal(got.GetRetryAt(), again.GetRetryAt()) {
		t.Errorf("batched deferred row on a nearly full disk: %v, want %v as alone", got, again)
	}
	if got := rows[1].resp; got.GetError().GetCode() != int32(codes.Unavailable) || !strings.Contains(got.GetError().GetMessage(), "disk is nearly full") {
		t.Errorf("batched new row on a nearly full disk: %v, want UNAVAILABLE (disk nearly full)", got)
	}

	// Over a stream, with the first reservation repeated: DUPLICATE, DEFER, UNAVAILABLE.
	out := runStream(t, h, append([]*sgv1.CheckSendRequest{reserve("dup", brPhone, "m-1")}, reqs...))
	if !out[0].GetDuplicate() || out[1].GetVerdict() != deferV || out[2].GetError().GetCode() != int32(codes.Unavailable) {
		t.Fatalf("stream on a nearly full disk: %v", out)
	}
	fs.full.Store(false)
	if out := runStream(t, h, reqs[1:]); out[0].GetVerdict() != allow {
		t.Fatalf("the refused reservation after space was freed: %v", out[0])
	}
}
