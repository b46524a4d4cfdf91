//go:build linux

package chaos

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/sendguard/sendguard/client"
	sgv1 "github.com/sendguard/sendguard/proto/sendguard/v1"
)

// The full-disk runs: the server's data directory on a real small filesystem,
// most of it taken by a filler file, and writers of every kind until the server
// refuses them. Bounds (each fails the run past it):
const (
	// diskFsSize is the size of the filesystem, diskRoom what the filler leaves
	// above the server's headroom for the writers to fill.
	diskFsSize = 256 << 20
	diskRoom   = 24 << 20
	// diskWriters write concurrently, each until it has been refused
	// diskRefusals times (or diskWriteFor has passed).
	diskWriters  = 8
	diskRefusals = 20
	diskWriteFor = 45 * time.Second
	diskMinAcked = 1000    // writes acknowledged before the refusal
	diskInFlight = 4 << 20 // the headroom's share for writes in flight
	// diskBelow is how far below the headroom the free space may be when writes
	// are refused: the writes in flight, and a memtable flush, whose table is
	// both the flush room it used and a new L0 table the headroom then counts.
	diskBelow     = diskInFlight + 2*16<<20
	diskResumeMax = 2 * time.Second       // from deleting the filler to a write taken
	diskFullFor   = 2 * time.Second       // reads and background work on the full disk
	diskNoSpace   = "disk is nearly full" // in every refusal's message
	diskWritesSvc = "sendguard.v1.SendGuard.writes"
)

// TestDiskFullTmpfs runs the full-disk scenario on a tmpfs.
func TestDiskFullTmpfs(t *testing.T) {
	requireRoot(t)
	mnt := t.TempDir()
	if err := syscall.Mount("tmpfs", mnt, "tmpfs", 0, fmt.Sprintf("size=%d", diskFsSize)); err != nil {
		t.Skipf("cannot mount a tmpfs here: %v", err)
	}
	t.Cleanup(func() { unmount(t, mnt) })
	diskFull(t, mnt)
}

// TestDiskFullExt4 runs it on a loop-mounted ext4 image (delayed allocation,
// a journal and blocks reserved for root: not the tmpfs accounting).
func TestDiskFullExt4(t *testing.T) {
	requireRoot(t)
	for _, tool := range []string{"mkfs.ext4", "losetup"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("no %s here (e2fsprogs, util-linux): %v", tool, err)
		}
	}
	img := filepath.Join(t.TempDir(), "ext4.img")
	mnt := t.TempDir()
	f, err := os.Create(img)
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	if err := os.Truncate(img, diskFsSize); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mkfs.ext4", "-q", "-F", img).CombinedOutput(); err != nil {
		t.Fatalf("mkfs.ext4: %v\n%s", err, out)
	}
	// mount -o loop takes a free loop device and gives it back on unmount.
	if out, err := exec.Command("mount", "-o", "loop", img, mnt).CombinedOutput(); err != nil {
		t.Skipf("cannot loop-mount an ext4 image here: %v\n%s", err, out)
	}
	t.Cleanup(func() { unmount(t, mnt) })
	diskFull(t, mnt)
}

// TestDiskTooSmall: on a 16 MiB filesystem the server refuses to start, saying
// why; on the probe's 64 MiB one (less than the headroom) it starts, serves reads
// and refuses writes from the first.
func TestDiskTooSmall(t *testing.T) {
	requireRoot(t)
	mount := func(size int64) string {
		mnt := t.TempDir()
		if err := syscall.Mount("tmpfs", mnt, "tmpfs", 0, fmt.Sprintf("size=%d", size)); err != nil {
			t.Skipf("cannot mount a tmpfs here: %v", err)
		}
		t.Cleanup(func() { unmount(t, mnt) })
		return mnt
	}

	tiny := mount(16 << 20)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, binPath, "serve", "--data", filepath.Join(tiny, "data"),
		"--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--api-addr", "off").CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 || !strings.Contains(string(out), "free some space") {
		t.Fatalf("serve on a 16 MiB filesystem: %v, want exit 1 saying to free some space\n%s", err, out)
	}
	figure(t, "start on a 16 MiB filesystem", "exit 1: "+strings.TrimSpace(string(out)), "exit 1, no crash")

	small := mount(64 << 20)
	s := start(t, filepath.Join(small, "data"), nil)
	c := s.dial(t)
	a := acked{kind: writeOptOut, phone: "+5511970000001", ref: "small"}
	if _, err := a.do(context.Background(), c); !refusedForSpace(err) {
		t.Fatalf("a write on a 64 MiB filesystem: %v, want a refusal (the headroom is larger)", err)
	}
	if _, err := c.Check(context.Background(), &sgv1.CheckSendRequest{BusinessId: "acme", Phone: a.phone, Category: sgv1.Category_CATEGORY_UTILITY}); err != nil {
		t.Fatalf("a check on a 64 MiB filesystem: %v", err)
	}
	if code, _ := s.get(t, "/healthz/writes"); code != 503 {
		t.Fatalf("/healthz/writes on a 64 MiB filesystem: %d", code)
	}
	s.alive(t)
	figure(t, "a 64 MiB filesystem", fmt.Sprintf("serves reads, refuses writes (%s free, headroom %s)",
		mib(s.gauge(t, "sendguard_disk_free_bytes")), mib(s.gauge(t, "sendguard_disk_headroom_bytes"))), "no crash")
	s.stop(t)
}

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("the full-disk runs mount a filesystem: they need root (CI runs as root)")
	}
}

func unmount(t *testing.T, mnt string) {
	if err := syscall.Unmount(mnt, 0); err != nil {
		t.Errorf("unmount %s: %v", mnt, err)
	}
}

// available is the free space of the filesystem at dir, as an unprivileged
// process sees it (what the server watches too).
func available(t *testing.T, dir string) int64 {
	t.Helper()
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	return int64(st.Bavail) * int64(st.Frsize)
}

// gauge reads one unlabelled metric of the server.
func (s *server) gauge(t *testing.T, name string) int64 {
	t.Helper()
	_, text := s.get(t, "/metrics")
	for _, line := range strings.Split(text, "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("%s: %v", line, err)
			}
			return int64(f)
		}
	}
	t.Fatalf("no %s in /metrics", name)
	return 0
}

// diskWrite is one kind of write and how its effect is checked after a restart.
type diskWrite int

const (
	writeReport  diskWrite = iota // ReportResult SENT: a send in GetContact
	writeReserve                  // CheckSend reserve: the same message_ref again is a duplicate
	writeStop                     // ReportInbound "STOP": marketing DENY, OPTED_OUT
	writeOptOut                   // SetOptOut(true): the same
	diskKinds
)

var writeNames = [diskKinds]string{"ReportResult", "reservation", "ReportInbound STOP", "SetOptOut"}

// acked is one acknowledged write.
type acked struct {
	kind  diskWrite
	phone string
	ref   string
}

// do sends the write; ok says it was acknowledged.
func (a acked) do(ctx context.Context, c *client.Client) (ok bool, err error) {
	now := timestamppb.Now()
	switch a.kind {
	case writeReport:
		_, err = c.Report(ctx, &sgv1.ReportResultRequest{BusinessId: "acme", Phone: a.phone, MessageId: "wamid." + a.ref,
			MessageRef: a.ref, Status: sgv1.MessageStatus_MESSAGE_STATUS_SENT, Category: sgv1.Category_CATEGORY_UTILITY,
			Template: "order_update", Timestamp: now})
	case writeReserve:
		var resp *sgv1.CheckSendResponse
		resp, err = c.Check(ctx, a.reservation())
		if err == nil && (resp.GetVerdict() != sgv1.Verdict_VERDICT_ALLOW || resp.GetDuplicate()) {
			return false, fmt.Errorf("reservation of a fresh number: %v", resp)
		}
	case writeStop:
		_, err = c.Inbound(ctx, &sgv1.ReportInboundRequest{BusinessId: "acme", Phone: a.phone, MessageId: "in." + a.ref,
			Text: "STOP", Timestamp: now})
	case writeOptOut:
		// The longest reason allowed, stored with the opt-out and hardly
		// compressible, so that the disk fills in fewer writes.
		_, err = c.SetOptOut(ctx, &sgv1.SetOptOutRequest{BusinessId: "acme", Phone: a.phone, OptedOut: true, Reason: optOutReason(a.ref)})
	}
	return err == nil, err
}

// optOutReason is 1,024 bytes of hex digits, different for every ref and
// without repeats.
func optOutReason(ref string) string {
	var b strings.Builder
	for i := range 16 {
		sum := sha256.Sum256([]byte(ref + strconv.Itoa(i)))
		b.WriteString(hex.EncodeToString(sum[:]))
	}
	return b.String()
}

func (a acked) reservation() *sgv1.CheckSendRequest {
	return &sgv1.CheckSendRequest{BusinessId: "acme", Phone: a.phone, Category: sgv1.Category_CATEGORY_UTILITY,
		Template: "order_update", Reserve: true, MessageRef: a.ref}
}

// verify checks that the write is in the store (read-only, but for a
// reservation, whose repetition writes nothing).
func (a acked) verify(ctx context.Context, c *client.Client) error {
	switch a.kind {
	case writeReport:
		ct, err := c.Contact(ctx, &sgv1.GetContactRequest{BusinessId: "acme", Phone: a.phone})
		if err != nil {
			return err
		}
		if !slices.ContainsFunc(ct.GetSends(), func(s *sgv1.SendRecord) bool { return s.GetMessageRef() == a.ref }) {
			return fmt.Errorf("the reported send %s is not in GetContact: %v", a.ref, ct.GetSends())
		}
	case writeReserve:
		resp, err := c.Check(ctx, a.reservation())
		if err != nil {
			return err
		}
		if !resp.GetDuplicate() {
			return fmt.Errorf("reserving %s again is not a duplicate: %v", a.ref, resp)
		}
	case writeStop, writeOptOut:
		resp, err := c.Check(ctx, &sgv1.CheckSendRequest{BusinessId: "acme", Phone: a.phone, Category: sgv1.Category_CATEGORY_MARKETING})
		if err != nil {
			return err
		}
		if resp.GetVerdict() != sgv1.Verdict_VERDICT_DENY || resp.GetReasons()[0].GetRule() != sgv1.Rule_RULE_OPTED_OUT {
			return fmt.Errorf("an opted-out number is not DENY OPTED_OUT: %v", resp)
		}
	}
	return nil
}

// refusedForSpace tells a refusal for a nearly full disk from any other error.
func refusedForSpace(err error) bool {
	st, _ := status.FromError(err)
	return st.Code() == codes.Unavailable && strings.Contains(st.Message(), diskNoSpace)
}

// diskFull runs the scenario on the filesystem mounted at mnt.
func diskFull(t *testing.T, mnt string) {
	dir := filepath.Join(mnt, "data")
	s := start(t, dir, nil)
	c := s.dial(t)
	free, headroom := s.gauge(t, "sendguard_disk_free_bytes"), s.gauge(t, "sendguard_disk_headroom_bytes")
	filler := filepath.Join(mnt, "filler")
	fill(t, filler, free-headroom-diskRoom)
	t.Logf("filesystem of %s: %s free, headroom %s; a filler of %s leaves %s for writes",
		mib(diskFsSize), mib(free), mib(headroom), mib(free-headroom-diskRoom), mib(diskRoom))

	// Write until refused.
	var (
		mu                           sync.Mutex
		writes                       []acked
		refused                      int
		wg                           sync.WaitGroup
		firstRefusal                 sync.Once
		atRefusal, headroomAtRefusal int64
	)
	ctx := context.Background()
	deadline := time.Now().Add(diskWriteFor)
	for w := range diskWriters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			mine := 0
			for i := 0; mine < diskRefusals && time.Now().Before(deadline); i++ {
				a := acked{kind: diskWrite(i % int(diskKinds)), phone: fmt.Sprintf("+55119%d%07d", w, i), ref: fmt.Sprintf("m-%d-%d", w, i)}
				ok, err := a.do(ctx, c)
				if !ok && refusedForSpace(err) {
					firstRefusal.Do(func() {
						atRefusal = available(t, mnt)
						headroomAtRefusal = s.gauge(t, "sendguard_disk_headroom_bytes")
					})
				}
				mu.Lock()
				switch {
				case ok:
					writes = append(writes, a)
				case refusedForSpace(err):
					refused++
					mine++
				default:
					t.Errorf("%s: %v (only a refusal for disk space is expected)", writeNames[a.kind], err)
					mine = diskRefusals
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	s.alive(t)
	byKind := make([]int, diskKinds)
	for _, a := range writes {
		byKind[a.kind]++
	}
	figure(t, "acknowledged writes before the refusal", fmt.Sprintf("%d (%s %d, %s %d, %s %d, %s %d)", len(writes),
		writeNames[0], byKind[0], writeNames[1], byKind[1], writeNames[2], byKind[2], writeNames[3], byKind[3]), fmt.Sprintf("≥ %d", diskMinAcked))
	figure(t, "refused writes", strconv.Itoa(refused), fmt.Sprintf("≥ 1 (%d writers stop after %d each)", diskWriters, diskRefusals))
	figure(t, "free space at the first refusal", fmt.Sprintf("%s (headroom %s)", mib(atRefusal), mib(headroomAtRefusal)), "≥ headroom − "+mib(diskBelow)+" (writes in flight, and a flush counted twice)")
	if len(writes) < diskMinAcked || refused == 0 {
		t.Fatalf("%d writes acknowledged and %d refused: the disk did not fill as planned", len(writes), refused)
	}
	if atRefusal < headroomAtRefusal-diskBelow {
		t.Errorf("free space at refusal %s is below the headroom %s by more than %s", mib(atRefusal), mib(headroomAtRefusal), mib(diskBelow))
	}
	// A memtable flush after the last write may have freed its WAL's space
	// since: fill it again, so that what follows runs on a full disk.
	filler2 := filepath.Join(mnt, "filler2")
	topUp(t, s, mnt, filler2)

	// The full disk: reads go on, health says writes are refused, nothing dies
	// while Badger's background work runs.
	health := healthpb.NewHealthClient(c.Conn())
	serving := func(name string) healthpb.HealthCheckResponse_ServingStatus {
		resp, err := health.Check(ctx, &healthpb.HealthCheckRequest{Service: name})
		if err != nil {
			t.Fatalf("health %s: %v", name, err)
		}
		return resp.GetStatus()
	}
	waitHealth := func(name string, want healthpb.HealthCheckResponse_ServingStatus, within time.Duration) {
		end := time.Now().Add(within)
		for serving(name) != want {
			if time.Now().After(end) {
				t.Fatalf("health %s not %v within %v", name, want, within)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitHealth(diskWritesSvc, healthpb.HealthCheckResponse_NOT_SERVING, time.Second)
	if got := serving("sendguard.v1.SendGuard"); got != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("main health on the full disk: %v, want SERVING (reads go on)", got)
	}
	if code, text := s.get(t, "/healthz"); code != 200 || !strings.Contains(text, "writes refused") {
		t.Errorf("/healthz on the full disk: %d %q", code, text)
	}
	if code, _ := s.get(t, "/healthz/writes"); code != 503 {
		t.Errorf("/healthz/writes on the full disk: %d, want 503", code)
	}
	reads := 0
	for end := time.Now().Add(diskFullFor); time.Now().Before(end); reads++ {
		a := writes[reads%len(writes)]
		if _, err := c.Check(ctx, &sgv1.CheckSendRequest{BusinessId: "acme", Phone: a.phone, Category: sgv1.Category_CATEGORY_UTILITY}); err != nil {
			t.Fatalf("a check on the full disk: %v", err)
		}
		if _, err := c.Contact(ctx, &sgv1.GetContactRequest{BusinessId: "acme", Phone: a.phone}); err != nil {
			t.Fatalf("GetContact on the full disk: %v", err)
		}
	}
	s.alive(t)
	figure(t, "reads answered on the full disk", fmt.Sprintf("%d check + GetContact pairs in %v, all OK", reads, diskFullFor), "every one OK")

	// A graceful stop on the full disk flushes the memtable into a table (one
	// more mapped write), and a start on it replays the WAL and serves reads
	// with writes refused from the first.
	tables := func() int {
		m, _ := filepath.Glob(filepath.Join(dir, "*.sst"))
		return len(m)
	}
	before := tables()
	s.stop(t)
	if s.exit != nil {
		t.Fatalf("SIGTERM on the full disk: the server exited with %v\n%s", s.exit, s.log)
	}
	figure(t, "graceful stop on the full disk", fmt.Sprintf("exit 0, tables %d → %d, %s free", before, tables(), mib(available(t, mnt))), "exit 0")
	s = start(t, dir, nil)
	c = s.dial(t)
	// The flush deleted a WAL larger than its table: take that space back.
	topUp(t, s, mnt, filler2)
	health = healthpb.NewHealthClient(c.Conn())
	waitHealth(diskWritesSvc, healthpb.HealthCheckResponse_NOT_SERVING, time.Second)
	if err := writes[0].verify(ctx, c); err != nil {
		t.Fatalf("a read after a restart on the full disk: %v", err)
	}
	if _, err := (acked{kind: writeOptOut, phone: "+5511970000000", ref: "restarted"}).do(ctx, c); !refusedForSpace(err) {
		t.Fatalf("a write after a restart on the full disk: %v, want a refusal", err)
	}

	// Free the disk: writes come back by themselves.
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filler2); err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	freed := time.Now()
	for i := 0; ; i++ {
		a := acked{kind: writeOptOut, phone: fmt.Sprintf("+551198%07d", i), ref: fmt.Sprintf("resume-%d", i)}
		ok, err := a.do(ctx, c)
		if ok {
			writes = append(writes, a)
			break
		}
		if !refusedForSpace(err) {
			t.Fatalf("a write after the filler was deleted: %v", err)
		}
		if time.Since(freed) > 10*time.Second {
			t.Fatal("writes did not resume within 10s of freeing the disk")
		}
		time.Sleep(10 * time.Millisecond)
	}
	resumed := time.Since(freed)
	figure(t, "time to resume writes after the filler was deleted", resumed.Round(time.Millisecond).String(), "≤ "+diskResumeMax.String())
	if resumed > diskResumeMax {
		t.Errorf("writes resumed %v after the disk was freed, past %v", resumed, diskResumeMax)
	}
	waitHealth(diskWritesSvc, healthpb.HealthCheckResponse_SERVING, time.Second)

	// kill -9, restart on the same filesystem, and find every acknowledged write.
	if err := s.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-s.done
	s2 := start(t, dir, nil)
	c2 := s2.dial(t)
	var lost []string
	var lmu sync.Mutex
	work := make(chan acked)
	var vwg sync.WaitGroup
	for range diskWriters {
		vwg.Add(1)
		go func() {
			defer vwg.Done()
			for a := range work {
				if err := a.verify(ctx, c2); err != nil {
					lmu.Lock()
					lost = append(lost, fmt.Sprintf("%s %s %s: %v", writeNames[a.kind], a.phone, a.ref, err))
					lmu.Unlock()
				}
			}
		}()
	}
	for _, a := range writes {
		work <- a
	}
	close(work)
	vwg.Wait()
	figure(t, "acknowledged writes lost across kill -9", fmt.Sprintf("%d of %d", len(lost), len(writes)), "0")
	if len(lost) > 0 {
		t.Errorf("%d acknowledged writes lost, e.g.:\n%s", len(lost), strings.Join(lost[:min(10, len(lost))], "\n"))
	}
	s2.stop(t)
}

// topUp adds to the filler at path until the filesystem at mnt has 2 MiB less
// free than the server's headroom.
func topUp(t *testing.T, s *server, mnt, path string) {
	t.Helper()
	if more := available(t, mnt) - (s.gauge(t, "sendguard_disk_headroom_bytes") - 2<<20); more > 0 {
		fill(t, path, more)
		t.Logf("filler topped up by %s", mib(more))
	}
}

// fill adds n bytes of real data to the file at path.
func fill(t *testing.T, path string, n int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	chunk := make([]byte, 1<<20)
	for n > 0 {
		w := min(n, int64(len(chunk)))
		if _, err := f.Write(chunk[:w]); err != nil {
			t.Fatalf("filler: %v", err)
		}
		n -= w
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
}
