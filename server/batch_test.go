package server

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	sgv1 "github.com/sendguard/sendguard/proto/sendguard/v1"
)

// batchRows is a mixed audience: reservations of one number under two
// spellings (the second is deferred by the first), rows naming a user_id and a
// business not loaded yet (decided alone in the pipeline), malformed rows and an
// unparsable phone.
func batchRows() []*sgv1.CheckSendRequest {
	var reqs []*sgv1.CheckSendRequest
	for i := range 60 {
		r := marketing(fmt.Sprintf("+55 21 9%04d-%04d", i, i))
		r.RequestId = fmt.Sprint("row-", i)
		switch i % 6 {
		case 0:
			r.Reserve, r.MessageRef = true, fmt.Sprint("ref-", i)
		case 1: // the number of the row before, spelled another way
			r.Phone = fmt.Sprintf("55219%04d%04d", i-1, i-1)
			r.Reserve, r.MessageRef = true, fmt.Sprint("ref-", i)
		case 2:
			r.Category = 0 // INVALID_ARGUMENT naming category
		case 3:
			r.Phone, r.UserId = "", fmt.Sprint("BR.", i)
		case 4:
			r.BusinessId = fmt.Sprint("biz-", i)
		case 5:
			r.Phone = "not a number"
		}
		reqs = append(reqs, r)
	}
	return reqs
}

// TestCheckSendBatchAnswersAsAStream: a batch is answered exactly as the same
// rows on a stream, row for row, by two fresh servers at the same time.
func TestCheckSendBatchAnswersAsAStream(t *testing.T) {
	reqs := batchRows()
	streamed := runStream(t, newHarness(t), reqs)
	h := newHarness(t)
	batched, err := h.c.CheckBatch(context.Background(), reqs)
	if err != nil {
		t.Fatal(err)
	}
	if len(batched) != len(reqs) {
		t.Fatalf("%d answers for %d requests", len(batched), len(reqs))
	}
	var deferred, errs int
	for i := range reqs {
		if !proto.Equal(batched[i], streamed[i]) {
			t.Errorf("row %d: batch %v\nstream %v", i, batched[i], streamed[i])
		}
		if batched[i].GetVerdict() == sgv1.Verdict_VERDICT_DEFER {
			deferred++
		}
		if batched[i].GetError() != nil {
			errs++
		}
	}
	// The rows did what they were written to do (so that the comparison above
	// compared something).
	if deferred != 10 || errs != 10 {
		t.Errorf("%d deferred and %d errors; want 10 and 10", deferred, errs)
	}
	if e := batched[2].GetError(); codes.Code(e.GetCode()) != codes.InvalidArgument || !strings.Contains(e.GetMessage(), "category") {
		t.Errorf("malformed row: %v", batched[2])
	}
	if used := h.srv.rows.used.Load(); used != 0 {
		t.Errorf("the batch left %d bytes charged to the stream budget", used)
	}
}

// TestCheckSendBatchSize: at most maxBatchRows requests; more is
// INVALID_ARGUMENT naming requests, and none of them is judged.
func TestCheckSendBatchSize(t *testing.T) {
	h := newHarness(t)
	rows := func(n int) []*sgv1.CheckSendRequest {
		out := make([]*sgv1.CheckSendRequest, n)
		for i := range out {
			out[i] = marketing(fmt.Sprintf("+55219%08d", i))
			out[i].Reserve, out[i].MessageRef = true, fmt.Sprint("ref-", i)
		}
		return out
	}
	_, err := h.c.CheckBatch(context.Background(), rows(maxBatchRows+1))
	if status.Code(err) != codes.InvalidArgument || !strings.HasPrefix(status.Convert(err).Message(), "requests:") {
		t.Fatalf("%d requests: %v; want INVALID_ARGUMENT naming requests", maxBatchRows+1, err)
	}
	resp, err := h.c.CheckBatch(context.Background(), rows(maxBatchRows))
	if err != nil || len(resp) != maxBatchRows {
		t.Fatalf("%d requests: %d answers, %v", maxBatchRows, len(resp), err)
	}
	for i, r := range resp {
		if r.GetVerdict() != sgv1.Verdict_VERDICT_ALLOW || r.GetDuplicate() {
			t.Fatalf("row %d: %v (the refused batch must have reserved nothing)", i, r)
		}
	}
	if resp, err := h.c.CheckBatch(context.Background(), nil); err != nil || len(resp) != 0 {
		t.Fatalf("empty batch: %v %v", resp, err)
	}
}

// TestCheckSendBatchSharesTheStreamBudget: a batch runs under the streams' row
// budget; spent to the last byte, it still answers every row, one at a time.
func TestCheckSendBatchSharesTheStreamBudget(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.StreamBudget = 1 })
	resp, err := h.c.CheckBatch(context.Background(), batchRows())
	if err != nil || len(resp) != len(batchRows()) {
		t.Fatalf("%d answers, %v", len(resp), err)
	}
}

// TestCheckSendBatchBadBytes: a row whose bytes do not decode is that row's
// error, as on a stream; the batch's own framing cut short fails the call.
func TestCheckSendBatchBadBytes(t *testing.T) {
	h := newHarness(t)
	row := func(b rawMessage) []byte { return wireField(nil, batchRowsField, string(b)) }
	var batch []byte
	for _, r := range []rawMessage{
		wireCheck("first", "promo"),
		wireCheck("utf8", "\xff"),
		append(wireCheck("garbage", "promo"), 0xff, 0xff, 0xff),
		wireCheck("last", "promo"),
	} {
		batch = append(batch, row(r)...)
	}
	var resp sgv1.CheckSendBatchResponse
	if err := invokeRaw(h, "CheckSendBatch", rawMessage(batch), &resp); err != nil {
		t.Fatal(err)
	}
	want := []struct {
		id   string
		code codes.Code
		msg  string
	}{
		{"first", codes.OK, ""},
		{"utf8", codes.InvalidArgument, "template is not valid UTF-8"},
		{"garbage", codes.InvalidArgument, "request is malformed"},
		{"last", codes.OK, ""},
	}
	if len(resp.GetResponses()) != len(want) {
		t.Fatalf("%d answers: %v", len(resp.GetResponses()), &resp)
	}
	for i, w := range want {
		r := resp.GetResponses()[i]
		if r.GetRequestId() != w.id || codes.Code(r.GetError().GetCode()) != w.code || !strings.Contains(r.GetError().GetMessage(), w.msg) {
			t.Errorf("row %d: %v; want request_id %q, code %v, message %q", i, r, w.id, w.code, w.msg)
		}
		if w.code == codes.OK && r.GetVerdict() != sgv1.Verdict_VERDICT_ALLOW {
			t.Errorf("row %d: %v", i, r)
		}
	}
	err := invokeRaw(h, "CheckSendBatch", rawMessage(batch[:len(batch)-3]), &resp)
	// (The message is the first problem found: here the bad row's template.)
	if status.Code(err) != codes.InvalidArgument || !strings.HasPrefix(status.Convert(err).Message(), "request") {
		t.Fatalf("cut batch: %v; want INVALID_ARGUMENT naming requests", err)
	}
}

// FuzzBatchCodec: whatever the bytes, a batch decodes without an error; bytes
// that gRPC's codec decodes give the same batch, unmarked; bytes it refuses
// give a marked batch or at least one marked row.
func FuzzBatchCodec(f *testing.F) {
	f.Add(wireField(nil, batchRowsField, string(wireCheck("r", "promo"))))
	f.Add(wireField(nil, batchRowsField, string(wireCheck("r", "\xff"))))
	f.Add(wireField(wireField(nil, batchRowsField, "\xff\xff"), batchRowsField, string(wireCheck("r", "promo"))))
	f.Add([]byte{0x0a, 0x05, 'a'})
	c := newLenientCodec()
	f.Fuzz(func(t *testing.T, b []byte) {
		var want sgv1.CheckSendBatchRequest
		strictErr := proto.Unmarshal(b, &want)
		var got sgv1.CheckSendBatchRequest
		if err := c.Unmarshal(mem.BufferSlice{mem.SliceBuffer(b)}, &got); err != nil {
			t.Fatalf("lenient codec failed: %v", err)
		}
		marked := badRequest(&got) != ""
		for _, r := range got.GetRequests() {
			marked = marked || badRequest(r) != ""
		}
		switch {
		case strictErr == nil && !proto.Equal(&got, &want):
			t.Fatalf("decodable bytes: got %v, want %v", &got, &want)
		case strictErr != nil && !marked:
			t.Fatalf("undecodable bytes (%v) left unmarked: %v", strictErr, &got)
		}
	})
}
