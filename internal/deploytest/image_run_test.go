package deploytest

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/sendguard/sendguard/client"
	sgv1 "github.com/sendguard/sendguard/proto/sendguard/v1"
	"github.com/sendguard/sendguard/server"
)

// podman runs Debian's podman on a store of the test's own, so that nothing
// is left in the machine's: with runc (crun 1.8 refuses this machine's hybrid
// cgroups) and cgroupfs (no systemd here).
type podman struct {
	t    *testing.T
	args []string
}

func newPodman(t *testing.T) *podman {
	bin := needTool(t, "podman", "podman")
	needTool(t, "runc", "runc")
	dir := t.TempDir()
	p := &podman{t: t, args: []string{bin, "--root", filepath.Join(dir, "root"), "--runroot", filepath.Join(dir, "run"),
		"--runtime", "runc", "--cgroup-manager", "cgroupfs", "--events-backend", "file"}}
	t.Cleanup(func() {
		// Before t.TempDir's own cleanup: unmount and delete what podman made there.
		_, _ = p.try("rm", "--all", "--force", "--time", "0")
		_, _ = p.try("volume", "prune", "--force")
		_, _ = p.try("rmi", "--all", "--force")
	})
	return p
}

// try runs one podman command and returns its combined output.
func (p *podman) try(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, p.args[0], append(p.args[1:], args...)...).CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

// run runs one podman command and fails the test if it fails.
func (p *podman) run(args ...string) string {
	p.t.Helper()
	out, err := p.try(args...)
	if err != nil {
		p.t.Fatalf("podman %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// containerRun are the flags of every `podman run` here: no network but the
// container's own loopback (the test reaches it from inside its namespace),
// and resource limits no higher than this sandbox's (it refuses a container
// runtime's setrlimit to podman's defaults, 1048576 files).
var containerRun = []string{"run", "--detach", "--network", "none", "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"}

// start runs the image detached with extra podman flags (before the image)
// and arguments (after it), waits until it serves, and returns its PID.
func (p *podman) start(name string, flags []string, args ...string) int {
	p.t.Helper()
	argv := append(append(append(append([]string{}, containerRun...), "--name", name), flags...), "localhost/"+testTag)
	p.run(append(argv, args...)...)
	deadline := time.Now().Add(60 * time.Second)
	for !strings.Contains(p.run("logs", name), "sendguard serving") {
		if time.Now().After(deadline) || p.run("inspect", "--format", "{{.State.Running}}", name) != "true" {
			p.t.Fatalf("container %s did not start serving:\n%s", name, p.run("logs", name))
		}
		time.Sleep(100 * time.Millisecond)
	}
	var pid int
	if _, err := fmt.Sscan(p.run("inspect", "--format", "{{.State.Pid}}", name), &pid); err != nil || pid <= 0 {
		p.t.Fatalf("container %s: no PID (%v)", name, err)
	}
	return pid
}

// stop stops a container (SIGTERM, 20 s before SIGKILL) and checks that the
// server drained and exited 0.
func (p *podman) stop(name string) {
	p.t.Helper()
	p.run("stop", "--time", "20", name)
	if code := p.run("inspect", "--format", "{{.State.ExitCode}}", name); code != "0" {
		p.t.Errorf("container %s exited %s after SIGTERM:\n%s", name, code, p.run("logs", name))
	}
	if logs := p.run("logs", name); !strings.Contains(logs, "sendguard stopped") {
		p.t.Errorf("container %s did not log a clean stop:\n%s", name, logs)
	}
	p.run("rm", name)
}

// netnsDialer dials inside the network namespace of process pid: a container
// started with --network none has only its own loopback, and the test talks
// to it there rather than through a bridge and the host's firewall.
func netnsDialer(pid int) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		type result struct {
			c   net.Conn
			err error
		}
		ch := make(chan result, 1)
		go func() {
			// The thread enters the container's namespace and is never
			// unlocked: it ends with this goroutine. A socket stays in the
			// namespace it was made in.
			runtime.LockOSThread()
			ns, err := os.Open(fmt.Sprintf("/proc/%d/ns/net", pid))
			if err != nil {
				ch <- result{err: err}
				return
			}
			defer ns.Close()
			if err := unix.Setns(int(ns.Fd()), unix.CLONE_NEWNET); err != nil {
				ch <- result{err: fmt.Errorf("setns: %w", err)}
				return
			}
			var d net.Dialer
			c, err := d.DialContext(ctx, network, addr)
			ch <- result{c, err}
		}()
		r := <-ch
		return r.c, r.err
	}
}

// inContainer is a gRPC and HTTP client of a server in a container's netns.
type inContainer struct {
	grpc *client.Client
	http *http.Client
}

func dialContainer(t *testing.T, pid int, apiKey string) *inContainer {
	t.Helper()
	dial := netnsDialer(pid)
	c, err := client.Dial("127.0.0.1:50051", client.Options{Insecure: true, APIKey: apiKey,
		DialOptions: []grpc.DialOption{grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) {
			return dial(ctx, "tcp", addr)
		})}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DialContext: dial}}
	return &inContainer{grpc: c, http: hc}
}

func (c *inContainer) get(t *testing.T, path string) (int, string) {
	t.Helper()
	resp, err := c.http.Get("http://127.0.0.1:8080" + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// postJSON calls the JSON API (the Connect protocol) on the container's API port.
func (c *inContainer) postJSON(t *testing.T, path, apiKey, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, "http://127.0.0.1:8081"+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+apiKey)
	resp, err := c.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// processUID is the real, effective, saved and filesystem uids of pid.
func processUID(t *testing.T, pid int) string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(b)) {
		if rest, ok := strings.CutPrefix(line, "Uid:"); ok {
			return strings.Join(strings.Fields(rest), " ")
		}
	}
	t.Fatal("no Uid line")
	return ""
}

// TestImageRuns loads the image into podman and runs it the ways README says:
// with its default config (loopback), with a mounted config holding an API
// key on 0.0.0.0 and a named volume whose data survive a new container, and
// with a non-loopback address but no keys, which the server refuses. It needs
// root, podman and runc, and runs only with SENDGUARD_CONTAINER=1
// (`make test-image-run`, CI).
func TestImageRuns(t *testing.T) {
	if os.Getenv("SENDGUARD_CONTAINER") == "" {
		t.Skip("set SENDGUARD_CONTAINER=1 to run the image under podman (root; make test-image-run)")
	}
	if os.Geteuid() != 0 {
		t.Fatal("running the image needs root (podman's store, entering the container's network namespace)")
	}
	p := newPodman(t)
	if out := p.run("load", "--input", filepath.Join(imageDir, "sendguard-image.tar")); !strings.Contains(out, testTag) {
		t.Fatalf("podman load: %s", out)
	}
	ctx := context.Background()
	check := &sgv1.CheckSendRequest{BusinessId: "acme", Phone: "+5511987650002", Category: sgv1.Category_CATEGORY_MARKETING, Template: "promo"}

	t.Run("default config: loopback, as user 65532", func(t *testing.T) {
		pid := p.start("sg-default", nil)
		if uid := processUID(t, pid); uid != "65532 65532 65532 65532" {
			t.Errorf("the server runs as uid %s, want 65532", uid)
		}
		c := dialContainer(t, pid, "")
		h, err := healthpb.NewHealthClient(c.grpc.Conn()).Check(ctx, &healthpb.HealthCheckRequest{Service: "sendguard.v1.SendGuard.writes"})
		if err != nil || h.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			t.Errorf("health of writes: %v %v", h, err)
		}
		if resp, err := c.grpc.Check(ctx, check); err != nil || resp.GetVerdict() != sgv1.Verdict_VERDICT_ALLOW {
			t.Errorf("CheckSend: %v %v", resp, err)
		}
		if code, body := c.get(t, "/healthz"); code != http.StatusOK {
			t.Errorf("/healthz: %d %s", code, body)
		}
		p.stop("sg-default")
	})

	t.Run("mounted config with an API key on 0.0.0.0, data in a volume", func(t *testing.T) {
		const key = "sg_deploytest_key_not_secret"
		conf := filepath.Join(t.TempDir(), "sendguard.yaml")
		body := fmt.Sprintf("grpc_addr: 0.0.0.0:50051\nhttp_addr: 0.0.0.0:8080\napi_addr: 0.0.0.0:8081\napi_keys:\n  - {name: test, sha256: %q, businesses: [acme]}\n", server.HashAPIKey(key))
		if err := os.WriteFile(conf, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		flags := []string{"--volume", conf + ":/etc/sendguard/sendguard.yaml:ro", "--volume", "sgdata:/var/lib/sendguard"}
		pid := p.start("sg-keys", flags)
		if logs := p.run("logs", "sg-keys"); !strings.Contains(logs, "grpc=[::]:50051") {
			t.Errorf("the server does not listen on every address:\n%s", logs)
		}
		anon := dialContainer(t, pid, "")
		if _, err := anon.grpc.Check(ctx, check); status.Code(err) != codes.Unauthenticated {
			t.Errorf("CheckSend without a key: %v, want UNAUTHENTICATED", err)
		}
		c := dialContainer(t, pid, key)
		if _, err := c.grpc.Report(ctx, &sgv1.ReportResultRequest{BusinessId: "acme", Phone: check.GetPhone(), MessageId: "wamid.deploytest",
			Status: sgv1.MessageStatus_MESSAGE_STATUS_FAILED, ErrorCode: 131050, Category: sgv1.Category_CATEGORY_MARKETING,
			Timestamp: timestamppb.New(time.Now().Add(-time.Minute))}); err != nil {
			t.Fatalf("ReportResult 131050: %v", err)
		}
		p.stop("sg-keys")

		// A new container on the same volume remembers the opt-out.
		pid = p.start("sg-keys-again", flags)
		c = dialContainer(t, pid, key)
		resp, err := c.grpc.Check(ctx, check)
		if err != nil || resp.GetVerdict() != sgv1.Verdict_VERDICT_DENY || resp.GetReasons()[0].GetRule() != sgv1.Rule_RULE_OPTED_OUT {
			t.Errorf("CheckSend in a new container on the volume: %v %v, want DENY OPTED_OUT", resp, err)
		}
		if code, _ := c.get(t, "/metrics"); code != http.StatusOK {
			t.Errorf("/metrics: %d", code)
		}
		// The JSON API on the third exposed port answers the same.
		if code, body := c.postJSON(t, "/sendguard.v1.SendGuard/CheckSend", key,
			`{"businessId":"acme","phone":"`+check.GetPhone()+`","category":"CATEGORY_MARKETING"}`); code != http.StatusOK || !strings.Contains(body, "RULE_OPTED_OUT") {
			t.Errorf("JSON CheckSend on the API port: %d %s, want 200 with RULE_OPTED_OUT", code, body)
		}
		p.stop("sg-keys-again")
	})

	t.Run("no keys, non-loopback address: refused", func(t *testing.T) {
		argv := append(append([]string{}, containerRun...), "--name", "sg-refused", "localhost/"+testTag, "--grpc-addr", "0.0.0.0:50051")
		p.run(argv...)
		code := p.run("wait", "sg-refused")
		logs := p.run("logs", "sg-refused")
		if code != "1" || !strings.Contains(logs, "refusing to start") {
			t.Errorf("exit %s, want 1 and a refusal:\n%s", code, logs)
		}
		p.run("rm", "sg-refused")
	})
}
