package server

import (
	"context"
	"errors"
	"io"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	sgv1 "github.com/sendguard/sendguard/proto/sendguard/v1"
)

// maxBatchRows is the most requests one CheckSendBatch takes (DESIGN.md).
const maxBatchRows = 1000

// CheckSendBatch judges up to maxBatchRows planned sends in one unary call, for
// clients without bidirectional streams (JSON over HTTP/1.1, browsers). The batch
// runs through CheckSendStream's own pipeline as one stream would: every row is
// answered in order by checkRow (a row that cannot be judged gets its error, the
// others go on), rows are decided in the stream's lanes under the same decision
// slots, and what the batch holds is charged to the same row budget. Only a
// problem with the call as a whole fails it: more than maxBatchRows requests
// (INVALID_ARGUMENT naming requests), or the call's own end (its deadline, its
// client gone).
func (s *Server) CheckSendBatch(ctx context.Context, req *sgv1.CheckSendBatchRequest) (*sgv1.CheckSendBatchResponse, error) {
	rows := req.GetRequests()
	if len(rows) > maxBatchRows {
		return nil, invalidArg("requests: %d requests; at most %d in one batch (send more batches, or use CheckSendStream)", len(rows), maxBatchRows)
	}
	b := &batchStream{ctx: ctx, rows: rows, answers: make([]*sgv1.CheckSendResponse, 0, len(rows))}
	if err := s.CheckSendStream(b); err != nil {
		return nil, s.toStatus(ctx, err)
	}
	return &sgv1.CheckSendBatchResponse{Responses: b.answers}, nil
}

// batchStream feeds a batch's rows to CheckSendStream as if a client had sent
// them on a stream and closed it, and collects the answers. Only what the
// pipeline uses is implemented (Context, RecvMsg, Send); the embedded
// grpc.ServerStream is nil, so anything else would panic — and be recovered as
// INTERNAL — rather than misbehave quietly.
type batchStream struct {
	grpc.ServerStream
	ctx     context.Context
	rows    []*sgv1.CheckSendRequest
	next    int
	answers []*sgv1.CheckSendResponse
}

var _ sgv1.SendGuard_CheckSendStreamServer = (*batchStream)(nil)

func (b *batchStream) Context() context.Context { return b.ctx }

// RecvMsg copies the next row into m (the pipeline reuses its request
// messages), or returns io.EOF after the last one.
func (b *batchStream) RecvMsg(m any) error {
	if b.next == len(b.rows) {
		return io.EOF
	}
	req, ok := m.(*sgv1.CheckSendRequest)
	if !ok {
		return errors.New("batch: RecvMsg wants a *CheckSendRequest")
	}
	proto.Reset(req)
	if row := b.rows[b.next]; row != nil {
		proto.Merge(req, row) // unknown fields too: a salvaged row keeps its mark
	}
	b.next++
	return nil
}

// Recv is RecvMsg for the generated interface.
func (b *batchStream) Recv() (*sgv1.CheckSendRequest, error) {
	req := new(sgv1.CheckSendRequest)
	return req, b.RecvMsg(req)
}

// Send keeps one answer; the pipeline sends a fresh message per row.
func (b *batchStream) Send(resp *sgv1.CheckSendResponse) error {
	b.answers = append(b.answers, resp)
	return nil
}

// batchRowsField is CheckSendBatchRequest.requests.
const batchRowsField protowire.Number = 1

// salvageBatch decodes a CheckSendBatchRequest that gRPC's codec could not
// decode row by row, so that a row with bad bytes (a string that is not valid
// UTF-8, a garbled field) is that row's error, as it would be on a stream, and
// not the whole batch's: each such row is salvaged and marked on its own (see
// salvage). Anything else wrong (the batch's own framing cut short, a field
// that is not a row) marks the whole batch instead.
func salvageBatch(m *sgv1.CheckSendBatchRequest, b []byte, decodeErr error) {
	var (
		rows   []*sgv1.CheckSendRequest
		marked bool // a row was salvaged: the batch's problem is in its rows
	)
	for rest := b; len(rest) > 0; {
		num, typ, n := protowire.ConsumeTag(rest)
		vn := -1
		if n >= 0 {
			vn = protowire.ConsumeFieldValue(num, typ, rest[n:])
		}
		if vn < 0 || num != batchRowsField || typ != protowire.BytesType {
			salvage(m, b, decodeErr)
			return
		}
		v, _ := protowire.ConsumeBytes(rest[n:])
		row := new(sgv1.CheckSendRequest)
		if err := proto.Unmarshal(v, row); err != nil {
			salvage(row, v, err)
			marked = true
		}
		rows = append(rows, row)
		rest = rest[n+vn:]
	}
	if !marked {
		salvage(m, b, decodeErr)
		return
	}
	proto.Reset(m)
	m.Requests = rows
}
