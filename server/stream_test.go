package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"testing"

	sgv1 "github.com/sendguard/sendguard/proto/sendguard/v1"
)

// runStream sends reqs on one CheckSendStream while reading, and returns the
// answers; it fails the test unless each answer carries its request's id, in
// order.
func runStream(t *testing.T, h *harness, reqs []*sgv1.CheckSendRequest) []*sgv1.CheckSendResponse {
	t.Helper()
	stream, err := h.c.CheckStream(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for _, r := range reqs {
			if err := stream.Send(r); err != nil {
				return
			}
		}
		stream.CloseSend()
	}()
	out := make([]*sgv1.CheckSendResponse, 0, len(reqs))
	for i := range reqs {
		resp, err := stream.Recv()
		if err != nil {
			t.Fatalf("row %d: %v", i, err)
		}
		if resp.GetRequestId() != reqs[i].GetRequestId() {
			t.Fatalf("row %d answered with request_id %q, want %q", i, resp.GetRequestId(), reqs[i].GetRequestId())
		}
		out = append(out, resp)
	}
	if _, err := stream.Recv(); !errors.Is(err, io.EOF) {
		t.Fatalf("end of stream: %v", err)
	}
	return out
}

// TestStreamDecidesInOrder: the pipelined stream answers as if its rows were
// decided one by one. Each number is reserved twice in a row under two spellings
// (the second must see the first reservation and be deferred by the frequency
// cap), with rows of a user_id and of a business not yet loaded mixed in. The
// first spelling is the slower to parse (national format), so that a pipeline
// that let the second overtake it would be caught.
func TestStreamDecidesInOrder(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.DefaultRegion = "BR" })
	reserve := func(id, phone string) *sgv1.CheckSendRequest {
		r := marketing(phone)
		r.RequestId, r.Reserve, r.MessageRef = id, true, "ref-"+id
		return r
	}
	var reqs []*sgv1.CheckSendRequest
	var firsts, seconds []int
	for i := range 600 {
		a, b := fmt.Sprintf("(11) 9%04d-%04d", i/10000, i%10000), fmt.Sprintf("+55119%08d", i)
		if i%50 == 7 {
			// Mexico: the WhatsApp ID and the canonical number.
			a, b = fmt.Sprintf("+5255%08d", 10000000+i), fmt.Sprintf("52155%08d", 10000000+i)
		}
		firsts = append(firsts, len(reqs))
		reqs = append(reqs, reserve(fmt.Sprint(i, "a"), a))
		if i%100 == 3 {
			reqs = append(reqs, &sgv1.CheckSendRequest{RequestId: fmt.Sprint(i, "u"), BusinessId: "acme",
				UserId: fmt.Sprintf("BR.%d", i), Category: sgv1.Category_CATEGORY_UTILITY})
		}
		if i%200 == 5 {
			r := marketing(a)
			r.BusinessId, r.RequestId = fmt.Sprint("other-", i), fmt.Sprint(i, "o")
			reqs = append(reqs, r)
		}
		seconds = append(seconds, len(reqs))
		reqs = append(reqs, reserve(fmt.Sprint(i, "b"), b))
	}
	out := runStream(t, h, reqs)
	for k := range firsts {
		first, second := out[firsts[k]], out[seconds[k]]
		if first.GetVerdict() != sgv1.Verdict_VERDICT_ALLOW || first.GetDuplicate() {
			t.Fatalf("first reservation of number %d: %v", k, first)
		}
		if second.GetVerdict() != sgv1.Verdict_VERDICT_DEFER || second.GetPhoneE164() != first.GetPhoneE164() {
			t.Fatalf("second reservation of number %d (after %v): %v", k, first, second)
		}
	}
}

// TestStreamRowErrorsInOrder: rows that fail validation are answered in place,
// among rows that are decided.
func TestStreamRowErrorsInOrder(t *testing.T) {
	h := newHarness(t)
	var reqs []*sgv1.CheckSendRequest
	for i := range 1000 {
		r := marketing(fmt.Sprintf("+55219%08d", i))
		r.RequestId = fmt.Sprint(i)
		if i%7 == 0 {
			r.Category = 0
		}
		reqs = append(reqs, r)
	}
	for i, resp := range runStream(t, h, reqs) {
		if bad := i%7 == 0; bad != (resp.GetError() != nil) || !bad && resp.GetVerdict() != sgv1.Verdict_VERDICT_ALLOW {
			t.Fatalf("row %d: %v", i, resp)
		}
	}
}
