package redistest

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

const (
	// clusterCreateTimeout bounds redis-cli --cluster create.
	clusterCreateTimeout = 30 * time.Second
	// clusterReadyTimeout bounds the wait for a new cluster to settle.
	clusterReadyTimeout = 30 * time.Second
	// clusterPollInterval is the pause between checks of the cluster's state.
	clusterPollInterval = 50 * time.Millisecond
)

// Options configures StartCluster. The zero value is a cluster of three
// masters with one replica each and a one-second node timeout.
type Options struct {
	Masters     int           // masters, default 3 (redis-cli refuses fewer than 3)
	Replicas    int           // replicas per master, default 1 (so 3+3 by default); negative for none
	NodeTimeout time.Duration // cluster-node-timeout, default 1s (fast failover in tests)
}

func (o Options) withDefaults() Options {
	if o.Masters == 0 {
		o.Masters = 3
	}
	switch {
	case o.Replicas == 0:
		o.Replicas = 1
	case o.Replicas < 0:
		o.Replicas = 0
	}
	if o.NodeTimeout <= 0 {
		o.NodeTimeout = time.Second
	}
	return o
}

// Cluster is a running Redis cluster on loopback. Its nodes keep the index
// they were started with for the life of the cluster; a killed node keeps
// its index and address.
type Cluster struct {
	cli   string
	nodes []*node

	mu     sync.Mutex
	killed map[int][]slotRange // slots each killed node served when it was killed
}

// slotRange is a range of slots and the port of the master serving it.
type slotRange struct {
	start, end int // inclusive
	port       int
}

// StartCluster starts Masters*(1+Replicas) redis-server processes in cluster
// mode, each in its own folder under tb.TempDir(), bound to 127.0.0.1 only,
// creates the cluster with `redis-cli --cluster create ... --cluster-replicas
// N --cluster-yes`, and waits (at most 30 s) until every node reports
// cluster_state:ok, all 16384 slots are assigned and every replica is attached
// (master_link_status:up). It registers a tb.Cleanup that stops every process
// (SIGTERM, then SIGKILL after a grace period) and waits for it. It calls
// Require first, so it skips the test when Redis is not installed.
func StartCluster(tb testing.TB, o Options) *Cluster {
	tb.Helper()
	server, cli := binaries(tb)
	o = o.withDefaults()
	if o.Masters < 3 {
		tb.Fatalf("redistest: a cluster needs at least 3 masters, not %d", o.Masters)
	}
	total := o.Masters * (1 + o.Replicas)
	base := tb.TempDir()
	c := &Cluster{cli: cli, nodes: make([]*node, total), killed: make(map[int][]slotRange)}
	tb.Cleanup(func() {
		if tb.Failed() {
			c.logDiagnostics(tb)
		}
		if err := c.stopAll(); err != nil {
			tb.Error(err)
		}
	})

	errs := make([]error, total)
	var wg sync.WaitGroup
	for i := range total {
		wg.Go(func() {
			c.nodes[i], errs[i] = startNode(nodeConfig{
				server:      server,
				dir:         filepath.Join(base, fmt.Sprintf("node%d", i)),
				cluster:     true,
				nodeTimeout: o.NodeTimeout,
			})
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		tb.Fatal(err)
	}

	c.create(tb, o.Replicas)
	c.waitReady(tb, o)
	return c
}

// create joins the running nodes into a cluster with redis-cli.
func (c *Cluster) create(tb testing.TB, replicas int) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), clusterCreateTimeout)
	defer cancel()
	args := append([]string{"--cluster", "create"}, c.Addrs()...)
	args = append(args, "--cluster-replicas", strconv.Itoa(replicas), "--cluster-yes")
	out, err := exec.CommandContext(ctx, c.cli, args...).CombinedOutput()
	if err != nil {
		tb.Fatalf("redistest: %s %s: %v\n%s%s", c.cli, strings.Join(args, " "), err, out, c.deadDiagnostics())
	}
}

// waitReady waits until every node sees a healthy cluster of the expected
// shape and every replica is in sync with its master.
func (c *Cluster) waitReady(tb testing.TB, o Options) {
	tb.Helper()
	deadline := time.Now().Add(clusterReadyTimeout)
	for {
		why, culprit := c.notReady(o)
		if why == "" {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("redistest: cluster not ready within %v: %s%s", clusterReadyTimeout, why, c.nodes[culprit].diagnostics())
		}
		time.Sleep(clusterPollInterval)
	}
}

// notReady returns why the cluster is not yet ready and the node concerned,
// or "" once it is.
func (c *Cluster) notReady(o Options) (string, int) {
	replicas := 0
	for i, n := range c.nodes {
		if !n.alive() {
			return fmt.Sprintf("node %d (%s) exited", i, n.addr), i
		}
		info, err := commandString(n.addr, dialTimeout, "CLUSTER", "INFO")
		if err != nil {
			return fmt.Sprintf("node %d (%s): CLUSTER INFO: %v", i, n.addr, err), i
		}
		ci := parseInfo(info)
		for field, want := range map[string]string{
			"cluster_state":          "ok",
			"cluster_slots_assigned": strconv.Itoa(slotCount),
			"cluster_known_nodes":    strconv.Itoa(len(c.nodes)),
			"cluster_size":           strconv.Itoa(o.Masters),
		} {
			if ci[field] != want {
				return fmt.Sprintf("node %d (%s): %s:%s, want %s", i, n.addr, field, ci[field], want), i
			}
		}
		info, err = commandString(n.addr, dialTimeout, "INFO", "replication")
		if err != nil {
			return fmt.Sprintf("node %d (%s): INFO replication: %v", i, n.addr, err), i
		}
		ri := parseInfo(info)
		switch ri["role"] {
		case "slave":
			replicas++
			if ri["master_link_status"] != "up" {
				return fmt.Sprintf("node %d (%s): replica with master_link_status:%s", i, n.addr, ri["master_link_status"]), i
			}
		case "master":
			// The replica says its link is up as soon as it has loaded the
			// master's snapshot; the master streams writes to it only once
			// it calls the replica online.
			if why := replicasOnline(ri, o.Replicas); why != "" {
				return fmt.Sprintf("node %d (%s): %s", i, n.addr, why), i
			}
		}
	}
	if want := o.Masters * o.Replicas; replicas != want {
		return fmt.Sprintf("%d replicas, want %d", replicas, want), 0
	}
	return "", 0
}

// replicasOnline returns why a master's INFO replication fields do not show
// want replicas in state online, or "".
func replicasOnline(info map[string]string, want int) string {
	if got := info["connected_slaves"]; got != strconv.Itoa(want) {
		return fmt.Sprintf("connected_slaves:%s, want %d", got, want)
	}
	for r := range want {
		field := fmt.Sprintf("slave%d", r)
		if !strings.Contains(","+info[field]+",", ",state=online,") {
			return fmt.Sprintf("%s:%s, want state=online", field, info[field])
		}
	}
	return ""
}

// Addrs returns the host:port of every node (the seed list for a cluster
// client), killed ones included, in node index order.
func (c *Cluster) Addrs() []string {
	addrs := make([]string, len(c.nodes))
	for i, n := range c.nodes {
		addrs[i] = n.addr
	}
	return addrs
}

// MasterOf returns the index (into Addrs) of the node that currently serves
// the slot of key (honouring {hash tags}), as the first live node that
// answers CLUSTER SLOTS sees it. Right after a Kill that may still be the
// killed node; call WaitFailover first.
func (c *Cluster) MasterOf(tb testing.TB, key string) int {
	tb.Helper()
	var slot int
	ranges, err := c.slotMap()
	if err == nil {
		slot, err = c.keySlot(key)
	}
	if err != nil {
		tb.Fatalf("redistest: MasterOf(%q): %v", key, err)
	}
	for _, r := range ranges {
		if slot >= r.start && slot <= r.end {
			if i := c.indexOf(r.port); i >= 0 {
				return i
			}
			tb.Fatalf("redistest: MasterOf(%q): slot %d is served by port %d, which is not a node of this cluster", key, slot, r.port)
		}
	}
	tb.Fatalf("redistest: MasterOf(%q): slot %d is not assigned", key, slot)
	return -1
}

// Kill SIGKILLs node i (to simulate a crash) and reaps it. It remembers
// which slots the node served, for WaitFailover.
func (c *Cluster) Kill(tb testing.TB, i int) {
	tb.Helper()
	n := c.node(tb, i)
	if !n.alive() {
		tb.Fatalf("redistest: Kill(%d): node %s has already exited", i, n.addr)
	}
	ranges, err := c.slotMap()
	if err != nil {
		tb.Fatalf("redistest: Kill(%d): %v", i, err)
	}
	var served []slotRange
	for _, r := range ranges {
		if r.port == n.port {
			served = append(served, r)
		}
	}
	c.mu.Lock()
	c.killed[i] = served
	c.mu.Unlock()
	if err := n.stop(0); err != nil {
		tb.Fatal(err)
	}
}

// WaitFailover waits (at most timeout) until the slots that node killed
// served when Kill stopped it are served by another live node in the view of
// every live node, and every live node reports cluster_state:ok. It fails the
// test on timeout.
func (c *Cluster) WaitFailover(tb testing.TB, killed int, timeout time.Duration) {
	tb.Helper()
	c.node(tb, killed)
	c.mu.Lock()
	served, ok := c.killed[killed]
	c.mu.Unlock()
	if !ok {
		tb.Fatalf("redistest: WaitFailover(%d): the node was not stopped with Kill", killed)
	}
	deadline := time.Now().Add(timeout)
	for {
		why := c.failoverPending(served)
		if why == "" {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("redistest: WaitFailover(%d): slots %s not failed over within %v: %s",
				killed, formatRanges(served), timeout, why)
		}
		time.Sleep(clusterPollInterval)
	}
}

// failoverPending returns why the slots in served are not yet served by live
// nodes everywhere, or "" once they are.
func (c *Cluster) failoverPending(served []slotRange) string {
	live := 0
	for i, n := range c.nodes {
		if !n.alive() {
			continue
		}
		live++
		info, err := commandString(n.addr, dialTimeout, "CLUSTER", "INFO")
		if err != nil {
			return fmt.Sprintf("node %d: CLUSTER INFO: %v", i, err)
		}
		if state := parseInfo(info)["cluster_state"]; state != "ok" {
			return fmt.Sprintf("node %d: cluster_state:%s", i, state)
		}
		ranges, err := clusterSlots(n.addr)
		if err != nil {
			return fmt.Sprintf("node %d: %v", i, err)
		}
		for _, want := range served {
			for slot := want.start; slot <= want.end; slot++ {
				owner := -1
				for _, r := range ranges {
					if slot >= r.start && slot <= r.end {
						owner = c.indexOf(r.port)
						break
					}
				}
				if owner < 0 || !c.nodes[owner].alive() {
					return fmt.Sprintf("node %d: slot %d is served by node %d, which is not live", i, slot, owner)
				}
			}
		}
	}
	if live == 0 {
		return "no node is live"
	}
	return ""
}

// slotMap returns the slot map as the first live node that answers sees it.
func (c *Cluster) slotMap() ([]slotRange, error) {
	return firstLive(c, clusterSlots)
}

// keySlot returns the slot of key (honouring {hash tags}) as Redis computes it
// (CLUSTER KEYSLOT on the first live node that answers).
func (c *Cluster) keySlot(key string) (int, error) {
	return firstLive(c, func(addr string) (int, error) {
		reply, err := command(addr, dialTimeout, "CLUSTER", "KEYSLOT", key)
		if err != nil {
			return 0, err
		}
		slot, ok := reply.(int64)
		if !ok {
			return 0, fmt.Errorf("CLUSTER KEYSLOT: reply is %T, want an integer", reply)
		}
		return int(slot), nil
	})
}

// firstLive returns ask's answer from the first live node that gives one.
func firstLive[T any](c *Cluster, ask func(addr string) (T, error)) (T, error) {
	var errs []error
	for i, n := range c.nodes {
		if !n.alive() {
			continue
		}
		v, err := ask(n.addr)
		if err == nil {
			return v, nil
		}
		errs = append(errs, fmt.Errorf("node %d: %w", i, err))
	}
	var zero T
	if len(errs) == 0 {
		return zero, errors.New("no node is live")
	}
	return zero, errors.Join(errs...)
}

// node returns node i, failing the test when there is none.
func (c *Cluster) node(tb testing.TB, i int) *node {
	tb.Helper()
	if i < 0 || i >= len(c.nodes) {
		tb.Fatalf("redistest: no node %d in a cluster of %d", i, len(c.nodes))
	}
	return c.nodes[i]
}

// indexOf returns the index of the node listening on port, or -1.
func (c *Cluster) indexOf(port int) int {
	for i, n := range c.nodes {
		if n.port == port {
			return i
		}
	}
	return -1
}

// stopAll stops every started node at once, so that cleanup takes one grace
// period at most rather than one per node.
func (c *Cluster) stopAll() error {
	errs := make([]error, len(c.nodes))
	var wg sync.WaitGroup
	for i, n := range c.nodes {
		if n == nil {
			continue
		}
		wg.Go(func() { errs[i] = n.stop(stopGrace) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// logDiagnostics logs the end of every node's log, so that a failed test
// shows what the cluster did.
func (c *Cluster) logDiagnostics(tb testing.TB) {
	tb.Helper()
	for i, n := range c.nodes {
		if n != nil {
			tb.Logf("redistest: node %d (%s):%s", i, n.addr, n.diagnostics())
		}
	}
}

// deadDiagnostics returns the diagnostics of every node that has exited.
func (c *Cluster) deadDiagnostics() string {
	var b strings.Builder
	for _, n := range c.nodes {
		if !n.alive() {
			b.WriteString(n.diagnostics())
		}
	}
	return b.String()
}

// clusterSlots asks the node at addr for CLUSTER SLOTS.
func clusterSlots(addr string) ([]slotRange, error) {
	reply, err := command(addr, dialTimeout, "CLUSTER", "SLOTS")
	if err != nil {
		return nil, fmt.Errorf("CLUSTER SLOTS: %w", err)
	}
	return parseClusterSlots(reply)
}

// parseClusterSlots reads a CLUSTER SLOTS reply: one entry per range, each
// [start, end, [ip, port, id, ...] of the master, replicas...].
func parseClusterSlots(reply any) ([]slotRange, error) {
	entries, ok := reply.([]any)
	if !ok {
		return nil, fmt.Errorf("CLUSTER SLOTS: reply is %T, want an array", reply)
	}
	ranges := make([]slotRange, 0, len(entries))
	for _, e := range entries {
		fields, ok := e.([]any)
		if !ok || len(fields) < 3 {
			return nil, fmt.Errorf("CLUSTER SLOTS: bad entry %v", e)
		}
		start, ok1 := fields[0].(int64)
		end, ok2 := fields[1].(int64)
		master, ok3 := fields[2].([]any)
		if !ok1 || !ok2 || !ok3 || len(master) < 2 {
			return nil, fmt.Errorf("CLUSTER SLOTS: bad entry %v", e)
		}
		port, ok := master[1].(int64)
		if !ok {
			return nil, fmt.Errorf("CLUSTER SLOTS: bad master %v", master)
		}
		ranges = append(ranges, slotRange{start: int(start), end: int(end), port: int(port)})
	}
	return ranges, nil
}

func formatRanges(ranges []slotRange) string {
	if len(ranges) == 0 {
		return "(none)"
	}
	parts := make([]string, len(ranges))
	for i, r := range ranges {
		parts[i] = fmt.Sprintf("%d-%d", r.start, r.end)
	}
	return strings.Join(parts, ",")
}
