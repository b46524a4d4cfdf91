package redistest

import (
	"errors"
	"net"
	"strconv"
	"testing"
	"time"
)

func TestCluster(t *testing.T) {
	t.Parallel()
	start := time.Now()
	c := StartCluster(t, Options{})
	t.Logf("cluster of %d nodes ready in %v", len(c.Addrs()), time.Since(start).Round(time.Millisecond))

	if got := len(c.Addrs()); got != 6 {
		t.Fatalf("len(Addrs()) = %d, want 6", got)
	}

	const key, value = "{user1000}.following", "v1"
	master := c.MasterOf(t, key)
	role, err := commandString(c.Addrs()[master], dialTimeout, "INFO", "replication")
	if err != nil {
		t.Fatal(err)
	}
	if got := parseInfo(role)["role"]; got != "master" {
		t.Fatalf("MasterOf(%q) = node %d with role %q, want a master", key, master, got)
	}
	// Write through the master and wait for its replica to have it, so the
	// value must survive the failover. WAIT counts the replicas that have
	// what its own connection wrote, so both go on one connection.
	replies, err := pipeline(c.Addrs()[master], 3*time.Second, []string{"SET", key, value}, []string{"WAIT", "1", "2000"})
	if err != nil {
		t.Fatal(err)
	}
	if acks := replies[1]; acks != int64(1) {
		t.Fatalf("WAIT 1 2000 after SET = %v, want 1 replica", acks)
	}

	c.Kill(t, master)
	killed := time.Now()
	c.WaitFailover(t, master, 20*time.Second)
	t.Logf("failover of node %d took %v", master, time.Since(killed).Round(time.Millisecond))

	owner := c.MasterOf(t, key)
	if owner == master {
		t.Fatalf("after failover MasterOf(%q) is still the killed node %d", key, master)
	}
	if !c.nodes[owner].alive() {
		t.Fatalf("after failover MasterOf(%q) = node %d, which is not running", key, owner)
	}
	got, err := command(c.Addrs()[owner], dialTimeout, "GET", key)
	if err != nil || got != value {
		t.Fatalf("GET %q from the new master node %d = %v, %v; want %q", key, owner, got, err, value)
	}
}

func TestServer(t *testing.T) {
	t.Parallel()
	s := StartServer(t)
	got, err := command(s.Addr(), dialTimeout, "PING")
	if err != nil || got != "PONG" {
		t.Fatalf("PING %s = %v, %v; want PONG", s.Addr(), got, err)
	}
}

// TestPortTaken checks that a node that loses its client or cluster bus port
// to another process is reported as errPortTaken, which startNode retries on.
func TestPortTaken(t *testing.T) {
	server, _ := binaries(t)
	t.Parallel()
	for _, offset := range []int{0, busPortOffset} {
		// Other test packages pick ports at the same time: a port may be taken
		// between pickPort and Listen, so try a few.
		var (
			port int
			l    net.Listener
			err  error
		)
		for range 10 {
			if port, err = pickPort(true); err != nil {
				t.Fatal(err)
			}
			if l, err = net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port+offset))); err == nil {
				break
			}
		}
		if err != nil {
			t.Fatal(err)
		}
		c := nodeConfig{server: server, dir: t.TempDir(), cluster: true, nodeTimeout: time.Second}
		n, err := launch(c, port)
		if err != nil {
			t.Fatal(err)
		}
		err = n.waitReady()
		if stopErr := n.stop(0); stopErr != nil {
			t.Error(stopErr)
		}
		l.Close()
		if !errors.Is(err, errPortTaken) {
			t.Errorf("port+%d taken: waitReady() = %v, want errPortTaken", offset, err)
		}
	}
}
