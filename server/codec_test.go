package server

import (
	"context"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	sgv1 "github.com/sendguard/sendguard/proto/sendguard/v1"
)

// rawMessage is a request's wire bytes as a client wrote them: Go's protobuf
// library refuses to marshal invalid UTF-8, so other clients' bad bytes are
// built by hand.
type rawMessage []byte

// rawCodec sends rawMessages as they are and decodes answers with the proto codec.
type rawCodec struct{}

func (rawCodec) Marshal(v any) (mem.BufferSlice, error) {
	return mem.BufferSlice{mem.SliceBuffer(v.(rawMessage))}, nil
}

func (rawCodec) Unmarshal(data mem.BufferSlice, v any) error {
	return encoding.GetCodecV2("proto").Unmarshal(data, v)
}

func (rawCodec) Name() string { return "proto" }

// wireField appends a length-delimited field.
func wireField(b []byte, num protowire.Number, v string) []byte {
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendString(b, v)
}

// wireCheck is a marketing CheckSendRequest for brPhone with a request_id and a
// template, both as raw bytes.
func wireCheck(requestID, template string) rawMessage {
	var b []byte
	b = wireField(b, 1, "acme")
	b = wireField(b, 2, brPhone)
	b = protowire.AppendTag(b, 4, protowire.VarintType)
	b = protowire.AppendVarint(b, uint64(sgv1.Category_CATEGORY_MARKETING))
	b = wireField(b, 5, template)
	b = wireField(b, 7, requestID)
	return b
}

func invokeRaw(h *harness, method string, req rawMessage, resp proto.Message) error {
	return h.c.Conn().Invoke(context.Background(), "/sendguard.v1.SendGuard/"+method, req, resp, grpc.ForceCodecV2(rawCodec{}))
}

// TestBadBytesUnary: a unary request that is not valid UTF-8, or not whole, is
// INVALID_ARGUMENT naming the field (gRPC alone answers INTERNAL), and the
// connection goes on serving.
func TestBadBytesUnary(t *testing.T) {
	h := newHarness(t)
	cut := wireCheck("r", "promo")
	cut = cut[:len(cut)-1]
	cases := []struct {
		name   string
		method string
		req    rawMessage
		resp   proto.Message
		want   string
	}{
		{"CheckSend template", "CheckSend", wireCheck("r", "promo\xff\xfe"), &sgv1.CheckSendResponse{}, "template is not valid UTF-8"},
		{"CheckSend cut short", "CheckSend", cut, &sgv1.CheckSendResponse{}, "request is malformed"},
		{"ReportInbound text", "ReportInbound",
			wireField(wireField(wireField(wireField(nil, 1, "acme"), 2, brPhone), 4, "wamid.1"), 6, "STOP\xc3"),
			&sgv1.ReportInboundResponse{}, "text is not valid UTF-8"},
		{"SetPolicy keyword", "SetPolicy",
			wireField(wireField(nil, 1, "acme"), 2, string(wireField(nil, 9, "BAJA\xe2\x82"))),
			&sgv1.SetPolicyResponse{}, "policy.opt_out_keywords is not valid UTF-8"},
	}
	for _, c := range cases {
		err := invokeRaw(h, c.method, c.req, c.resp)
		if status.Code(err) != codes.InvalidArgument || !strings.Contains(status.Convert(err).Message(), c.want) {
			t.Errorf("%s: %v; want INVALID_ARGUMENT %q", c.name, err, c.want)
		}
	}
	// Nothing was recorded by the refused inbound STOP, and good requests are
	// still served on the same connection.
	var resp sgv1.CheckSendResponse
	if err := invokeRaw(h, "CheckSend", wireCheck("ok", "promo"), &resp); err != nil || resp.GetVerdict() != sgv1.Verdict_VERDICT_ALLOW {
		t.Fatalf("good request after bad ones: %v %v", &resp, err)
	}
}

// TestBadBytesStream: bad rows in CheckSendStream get their own error (with
// their request_id when it could be read) and the rows after them are answered.
func TestBadBytesStream(t *testing.T) {
	h := newHarness(t)
	stream, err := h.c.Conn().NewStream(context.Background(), &grpc.StreamDesc{ServerStreams: true, ClientStreams: true},
		"/sendguard.v1.SendGuard/CheckSendStream", grpc.ForceCodecV2(rawCodec{}))
	if err != nil {
		t.Fatal(err)
	}
	cut := wireCheck("cut", "promo")
	cut = cut[:len(cut)-2]
	rows := []rawMessage{
		wireCheck("first", "promo"),
		wireCheck("utf8", "\xff"),
		cut,
		append(wireCheck("garbage", "promo"), 0xff, 0xff, 0xff),
		wireCheck("last", "promo"),
	}
	for _, r := range rows {
		if err := stream.SendMsg(r); err != nil {
			t.Fatal(err)
		}
	}
	if err := stream.CloseSend(); err != nil {
		t.Fatal(err)
	}
	want := []struct {
		id   string
		code codes.Code
		msg  string
	}{
		{"first", codes.OK, ""},
		{"utf8", codes.InvalidArgument, "template is not valid UTF-8"},
		{"", codes.InvalidArgument, "request is malformed"},
		{"garbage", codes.InvalidArgument, "request is malformed"},
		{"last", codes.OK, ""},
	}
	for i, w := range want {
		var resp sgv1.CheckSendResponse
		if err := stream.RecvMsg(&resp); err != nil {
			t.Fatalf("row %d: %v", i, err)
		}
		if resp.GetRequestId() != w.id || codes.Code(resp.GetError().GetCode()) != w.code || !strings.Contains(resp.GetError().GetMessage(), w.msg) {
			t.Errorf("row %d: %v; want request_id %q, code %v, message %q", i, &resp, w.id, w.code, w.msg)
		}
		if w.code == codes.OK && resp.GetVerdict() != sgv1.Verdict_VERDICT_ALLOW {
			t.Errorf("row %d: %v", i, &resp)
		}
	}
}

// FuzzLenientCodec: whatever the bytes, a SendGuard request decodes without an
// error; bytes that gRPC's codec decodes give the same message, unmarked; bytes
// it refuses give a marked message.
func FuzzLenientCodec(f *testing.F) {
	f.Add([]byte(wireCheck("r", "promo")))
	f.Add([]byte(wireCheck("r", "\xff")))
	f.Add([]byte{0x0a, 0x05, 'a'})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})
	f.Add([]byte(wireField(nil, 8, string(wireField(nil, 1, "\x80")))))
	c := newLenientCodec()
	f.Fuzz(func(t *testing.T, b []byte) {
		var want sgv1.CheckSendRequest
		strictErr := proto.Unmarshal(b, &want)
		var got sgv1.CheckSendRequest
		if err := c.Unmarshal(mem.BufferSlice{mem.SliceBuffer(b)}, &got); err != nil {
			t.Fatalf("lenient codec failed: %v", err)
		}
		why := badRequest(&got)
		switch {
		case strictErr == nil && (why != badRequest(&want) || !proto.Equal(&got, &want)):
			// (why equals the sent mark when a client sends the mark's field
			// itself: that only harms its own request.)
			t.Fatalf("decodable bytes: got %v (mark %q), want %v", &got, why, &want)
		case strictErr != nil && why == "":
			t.Fatalf("undecodable bytes (%v) left unmarked: %v", strictErr, &got)
		}
	})
}
