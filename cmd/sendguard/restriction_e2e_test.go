package main

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/sendguard/sendguard/client"
	sgv1 "github.com/sendguard/sendguard/proto/sendguard/v1"
	"github.com/sendguard/sendguard/webhook"
)

// The sending numbers of business acme in the restriction end-to-end tests.
const (
	senderA = "106540352242922"
	senderB = "206540352242922"
	senderC = "306540352242922"
	e2eApp  = "e2e-restriction-secret"
)

// startRestrictionServer runs the binary with acme's three senders mapped and a
// webhook secret.
func startRestrictionServer(t *testing.T) (*proc, *client.Client) {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	dir := t.TempDir()
	cfg := filepath.Join(dir, "sendguard.yaml")
	yaml := fmt.Sprintf("phone_number_ids:\n  %q: acme\n  %q: acme\n  %q: acme\n", senderA, senderB, senderC)
	if err := os.WriteFile(cfg, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	p := startServerArgs(t, buildBinary(t), filepath.Join(dir, "data"), []string{"SENDGUARD_WHATSAPP_APP_SECRET=" + e2eApp}, "--config", cfg)
	return p, dial(t, p.grpc)
}

// checkAs checks a utility template to phone from sender, at sendAt (nil: now).
func checkAs(t *testing.T, c *client.Client, sender, phone string, sendAt *timestamppb.Timestamp) *sgv1.CheckSendResponse {
	t.Helper()
	r, err := c.Check(context.Background(), &sgv1.CheckSendRequest{BusinessId: "acme", Phone: phone, Sender: sender,
		Category: sgv1.Category_CATEGORY_UTILITY, Template: "order_update", SendAt: sendAt})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// firstRule is the verdict and first rule of a decision, e.g. "DEFER SENDER_LIMITED".
func firstRule(r *sgv1.CheckSendResponse) string {
	s := strings.TrimPrefix(r.GetVerdict().String(), "VERDICT_")
	if len(r.GetReasons()) > 0 {
		s += " " + strings.TrimPrefix(r.GetReasons()[0].GetRule().String(), "RULE_")
	}
	return s
}

// TestSenderAndAccountEndToEnd, on the binary over real gRPC: a 131048 of sender
// A defers A's checks (unary and stream) until its backoff ends, while sender B
// of the same business is allowed; a 131031 denies every sender of the account
// until ClearRestriction, or a DELIVERED of a message sent after it (a
// DELIVERED of one sent before it lifts nothing).
func TestSenderAndAccountEndToEnd(t *testing.T) {
	_, c := startRestrictionServer(t)
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Second)
	limitedAt := now.Add(-time.Minute)
	report := func(r *sgv1.ReportResultRequest) {
		t.Helper()
		r.BusinessId = "acme"
		if _, err := c.Report(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	report(&sgv1.ReportResultRequest{Phone: "+5511987650001", MessageId: "wamid.a1", Sender: senderA,
		Status: sgv1.MessageStatus_MESSAGE_STATUS_FAILED, ErrorCode: 131048, Timestamp: timestamppb.New(limitedAt)})

	fromA := checkAs(t, c, senderA, "+5511987650002", nil)
	wantRetry := limitedAt.Add(time.Hour)
	if firstRule(fromA) != "DEFER SENDER_LIMITED" || !fromA.GetRetryAt().AsTime().Equal(wantRetry) ||
		fromA.GetReasons()[0].GetMetaErrorCode() != 131048 {
		t.Fatalf("check from A after its 131048: %v (want DEFER SENDER_LIMITED until %s)", fromA, wantRetry)
	}
	if r := checkAs(t, c, senderB, "+5511987650002", nil); firstRule(r) != "ALLOW" {
		t.Fatalf("check from B of the same business: %v", r)
	}
	if r := checkAs(t, c, senderA, "+5511987650002", timestamppb.New(wantRetry.Add(-time.Second))); firstRule(r) != "DEFER SENDER_LIMITED" {
		t.Fatalf("A, a second before the backoff ends: %v", r)
	}
	if r := checkAs(t, c, senderA, "+5511987650002", timestamppb.New(wantRetry)); firstRule(r) != "ALLOW" {
		t.Fatalf("A, when the backoff ends: %v", r)
	}
	// A stream of rows from A and B: every A row deferred, every B row allowed.
	st, err := c.CheckStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 200 {
		sender := []string{senderA, senderB}[i%2]
		if err := st.Send(&sgv1.CheckSendRequest{BusinessId: "acme", Phone: fmt.Sprintf("+55119%08d", 20000000+i), Sender: sender,
			Category: sgv1.Category_CATEGORY_MARKETING, Template: "promo", RequestId: fmt.Sprint(i)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.CloseSend(); err != nil {
		t.Fatal(err)
	}
	for i := range 200 {
		r, err := st.Recv()
		if err != nil {
			t.Fatal(err)
		}
		want := []string{"DEFER SENDER_LIMITED", "ALLOW"}[i%2]
		if firstRule(r) != want || r.GetRequestId() != fmt.Sprint(i) {
			t.Fatalf("stream row %d: %v, want %s", i, r, want)
		}
	}

	// 131031: the account is locked, every sender denied.
	lockedAt := now.Add(-30 * time.Second)
	// A send reserved before the lock, planned 10 minutes after it was reported,
	// and one reserved (sent) before the lock.
	planned := timestamppb.New(now.Add(10 * time.Minute))
	for _, r := range []*sgv1.CheckSendRequest{
		{BusinessId: "acme", Phone: "+5511987650010", Sender: senderB, Category: sgv1.Category_CATEGORY_UTILITY, Template: "order_update",
			Reserve: true, MessageRef: "before", SendAt: timestamppb.New(lockedAt.Add(-time.Minute))},
		{BusinessId: "acme", Phone: "+5511987650011", Sender: senderB, Category: sgv1.Category_CATEGORY_UTILITY, Template: "order_update",
			Reserve: true, MessageRef: "after", SendAt: planned},
	} {
		if resp, err := c.Check(ctx, r); err != nil || resp.GetVerdict() != sgv1.Verdict_VERDICT_ALLOW {
			t.Fatalf("reservation %s: %v %v", r.GetMessageRef(), resp, err)
		}
	}
	lock := func(id string, at time.Time) {
		t.Helper()
		report(&sgv1.ReportResultRequest{Phone: "+5511987650003", MessageId: id, Sender: senderB,
			Status: sgv1.MessageStatus_MESSAGE_STATUS_FAILED, ErrorCode: 131031, Timestamp: timestamppb.New(at)})
	}
	denied := func(when string) {
		t.Helper()
		for _, sender := range []string{senderA, senderB, senderC, ""} {
			if r := checkAs(t, c, sender, "+5511987650004", nil); firstRule(r) != "DENY ACCOUNT_RESTRICTED" {
				t.Fatalf("%s, check from %q: %v", when, sender, r)
			}
		}
	}
	lock("wamid.lock1", lockedAt)
	denied("after 131031")
	report(&sgv1.ReportResultRequest{Phone: "+5511987650010", MessageRef: "before", MessageId: "wamid.before", Sender: senderB,
		Status: sgv1.MessageStatus_MESSAGE_STATUS_DELIVERED, Timestamp: timestamppb.New(now)})
	denied("after a DELIVERED of a message sent before the 131031")

	cleared, err := c.API().ClearRestriction(ctx, &sgv1.ClearRestrictionRequest{BusinessId: "acme", Rule: sgv1.Rule_RULE_ACCOUNT_RESTRICTED})
	if err != nil || len(cleared.GetCleared()) != 1 || cleared.GetCleared()[0].GetMetaErrorCode() != 131031 {
		t.Fatalf("ClearRestriction: %v %v", cleared, err)
	}
	if r := checkAs(t, c, senderB, "+5511987650004", nil); firstRule(r) != "ALLOW" {
		t.Fatalf("B after ClearRestriction: %v", r)
	}

	// Dated after the clear by the wall clock (the server's), however long the
	// test took to get here: a failure at or before a lift does not restart it.
	lock("wamid.lock2", time.Now().UTC().Add(time.Second))
	denied("after a second 131031")
	report(&sgv1.ReportResultRequest{Phone: "+5511987650011", MessageRef: "after", MessageId: "wamid.after", Sender: senderB,
		Status: sgv1.MessageStatus_MESSAGE_STATUS_DELIVERED, Timestamp: timestamppb.New(now.Add(11 * time.Minute))})
	if r := checkAs(t, c, senderC, "+5511987650004", nil); firstRule(r) != "ALLOW" {
		t.Fatalf("after a DELIVERED of a message sent after the 131031: %v", r)
	}
	pol, err := c.Policy(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	if rs := pol.GetRestrictions(); len(rs) != 1 || rs[0].GetSender() != senderA || rs[0].GetMetaErrorCode() != 131048 {
		t.Fatalf("GetPolicy restrictions at the end: %v (want only A's 131048)", rs)
	}
}

// statusItem is one statuses[] item of a webhook body.
func statusItem(id, status, recipient, ref string, at time.Time, code int) map[string]any {
	s := map[string]any{"id": id, "status": status, "timestamp": fmt.Sprint(at.Unix()), "recipient_id": recipient,
		"biz_opaque_callback_data": ref, "pricing": map[string]any{"category": "marketing", "billable": true}}
	if code != 0 {
		s["errors"] = []any{map[string]any{"code": code, "title": "Spam rate limit hit",
			"message": "Spam rate limit hit", "error_data": map[string]any{"details": "Message failed to send because there are restrictions on how many messages can be sent from this phone number."}}}
	}
	return s
}

// postStatuses posts one signed status webhook of sender with these items.
func postStatuses(t *testing.T, httpAddr, sender string, items []map[string]any) {
	t.Helper()
	body, err := json.Marshal(map[string]any{"object": "whatsapp_business_account", "entry": []any{map[string]any{
		"id": "102290129340398", "changes": []any{map[string]any{"field": "messages", "value": map[string]any{
			"messaging_product": "whatsapp",
			"metadata":          map[string]any{"display_phone_number": "15550783881", "phone_number_id": sender},
			"statuses":          items}}}}}})
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodPost, "http://"+httpAddr+"/webhooks/whatsapp", strings.NewReader(string(body)))
	req.Header.Set("X-Hub-Signature-256", webhook.Sign(body, []byte(e2eApp)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("webhook POST: %d", resp.StatusCode)
	}
}

// TestCampaignAfter131048EndToEnd: a campaign of 5,000 sends from one number is
// reserved through a stream and reported SENT by webhook; a 131048 arrives by
// webhook while they are being delivered, and every DELIVERED of those earlier
// sends arrives after it. The number stays limited until its backoff ends.
func TestCampaignAfter131048EndToEnd(t *testing.T) {
	p, c := startRestrictionServer(t)
	ctx := context.Background()
	const n = 5000
	now := time.Now().UTC().Truncate(time.Second)
	sentAt, failedAt, deliveredAt := now.Add(-3*time.Minute), now.Add(-2*time.Minute), now.Add(-time.Minute)
	phone := func(i int) string { return fmt.Sprintf("55119%08d", 30000000+i) }

	st, err := c.CheckStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for i := range n {
			if err := st.Send(&sgv1.CheckSendRequest{BusinessId: "acme", Phone: "+" + phone(i), Sender: senderC,
				Category: sgv1.Category_CATEGORY_MARKETING, Template: "black_friday", CampaignId: "bf",
				Reserve: true, MessageRef: fmt.Sprintf("bf-%d", i), SendAt: timestamppb.New(sentAt)}); err != nil {
				return
			}
		}
		_ = st.CloseSend()
	}()
	for i := range n {
		r, err := st.Recv()
		if err != nil {
			t.Fatal(err)
		}
		if r.GetVerdict() != sgv1.Verdict_VERDICT_ALLOW {
			t.Fatalf("reservation %d: %v", i, r)
		}
	}
	batches := func(status string, at time.Time) {
		for from := 0; from < n; from += 1000 {
			var items []map[string]any
			for i := from; i < from+1000; i++ {
				items = append(items, statusItem(fmt.Sprintf("wamid.bf%d", i), status, phone(i), fmt.Sprintf("bf-%d", i), at, 0))
			}
			postStatuses(t, p.http, senderC, items)
		}
	}
	batches("sent", sentAt)
	postStatuses(t, p.http, senderC, []map[string]any{statusItem("wamid.bf-x", "failed", "5511987650999", "bf-x", failedAt, 131048)})
	batches("delivered", deliveredAt)
	batches("read", now)

	retry := failedAt.Add(time.Hour)
	for i, sender := range []string{senderC, ""} {
		r := checkAs(t, c, sender, fmt.Sprintf("+5511987651%03d", i), nil)
		if firstRule(r) != "DEFER SENDER_LIMITED" || !r.GetRetryAt().AsTime().Equal(retry) {
			t.Fatalf("check from %q after 5,000 deliveries sent before the 131048: %v (want DEFER until %s)", sender, r, retry)
		}
	}
	if r := checkAs(t, c, senderA, "+5511987651100", nil); firstRule(r) != "ALLOW" {
		t.Fatalf("another sender: %v", r)
	}
	if r := checkAs(t, c, senderC, "+5511987651101", timestamppb.New(retry.Add(-time.Second))); firstRule(r) != "DEFER SENDER_LIMITED" {
		t.Fatalf("a second before the backoff ends: %v", r)
	}
	if r := checkAs(t, c, senderC, "+5511987651101", timestamppb.New(retry)); firstRule(r) != "ALLOW" {
		t.Fatalf("when the backoff ends: %v", r)
	}
	pol, err := c.Policy(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	if rs := pol.GetRestrictions(); len(rs) != 1 || rs[0].GetSender() != senderC || !rs[0].GetUntil().AsTime().Equal(retry) {
		t.Fatalf("GetPolicy restrictions: %v", rs)
	}
	resp, err := http.Get("http://" + p.http + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`sendguard_restriction_events_total{event="started",meta_error_code="131048",rule="SENDER_LIMITED"} 1`,
		`sendguard_restriction_events_total{event="lifted",meta_error_code="131048",rule="SENDER_LIMITED"} 0`,
		`sendguard_restrictions_in_force{meta_error_code="131048",rule="SENDER_LIMITED"} 1`,
	} {
		if !strings.Contains(string(metrics), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

// TestScaleOutRestrictions: on a Redis Cluster, a 131048 reported through one
// replica reaches the other, which has the business cached, within its refresh
// interval (1 s by default on Redis); a ClearRestriction through the second
// reaches the first.
func TestScaleOutRestrictions(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	_, _, c := startReplicas(t, 2)
	a, b := c[0], c[1]
	ctx := t.Context()
	for _, r := range []*client.Client{a, b} { // both cache acme
		if resp := checkAs(t, r, senderA, "+5511987650201", nil); firstRule(resp) != "ALLOW" {
			t.Fatalf("before: %v", resp)
		}
	}
	if _, err := a.Report(ctx, &sgv1.ReportResultRequest{BusinessId: "acme", Phone: "+5511987650202", MessageId: "wamid.so1",
		Sender: senderA, Status: sgv1.MessageStatus_MESSAGE_STATUS_FAILED, ErrorCode: 131048,
		Timestamp: timestamppb.New(time.Now().Add(-time.Minute))}); err != nil {
		t.Fatal(err)
	}
	until := func(r *client.Client, want string) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			resp := checkAs(t, r, senderA, "+5511987650203", nil)
			if firstRule(resp) == want {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("10 s on, the other replica answers %v, want %s", resp, want)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	until(b, "DEFER SENDER_LIMITED")
	if resp, err := b.API().ClearRestriction(ctx, &sgv1.ClearRestrictionRequest{BusinessId: "acme", Sender: senderA}); err != nil || len(resp.GetCleared()) != 1 {
		t.Fatalf("ClearRestriction through replica 2: %v %v", resp, err)
	}
	until(a, "ALLOW")
}

// TestValidateAfter131048EndToEnd, on the binary: after a 131048 reported for
// sender A, `validate --sender A` of a 10,000-row audience answers DEFER
// SENDER_LIMITED (retry_at = the 131048 + 1 h) for every row, and the same file
// with `--sender B` (a sender of the same business) ALLOWs every row; with
// `--sender-column`, each row is judged for its own sender.
func TestValidateAfter131048EndToEnd(t *testing.T) {
	p, c := startRestrictionServer(t)
	failedAt := time.Now().UTC().Add(-time.Minute).Truncate(time.Second)
	if _, err := c.Report(context.Background(), &sgv1.ReportResultRequest{BusinessId: "acme", Phone: "+5511987659999", MessageId: "wamid.spam",
		Sender: senderA, Status: sgv1.MessageStatus_MESSAGE_STATUS_FAILED, ErrorCode: 131048,
		Category: sgv1.Category_CATEGORY_UTILITY, Template: "order_update", Timestamp: timestamppb.New(failedAt)}); err != nil {
		t.Fatal(err)
	}
	const rows = 10_000
	dir := t.TempDir()
	in := filepath.Join(dir, "audience.csv")
	var b strings.Builder
	b.WriteString("id,phone,sender\n")
	rowSender := func(i int) string { return []string{senderA, senderB}[i%2] }
	for i := range rows {
		fmt.Fprintf(&b, "%d,+55119%08d,%s\n", i, 40000000+i, rowSender(i))
	}
	if err := os.WriteFile(in, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	retryAt := failedAt.Add(time.Hour).Format(time.RFC3339)
	limited := func(sender string) []string {
		if sender == senderA {
			return []string{"DEFER", "SENDER_LIMITED", retryAt}
		}
		return []string{"ALLOW", "", ""}
	}
	for _, tc := range []struct {
		flag, value string
		want        func(i int) []string
	}{
		{"--sender", senderA, func(int) []string { return limited(senderA) }},
		{"--sender", senderB, func(int) []string { return limited(senderB) }},
		{"--sender-column", "sender", func(i int) []string { return limited(rowSender(i)) }},
	} {
		out := filepath.Join(dir, "verdicts-"+tc.value+".csv")
		cmd := exec.Command(p.cmd.Path, "validate", "--addr", p.grpc, "--business", "acme", tc.flag, tc.value,
			"--template-language", "pt_BR", "--category", "utility", "--template", "order_update", "--in", in, "--out", out)
		cmd.Env = append(os.Environ(), "SENDGUARD_API_KEY=")
		if outb, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("validate %s %s: %v\n%s", tc.flag, tc.value, err, outb)
		}
		f, err := os.Open(out)
		if err != nil {
			t.Fatal(err)
		}
		recs, err := csv.NewReader(f).ReadAll()
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) != rows+1 || !slices.Equal(recs[0][3:6], []string{"verdict", "rules", "retry_at"}) {
			t.Fatalf("%s %s: %d lines, header %v", tc.flag, tc.value, len(recs), recs[0])
		}
		for i, r := range recs[1:] {
			if want := tc.want(i); !slices.Equal(r[3:6], want) {
				t.Fatalf("%s %s: row %v, want %v", tc.flag, tc.value, r, want)
			}
		}
	}
}
