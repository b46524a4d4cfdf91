package main

import (
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/fieldmaskpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	sgv1 "github.com/sendguard/sendguard/proto/sendguard/v1"
	"github.com/sendguard/sendguard/server"
	"github.com/sendguard/sendguard/storage"
	"github.com/sendguard/sendguard/storage/badger"
)

var backupLine = regexp.MustCompile(`wrote \S+: (\d+) bytes in (\S+) \(([\d.]+) MB/s\), store version (\d+)`)

// TestBackupRestoreEndToEnd builds the binary, records history of every kind on a
// running server, takes `sendguard backup` from it while other clients keep
// writing, restores the file with `sendguard restore` into a fresh directory,
// serves that, and finds the same decisions: proto.Equal CheckSend responses (at a
// fixed send_at) for every number, business and category, and equal policies.
func TestBackupRestoreEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin := buildBinary(t)
	data := t.TempDir()
	p := startServer(t, bin, data)
	c := dial(t, p.grpc)
	ctx := t.Context()
	at := time.Now().UTC().Truncate(time.Second)
	sendAt := timestamppb.New(at.Add(30 * time.Minute))
	must := func(_ any, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}

	const acme, strict = "acme", "strict-co"
	num := func(i int) string { return fmt.Sprintf("+55119876510%02d", i) }
	// strict-co markets only to users who opted in.
	must(c.SetPolicy(ctx, &sgv1.SetPolicyRequest{BusinessId: strict, Policy: &sgv1.Policy{RequireOptIn: proto.Bool(true)},
		UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"require_opt_in"}}}))
	fail := func(business, phone, wamid string, code int32, ago time.Duration) {
		t.Helper()
		must(c.Report(ctx, &sgv1.ReportResultRequest{BusinessId: business, Phone: phone, MessageId: wamid,
			Status: sgv1.MessageStatus_MESSAGE_STATUS_FAILED, ErrorCode: code, Category: sgv1.Category_CATEGORY_MARKETING,
			Template: "promo", Timestamp: timestamppb.New(at.Add(-ago))}))
	}
	fail(acme, num(1), "wamid.1", 131049, time.Minute)      // ecosystem cooldown (number-wide)
	fail(acme, num(2), "wamid.2a", 131026, 2*time.Hour)     // undeliverable...
	fail(strict, num(2), "wamid.2b", 131026, time.Minute)   // ...seen by another business too
	fail(acme, num(3), "wamid.3", 131050, time.Minute)      // Meta's opt-out
	fail(acme, num(10), "wamid.10", 130472, 10*time.Minute) // experiment
	must(c.SetOptOut(ctx, &sgv1.SetOptOutRequest{BusinessId: acme, Phone: num(4), OptedOut: true, Reason: "support ticket"}))
	must(c.SetOptOut(ctx, &sgv1.SetOptOutRequest{BusinessId: strict, Phone: num(5), OptedOut: false, Reason: "signup form"}))
	for i, r := range []struct{ business, phone, ref string }{{acme, num(6), "send-6"}, {strict, num(5), "send-5"}} {
		resp, err := c.Check(ctx, &sgv1.CheckSendRequest{BusinessId: r.business, Phone: r.phone, Category: sgv1.Category_CATEGORY_MARKETING,
			Template: "promo", Reserve: true, MessageRef: r.ref, SendAt: timestamppb.New(at.Add(-time.Duration(i+1) * time.Minute))})
		if err != nil || resp.GetVerdict() != sgv1.Verdict_VERDICT_ALLOW {
			t.Fatalf("reserve %v: %v %v", r, resp, err)
		}
	}
	must(c.Inbound(ctx, &sgv1.ReportInboundRequest{BusinessId: acme, Phone: num(7), MessageId: "wamid.in7", Text: "hi", Timestamp: timestamppb.New(at)}))
	// A delivered report that links a BSUID to a number.
	must(c.Report(ctx, &sgv1.ReportResultRequest{BusinessId: acme, Phone: num(8), UserId: "BR.8", MessageId: "wamid.8",
		Status: sgv1.MessageStatus_MESSAGE_STATUS_DELIVERED, Category: sgv1.Category_CATEGORY_UTILITY, Timestamp: timestamppb.New(at)}))
	// An opted-out user, forgotten: only the keyed-hash suppression entry is left.
	must(c.SetOptOut(ctx, &sgv1.SetOptOutRequest{BusinessId: acme, Phone: num(9), OptedOut: true, Reason: "STOP"}))
	must(c.Forget(ctx, &sgv1.ForgetContactRequest{BusinessId: acme, Phone: num(9)}))

	// Other clients keep reserving (another business, other numbers) while the
	// backup runs: it is online.
	var (
		served atomic.Int64
		stop   = make(chan struct{})
		wg     sync.WaitGroup
	)
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; n < 10_000; n++ {
				select {
				case <-stop:
					return
				default:
				}
				_, err := c.Check(ctx, &sgv1.CheckSendRequest{BusinessId: "busy", Phone: fmt.Sprintf("+55119876520%02d", (w*31+n)%100),
					Category: sgv1.Category_CATEGORY_UTILITY, Reserve: true, MessageRef: fmt.Sprintf("busy-%d-%d", w, n)})
				if err != nil {
					t.Errorf("CheckSend during the backup: %v", err)
					return
				}
				served.Add(1)
			}
		}()
	}
	for served.Load() < 50 {
		time.Sleep(time.Millisecond)
	}

	dir := t.TempDir()
	file := filepath.Join(dir, "sendguard.backup")
	before := served.Load()
	out, err := exec.Command(bin, "backup", "--api-addr", p.api, "--out", file).CombinedOutput()
	during := served.Load() - before
	close(stop)
	wg.Wait()
	m := backupLine.FindStringSubmatch(string(out))
	if err != nil || m == nil {
		t.Fatalf("backup: %v\n%s", err, out)
	}
	st, err := os.Stat(file)
	if err != nil || fmt.Sprint(st.Size()) != m[1] || st.Mode().Perm() != 0o600 {
		t.Fatalf("backup file: %v %v, want %s bytes, mode 0600", st, err, m[1])
	}
	t.Logf("sendguard backup: %s; %d CheckSends served meanwhile", strings.TrimSpace(string(out)), during)
	if _, err := os.Stat(file + ".tmp"); !os.IsNotExist(err) {
		t.Fatalf("%s.tmp left behind: %v", file, err)
	}
	// An existing file is kept unless --force.
	out, err = exec.Command(bin, "backup", "--api-addr", p.api, "--out", file).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "--force") {
		t.Fatalf("backup over an existing file: %v\n%s", err, out)
	}
	if out, err := exec.Command(bin, "backup", "--api-addr", p.api, "--out", file, "--force").CombinedOutput(); err != nil {
		t.Fatalf("backup --force: %v\n%s", err, out)
	}

	// restore refuses a directory with data in it, the live one included.
	out, err = exec.Command(bin, "restore", "--data", data, file).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "not empty") {
		t.Fatalf("restore into the live data directory: %v\n%s", err, out)
	}
	fresh := filepath.Join(t.TempDir(), "restored")
	out, err = exec.Command(bin, "restore", "--data", fresh, "--suppression-key", filepath.Join(data, "suppression.key"), file).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "sendguard serve --data "+fresh) {
		t.Fatalf("restore: %v\n%s", err, out)
	}
	t.Logf("sendguard restore: %s", strings.TrimSpace(string(out)))
	c2 := dial(t, startServer(t, bin, fresh).grpc)

	// The same question gets the same whole answer from both servers.
	var reqs []*sgv1.CheckSendRequest
	for _, business := range []string{acme, strict} {
		for i := 1; i <= 10; i++ {
			for _, cat := range []sgv1.Category{sgv1.Category_CATEGORY_MARKETING, sgv1.Category_CATEGORY_UTILITY,
				sgv1.Category_CATEGORY_AUTHENTICATION, sgv1.Category_CATEGORY_SERVICE} {
				reqs = append(reqs, &sgv1.CheckSendRequest{BusinessId: business, Phone: num(i), Category: cat, Template: "promo",
					RequestId: fmt.Sprintf("%s/%d/%v", business, i, cat), SendAt: sendAt})
			}
		}
	}
	reqs = append(reqs,
		&sgv1.CheckSendRequest{BusinessId: acme, UserId: "BR.8", Category: sgv1.Category_CATEGORY_MARKETING, SendAt: sendAt},
		&sgv1.CheckSendRequest{BusinessId: acme, Phone: "+16505551234", Category: sgv1.Category_CATEGORY_MARKETING, SendAt: sendAt},
		// The reservations' message_refs are remembered: nothing new is counted.
		&sgv1.CheckSendRequest{BusinessId: acme, Phone: num(6), Category: sgv1.Category_CATEGORY_MARKETING, Template: "promo",
			Reserve: true, MessageRef: "send-6", SendAt: sendAt},
	)
	verdicts := map[sgv1.Verdict]int{}
	for _, req := range reqs {
		want, err := c.Check(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		got, err := c2.Check(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		if !proto.Equal(got, want) {
			t.Errorf("%v\nrestored: %v\noriginal: %v", req, got, want)
		}
		verdicts[want.GetVerdict()]++
	}
	if verdicts[sgv1.Verdict_VERDICT_DENY] == 0 || verdicts[sgv1.Verdict_VERDICT_DEFER] == 0 || verdicts[sgv1.Verdict_VERDICT_ALLOW] == 0 {
		t.Errorf("verdicts %v: the comparison should cover ALLOW, DEFER and DENY", verdicts)
	}
	t.Logf("%d CheckSend decisions identical after restore (%v)", len(reqs), verdicts)
	for _, business := range []string{acme, strict} {
		want, err := c.Policy(ctx, business)
		if err != nil {
			t.Fatal(err)
		}
		got, err := c2.Policy(ctx, business)
		if err != nil {
			t.Fatal(err)
		}
		if !proto.Equal(got, want) || !want.GetOverrides().GetRequireOptIn() && business == strict {
			t.Errorf("GetPolicy(%s): restored %v, original %v", business, got, want)
		}
	}

	// The dedup keys of reported events came along: a retried webhook changes
	// nothing on the restored server.
	retry := &sgv1.ReportResultRequest{BusinessId: acme, Phone: num(1), MessageId: "wamid.1",
		Status: sgv1.MessageStatus_MESSAGE_STATUS_FAILED, ErrorCode: 131049, Category: sgv1.Category_CATEGORY_MARKETING,
		Template: "promo", Timestamp: timestamppb.New(at.Add(-time.Minute))}
	if r, err := c2.Report(ctx, retry); err != nil || !r.GetDuplicate() {
		t.Errorf("a retried report on the restored server: %v %v, want duplicate", r, err)
	}

	// Without the data directory's key (the hash secret) a forgotten opt-out is
	// no longer recognised and a retried event counts again: restore warns.
	bare := filepath.Join(t.TempDir(), "bare")
	out, err = exec.Command(bin, "restore", "--data", bare, file).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "WARNING: no --suppression-key") {
		t.Fatalf("restore without --suppression-key: %v\n%s", err, out)
	}
	c3 := dial(t, startServer(t, bin, bare).grpc)
	forgotten := &sgv1.CheckSendRequest{BusinessId: acme, Phone: num(9), Category: sgv1.Category_CATEGORY_MARKETING, SendAt: sendAt}
	if r, err := c2.Check(ctx, forgotten); err != nil || r.GetVerdict() != sgv1.Verdict_VERDICT_DENY {
		t.Errorf("forgotten opt-out with the key: %v %v, want DENY", r, err)
	}
	if r, err := c3.Check(ctx, forgotten); err != nil || r.GetVerdict() != sgv1.Verdict_VERDICT_ALLOW {
		t.Errorf("forgotten opt-out without the key: %v %v (the test's premise: the key matters)", r, err)
	}
	if r, err := c3.Report(ctx, retry); err != nil || r.GetDuplicate() {
		t.Errorf("a retried report without the key: %v %v (the test's premise: the key matters)", r, err)
	}
}

// plainStore hides the Badger store's Backup method: a store that cannot back
// itself up.
type plainStore struct{ storage.Store }

// TestBackupEndpointRefuses checks the admin endpoint's answers in process: 403
// to a caller that is not on loopback, 501 for a store without backups, and a
// complete backup (with its trailer) for a loopback caller.
func TestBackupEndpointRefuses(t *testing.T) {
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	st, err := badger.Open(badger.Options{InMemory: true, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.PutPolicy(t.Context(), "acme", []byte("policy")); err != nil {
		t.Fatal(err)
	}
	get := func(s storage.Store, remote string) *http.Response {
		t.Helper()
		srv, err := server.New(s, server.Config{HashSecret: []byte("sendguard-test-secret"), Logger: quiet})
		if err != nil {
			t.Fatal(err)
		}
		defer srv.Close()
		req := httptest.NewRequest(http.MethodGet, server.BackupPath, http.NoBody)
		req.Host = "127.0.0.1:8081" // without API keys the API port answers only to loopback names
		req.RemoteAddr = remote
		rec := httptest.NewRecorder()
		api, err := srv.APIHandler()
		if err != nil {
			t.Fatal(err)
		}
		api.ServeHTTP(rec, req)
		return rec.Result()
	}
	for _, remote := range []string{"192.0.2.10:40000", "[2001:db8::1]:40000", "10.0.0.1:1", "not an address"} {
		if r := get(st, remote); r.StatusCode != http.StatusForbidden {
			t.Errorf("from %s: %s, want 403", remote, r.Status)
		}
	}
	if r := get(plainStore{st}, "127.0.0.1:40000"); r.StatusCode != http.StatusNotImplemented {
		t.Errorf("a store without backups: %s, want 501", r.Status)
	}
	for _, remote := range []string{"127.0.0.1:40000", "127.8.9.10:1", "[::1]:40000", "[::ffff:127.0.0.1]:1"} {
		r := get(st, remote)
		body, _ := io.ReadAll(r.Body)
		if r.StatusCode != http.StatusOK || r.Header.Get("Content-Type") != "application/octet-stream" ||
			r.Trailer.Get(server.BackupVersionTrailer) == "" || !strings.Contains(string(body), "policy") {
			t.Errorf("from %s: %s %v trailer %v (%d bytes)", remote, r.Status, r.Header, r.Trailer, len(body))
		}
	}
}
