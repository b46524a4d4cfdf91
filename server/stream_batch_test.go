package server

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"google.golang.org/protobuf/proto"

	sgv1 "github.com/sendguard/sendguard/proto/sendguard/v1"
	"github.com/sendguard/sendguard/storage"
)

// countingStore counts the store's update calls and the size of each batch.
type countingStore struct {
	storage.Store
	mu      sync.Mutex
	singles int
	batches []int
}

func (c *countingStore) UpdateContact(ctx context.Context, k storage.ContactKey, dedup string, fn func(*storage.Contact) (storage.Write, error)) error {
	c.mu.Lock()
	c.singles++
	c.mu.Unlock()
	return c.Store.UpdateContact(ctx, k, dedup, fn)
}

func (c *countingStore) UpdateContacts(ctx context.Context, updates []storage.ContactUpdate) ([]error, error) {
	c.mu.Lock()
	c.batches = append(c.batches, len(updates))
	c.mu.Unlock()
	return c.Store.UpdateContacts(ctx, updates)
}

// laneRows is a lane's worth of rows that exercises every turn of
// decideRows: reservations of distinct numbers, a number reserved again, a
// reused message_ref, a check (no reservation) of a number just reserved, a row
// that fails before the store, and a business with a messaging limit.
func laneRows() []*sgv1.CheckSendRequest {
	reserve := func(id string, n int, ref string) *sgv1.CheckSendRequest {
		r := marketing(fmt.Sprintf("+55119876%05d", n))
		r.RequestId, r.Reserve, r.MessageRef = id, true, ref
		return r
	}
	var rows []*sgv1.CheckSendRequest
	for n := range 10 {
		rows = append(rows, reserve(fmt.Sprint("r", n), n, fmt.Sprint("ref-", n)))
	}
	again := reserve("again-3", 3, "ref-3b") // the frequency cap sees ref-3
	dup := reserve("dup-5", 5, "ref-5")      // a duplicate of ref-5
	r10 := reserve("r10", 10, "ref-10")
	check := marketing("+5511987600010") // deferred by ref-10's send, in the batch before it
	check.RequestId = "check-10"
	bad := reserve("bad", 11, "ref-bad")
	bad.Phone = "not a number at all"
	limited := reserve("limited", 12, "ref-12")
	limited.BusinessId = "limited"
	rows = append(rows, again, dup, r10, check, bad, limited)
	for n := 20; n < 30; n++ {
		rows = append(rows, reserve(fmt.Sprint("r", n), n, fmt.Sprint("ref-", n)))
	}
	// A reservation without a ref (not idempotent) of a number already in
	// the batch.
	rows = append(rows, reserve("noref-20", 20, ""))
	return rows
}

// TestLaneBatchesAnswerAsOneByOne: a lane's rows decided together, with the
// reservations of distinct numbers written in batches, get exactly the answers
// that deciding them one by one, in order, gets on a store in the same state;
// and the store holds the same sends.
func TestLaneBatchesAnswerAsOneByOne(t *testing.T) {
	var counted *countingStore
	batched := newHarnessOn(t, func(st storage.Store, _ Config) storage.Store {
		counted = &countingStore{Store: st}
		return counted
	})
	alone := newHarness(t)
	ctx := context.Background()
	for _, h := range []*harness{batched, alone} {
		if _, err := h.c.SetPolicy(ctx, &sgv1.SetPolicyRequest{BusinessId: "limited", Policy: &sgv1.Policy{MessagingLimit: proto.Int32(5)}}); err != nil {
			t.Fatal(err)
		}
		// Load both businesses, as a stream's first rows would.
		h.check(t, marketing("+5511900000000"))
		limited := marketing("+5511900000000")
		limited.BusinessId = "limited"
		h.check(t, limited)
	}
	reqs := laneRows()

	rows := make([]*streamRow, len(reqs))
	for i, req := range reqs {
		rows[i] = &streamRow{req: req, done: make(chan struct{}, 1)}
	}
	var batch laneBatch
	batched.srv.decideRows(ctx, rows, &batch)

	for i, req := range reqs {
		select {
		case <-rows[i].done:
		default:
			t.Fatalf("row %d (%s) was not released", i, req.GetRequestId())
		}
		want := alone.srv.checkRow(ctx, req)
		if !proto.Equal(rows[i].resp, want) {
			t.Errorf("row %s:\n batched  %v\n one by one %v", req.GetRequestId(), rows[i].resp, want)
		}
	}
	for _, req := range reqs {
		if req.GetPhone() == "not a number at all" {
			continue
		}
		b, err := batched.c.Contact(ctx, &sgv1.GetContactRequest{BusinessId: req.GetBusinessId(), Phone: req.GetPhone()})
		if err != nil {
			t.Fatal(err)
		}
		a, err := alone.c.Contact(ctx, &sgv1.GetContactRequest{BusinessId: req.GetBusinessId(), Phone: req.GetPhone()})
		if err != nil {
			t.Fatal(err)
		}
		if len(b.GetSends()) != len(a.GetSends()) {
			t.Errorf("%s: %d sends stored batched, %d one by one", req.GetPhone(), len(b.GetSends()), len(a.GetSends()))
		}
	}

	// The batches: the ten first reservations together (r0…r9), then
	// again-3 (a number already in the batch) starts the next; the check
	// writes that batch (again-3, dup-5, r10) first; r20…r29 go together;
	// noref-20 alone at the end. The messaging-limit row is written alone.
	counted.mu.Lock()
	defer counted.mu.Unlock()
	want := []int{10, 3, 10}
	if fmt.Sprint(counted.batches) != fmt.Sprint(want) {
		t.Errorf("batches of %v updates, want %v", counted.batches, want)
	}
	if counted.singles < 2 {
		t.Errorf("%d single updates, want the messaging-limit row's and noref-20's", counted.singles)
	}
}

// TestStreamReservesEveryRowOnce: many reservations of distinct numbers on
// concurrent streams (batched by their lanes as rows pile up), each stored once
// and answered ALLOW, in order.
func TestStreamReservesEveryRowOnce(t *testing.T) {
	h := newHarness(t)
	h.check(t, marketing("+5511900000000"))
	const streams, rows = 3, 300
	var wg sync.WaitGroup
	answers := make([][]*sgv1.CheckSendResponse, streams)
	for s := range streams {
		reqs := make([]*sgv1.CheckSendRequest, rows)
		for i := range reqs {
			r := marketing(fmt.Sprintf("+551198%01d%06d", s, i))
			r.RequestId, r.Reserve, r.MessageRef = fmt.Sprint(s, "-", i), true, fmt.Sprint("ref-", s, "-", i)
			reqs[i] = r
		}
		wg.Go(func() { answers[s] = runStream(t, h, reqs) })
	}
	wg.Wait()
	for s := range streams {
		for i, a := range answers[s] {
			if a.GetVerdict() != sgv1.Verdict_VERDICT_ALLOW || a.GetMessageRef() != fmt.Sprint("ref-", s, "-", i) {
				t.Fatalf("stream %d row %d: %v", s, i, a)
			}
		}
		for _, i := range []int{0, rows / 2, rows - 1} {
			c, err := h.c.Contact(context.Background(), &sgv1.GetContactRequest{BusinessId: "acme", Phone: fmt.Sprintf("+551198%01d%06d", s, i)})
			if err != nil {
				t.Fatal(err)
			}
			if len(c.GetSends()) != 1 {
				t.Errorf("stream %d row %d: %d sends stored, want 1", s, i, len(c.GetSends()))
			}
		}
	}
}
