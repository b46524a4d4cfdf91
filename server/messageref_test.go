package server

import (
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	sgv1 "github.com/sendguard/sendguard/proto/sendguard/v1"
	"github.com/sendguard/sendguard/storage"
)

// reservation is a marketing reservation of phone (or userID) for campaign,
// with ref as its message_ref ("" to have it derived).
func reservation(phone, userID, campaign, ref string) *sgv1.CheckSendRequest {
	req := marketing(phone)
	req.UserId, req.CampaignId, req.MessageRef, req.Reserve = userID, campaign, ref, true
	return req
}

// TestDerivedMessageRef: a reservation with a campaign_id and no message_ref is
// reserved under "<campaign_id>/<recipient key>", returned in the answer; two
// spellings of one number are one send (the second is a duplicate that counts
// nothing, not a DEFER for the first's frequency cap); a given ref is returned
// as given.
func TestDerivedMessageRef(t *testing.T) {
	h := newHarnessOn(t, withClockDedup)
	first := h.check(t, reservation("+55 11 98765-4321", "", "bf", ""))
	if first.GetVerdict() != allow || first.GetDuplicate() || first.GetMessageRef() != "bf/"+brPhone {
		t.Fatalf("first spelling: %v dup=%v ref %q, want ALLOW bf/%s", first.GetVerdict(), first.GetDuplicate(), first.GetMessageRef(), brPhone)
	}
	for _, spelling := range []string{"5511987654321", "+55 (11) 98765-4321", brPhone} {
		resp := h.check(t, reservation(spelling, "", "bf", ""))
		if !resp.GetDuplicate() || resp.GetMessageRef() != first.GetMessageRef() || resp.GetVerdict() != allow {
			t.Fatalf("%q: %v %v dup=%v ref %q, want an ALLOW duplicate under %q", spelling, resp.GetVerdict(), rules(resp), resp.GetDuplicate(), resp.GetMessageRef(), first.GetMessageRef())
		}
	}
	if got := h.refs(t, brPhone); fmt.Sprint(got) != "[bf/"+brPhone+"]" {
		t.Fatalf("sends %v: the duplicates counted", got)
	}

	// Without a derived ref (the client's own per-spelling refs), the second
	// spelling is the DEFER this derivation exists to prevent.
	if resp := h.check(t, reservation("5511987654321", "", "other", "other/5511987654321")); resp.GetVerdict() != deferV || resp.GetDuplicate() {
		t.Fatalf("another ref for the same number: %v dup=%v, want DEFER (frequency cap)", resp.GetVerdict(), resp.GetDuplicate())
	}

	// A given ref is used and returned as given; a user ID's key is u:<user_id>.
	if resp := h.check(t, reservation("+5511987650001", "", "bf", "outbox-17")); resp.GetVerdict() != allow || resp.GetMessageRef() != "outbox-17" {
		t.Fatalf("given ref: %v %q", resp.GetVerdict(), resp.GetMessageRef())
	}
	if resp := h.check(t, reservation("", "BR.1502576394655843", "bf", "")); resp.GetVerdict() != allow || resp.GetMessageRef() != "bf/u:BR.1502576394655843" {
		t.Fatalf("user ID: %v %q", resp.GetVerdict(), resp.GetMessageRef())
	}
	// Neither a ref nor a campaign: reserved without a ref, as before.
	if resp := h.check(t, reservation("+5511987650002", "", "", "")); resp.GetVerdict() != allow || resp.GetMessageRef() != "" {
		t.Fatalf("no campaign: %v %q", resp.GetVerdict(), resp.GetMessageRef())
	}
	// A check that does not reserve names no ref.
	req := reservation("+5511987650003", "", "bf", "")
	req.Reserve = false
	if resp := h.check(t, req); resp.GetVerdict() != allow || resp.GetMessageRef() != "" {
		t.Fatalf("no reservation: %v %q", resp.GetVerdict(), resp.GetMessageRef())
	}
}

// TestNoMessageRefOnDenyOrDefer: a DEFER or DENY reserved nothing, so its answer
// carries no message_ref, derived or given; a duplicate does, whatever the
// verdict judged now.
func TestNoMessageRefOnDenyOrDefer(t *testing.T) {
	h := newHarnessOn(t, withClockDedup)
	ctx := context.Background()
	if _, err := h.c.SetOptOut(ctx, &sgv1.SetOptOutRequest{BusinessId: "acme", Phone: mxPhone, OptedOut: true, Reason: "test"}); err != nil {
		t.Fatal(err)
	}
	for _, ref := range []string{"", "given"} {
		if resp := h.check(t, reservation(mxPhone, "", "bf", ref)); resp.GetVerdict() != deny || resp.GetMessageRef() != "" {
			t.Fatalf("ref %q, opted out: %v ref %q, want DENY and no ref", ref, resp.GetVerdict(), resp.GetMessageRef())
		}
	}
	if resp := h.check(t, reservation("12345", "", "bf", "")); resp.GetVerdict() != deny || resp.GetMessageRef() != "" {
		t.Fatalf("not a number: %v ref %q", resp.GetVerdict(), resp.GetMessageRef())
	}
	h.check(t, reservation(brPhone, "", "a", ""))
	for _, ref := range []string{"", "given"} {
		if resp := h.check(t, reservation(brPhone, "", "b", ref)); resp.GetVerdict() != deferV || resp.GetMessageRef() != "" {
			t.Fatalf("ref %q, under the cap: %v ref %q, want DEFER and no ref", ref, resp.GetVerdict(), resp.GetMessageRef())
		}
	}
	// The number opts out after its reservation: the duplicate is judged DENY
	// now, and still names the ref it was reserved under.
	if _, err := h.c.SetOptOut(ctx, &sgv1.SetOptOutRequest{BusinessId: "acme", Phone: brPhone, OptedOut: true, Reason: "test"}); err != nil {
		t.Fatal(err)
	}
	if resp := h.check(t, reservation(brPhone, "", "a", "")); !resp.GetDuplicate() || resp.GetVerdict() != deny || resp.GetMessageRef() != "a/"+brPhone {
		t.Fatalf("duplicate after an opt-out: %v dup=%v ref %q", resp.GetVerdict(), resp.GetDuplicate(), resp.GetMessageRef())
	}
}

// TestDerivedMessageRefHashed: under hash_numbers the derived ref holds the
// number's keyed hash, never the number (senders pass it to Meta), and is still
// one ref for every spelling.
func TestDerivedMessageRefHashed(t *testing.T) {
	h := newHarnessOn(t, withClockDedup, func(c *Config) { c.HashNumbers, c.HashSecret = true, []byte("0123456789abcdef-secret") })
	first := h.check(t, reservation("+55 11 98765-4321", "", "bf", ""))
	want := "bf/" + h.srv.numberKey(brPhone)
	if first.GetVerdict() != allow || first.GetMessageRef() != want || !strings.HasPrefix(first.GetMessageRef(), "bf/"+storage.HashedNumberPrefix) {
		t.Fatalf("hashed: %v ref %q, want %q", first.GetVerdict(), first.GetMessageRef(), want)
	}
	if strings.Contains(first.GetMessageRef(), "987654321") || strings.Contains(first.GetMessageRef(), "98765-4321") {
		t.Fatalf("the number is readable in %q", first.GetMessageRef())
	}
	if resp := h.check(t, reservation("5511987654321", "", "bf", "")); !resp.GetDuplicate() || resp.GetMessageRef() != want {
		t.Fatalf("second spelling: dup=%v ref %q, want a duplicate under %q", resp.GetDuplicate(), resp.GetMessageRef(), want)
	}
	// Another deployment secret, another ref: the hash is keyed.
	other := newHarness(t, func(c *Config) { c.HashNumbers, c.HashSecret = true, []byte("another-secret-0123456789") })
	if resp := other.check(t, reservation(brPhone, "", "bf", "")); resp.GetMessageRef() == want || !strings.HasPrefix(resp.GetMessageRef(), "bf/h:") {
		t.Fatalf("another secret: ref %q", resp.GetMessageRef())
	}
}

// TestDerivedMessageRefTooLong: a derived ref over 256 bytes is INVALID_ARGUMENT
// naming message_ref and campaign_id, on the unary call and as a stream row's
// error; one of exactly 256 bytes is taken.
func TestDerivedMessageRefTooLong(t *testing.T) {
	h := newHarness(t)
	fits := strings.Repeat("c", maxShortField-1-len(brPhone))
	if resp := h.check(t, reservation(brPhone, "", fits, "")); resp.GetVerdict() != allow || len(resp.GetMessageRef()) != maxShortField {
		t.Fatalf("a 256-byte ref: %v %d bytes", resp.GetVerdict(), len(resp.GetMessageRef()))
	}
	long := fits + "c"
	_, err := h.c.Check(context.Background(), reservation("+5511987650001", "", long, ""))
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "message_ref") || !strings.Contains(err.Error(), "campaign_id") ||
		!strings.Contains(err.Error(), "257 bytes") {
		t.Fatalf("a 257-byte derived ref: %v", err)
	}
	// Not reserved: the same number with a shorter campaign is a fresh ALLOW.
	if resp := h.check(t, reservation("+5511987650001", "", "short", "")); resp.GetVerdict() != allow || resp.GetDuplicate() {
		t.Fatalf("after the refused reservation: %v dup=%v", resp.GetVerdict(), resp.GetDuplicate())
	}

	st, err := h.c.CheckStream(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for i, req := range []*sgv1.CheckSendRequest{reservation("+5511987650002", "", long, ""), reservation("+5511987650003", "", "short", "")} {
		req.RequestId = fmt.Sprint(i)
		if err := st.Send(req); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.CloseSend(); err != nil {
		t.Fatal(err)
	}
	bad, err := st.Recv()
	if err != nil || bad.GetError().GetCode() != int32(codes.InvalidArgument) || !strings.Contains(bad.GetError().GetMessage(), "message_ref") {
		t.Fatalf("stream row: %v %v", bad, err)
	}
	good, err := st.Recv()
	if err != nil || good.GetVerdict() != allow || good.GetMessageRef() != "short/+5511987650003" {
		t.Fatalf("the next stream row: %v %v", good, err)
	}
}

// TestDerivedMessageRefAcrossStreams: two spellings of each number reserved at
// once on two streams (two workers of one campaign) make one send per number:
// one ALLOW and one duplicate, never a DEFER.
func TestDerivedMessageRefAcrossStreams(t *testing.T) {
	h := newHarness(t)
	const numbers = 200
	spell := func(worker, i int) string {
		d := fmt.Sprintf("%08d", i)
		if worker == 0 {
			return "+55 11 9" + d[:4] + "-" + d[4:]
		}
		return "55119" + d
	}
	answers := make([][]*sgv1.CheckSendResponse, 2)
	var wg sync.WaitGroup
	errs := make(chan error, 2)
	for w := range 2 {
		wg.Go(func() {
			st, err := h.c.CheckStream(context.Background())
			if err != nil {
				errs <- err
				return
			}
			go func() {
				for i := range numbers {
					req := reservation(spell(w, i), "", "bf", "")
					req.RequestId = fmt.Sprint(i)
					if st.Send(req) != nil {
						return
					}
				}
				_ = st.CloseSend()
			}()
			for {
				resp, err := st.Recv()
				if err == io.EOF {
					return
				}
				if err != nil {
					errs <- err
					return
				}
				answers[w] = append(answers[w], resp)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for i := range numbers {
		a, b := answers[0][i], answers[1][i]
		want := fmt.Sprintf("bf/+55119%08d", i)
		if a.GetVerdict() != allow || b.GetVerdict() != allow || a.GetDuplicate() == b.GetDuplicate() || a.GetMessageRef() != want || b.GetMessageRef() != want {
			t.Fatalf("number %d: %v dup=%v %q / %v dup=%v %q; want one ALLOW and one duplicate, both %q",
				i, a.GetVerdict(), a.GetDuplicate(), a.GetMessageRef(), b.GetVerdict(), b.GetDuplicate(), b.GetMessageRef(), want)
		}
	}
}
