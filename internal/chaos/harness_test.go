package chaos

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/sendguard/sendguard/client"
)

var (
	binDir  string
	binPath string
)

// TestMain builds the binary once, unless the chaos runs are off (the default:
// `make chaos` sets SENDGUARD_CHAOS=1) or SENDGUARD_CHAOS_BINARY names one.
func TestMain(m *testing.M) {
	if os.Getenv(attackEnv) != "" {
		os.Exit(m.Run()) // an attacker process (see attack): no binary to build
	}
	if os.Getenv("SENDGUARD_CHAOS") == "" {
		fmt.Println("chaos runs skipped: set SENDGUARD_CHAOS=1 (make chaos)")
		os.Exit(0)
	}
	if bin := os.Getenv("SENDGUARD_CHAOS_BINARY"); bin != "" {
		// Another build, to measure before and after a change.
		binPath = bin
		os.Exit(m.Run())
	}
	var err error
	if binDir, err = os.MkdirTemp("", "sendguard-chaos-"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binPath = filepath.Join(binDir, "sendguard")
	cmd := exec.Command("go", "build", "-o", binPath, "../../cmd/sendguard")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build:", err)
		os.RemoveAll(binDir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(binDir)
	os.Exit(code)
}

// server is a running `sendguard serve`.
type server struct {
	cmd        *exec.Cmd
	grpc, http string
	done       chan struct{} // closed when the process has exited
	exit       error         // how it exited; read after done
	log        *logTail
}

var servingLine = regexp.MustCompile(`sendguard serving"? grpc=(\S+) http=(\S+)`)

// start runs `sendguard serve --data dir` on loopback ports the kernel picks, with
// extra flags and environment, and waits until it says where it listens. The
// process is killed when the test ends.
func start(t *testing.T, dir string, env []string, args ...string) *server {
	t.Helper()
	argv := append([]string{"serve", "--data", dir, "--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--api-addr", "127.0.0.1:0"}, args...)
	cmd := exec.Command(binPath, argv...)
	cmd.Env = append(os.Environ(), env...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s := &server{cmd: cmd, done: make(chan struct{}), log: &logTail{}}
	found := make(chan []string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			s.log.add(line)
			if m := servingLine.FindStringSubmatch(line); m != nil {
				select {
				case found <- m:
				default:
				}
			}
		}
		_, _ = io.Copy(io.Discard, stderr)
	}()
	go func() {
		s.exit = cmd.Wait()
		close(s.done)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-s.done
	})
	select {
	case m := <-found:
		s.grpc, s.http = m[1], m[2]
		return s
	case <-s.done:
		t.Fatalf("server exited before serving: %v\n%s", s.exit, s.log)
	case <-time.After(60 * time.Second):
		t.Fatalf("server did not start within 60s\n%s", s.log)
	}
	return nil
}

// stop ends the server with SIGTERM and waits (at most 30 s) for it to exit.
func (s *server) stop(t *testing.T) {
	t.Helper()
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(30 * time.Second):
		t.Fatalf("server did not stop within 30s of SIGTERM\n%s", s.log)
	}
}

// alive fails the test when the process has exited (a crash: SIGBUS, OOM kill).
func (s *server) alive(t *testing.T) {
	t.Helper()
	select {
	case <-s.done:
		t.Fatalf("server died: %v\n%s", s.exit, s.log)
	default:
	}
}

// dial connects a client to the server's gRPC address.
func (s *server) dial(t *testing.T) *client.Client {
	t.Helper()
	c, err := client.Dial(s.grpc, client.Options{Insecure: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// status reads a field of /proc/<pid>/status in bytes (VmRSS, VmHWM: kB there).
func (s *server) status(field string) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", s.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			f := strings.Fields(v)
			if len(f) > 0 {
				n, _ := strconv.ParseInt(f[0], 10, 64)
				return n << 10
			}
		}
	}
	return 0
}

// rss is the server's resident memory now, in bytes.
func (s *server) rss() int64 { return s.status("VmRSS") }

// peakRSS samples the server's resident memory every 50 ms until the returned
// function is called, which returns the largest sample.
func (s *server) peakRSS() (stop func() int64) {
	var peak atomic.Int64
	quit := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		for {
			if r := s.rss(); r > peak.Load() {
				peak.Store(r)
			}
			select {
			case <-quit:
				return
			case <-t.C:
			}
		}
	}()
	return func() int64 {
		close(quit)
		wg.Wait()
		return peak.Load()
	}
}

// get fetches a path of the server's HTTP address.
func (s *server) get(t *testing.T, path string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+s.http+path, http.NoBody)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// logTail keeps the last lines the server logged, for failure messages.
type logTail struct {
	mu    sync.Mutex
	lines []string
}

func (l *logTail) add(line string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, line)
	if len(l.lines) > 200 {
		l.lines = l.lines[len(l.lines)-200:]
	}
}

func (l *logTail) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := max(0, len(l.lines)-40)
	return "last server log lines:\n" + strings.Join(l.lines[n:], "\n")
}

// mib formats bytes as MiB.
func mib(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

// figure prints one result line of the chaos run, in a form that is easy to grep
// out of the log: "FIGURE name: value (bound)".
func figure(t *testing.T, name, value, bound string) {
	t.Helper()
	t.Logf("FIGURE %s: %s (bound: %s)", name, value, bound)
}

// attackEnv names the attack a re-executed test binary runs (see attack).
const attackEnv = "SENDGUARD_CHAOS_ATTACK"

// attack runs the test named test of this package in another process at the
// lowest CPU priority (nice 19), with args in attackEnv, so that what the
// attacker costs the machine does not count against the server's answers to the
// test's own probes. It returns the process's output once it has exited.
func attack(t *testing.T, ctx context.Context, test, args string) (wait func() string) {
	t.Helper()
	cmd := exec.CommandContext(ctx, "nice", "-n", "19", os.Args[0], "-test.run", "^"+test+"$", "-test.v")
	cmd.Env = append(os.Environ(), attackEnv+"="+args)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	return func() string {
		_ = cmd.Wait()
		return out.String()
	}
}
