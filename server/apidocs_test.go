package server

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strings"
	"testing"

	rpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/descriptorpb"

	sgv1 "github.com/sendguard/sendguard/proto/sendguard/v1"
)

// TestOpenAPIServed: the API port serves the generated OpenAPI document, which
// has a Connect route for every unary RPC, with the proto's comments.
func TestOpenAPIServed(t *testing.T) {
	srv := runServer(t, nil)
	resp, err := http.Get("http://" + srv.APIAddr() + OpenAPIPath)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	doc, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || !bytes.Equal(doc, sgv1.OpenAPI) || len(doc) == 0 {
		t.Fatalf("%s: %d bytes", resp.Status, len(doc))
	}
	methods := sgv1.File_sendguard_v1_sendguard_proto.Services().Get(0).Methods()
	for i := range methods.Len() {
		m := methods.Get(i)
		route := "/sendguard.v1.SendGuard/" + string(m.Name()) + ":"
		if m.IsStreamingClient() != strings.Contains(string(doc), route) {
			continue
		}
		t.Errorf("%s: in the document %v, streaming %v", m.Name(), strings.Contains(string(doc), route), m.IsStreamingClient())
	}
	for _, comment := range []string{"CheckSend judges one planned send", "The sends to judge: at most 1,000"} {
		if !bytes.Contains(doc, []byte(comment)) {
			t.Errorf("the document lacks the proto's comment %q", comment)
		}
	}
}

// TestReflectionHasComments: reflection serves the .proto with its comments
// (what `grpcurl describe` prints), and still serves the health service's.
func TestReflectionHasComments(t *testing.T) {
	h := newHarness(t)
	st, err := rpb.NewServerReflectionClient(h.c.Conn()).ServerReflectionInfo(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer st.CloseSend()
	file := func(symbol string) *descriptorpb.FileDescriptorProto {
		t.Helper()
		if err := st.Send(&rpb.ServerReflectionRequest{MessageRequest: &rpb.ServerReflectionRequest_FileContainingSymbol{FileContainingSymbol: symbol}}); err != nil {
			t.Fatal(err)
		}
		resp, err := st.Recv()
		if err != nil {
			t.Fatal(err)
		}
		fds := resp.GetFileDescriptorResponse().GetFileDescriptorProto()
		if len(fds) == 0 {
			t.Fatalf("%s: %v", symbol, resp)
		}
		var fd descriptorpb.FileDescriptorProto
		if err := proto.Unmarshal(fds[0], &fd); err != nil {
			t.Fatal(err)
		}
		return &fd
	}
	var comments []string
	for _, loc := range file("sendguard.v1.SendGuard").GetSourceCodeInfo().GetLocation() {
		comments = append(comments, loc.GetLeadingComments())
	}
	if !strings.Contains(strings.Join(comments, "\n"), "CheckSend judges one planned send") {
		t.Errorf("sendguard.proto without its comments (%d locations)", len(comments))
	}
	if fd := file("grpc.health.v1.Health"); fd.GetPackage() != "grpc.health.v1" {
		t.Errorf("health: %v", fd.GetName())
	}
}
