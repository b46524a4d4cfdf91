package redistest

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

const (
	// busPortOffset is how far above its client port a cluster node listens
	// for the cluster bus.
	busPortOffset = 10000
	// startAttempts bounds how often a node is restarted on fresh ports after
	// losing a port to another process between picking it and binding it.
	startAttempts = 10
	// readyTimeout bounds how long one start attempt waits for the node to
	// answer.
	readyTimeout = 10 * time.Second
	// stopGrace is how long a node has to exit after SIGTERM before SIGKILL.
	stopGrace = 5 * time.Second
	// reapTimeout bounds the wait for a SIGKILLed process to be reaped.
	reapTimeout = 10 * time.Second
	// pollInterval is the pause between checks in every wait loop.
	pollInterval = 10 * time.Millisecond
	// slotCount is the number of hash slots in a Redis cluster.
	slotCount = 16384
	// dialTimeout bounds each command the harness sends to a node.
	dialTimeout = time.Second
	// probeTimeout bounds each readiness probe of a starting node; short, so
	// that a port held by something that accepts but never answers does not
	// slow down noticing that our server exited.
	probeTimeout = 250 * time.Millisecond
)

// Files in a node's folder.
const (
	logFile    = "redis.log"  // the server's log
	outputFile = "output.log" // its stdout and stderr
)

// errPortTaken reports that a node could not bind one of its ports.
var errPortTaken = errors.New("address already in use")

// node is one redis-server process.
type node struct {
	dir  string
	port int
	addr string
	cmd  *exec.Cmd

	done chan struct{} // closed once the process has exited and been reaped
}

// nodeConfig says how to start a node.
type nodeConfig struct {
	server      string        // path of redis-server
	dir         string        // the node's own folder; recreated on every attempt
	cluster     bool          // start in cluster mode
	nodeTimeout time.Duration // cluster-node-timeout, cluster mode only
}

// startNode starts a redis-server as c says and waits until it answers on
// its port, retrying with fresh ports when one was taken. The returned node
// is running; on error no process is left behind.
func startNode(c nodeConfig) (*node, error) {
	var lastErr error
	for range startAttempts {
		port, err := pickPort(c.cluster)
		if err != nil {
			return nil, err
		}
		if err := os.RemoveAll(c.dir); err != nil {
			return nil, err
		}
		if err := os.MkdirAll(c.dir, 0o700); err != nil {
			return nil, err
		}
		n, err := launch(c, port)
		if err == nil {
			if err = n.waitReady(); err != nil {
				err = errors.Join(err, n.stop(0))
			}
		}
		if err == nil {
			return n, nil
		}
		lastErr = err
		if !errors.Is(err, errPortTaken) {
			return nil, err
		}
	}
	return nil, fmt.Errorf("redistest: no free ports after %d attempts: %w", startAttempts, lastErr)
}

// launch starts the process without waiting for it.
func launch(c nodeConfig, port int) (*node, error) {
	args := []string{
		"--bind", "127.0.0.1",
		"--port", strconv.Itoa(port),
		"--dir", c.dir,
		"--save", "",
		"--appendonly", "no",
		"--protected-mode", "no",
		"--daemonize", "no",
		"--logfile", filepath.Join(c.dir, logFile),
		// A replica's first full sync would otherwise wait 5 s for more
		// replicas to share it.
		"--repl-diskless-sync-delay", "0",
	}
	if c.cluster {
		args = append(args,
			"--cluster-enabled", "yes",
			"--cluster-config-file", "nodes.conf",
			"--cluster-node-timeout", strconv.FormatInt(max(1, c.nodeTimeout.Milliseconds()), 10),
			"--cluster-require-full-coverage", "no",
			"--cluster-replica-validity-factor", "0",
		)
	}
	n := &node{
		dir:  c.dir,
		port: port,
		addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)),
		done: make(chan struct{}),
	}
	// Output goes to a file rather than a pipe, so that Wait does not depend
	// on the server's forked children closing a pipe; redis-server writes
	// there only what it says before it opens its log file.
	out, err := os.Create(filepath.Join(c.dir, outputFile))
	if err != nil {
		return nil, err
	}
	defer out.Close() // the child has its own copy
	n.cmd = exec.Command(c.server, args...)
	n.cmd.Dir = c.dir
	n.cmd.Stdout = out
	n.cmd.Stderr = out
	if err := n.cmd.Start(); err != nil {
		return nil, fmt.Errorf("redistest: start %s: %w", c.server, err)
	}
	go func() {
		_ = n.cmd.Wait() // the exit status of a stopped server tells nothing
		close(n.done)
	}()
	return n, nil
}

// waitReady waits until the node answers INFO on its port as the process we
// started (not some other server that took the port first).
func (n *node) waitReady() error {
	deadline := time.Now().Add(readyTimeout)
	pid := strconv.Itoa(n.cmd.Process.Pid)
	for time.Now().Before(deadline) {
		select {
		case <-n.done:
			if n.logContains("Address already in use") {
				return fmt.Errorf("node %s: %w", n.addr, errPortTaken)
			}
			return fmt.Errorf("redistest: redis-server on %s exited during startup%s", n.addr, n.diagnostics())
		default:
		}
		if info, err := commandString(n.addr, probeTimeout, "INFO", "server"); err == nil &&
			parseInfo(info)["process_id"] == pid {
			return nil
		}
		time.Sleep(pollInterval)
	}
	return fmt.Errorf("redistest: redis-server on %s did not answer within %v%s", n.addr, readyTimeout, n.diagnostics())
}

// alive reports whether the process is still running.
func (n *node) alive() bool {
	select {
	case <-n.done:
		return false
	default:
		return true
	}
}

// stop sends SIGTERM, then SIGKILL if the process has not exited within
// grace, and waits for it to be reaped.
func (n *node) stop(grace time.Duration) error {
	if !n.alive() {
		return nil
	}
	if grace > 0 {
		_ = n.cmd.Process.Signal(syscall.SIGTERM) // fails only if it has exited
		select {
		case <-n.done:
			return nil
		case <-time.After(grace):
		}
	}
	_ = n.cmd.Process.Kill()
	select {
	case <-n.done:
		return nil
	case <-time.After(reapTimeout):
		return fmt.Errorf("redistest: redis-server on %s (pid %d) not reaped %v after SIGKILL",
			n.addr, n.cmd.Process.Pid, reapTimeout)
	}
}

// diagnostics returns the end of the node's redis.log and its stderr, to
// append to a failure message.
func (n *node) diagnostics() string {
	var b strings.Builder
	for _, name := range []string{logFile, outputFile} {
		if text := strings.TrimSpace(n.tail(name, 30)); text != "" {
			fmt.Fprintf(&b, "\n--- tail of %s:\n%s", filepath.Join(n.dir, name), text)
		}
	}
	return b.String()
}

// tail returns at most the last lines lines of the named file in the node's
// folder.
func (n *node) tail(name string, lines int) string {
	const maxRead = 16 << 10
	f, err := os.Open(filepath.Join(n.dir, name))
	if errors.Is(err, fs.ErrNotExist) {
		return ""
	}
	if err != nil {
		return fmt.Sprintf("(%v)", err)
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.Size() > maxRead {
		_, _ = f.Seek(-maxRead, io.SeekEnd) // on failure we read from the start, which is fine
	}
	data, err := io.ReadAll(io.LimitReader(f, maxRead))
	if err != nil {
		return fmt.Sprintf("(%v)", err)
	}
	all := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	return strings.Join(all[max(0, len(all)-lines):], "\n")
}

func (n *node) logContains(s string) bool {
	return strings.Contains(n.tail(logFile, 50), s) || strings.Contains(n.tail(outputFile, 50), s)
}

// pickPort returns a loopback port that is free now and, for a cluster node,
// whose cluster bus port (port+10000) is free too. Either may be taken again
// before the server binds it; startNode retries when that happens.
func pickPort(cluster bool) (int, error) {
	const attempts = 100
	for range attempts {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, fmt.Errorf("redistest: pick a port: %w", err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		// The listeners only probe that a port is free: closing them can
		// fail only if they are already closed.
		if !cluster {
			_ = l.Close()
			return port, nil
		}
		if port+busPortOffset > 65535 {
			_ = l.Close()
			continue
		}
		bus, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port+busPortOffset)))
		_ = l.Close()
		if err != nil {
			continue
		}
		_ = bus.Close()
		return port, nil
	}
	return 0, fmt.Errorf("redistest: no port P with P and P+%d free in %d attempts", busPortOffset, attempts)
}
