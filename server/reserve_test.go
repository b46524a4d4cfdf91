package server

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	sgv1 "github.com/sendguard/sendguard/proto/sendguard/v1"
	"github.com/sendguard/sendguard/storage"
)

// clockDedupStore keeps UpdateContact's dedup keys itself and expires them by the
// test's clock after storage.DedupTTL (the backends expire them by the wall
// clock, which a test cannot move 8 days). It follows the storage contract for
// one caller at a time, which is how these tests use it.
type clockDedupStore struct {
	storage.Store
	now  func() time.Time
	mu   sync.Mutex
	keys map[string]time.Time // business, id, dedup key -> when recorded
}

func (s *clockDedupStore) UpdateContact(ctx context.Context, k storage.ContactKey, dedup string, fn func(*storage.Contact) (storage.Write, error)) error {
	if dedup == "" {
		return s.Store.UpdateContact(ctx, k, "", fn)
	}
	id := k.Business + "\x00" + k.ID + "\x00" + dedup
	s.mu.Lock()
	at, seen := s.keys[id]
	s.mu.Unlock()
	if seen && s.now().Sub(at) < storage.DedupTTL {
		return storage.ErrDuplicate
	}
	record := false
	err := s.Store.UpdateContact(ctx, k, "", func(c *storage.Contact) (storage.Write, error) {
		w, err := fn(c)
		record = err == nil && !w.SkipDedup
		return w, err
	})
	if err == nil && record {
		s.mu.Lock()
		s.keys[id] = s.now()
		s.mu.Unlock()
	}
	return err
}

func withClockDedup(st storage.Store, c Config) storage.Store {
	return &clockDedupStore{Store: st, now: c.Now, keys: map[string]time.Time{}}
}

// refs lists the message_refs of a contact's sends, oldest first.
func (h *harness) refs(t *testing.T, phone string) []string {
	t.Helper()
	c, err := h.c.Contact(context.Background(), &sgv1.GetContactRequest{BusinessId: "acme", Phone: phone})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, s := range c.GetSends() {
		out = append(out, s.GetMessageRef())
	}
	return out
}

// A reservation stays idempotent for storage.DedupTTL however many sends follow
// it: its send leaves the history, its dedup key stays.
func TestReservationIdempotentAfter200Sends(t *testing.T) {
	h := newHarnessOn(t, withClockDedup)
	ctx := context.Background()
	// Caps and pair rate off, so that 200 sends a minute apart are allowed.
	if _, err := h.c.SetPolicy(ctx, &sgv1.SetPolicyRequest{BusinessId: "acme", Policy: &sgv1.Policy{
		FrequencyCaps: []*sgv1.FrequencyCap{{Count: 0}}, PairBurst: proto.Int32(0),
	}}); err != nil {
		t.Fatal(err)
	}
	send := func(ref string) *sgv1.CheckSendResponse {
		req := marketing(brPhone)
		req.Reserve, req.MessageRef = true, ref
		return h.check(t, req)
	}
	if resp := send("R"); resp.GetVerdict() != allow || resp.GetDuplicate() {
		t.Fatalf("first reservation: %v dup=%v", resp.GetVerdict(), resp.GetDuplicate())
	}
	for i := range 200 {
		h.clock.Advance(time.Minute)
		if resp := send(fmt.Sprint("other-", i)); resp.GetVerdict() != allow || resp.GetDuplicate() {
			t.Fatalf("send %d: %v %v dup=%v", i, resp.GetVerdict(), rules(resp), resp.GetDuplicate())
		}
	}
	before := h.refs(t, brPhone)
	if len(before) != 64 || before[0] == "R" {
		t.Fatalf("history %d sends from %q: R should have left it", len(before), before[0])
	}

	// 8 days less a second after R: a duplicate, nothing counted.
	h.clock.Advance(storage.DedupTTL - 200*time.Minute - time.Second)
	if resp := send("R"); resp.GetVerdict() != allow || !resp.GetDuplicate() {
		t.Fatalf("R within 8 days: %v dup=%v, want ALLOW duplicate", resp.GetVerdict(), resp.GetDuplicate())
	}
	if after := h.refs(t, brPhone); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Fatalf("a duplicate changed the history:\n%v\n%v", before, after)
	}

	// After 8 days the key is gone too: R is judged afresh and reserved.
	h.clock.Advance(2 * time.Second)
	if resp := send("R"); resp.GetVerdict() != allow || resp.GetDuplicate() {
		t.Fatalf("R after 8 days: %v dup=%v, want a fresh ALLOW", resp.GetVerdict(), resp.GetDuplicate())
	}
	if after := h.refs(t, brPhone); after[len(after)-1] != "R" {
		t.Fatalf("R not reserved again: %v", after[len(after)-3:])
	}
}

// A message_ref whose check was DEFER or DENY reserved nothing and may be used
// again; once allowed it is a duplicate.
func TestDeferredRefMayBeUsedAgain(t *testing.T) {
	h := newHarnessOn(t, withClockDedup)
	first := marketing(brPhone)
	first.Reserve, first.MessageRef = true, "a"
	h.check(t, first)
	req := marketing(brPhone)
	req.Reserve, req.MessageRef = true, "b"
	if resp := h.check(t, req); resp.GetVerdict() != deferV || resp.GetDuplicate() {
		t.Fatalf("under the cap: %v dup=%v, want DEFER", resp.GetVerdict(), resp.GetDuplicate())
	}
	h.clock.Advance(24 * time.Hour)
	if resp := h.check(t, req); resp.GetVerdict() != allow || resp.GetDuplicate() {
		t.Fatalf("after the cap: %v dup=%v, want a fresh ALLOW", resp.GetVerdict(), resp.GetDuplicate())
	}
	if resp := h.check(t, req); !resp.GetDuplicate() {
		t.Fatalf("allowed ref again: dup=%v", resp.GetDuplicate())
	}
	if got := h.refs(t, brPhone); fmt.Sprint(got) != "[a b]" {
		t.Fatalf("sends %v", got)
	}
}

// The probe's policies, over the API: what SetPolicy accepts is enforced.
func TestLargeCapAndBurstEnforced(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	set := func(p *sgv1.Policy, paths ...string) {
		t.Helper()
		if _, err := h.c.SetPolicy(ctx, &sgv1.SetPolicyRequest{BusinessId: "acme", Policy: p,
			UpdateMask: &fieldmaskpb.FieldMask{Paths: paths}}); err != nil {
			t.Fatal(err)
		}
	}
	set(&sgv1.Policy{
		FrequencyCaps: []*sgv1.FrequencyCap{{Count: 100, Window: durationpb.New(24 * time.Hour)}},
		PairBurst:     proto.Int32(100),
	}, "frequency_caps", "pair_burst")
	reserve := func(phone string, cat sgv1.Category, i int) *sgv1.CheckSendResponse {
		req := marketing(phone)
		req.Category, req.Reserve, req.MessageRef = cat, true, fmt.Sprint("m", i)
		return h.check(t, req)
	}
	// A burst of 100 at one instant, then PAIR_RATE until one interval later.
	const utility = sgv1.Category_CATEGORY_UTILITY
	for i := range 100 {
		if resp := reserve(brPhone, utility, i); resp.GetVerdict() != allow {
			t.Fatalf("burst send %d: %v %v", i, resp.GetVerdict(), rules(resp))
		}
	}
	resp := reserve(brPhone, utility, 100)
	if resp.GetVerdict() != deferV || !resp.GetRetryAt().AsTime().Equal(t0.Add(6*time.Second)) {
		t.Fatalf("101st at once: %v %v retry %v, want DEFER until +6s", resp.GetVerdict(), rules(resp), resp.GetRetryAt().AsTime())
	}
	// 100 in the day, each after the pair interval, then FREQUENCY_CAP.
	const other = "+5511987650001"
	for i := range 100 {
		if resp := reserve(other, sgv1.Category_CATEGORY_MARKETING, i); resp.GetVerdict() != allow {
			t.Fatalf("capped send %d: %v %v", i, resp.GetVerdict(), rules(resp))
		}
		h.clock.Advance(6 * time.Second)
	}
	resp = reserve(other, sgv1.Category_CATEGORY_MARKETING, 100)
	if resp.GetVerdict() != deferV || rules(resp)[0] != sgv1.Rule_RULE_FREQUENCY_CAP || !resp.GetRetryAt().AsTime().Equal(t0.Add(24*time.Hour)) {
		t.Fatalf("101st in the day: %v %v retry %v, want DEFER FREQUENCY_CAP until +24h", resp.GetVerdict(), rules(resp), resp.GetRetryAt().AsTime())
	}
}
