package server

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/fieldmaskpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	sgv1 "github.com/sendguard/sendguard/proto/sendguard/v1"
	"github.com/sendguard/sendguard/storage"
	"github.com/sendguard/sendguard/validator"
)

// A forgotten opt-out stays in force whatever event creates a new relationship.
func TestSuppressionSurvivesNewEvents(t *testing.T) {
	events := map[string]func(h *harness){
		"inbound message": func(h *harness) {
			h.inbound(t, &sgv1.ReportInboundRequest{BusinessId: "acme", Phone: brPhone, MessageId: "hi", Text: "hi"})
		},
		"delivered report": func(h *harness) {
			h.report(t, &sgv1.ReportResultRequest{BusinessId: "acme", Phone: brPhone, MessageId: "w1", Status: sgv1.MessageStatus_MESSAGE_STATUS_DELIVERED,
				Category: sgv1.Category_CATEGORY_UTILITY})
		},
		"utility reservation": func(h *harness) {
			h.check(t, &sgv1.CheckSendRequest{BusinessId: "acme", Phone: brPhone, Category: sgv1.Category_CATEGORY_UTILITY, Reserve: true, MessageRef: "u1"})
		},
	}
	for name, ev := range events {
		t.Run(name, func(t *testing.T) {
			h := newHarness(t)
			ctx := context.Background()
			h.inbound(t, &sgv1.ReportInboundRequest{BusinessId: "acme", Phone: brPhone, MessageId: "stop", Text: "STOP"})
			if _, err := h.c.Forget(ctx, &sgv1.ForgetContactRequest{BusinessId: "acme", Phone: brPhone}); err != nil {
				t.Fatal(err)
			}
			h.clock.Advance(48 * time.Hour)
			ev(h)
			if resp := h.check(t, marketing(brPhone)); resp.GetVerdict() != deny || rules(resp)[0] != sgv1.Rule_RULE_OPTED_OUT {
				t.Fatalf("marketing after forget + %s: %v %v", name, resp.GetVerdict(), rules(resp))
			}
			// An explicit opt-in lifts it.
			if _, err := h.c.SetOptOut(ctx, &sgv1.SetOptOutRequest{BusinessId: "acme", Phone: brPhone, OptedOut: false}); err != nil {
				t.Fatal(err)
			}
			h.clock.Advance(48 * time.Hour)
			if resp := h.check(t, marketing(brPhone)); resp.GetVerdict() != allow {
				t.Fatalf("after opt-in: %v %v", resp.GetVerdict(), rules(resp))
			}
		})
	}
}

// Facts learned about a user known only by a BSUID are read back for that user.
func TestUserIDOnlyFacts(t *testing.T) {
	h := newHarness(t, sharing)
	const uid = "BR.99887766"
	h.report(t, &sgv1.ReportResultRequest{BusinessId: "acme", UserId: uid, MessageId: "w1",
		Status: sgv1.MessageStatus_MESSAGE_STATUS_FAILED, ErrorCode: 131049, Category: sgv1.Category_CATEGORY_MARKETING})
	req := &sgv1.CheckSendRequest{BusinessId: "acme", UserId: uid, Category: sgv1.Category_CATEGORY_MARKETING}
	if resp := h.check(t, req); resp.GetVerdict() != deferV || rules(resp)[0] != sgv1.Rule_RULE_ECOSYSTEM_LIMIT {
		t.Fatalf("by user_id: %v %v", resp.GetVerdict(), rules(resp))
	}
	// Linking the user to a number carries the fact over to the number.
	h.inbound(t, &sgv1.ReportInboundRequest{BusinessId: "acme", UserId: uid, Phone: brPhone, MessageId: "m1",
		Timestamp: timestamppb.New(t0.Add(-72 * time.Hour))})
	if resp := h.check(t, marketing(brPhone)); resp.GetVerdict() != deferV || rules(resp)[0] != sgv1.Rule_RULE_ECOSYSTEM_LIMIT {
		t.Fatalf("by number after link: %v %v", resp.GetVerdict(), rules(resp))
	}
	other := marketing(brPhone)
	other.BusinessId = "globex"
	if resp := h.check(t, other); resp.GetVerdict() != deferV {
		t.Fatalf("another business after link: %v %v", resp.GetVerdict(), rules(resp))
	}
}

// A reservation retried with the same message_ref is judged again.
func TestDuplicateReservationIsJudgedAgain(t *testing.T) {
	h := newHarness(t)
	req := marketing(brPhone)
	req.Reserve, req.MessageRef = true, "r1"
	if resp := h.check(t, req); resp.GetVerdict() != allow {
		t.Fatal(resp.GetVerdict())
	}
	h.inbound(t, &sgv1.ReportInboundRequest{BusinessId: "acme", Phone: brPhone, MessageId: "stop", Text: "STOP"})
	resp := h.check(t, req)
	if !resp.GetDuplicate() || resp.GetVerdict() != deny || rules(resp)[0] != sgv1.Rule_RULE_OPTED_OUT {
		t.Fatalf("retry after STOP: dup=%v %v %v", resp.GetDuplicate(), resp.GetVerdict(), rules(resp))
	}
	c, _ := h.c.Contact(context.Background(), &sgv1.GetContactRequest{BusinessId: "acme", Phone: brPhone})
	if len(c.GetSends()) != 1 {
		t.Fatalf("%d sends after a duplicate reservation", len(c.GetSends()))
	}
}

// factsTTLStore records the FactsTTL of the last write of number facts.
type factsTTLStore struct {
	storage.Store
	mu  sync.Mutex
	ttl time.Duration
}

func (f *factsTTLStore) record(fn func(*storage.Contact) (storage.Write, error)) func(*storage.Contact) (storage.Write, error) {
	return func(c *storage.Contact) (storage.Write, error) {
		w, err := fn(c)
		if err == nil && w.Facts {
			f.mu.Lock()
			f.ttl = w.FactsTTL
			f.mu.Unlock()
		}
		return w, err
	}
}

func (f *factsTTLStore) UpdateContact(ctx context.Context, k storage.ContactKey, dedup string, fn func(*storage.Contact) (storage.Write, error)) error {
	return f.Store.UpdateContact(ctx, k, dedup, f.record(fn))
}

func (f *factsTTLStore) UpdateContacts(ctx context.Context, us []storage.ContactUpdate) ([]error, error) {
	for i := range us {
		us[i].Fn = f.record(us[i].Fn)
	}
	return f.Store.UpdateContacts(ctx, us)
}

// A business that keeps the experiment flag for 0 days does not shorten the shared
// record's life for the others.
func TestFactsTTLNotShortenedByAnotherBusiness(t *testing.T) {
	var fs *factsTTLStore
	h := newHarnessOn(t, func(st storage.Store, _ Config) storage.Store { fs = &factsTTLStore{Store: st}; return fs }, sharing)
	ctx := context.Background()
	h.report(t, failed(brPhone, 130472, t0))
	if _, err := h.c.SetPolicy(ctx, &sgv1.SetPolicyRequest{BusinessId: "globex", Policy: &sgv1.Policy{ExperimentTtl: durationpb.New(0)},
		UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"experiment_ttl"}}}); err != nil {
		t.Fatal(err)
	}
	h.report(t, &sgv1.ReportResultRequest{BusinessId: "globex", Phone: brPhone, MessageId: "g1",
		Status: sgv1.MessageStatus_MESSAGE_STATUS_DELIVERED, Category: sgv1.Category_CATEGORY_UTILITY, Timestamp: timestamppb.New(t0)})
	fs.mu.Lock()
	defer fs.mu.Unlock()
	// The flag of acme's 130472 lasts acme's 30 days: globex's write keeps that.
	if fs.ttl < 29*24*time.Hour {
		t.Fatalf("globex's write gives the facts a TTL of %v, want about 30 days", fs.ttl)
	}
}

// failingBusinessStore fails UpdateBusiness while fail is set.
type failingBusinessStore struct {
	storage.Store
	fail atomic.Bool
}

func (f *failingBusinessStore) UpdateBusiness(ctx context.Context, b string, fn func(*validator.Business) error) (validator.Business, error) {
	if f.fail.Load() {
		return validator.Business{}, fmt.Errorf("%w: injected", storage.ErrUnavailable)
	}
	return f.Store.UpdateBusiness(ctx, b, fn)
}

// A template pause whose business write failed is recorded when the report is
// retried (the retry is a duplicate for the contact).
func TestTemplatePauseSurvivesARetry(t *testing.T) {
	var fs *failingBusinessStore
	h := newHarnessOn(t, func(st storage.Store, _ Config) storage.Store { fs = &failingBusinessStore{Store: st}; return fs })
	rep := failed(brPhone, 132015, t0)
	fs.fail.Store(true)
	if _, err := h.c.Report(context.Background(), rep); status.Code(err) != codes.Unavailable {
		t.Fatalf("with a failing store: %v", err)
	}
	fs.fail.Store(false)
	if resp := h.report(t, rep); !resp.GetDuplicate() {
		t.Fatal("the retry should be a duplicate for the contact")
	}
	resp := h.check(t, &sgv1.CheckSendRequest{BusinessId: "acme", Phone: caPhone, Category: sgv1.Category_CATEGORY_UTILITY, Template: "promo"})
	if resp.GetVerdict() != deferV || rules(resp)[0] != sgv1.Rule_RULE_TEMPLATE_PAUSED {
		t.Fatalf("template after retried pause: %v %v", resp.GetVerdict(), rules(resp))
	}
}

func TestReportNeedsAnID(t *testing.T) {
	h := newHarness(t)
	_, err := h.c.Report(context.Background(), &sgv1.ReportResultRequest{BusinessId: "acme", Phone: brPhone, Status: sgv1.MessageStatus_MESSAGE_STATUS_SENT})
	if status.Code(err) != codes.InvalidArgument {
		t.Fatalf("report without ids: %v", err)
	}
}

func TestPhoneWithTabParses(t *testing.T) {
	h := newHarness(t)
	if resp := h.check(t, marketing("+55\t11 98765 4321")); resp.GetPhoneE164() != brPhone {
		t.Fatalf("%v", resp)
	}
}

// Concurrent reservations under a messaging limit reach exactly the limit.
func TestMessagingLimitConcurrent(t *testing.T) {
	h := newHarness(t)
	if _, err := h.c.SetPolicy(context.Background(), &sgv1.SetPolicyRequest{BusinessId: "acme",
		Policy: &sgv1.Policy{MessagingLimit: proto.Int32(5)}, UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"messaging_limit"}}}); err != nil {
		t.Fatal(err)
	}
	var allowed atomic.Int32
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req := &sgv1.CheckSendRequest{BusinessId: "acme", Phone: fmt.Sprintf("+55119%08d", i), Category: sgv1.Category_CATEGORY_UTILITY,
				Reserve: true, MessageRef: fmt.Sprint("m", i)}
			resp, err := h.c.Check(context.Background(), req)
			if err != nil {
				t.Error(err)
				return
			}
			if resp.GetVerdict() == allow {
				allowed.Add(1)
			} else if rules(resp)[0] != sgv1.Rule_RULE_MESSAGING_LIMIT {
				t.Errorf("%v", rules(resp))
			}
		}()
	}
	wg.Wait()
	if allowed.Load() != 5 {
		t.Fatalf("%d allowed, want 5", allowed.Load())
	}
}

// otherReplicaStore is a store shared with another replica whose first reaches
// land while this replica is counting its own: each UpdateBusiness is followed,
// before it returns, by one reach of the other replica, and returns the state
// stored after both (as storage.Store asks).
type otherReplicaStore struct {
	storage.Store
	at time.Time
}

func (o *otherReplicaStore) SharedByReplicas() bool { return true }

func (o *otherReplicaStore) UpdateBusiness(ctx context.Context, b string, fn func(*validator.Business) error) (validator.Business, error) {
	if _, err := o.Store.UpdateBusiness(ctx, b, fn); err != nil {
		return validator.Business{}, err
	}
	return o.Store.UpdateBusiness(ctx, b, func(st *validator.Business) error {
		validator.AddReach(st, o.at)
		return nil
	})
}

// A replica decides on the reach counts UpdateBusiness returns (what the store
// holds after its own was added), so another replica's reaches counted meanwhile
// are not missed: under a limit of 4, two reaches of this replica and two of the
// other fill it.
func TestMessagingLimitSeesOtherReplicasReaches(t *testing.T) {
	h := newHarnessOn(t, func(st storage.Store, _ Config) storage.Store { return &otherReplicaStore{Store: st, at: t0} },
		func(c *Config) { c.BusinessRefresh = -1 }) // no periodic re-read to hide a stale count
	if _, err := h.c.SetPolicy(context.Background(), &sgv1.SetPolicyRequest{BusinessId: "acme",
		Policy: &sgv1.Policy{MessagingLimit: proto.Int32(4)}, UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"messaging_limit"}}}); err != nil {
		t.Fatal(err)
	}
	for i, want := range []sgv1.Verdict{allow, allow, deferV} {
		resp := h.check(t, &sgv1.CheckSendRequest{BusinessId: "acme", Phone: fmt.Sprintf("+55119%08d", i),
			Category: sgv1.Category_CATEGORY_UTILITY, Reserve: true, MessageRef: fmt.Sprint("m", i)})
		if resp.GetVerdict() != want {
			t.Fatalf("reach %d: %v %v, want %v (2 reaches per reservation are stored)", i+1, resp.GetVerdict(), rules(resp), want)
		}
	}
}
