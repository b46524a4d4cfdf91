package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/fieldmaskpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/sendguard/sendguard/client"
	"github.com/sendguard/sendguard/internal/redistest"
	sgv1 "github.com/sendguard/sendguard/proto/sendguard/v1"
)

// startReplicas starts a Redis Cluster (3 masters, 3 replicas) and n sendguard
// replicas (the binary) on it, and dials each.
func startReplicas(t *testing.T, n int) (*redistest.Cluster, []*proc, []*client.Client) {
	t.Helper()
	cluster := redistest.StartCluster(t, redistest.Options{})
	bin := buildBinary(t)
	url := "redis://" + strings.Join(cluster.Addrs(), ",")
	var procs []*proc
	var clients []*client.Client
	for range n {
		p := startServerArgs(t, bin, t.TempDir(), nil, "--store", url)
		procs = append(procs, p)
		clients = append(clients, dial(t, p.grpc))
	}
	return cluster, procs, clients
}

// allowedOf makes n checks at once, spread over clients in turn, and counts the
// ALLOWs.
func allowedOf(t *testing.T, clients []*client.Client, n int, req func(i int) *sgv1.CheckSendRequest) int32 {
	t.Helper()
	var allowed atomic.Int32
	var wg sync.WaitGroup
	for i := range n {
		c := clients[i%len(clients)]
		wg.Go(func() {
			resp, err := c.Check(t.Context(), req(i))
			if err != nil {
				t.Errorf("check %d: %v", i, err)
				return
			}
			if resp.GetVerdict() == sgv1.Verdict_VERDICT_ALLOW {
				allowed.Add(1)
			}
		})
	}
	wg.Wait()
	return allowed.Load()
}

// TestScaleOutEndToEnd runs two sendguard replicas (the binary) on one Redis
// Cluster (3 masters, 3 replicas) and shows that they share one history: a
// reservation made through one blocks a second through the other, 20 concurrent
// reserves of one number spread over both allow exactly one, an opt-out reported
// to one is honoured by the other (and still after it is forgotten on the
// other), a report sent to both counts once, and a policy set through one
// reaches the other within its business refresh.
func TestScaleOutEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	_, _, c := startReplicas(t, 2)
	a, b := c[0], c[1]
	ctx := t.Context()
	marketing := func(phone, ref string) *sgv1.CheckSendRequest {
		return &sgv1.CheckSendRequest{BusinessId: "acme", Phone: phone, Category: sgv1.Category_CATEGORY_MARKETING,
			Template: "promo", Reserve: ref != "", MessageRef: ref}
	}
	check := func(c *client.Client, req *sgv1.CheckSendRequest) *sgv1.CheckSendResponse {
		t.Helper()
		resp, err := c.Check(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	firstRule := func(r *sgv1.CheckSendResponse) sgv1.Rule {
		if len(r.GetReasons()) == 0 {
			return sgv1.Rule_RULE_UNSPECIFIED
		}
		return r.GetReasons()[0].GetRule()
	}

	// A reservation through one replica blocks a second through the other (the
	// default marketing cap is one per 24 h), and its message_ref is known there.
	if r := check(a, marketing("+5511987650101", "send-1")); r.GetVerdict() != sgv1.Verdict_VERDICT_ALLOW {
		t.Fatalf("first reserve through replica 1: %v", r)
	}
	if r := check(b, marketing("+5511987650101", "send-2")); r.GetVerdict() != sgv1.Verdict_VERDICT_DEFER || firstRule(r) != sgv1.Rule_RULE_FREQUENCY_CAP {
		t.Fatalf("second reserve through replica 2: %v %v, want DEFER FREQUENCY_CAP", r.GetVerdict(), r.GetReasons())
	}
	if r := check(b, marketing("+5511987650101", "send-1")); !r.GetDuplicate() {
		t.Fatalf("replica 2 does not know replica 1's message_ref: %v", r)
	}

	// Concurrent reserves of one fresh number, spread over both replicas.
	if n := allowedOf(t, c, 20, func(i int) *sgv1.CheckSendRequest { return marketing("+5511987650102", fmt.Sprint("race-", i)) }); n != 1 {
		t.Fatalf("%d of 20 concurrent reserves through two replicas were allowed, want 1", n)
	}

	// An opt-out reported to replica 1 is honoured by replica 2.
	if _, err := a.Inbound(ctx, &sgv1.ReportInboundRequest{BusinessId: "acme", Phone: "+5511987650103", MessageId: "wamid.in1",
		Kind: sgv1.InboundKind_INBOUND_KIND_MESSAGE, Text: "STOP", Timestamp: timestamppb.New(time.Now().Add(-time.Minute))}); err != nil {
		t.Fatal(err)
	}
	if r := check(b, marketing("+5511987650103", "")); r.GetVerdict() != sgv1.Verdict_VERDICT_DENY || firstRule(r) != sgv1.Rule_RULE_OPTED_OUT {
		t.Fatalf("replica 2 after STOP to replica 1: %v %v, want DENY OPTED_OUT", r.GetVerdict(), r.GetReasons())
	}

	// Forgotten through replica 2, the opted-out number stays suppressed on
	// replica 1 (a keyed hash, with the secret both replicas share in Redis).
	if _, err := b.Forget(ctx, &sgv1.ForgetContactRequest{BusinessId: "acme", Phone: "+5511987650103"}); err != nil {
		t.Fatal(err)
	}
	if r := check(a, marketing("+5511987650103", "")); r.GetVerdict() != sgv1.Verdict_VERDICT_DENY || firstRule(r) != sgv1.Rule_RULE_OPTED_OUT {
		t.Fatalf("replica 1 after the opted-out number was forgotten on replica 2: %v %v, want DENY OPTED_OUT", r.GetVerdict(), r.GetReasons())
	}

	// The same report through both replicas is applied once.
	report := &sgv1.ReportResultRequest{BusinessId: "acme", Phone: "+5511987650104", MessageId: "wamid.r1",
		Status: sgv1.MessageStatus_MESSAGE_STATUS_FAILED, ErrorCode: 131049, Category: sgv1.Category_CATEGORY_MARKETING,
		Timestamp: timestamppb.New(time.Now().Add(-time.Minute))}
	r1, err := a.Report(ctx, report)
	if err != nil {
		t.Fatal(err)
	}
	r2, err := b.Report(ctx, report)
	if err != nil {
		t.Fatal(err)
	}
	if r1.GetDuplicate() || !r2.GetDuplicate() {
		t.Fatalf("one report through two replicas: duplicate %v then %v, want false then true", r1.GetDuplicate(), r2.GetDuplicate())
	}
	if r := check(b, marketing("+5511987650104", "")); r.GetVerdict() != sgv1.Verdict_VERDICT_DEFER || firstRule(r) != sgv1.Rule_RULE_ECOSYSTEM_LIMIT {
		t.Fatalf("after 131049: %v %v", r.GetVerdict(), r.GetReasons())
	}

	// A policy set through replica 1 reaches replica 2 (which has the business
	// cached) within its refresh interval, 1 s by default on Redis.
	if _, err := a.SetPolicy(ctx, &sgv1.SetPolicyRequest{BusinessId: "acme", Policy: &sgv1.Policy{BlockedRegions: []string{"BR"}},
		UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"blocked_regions"}}}); err != nil {
		t.Fatal(err)
	}
	redistest.UntilSucceeds(t, 10*time.Second, 100*time.Millisecond, func() error {
		if r := check(b, marketing("+5511987650105", "")); r.GetVerdict() != sgv1.Verdict_VERDICT_DENY || firstRule(r) != sgv1.Rule_RULE_REGION_BLOCKED {
			return fmt.Errorf("replica 2 answers %v %v after the policy change on replica 1", r.GetVerdict(), r.GetReasons())
		}
		return nil
	})
}

// TestScaleOutMessagingLimit: with a messaging limit of 5 users a day, 24
// concurrent first reaches of distinct numbers spread over two replicas are
// allowed 5 or 6 times (each replica serialises its own reaches and reads the
// stored count with each, so two replicas overshoot by at most one), and once
// the limit is reached, both replicas defer.
func TestScaleOutMessagingLimit(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	_, _, c := startReplicas(t, 2)
	a, b := c[0], c[1]
	ctx := t.Context()
	limit := int32(5)
	if _, err := a.SetPolicy(ctx, &sgv1.SetPolicyRequest{BusinessId: "tier", Policy: &sgv1.Policy{MessagingLimit: &limit},
		UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"messaging_limit"}}}); err != nil {
		t.Fatal(err)
	}
	reserve := func(i int) *sgv1.CheckSendRequest {
		return &sgv1.CheckSendRequest{BusinessId: "tier", Phone: fmt.Sprintf("+55119876%05d", i),
			Category: sgv1.Category_CATEGORY_MARKETING, Template: "promo", Reserve: true, MessageRef: fmt.Sprint("m-", i)}
	}
	// Both replicas know the policy before the race (replica 2 reads it on first use).
	redistest.UntilSucceeds(t, 10*time.Second, 50*time.Millisecond, func() error {
		r, err := b.Policy(ctx, "tier")
		if err != nil {
			t.Fatal(err)
		}
		if r.GetEffective().GetMessagingLimit() != limit {
			return fmt.Errorf("replica 2 does not see the messaging limit: %v", r)
		}
		return nil
	})
	if n := allowedOf(t, c, 24, reserve); n < 5 || n > 6 {
		t.Fatalf("%d of 24 first reaches allowed through two replicas under a limit of 5, want 5 or 6", n)
	}
	for i, c := range []*client.Client{a, b} {
		resp, err := c.Check(ctx, reserve(100+i))
		if err != nil {
			t.Fatal(err)
		}
		if resp.GetVerdict() != sgv1.Verdict_VERDICT_DEFER || resp.GetReasons()[0].GetRule() != sgv1.Rule_RULE_MESSAGING_LIMIT {
			t.Fatalf("replica %d after the limit: %v %v, want DEFER MESSAGING_LIMIT", i+1, resp.GetVerdict(), resp.GetReasons())
		}
	}
}

// TestScaleOutFailover kills the Redis master that holds one number while a
// replica of sendguard serves checks: that number's checks fail with UNAVAILABLE
// (the caller retries), a number on another master keeps working, and once
// Redis's replica has taken over, the number is served again. The sendguard
// process never dies.
func TestScaleOutFailover(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	cluster, procs, clients := startReplicas(t, 1)
	p, c := procs[0], clients[0]
	ctx := t.Context()

	// A number's keys carry the number as their hash tag, so they are in its slot.
	victim := "+5511987650201"
	dead := cluster.MasterOf(t, victim)
	other := cluster.FirstNotOn(t, dead, func(n int) string { return fmt.Sprintf("+5511987650%d", 202+n) })
	checkOnce := func(phone string) error {
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		_, err := c.Check(cctx, &sgv1.CheckSendRequest{BusinessId: "acme", Phone: phone, Category: sgv1.Category_CATEGORY_UTILITY})
		return err
	}
	// A reservation gives each number a relationship, so that a check reads
	// only the number's own slot (a number the business has never seen is also
	// looked up in the suppression list, whose keys live elsewhere).
	for _, n := range []string{victim, other} {
		if _, err := c.Check(ctx, &sgv1.CheckSendRequest{BusinessId: "acme", Phone: n, Category: sgv1.Category_CATEGORY_UTILITY,
			Reserve: true, MessageRef: "first-" + n}); err != nil {
			t.Fatal(err)
		}
	}

	cluster.Kill(t, dead)
	// Bounded: the first check after the kill normally fails.
	if err := redistest.UntilFails(t, 50, 20*time.Millisecond, func() error { return checkOnce(victim) }); status.Code(err) != codes.Unavailable {
		t.Fatalf("check on the dead master's slot: %v, want UNAVAILABLE", err)
	}
	if err := checkOnce(other); err != nil {
		t.Fatalf("a number on a live master failed while another master was down: %v", err)
	}
	// The replica stays in its load balancer: Redis answers, in part.
	for range 3 {
		time.Sleep(300 * time.Millisecond)
		r, err := http.Get("http://" + p.http + "/healthz")
		if err != nil {
			t.Fatal(err)
		}
		r.Body.Close()
		if r.StatusCode != http.StatusOK {
			t.Fatalf("/healthz answers %d while two of three masters serve", r.StatusCode)
		}
	}

	cluster.WaitFailover(t, dead, 30*time.Second)
	redistest.UntilSucceeds(t, 20*time.Second, 100*time.Millisecond, func() error {
		err := checkOnce(victim)
		if err != nil && status.Code(err) != codes.Unavailable {
			t.Fatalf("check during the failover: %v, want UNAVAILABLE", err)
		}
		return err
	})
	// Still the same process: no panic, no exit.
	if err := p.cmd.Process.Signal(syscall.Signal(0)); err != nil {
		t.Fatalf("the sendguard process is gone: %v", err)
	}
}

// TestReplicasRefuseAnotherHashSecret: two sendguard processes on one Redis
// must hash with one secret. A replica started with hash_secret fixes it; a
// second started without one (or with another) exits at once with an error
// that says why, instead of serving with hashes the first never finds; one
// with the same secret serves, and sees the first's opt-out.
func TestReplicasRefuseAnotherHashSecret(t *testing.T) {
	rs := redistest.StartServer(t)
	bin := buildBinary(t)
	url := "redis://" + rs.Addr()
	const secret = "SENDGUARD_HASH_SECRET=the deployment's secret, 32 bytes"
	a := startServerArgs(t, bin, t.TempDir(), []string{secret}, "--store", url)
	ca := dial(t, a.grpc)
	if _, err := ca.SetOptOut(t.Context(), &sgv1.SetOptOutRequest{BusinessId: "acme", Phone: "+5511987654321", OptedOut: true}); err != nil {
		t.Fatal(err)
	}

	for name, env := range map[string][]string{
		"no hash_secret":      {"SENDGUARD_HASH_SECRET="},
		"another hash_secret": {"SENDGUARD_HASH_SECRET=another secret of 32 bytes, too"},
	} {
		out, timedOut, err := serveRefused(t, bin, t.TempDir(), env, "--store", url)
		if err == nil || timedOut || !strings.Contains(out, "differs from the one the replicas sharing this store hash with") {
			t.Errorf("%s: a replica that hashes differently: %v, want it to exit at once saying why\n%s", name, err, out)
		}
	}

	b := startServerArgs(t, bin, t.TempDir(), []string{secret}, "--store", url)
	resp, err := dial(t, b.grpc).Check(t.Context(), &sgv1.CheckSendRequest{BusinessId: "acme", Phone: "+5511987654321", Category: sgv1.Category_CATEGORY_MARKETING})
	if err != nil || resp.GetVerdict() != sgv1.Verdict_VERDICT_DENY {
		t.Fatalf("a replica with the same secret, after the first's opt-out: %v %v, want DENY", resp, err)
	}
}

// TestServeRefusesAnotherHashSecret: a data directory served once (with the
// key it keeps itself) refuses a later start with another hash_secret, saying
// which file to delete to start over on purpose; after that it starts.
func TestServeRefusesAnotherHashSecret(t *testing.T) {
	bin := buildBinary(t)
	dir := t.TempDir()
	stop(t, startServer(t, bin, dir))

	out, timedOut, err := serveRefused(t, bin, dir, []string{"SENDGUARD_HASH_SECRET=a secret set after the store was used"})
	fingerprint := dir + "/hash-secret.fingerprint"
	if err == nil || timedOut || !strings.Contains(out, "differs from the one the store in "+dir+" was written with") ||
		!strings.Contains(out, "delete "+fingerprint) {
		t.Fatalf("serve with another hash_secret: %v, want it to exit at once saying why\n%s", err, out)
	}
	if err := os.Remove(fingerprint); err != nil {
		t.Fatal(err)
	}
	stop(t, startServer(t, bin, dir, "SENDGUARD_HASH_SECRET=a secret set after the store was used"))
}
