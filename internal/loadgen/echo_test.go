package loadgen

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"

	sgv1 "github.com/sendguard/sendguard/proto/sendguard/v1"
	"github.com/sendguard/sendguard/server"
	"github.com/sendguard/sendguard/storage/badger"
)

// TestBenchEcho: the echo baseline answers each row with its request_id, an
// ALLOW and the phone, in order, only on a server it was registered on; a
// server built the ordinary way does not serve it.
func TestBenchEcho(t *testing.T) {
	for _, enabled := range []bool{false, true} {
		t.Run(fmt.Sprintf("bench=%v", enabled), func(t *testing.T) {
			st, err := badger.Open(badger.Options{InMemory: true})
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			cfg := server.DefaultConfig()
			cfg.HashSecret, cfg.Logger = []byte("echo-test-secret"), slog.New(slog.DiscardHandler)
			srv, err := server.New(st, cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer srv.Close()
			if enabled {
				registerEcho(srv.GRPCServer())
			}
			lis := bufconn.Listen(1 << 20)
			go func() { _ = srv.GRPCServer().Serve(lis) }()
			conn, err := grpc.NewClient("passthrough:///bufnet",
				grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
				grpc.WithTransportCredentials(insecure.NewCredentials()))
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			stream, err := conn.NewStream(context.Background(), &echoStreamDesc, echoMethod)
			if err != nil {
				t.Fatal(err)
			}
			for _, id := range []string{"a", "b", "c"} {
				if err := stream.SendMsg(&sgv1.CheckSendRequest{RequestId: id, Phone: "+5511987654321"}); err != nil && !errors.Is(err, io.EOF) {
					t.Fatal(err)
				}
			}
			_ = stream.CloseSend()
			if !enabled {
				if err := stream.RecvMsg(new(sgv1.CheckSendResponse)); status.Code(err) != codes.Unimplemented {
					t.Fatalf("echo served without bench mode: %v", err)
				}
				return
			}
			for _, id := range []string{"a", "b", "c"} {
				resp := new(sgv1.CheckSendResponse)
				if err := stream.RecvMsg(resp); err != nil {
					t.Fatal(err)
				}
				if resp.GetRequestId() != id || resp.GetVerdict() != sgv1.Verdict_VERDICT_ALLOW || resp.GetPhoneE164() != "+5511987654321" {
					t.Fatalf("echo of %s: %v", id, resp)
				}
			}
			if err := stream.RecvMsg(new(sgv1.CheckSendResponse)); !errors.Is(err, io.EOF) {
				t.Fatalf("end of echo: %v", err)
			}
		})
	}
}
