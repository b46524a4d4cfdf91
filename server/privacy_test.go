package server

import (
	"bytes"
	"context"
	"testing"

	bdb "github.com/dgraph-io/badger/v4"
	"google.golang.org/protobuf/types/known/timestamppb"

	sgv1 "github.com/sendguard/sendguard/proto/sendguard/v1"
	"github.com/sendguard/sendguard/storage/badger"
)

// history builds every kind of state for the Mexican number (reached by its
// WhatsApp ID spelling) and its user ID, for business acme.
func history(t *testing.T, h *harness) {
	ctx := context.Background()
	wamid := "wamid.HBgNNTIxNTUxMjM0NTY3OBUCABEYEjVCMkMwRDhGMTRBRTk3MzRGMQA=" // Meta's ids encode the recipient
	h.report(t, &sgv1.ReportResultRequest{BusinessId: "acme", Phone: "5215512345678", MessageId: wamid + "1",
		Status: sgv1.MessageStatus_MESSAGE_STATUS_FAILED, ErrorCode: 131049, Category: sgv1.Category_CATEGORY_MARKETING, Timestamp: timestamppb.New(t0)})
	h.inbound(t, &sgv1.ReportInboundRequest{BusinessId: "acme", Phone: "5215512345678", UserId: "MX.5512345678000", MessageId: wamid + "2", Text: "STOP"})
	h.check(t, &sgv1.CheckSendRequest{BusinessId: "acme", Phone: mxPhone, Category: sgv1.Category_CATEGORY_UTILITY, Reserve: true, MessageRef: "ref-1"})
	h.report(t, &sgv1.ReportResultRequest{BusinessId: "acme", Phone: mxPhone, MessageId: wamid + "3", MessageRef: "ref-1",
		Status: sgv1.MessageStatus_MESSAGE_STATUS_DELIVERED, Timestamp: timestamppb.New(t0)})
	h.report(t, failed(brPhone, 131026, t0)) // another number, which must stay
	if _, err := h.c.SetOptOut(ctx, &sgv1.SetOptOutRequest{BusinessId: "globex", Phone: brPhone, OptedOut: true}); err != nil {
		t.Fatal(err)
	}
}

// scan returns every key, and every key+value, of the store.
func scan(t *testing.T, h *harness) (keys, all [][]byte) {
	t.Helper()
	err := h.srv.store.(*badger.Store).DB().View(func(txn *bdb.Txn) error {
		it := txn.NewIterator(bdb.DefaultIteratorOptions)
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			k := it.Item().KeyCopy(nil)
			v, err := it.Item().ValueCopy(nil)
			if err != nil {
				return err
			}
			keys = append(keys, k)
			all = append(all, append(append(k, '='), v...))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return keys, all
}

func containsAny(items [][]byte, needles ...string) []string {
	var found []string
	for _, it := range items {
		for _, n := range needles {
			if bytes.Contains(it, []byte(n)) {
				found = append(found, string(it))
			}
		}
	}
	return found
}

// TestForgetRemovesEveryKey scans the whole store after ForgetContact: no key
// names the number (in any spelling, or inside Meta's message ids) or its user ID.
func TestForgetRemovesEveryKey(t *testing.T) {
	h := newHarness(t)
	history(t, h)
	keys, _ := scan(t, h)
	if len(containsAny(keys, "525512345678")) == 0 {
		t.Fatal("the history was not written under the number")
	}
	if _, err := h.c.Forget(context.Background(), &sgv1.ForgetContactRequest{BusinessId: "acme", Phone: mxPhone, ForgetOptOut: true}); err != nil {
		t.Fatal(err)
	}
	keys, _ = scan(t, h)
	if left := containsAny(keys, "525512345678", "5215512345678", "MX.5512345678000", "NTIxNTUxMjM0NTY3OB"); len(left) > 0 {
		t.Fatalf("keys left after ForgetContact: %q", left)
	}
	if len(containsAny(keys, "5511987654321")) == 0 {
		t.Fatal("another number's state was erased")
	}
}

// TestHashNumbers: with privacy.hash_numbers, no key or value of the store holds
// the number in any spelling, and the service works as before (the learned
// WhatsApp ID is rebuilt from the folding kept).
func TestHashNumbers(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.HashNumbers, c.HashSecret = true, []byte("0123456789abcdef-secret") })
	history(t, h)
	_, all := scan(t, h)
	if found := containsAny(all, "525512345678", "5215512345678", "5511987654321", "NTIxNTUxMjM0NTY3OB"); len(found) > 0 {
		t.Fatalf("numbers readable in the store: %q", found)
	}
	resp := h.check(t, marketing(mxPhone))
	if resp.GetVerdict() != deny || resp.GetWaId() != "5215512345678" || resp.GetPhoneE164() != mxPhone {
		t.Fatalf("check with hashed numbers: %v", resp)
	}
	if resp := h.check(t, &sgv1.CheckSendRequest{BusinessId: "acme", UserId: "MX.5512345678000", Category: sgv1.Category_CATEGORY_MARKETING}); resp.GetVerdict() != deny {
		t.Fatalf("check by user id with hashed numbers: %v", resp)
	}
	if resp := h.check(t, marketing(brPhone)); resp.GetVerdict() != deferV {
		t.Fatalf("shared facts with hashed numbers: %v", resp)
	}
	if _, err := newServer(t, Config{GRPCAddr: "127.0.0.1:0", DataDir: t.TempDir(), HashNumbers: true}); err == nil {
		t.Fatal("hash_numbers without a secret was accepted")
	}
}
