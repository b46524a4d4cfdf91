package server

import (
	"context"
	"fmt"
	"strings"
	"unicode/utf8"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/encoding"
	_ "google.golang.org/grpc/encoding/proto" // registers the codec lenientCodec wraps
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	sgv1 "github.com/sendguard/sendguard/proto/sendguard/v1"
)

// A request that gRPC's proto codec cannot decode — a string field that is not
// valid UTF-8, or wire data that is cut or garbled — fails the call with INTERNAL
// before any handler sees it, and in CheckSendStream it ends the whole stream:
// one bad row of a million would lose the rest. lenientCodec decodes such a
// request of the SendGuard service as far as it can instead, and marks it bad;
// the handlers answer a marked request INVALID_ARGUMENT naming the field (a
// stream row gets that as its error, and the stream goes on). Requests that
// decode are decoded exactly as gRPC's own codec does, at the same cost.

// lenientCodec is gRPC's proto codec with the fallback above.
type lenientCodec struct{ encoding.CodecV2 }

func newLenientCodec() lenientCodec {
	return lenientCodec{encoding.GetCodecV2("proto")}
}

// sendguardPackage is the proto package whose requests are decoded leniently
// (health and reflection keep gRPC's behaviour).
const sendguardPackage = "sendguard.v1"

// Unmarshal decodes data into v; see lenientCodec.
func (c lenientCodec) Unmarshal(data mem.BufferSlice, v any) error {
	err := c.CodecV2.Unmarshal(data, v)
	if err == nil {
		return nil
	}
	m, ok := v.(proto.Message)
	if !ok || m.ProtoReflect().Descriptor().ParentFile().Package() != sendguardPackage {
		return err
	}
	if batch, ok := m.(*sgv1.CheckSendBatchRequest); ok {
		salvageBatch(batch, data.Materialize(), err) // a bad row is that row's error
		return nil
	}
	salvage(m, data.Materialize(), err)
	return nil
}

// badMarkField is the field number of the mark a salvaged request carries in its
// unknown fields: the largest field number protobuf allows, which no .proto of
// ours uses.
const badMarkField protowire.Number = protowire.MaxValidNumber

// salvage decodes into m what can be decoded of b — every field before the first
// one that is cut or garbled, with strings that are not valid UTF-8 replaced —
// and marks m with why the request is bad (decodeErr when nothing better is known).
func salvage(m proto.Message, b []byte, decodeErr error) {
	var s salvager
	clean := s.walk(nil, b, m.ProtoReflect().Descriptor(), "")
	proto.Reset(m)
	why := s.why
	if err := proto.Unmarshal(clean, m); err != nil {
		// What was kept still does not decode (a required shape this walk does
		// not know): keep nothing but the mark.
		proto.Reset(m)
		if why == "" {
			why = "request is malformed: " + err.Error()
		}
	}
	if why == "" {
		why = "request is malformed: " + decodeErr.Error()
	}
	mark := protowire.AppendTag(nil, badMarkField, protowire.BytesType)
	mark = protowire.AppendString(mark, why)
	m.ProtoReflect().SetUnknown(mark)
}

// salvager rewrites wire data field by field.
type salvager struct {
	why string // the first problem found
}

func (s *salvager) fail(format string, args ...any) {
	if s.why == "" {
		s.why = fmt.Sprintf(format, args...)
	}
}

// walk appends to out the fields of message md in b that are whole, with
// invalid UTF-8 in string fields replaced by U+FFFD, and stops at the first field
// that is cut or garbled. path names md's field in the request ("" at the top).
func (s *salvager) walk(out, b []byte, md protoreflect.MessageDescriptor, path string) []byte {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			s.fail("request is malformed: %v after %s", protowire.ParseError(n), orTop(path))
			return out
		}
		vn := protowire.ConsumeFieldValue(num, typ, b[n:])
		if vn < 0 {
			s.fail("request is malformed: field %s: %v", fieldName(md, num, path), protowire.ParseError(vn))
			return out
		}
		field := b[:n+vn]
		b = b[n+vn:]
		fd := md.Fields().ByNumber(num)
		if fd == nil || typ != protowire.BytesType {
			out = append(out, field...)
			continue
		}
		v, _ := protowire.ConsumeBytes(field[n:])
		switch fd.Kind() {
		case protoreflect.StringKind:
			if !utf8.Valid(v) {
				s.fail("%s is not valid UTF-8", fieldName(md, num, path))
				v = []byte(strings.ToValidUTF8(string(v), "\uFFFD"))
			}
			out = protowire.AppendTag(out, num, typ)
			out = protowire.AppendBytes(out, v)
		case protoreflect.MessageKind, protoreflect.GroupKind:
			inner := s.walk(nil, v, fd.Message(), fieldName(md, num, path))
			out = protowire.AppendTag(out, num, typ)
			out = protowire.AppendBytes(out, inner)
		default:
			out = append(out, field...)
		}
	}
	return out
}

// fieldName is the request field's name for an error message: "send_at",
// "policy.opt_out_keywords".
func fieldName(md protoreflect.MessageDescriptor, num protowire.Number, path string) string {
	name := fmt.Sprintf("field %d", num)
	if fd := md.Fields().ByNumber(num); fd != nil {
		name = string(fd.Name())
	}
	if path == "" {
		return name
	}
	return path + "." + name
}

func orTop(path string) string {
	if path == "" {
		return "the last whole field"
	}
	return path
}

// badRequest returns why a request could not be decoded (see lenientCodec), or ""
// for a request that decoded. It is cheap for the requests that decoded: they
// carry no unknown fields, or a few that are not the mark.
func badRequest(m proto.Message) string {
	raw := m.ProtoReflect().GetUnknown()
	for len(raw) > 0 {
		num, typ, n := protowire.ConsumeTag(raw)
		if n < 0 {
			return ""
		}
		vn := protowire.ConsumeFieldValue(num, typ, raw[n:])
		if vn < 0 {
			return ""
		}
		if num == badMarkField && typ == protowire.BytesType {
			v, _ := protowire.ConsumeBytes(raw[n:])
			return string(v)
		}
		raw = raw[n+vn:]
	}
	return ""
}

// undecoded reports whether req is a request that could not be decoded.
func undecoded(req any) bool {
	m, ok := req.(proto.Message)
	return ok && badRequest(m) != ""
}

// unaryBadRequest answers a unary request that could not be decoded
// INVALID_ARGUMENT, saying why.
func unaryBadRequest(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if m, ok := req.(proto.Message); ok {
		if why := badRequest(m); why != "" {
			return nil, status.Error(codes.InvalidArgument, why)
		}
	}
	return handler(ctx, req)
}
