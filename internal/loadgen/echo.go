package loadgen

import (
	"errors"
	"io"

	"google.golang.org/grpc"

	sgv1 "github.com/sendguard/sendguard/proto/sendguard/v1"
)

// The bench-only echo service: the no-op baseline that sendguard-bench measures
// CheckSendStream against in the same run. Registered on the service's own gRPC
// server, it speaks CheckSendStream's messages through the same interceptors,
// connection and limits, and does nothing else, so the ratio of the two is what
// deciding costs on top of the transport. Only the load command's servers
// (startLocal, ServeOnly) register it; `sendguard serve` knows nothing of it.

// echoMethod is the full method name of the echo stream.
const echoMethod = "/sendguard.bench.Echo/Stream"

// echoStreamDesc describes the echo stream for ClientConn.NewStream.
var echoStreamDesc = grpc.StreamDesc{StreamName: "Stream", ServerStreams: true, ClientStreams: true}

var echoService = grpc.ServiceDesc{
	ServiceName: "sendguard.bench.Echo",
	HandlerType: (*any)(nil),
	Streams: []grpc.StreamDesc{{
		StreamName:    echoStreamDesc.StreamName,
		Handler:       benchEcho,
		ServerStreams: true,
		ClientStreams: true,
	}},
	Metadata: "bench-only (no .proto)",
}

// registerEcho registers the echo service on a server's gRPC server, before it
// serves (gRPC refuses registrations once serving).
func registerEcho(g *grpc.Server) { g.RegisterService(&echoService, nil) }

// benchEcho answers each CheckSendRequest with a CheckSendResponse carrying its
// request_id, an ALLOW and the phone as given: the size of an ALLOW answer.
func benchEcho(_ any, stream grpc.ServerStream) error {
	for {
		req := new(sgv1.CheckSendRequest)
		if err := stream.RecvMsg(req); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		resp := &sgv1.CheckSendResponse{
			RequestId: req.GetRequestId(),
			Verdict:   sgv1.Verdict_VERDICT_ALLOW,
			PhoneE164: req.GetPhone(),
		}
		if err := stream.SendMsg(resp); err != nil {
			return err
		}
	}
}
