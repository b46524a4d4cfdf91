package server

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	sgv1 "github.com/sendguard/sendguard/proto/sendguard/v1"
	"github.com/sendguard/sendguard/storage"
	"github.com/sendguard/sendguard/validator"
)

// restrictionsOf is the business's cached restrictions.
func restrictionsOf(t testing.TB, h *harness, business string) []validator.Restriction {
	t.Helper()
	b, err := h.srv.biz.get(t.Context(), business)
	if err != nil {
		t.Fatal(err)
	}
	return b.snap.Load().state.Restrictions
}

// streakOf is the streak of (kind, sender) in the business's cached state, -1
// when it holds none.
func streakOf(t testing.TB, h *harness, kind validator.RestrictionKind, sender string) int {
	t.Helper()
	for _, r := range restrictionsOf(t, h, "acme") {
		if r.Kind == kind && r.Sender == sender {
			return r.Streak
		}
	}
	return -1
}

// statusReport is a report of one status of message id from sender at `at`.
func statusReport(id, sender string, st sgv1.MessageStatus, code int32, at time.Time) *sgv1.ReportResultRequest {
	return &sgv1.ReportResultRequest{BusinessId: "acme", Phone: brPhone2, MessageId: id, Sender: sender,
		Status: st, ErrorCode: code, Category: sgv1.Category_CATEGORY_MARKETING, Timestamp: timestamppb.New(at)}
}

const (
	stSent      = sgv1.MessageStatus_MESSAGE_STATUS_SENT
	stDelivered = sgv1.MessageStatus_MESSAGE_STATUS_DELIVERED
	stFailed    = sgv1.MessageStatus_MESSAGE_STATUS_FAILED
)

// TestReportsSetRestrictions: the account's and a sender's errors become the
// business's state, attributed to the report's sender, else to the business's
// only mapped sender, else to the implicit sender; failures in flight during
// the backoff do not escalate it.
func TestReportsSetRestrictions(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.PhoneNumberIDs = map[string]string{"pn-only": "acme"} })
	h.report(t, statusReport("w1", "pn-a", stFailed, 131048, t0))
	h.report(t, statusReport("w2", "pn-a", stFailed, 131048, t0.Add(10*time.Minute))) // in flight
	h.report(t, statusReport("w3", "", stFailed, 130429, t0))                         // the only mapped sender
	h.report(t, statusReport("w4", "pn-b", stFailed, 131031, t0))                     // an account error
	h.report(t, statusReport("w5", "pn-b", stFailed, 131049, t0))                     // not an account or sender error
	want := []validator.Restriction{
		{Kind: validator.SenderThroughput, Sender: "pn-only", At: t0, Streak: 1},
		{Kind: validator.SenderSpam, Sender: "pn-a", At: t0, Streak: 1},
		{Kind: validator.AccountLocked, At: t0, Streak: 1},
	}
	if got := restrictionsOf(t, h, "acme"); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("restrictions\n got %+v\nwant %+v", got, want)
	}

	h2 := newHarness(t, func(c *Config) { c.PhoneNumberIDs = map[string]string{"pn-1": "acme", "pn-2": "acme"} })
	h2.report(t, statusReport("w1", "", stFailed, 131048, t0))
	if got := streakOf(t, h2, validator.SenderSpam, ""); got != 1 {
		t.Fatalf("a 131048 without a sender of a business with two senders: implicit sender's streak %d, want 1", got)
	}
}

// TestInFlightDeliveriesDoNotLift: deliveries of messages reserved (or reported
// SENT) before a 131048, and of messages whose send time is unknown, do not lift
// it however many arrive after it; a SENT or DELIVERED of a message sent after
// it does.
func TestInFlightDeliveriesDoNotLift(t *testing.T) {
	h := newHarness(t)
	before := t0.Add(-time.Minute)
	for i := range 20 {
		req := &sgv1.CheckSendRequest{BusinessId: "acme", Phone: fmt.Sprintf("+55119%08d", 10000000+i), Sender: "pn-a",
			Category: sgv1.Category_CATEGORY_MARKETING, Template: "promo", Reserve: true,
			MessageRef: fmt.Sprintf("ref-%d", i), SendAt: timestamppb.New(before)}
		if r := h.check(t, req); r.GetVerdict() != sgv1.Verdict_VERDICT_ALLOW {
			t.Fatalf("reservation %d: %v", i, r)
		}
	}
	h.report(t, statusReport("w-fail", "pn-a", stFailed, 131048, t0))
	for i := range 20 {
		rep := &sgv1.ReportResultRequest{BusinessId: "acme", Phone: fmt.Sprintf("+55119%08d", 10000000+i), Sender: "pn-a",
			MessageRef: fmt.Sprintf("ref-%d", i), MessageId: fmt.Sprintf("wamid.%d", i), Status: stDelivered,
			Timestamp: timestamppb.New(t0.Add(time.Duration(i+1) * time.Second))}
		h.report(t, rep)
	}
	// A message known only from its statuses: DELIVERED then READ, no SENT.
	h.report(t, statusReport("w-unknown", "pn-a", stDelivered, 0, t0.Add(time.Minute)))
	h.report(t, statusReport("w-unknown", "pn-a", sgv1.MessageStatus_MESSAGE_STATUS_READ, 0, t0.Add(2*time.Minute)))
	// A SENT dated before the 131048 (the webhook of an earlier send, late).
	h.report(t, statusReport("w-early", "pn-a", stSent, 0, t0.Add(-time.Second)))
	h.report(t, statusReport("w-early", "pn-a", stDelivered, 0, t0.Add(3*time.Minute)))
	// Another sender's message sent after it.
	h.report(t, statusReport("w-b", "pn-b", stSent, 0, t0.Add(time.Minute)))
	if got := streakOf(t, h, validator.SenderSpam, "pn-a"); got != 1 {
		t.Fatalf("after in-flight deliveries: streak %d, want 1 (not lifted)", got)
	}
	// A SENT of a message sent after the 131048 lifts it.
	h.clock.Advance(2 * time.Hour)
	h.report(t, statusReport("w-new", "pn-a", stSent, 0, t0.Add(2*time.Hour)))
	if got := streakOf(t, h, validator.SenderSpam, "pn-a"); got != 0 {
		t.Fatalf("after a SENT of a message sent after: streak %d, want 0 (lifted)", got)
	}
}

// TestRestrictionSurvivesARetry: a 131048 whose business write failed is
// recorded when the report is retried (a duplicate for the contact), and so is
// a lift.
func TestRestrictionSurvivesARetry(t *testing.T) {
	var fs *failingBusinessStore
	h := newHarnessOn(t, func(st storage.Store, _ Config) storage.Store { fs = &failingBusinessStore{Store: st}; return fs })
	rep := statusReport("w1", "pn-a", stFailed, 131048, t0)
	fs.fail.Store(true)
	if _, err := h.c.Report(context.Background(), rep); status.Code(err) != codes.Unavailable {
		t.Fatalf("with a failing store: %v", err)
	}
	fs.fail.Store(false)
	if resp := h.report(t, rep); !resp.GetDuplicate() {
		t.Fatal("the retry should be a duplicate for the contact")
	}
	if got := streakOf(t, h, validator.SenderSpam, "pn-a"); got != 1 {
		t.Fatalf("after the retried 131048: streak %d, want 1", got)
	}
	h.clock.Advance(2 * time.Hour)
	lift := statusReport("w2", "pn-a", stSent, 0, t0.Add(2*time.Hour))
	fs.fail.Store(true)
	if _, err := h.c.Report(context.Background(), lift); status.Code(err) != codes.Unavailable {
		t.Fatalf("with a failing store: %v", err)
	}
	fs.fail.Store(false)
	h.report(t, lift)
	if got := streakOf(t, h, validator.SenderSpam, "pn-a"); got != 0 {
		t.Fatalf("after the retried lift: streak %d, want 0", got)
	}
}

// TestWebhookStatusesSetRestrictions: a status webhook's failure is attributed
// to its metadata.phone_number_id, a redelivered POST changes nothing more, and
// the DELIVEREDs of earlier sends (reported SENT before it) do not lift it.
func TestWebhookStatusesSetRestrictions(t *testing.T) {
	h, hd := webhookHarness(t, func(c *Config) { c.PhoneNumberIDs = map[string]string{pnid: "acme", "206540352242922": "acme"} })
	sends := []wireStatus{}
	for i := range 5 {
		sends = append(sends, newStatus(fmt.Sprintf("wamid.s%d", i), "sent", t0.Add(-time.Minute), fmt.Sprintf("55119%08d", 10000000+i), 0))
	}
	if code := postSigned(t, hd, body(t, pnid, statuses(sends...))); code != http.StatusOK {
		t.Fatalf("sent statuses: %d", code)
	}
	fail := body(t, pnid, statuses(newStatus("wamid.f", "failed", t0, "5511900000001", 131048)))
	for range 2 {
		if code := postSigned(t, hd, fail); code != http.StatusOK {
			t.Fatalf("failed status: %d", code)
		}
	}
	var dels []wireStatus
	for i := range 5 {
		dels = append(dels, newStatus(fmt.Sprintf("wamid.s%d", i), "delivered", t0.Add(time.Minute), fmt.Sprintf("55119%08d", 10000000+i), 0))
	}
	if code := postSigned(t, hd, body(t, pnid, statuses(dels...))); code != http.StatusOK {
		t.Fatalf("delivered statuses: %d", code)
	}
	got := restrictionsOf(t, h, "acme")
	if len(got) != 1 || got[0].Kind != validator.SenderSpam || got[0].Sender != pnid || got[0].Streak != 1 || !got[0].At.Equal(t0) {
		t.Fatalf("restrictions %+v, want %s's 131048 from t0, not lifted", got, pnid)
	}
}

// TestBusinessRefreshSeesRestrictions: a restriction written to the store by
// another replica reaches this server's cached business.
func TestBusinessRefreshSeesRestrictions(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.BusinessRefresh = 10 * time.Millisecond })
	if got := restrictionsOf(t, h, "acme"); len(got) != 0 {
		t.Fatalf("before: %+v", got)
	}
	if _, err := h.srv.store.UpdateBusiness(t.Context(), "acme", func(b *validator.Business) error {
		validator.ApplyRestrictionFailure(b, validator.RestrictionFailure{Kind: validator.AccountLocked, At: t0})
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(restrictionsOf(t, h, "acme")) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("5 s after another writer's restriction, the cache does not hold it")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
