package server

import (
	"bytes"
	"context"
	"net/http"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/fieldmaskpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/sendguard/sendguard/client"
	sgv1 "github.com/sendguard/sendguard/proto/sendguard/v1"
)

// apiPair is two fresh servers on one fixed clock: one called over gRPC, the
// other over JSON on its API port. Fed the same requests, each over its own
// protocol, they must give the same answers.
type apiPair struct {
	clock *fakeClock
	grpc  *client.Client
	json  *Server
}

func newAPIPair(t *testing.T) *apiPair {
	t.Helper()
	clock := &fakeClock{t: t0}
	fixed := func(c *Config) { c.Now = clock.Now }
	return &apiPair{clock: clock, grpc: dialServer(t, runServer(t, fixed)), json: runServer(t, fixed)}
}

// jsonInvoke calls method over JSON as a Connect client would, the request in
// protojson, and decodes the answer into resp.
func jsonInvoke(t testing.TB, srv *Server, method string, req, resp proto.Message) {
	t.Helper()
	body, err := protojson.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	code, b := apiPost(t, srv, "sendguard.v1.SendGuard/"+method, "", string(body))
	if code != http.StatusOK {
		t.Fatalf("%s over JSON: %d %s", method, code, b)
	}
	if err := protojson.Unmarshal(b, resp); err != nil {
		t.Fatalf("%s over JSON: %v in %s", method, err, b)
	}
}

// same calls method with req on both servers and fails the test unless the
// answers are proto.Equal; it returns the gRPC answer.
func same[R proto.Message](t *testing.T, p *apiPair, method string, req proto.Message, newResp func() R) R {
	t.Helper()
	viaGRPC, viaJSON := newResp(), newResp()
	if err := p.grpc.Conn().Invoke(context.Background(), "/sendguard.v1.SendGuard/"+method, req, viaGRPC); err != nil {
		t.Fatalf("%s over gRPC: %v", method, err)
	}
	jsonInvoke(t, p.json, method, req, viaJSON)
	if !proto.Equal(viaGRPC, viaJSON) {
		t.Fatalf("%s: gRPC and JSON differ\ngRPC: %v\nJSON: %v", method, viaGRPC, viaJSON)
	}
	return viaGRPC
}

// feed gives both servers the same history, comparing every answer on the
// way: a 131049 for one number, an inbound STOP from another, an opt-out, a
// reservation, a policy with a cap of one marketing send a day.
func (p *apiPair) feed(t *testing.T) {
	t.Helper()
	same(t, p, "SetPolicy", &sgv1.SetPolicyRequest{BusinessId: "acme",
		Policy:     &sgv1.Policy{FrequencyCaps: []*sgv1.FrequencyCap{{Count: 1, Window: durationpb.New(24 * time.Hour)}}},
		UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"frequency_caps"}}}, newMsg[*sgv1.SetPolicyResponse])
	same(t, p, "ReportResult", failed("+5511987650001", 131049, t0.Add(-time.Hour)), newMsg[*sgv1.ReportResultResponse])
	same(t, p, "ReportInbound", &sgv1.ReportInboundRequest{BusinessId: "acme", Phone: "+5511987650002", MessageId: "wamid.in1",
		Text: "STOP", Timestamp: timestamppb.New(t0.Add(-time.Minute))}, newMsg[*sgv1.ReportInboundResponse])
	same(t, p, "SetOptOut", &sgv1.SetOptOutRequest{BusinessId: "acme", Phone: "+5511987650003", OptedOut: true, Reason: "asked by phone"},
		newMsg[*sgv1.SetOptOutResponse])
	r := marketing("+5511987650004")
	r.Reserve, r.MessageRef = true, "ref-4"
	same(t, p, "CheckSend", r, newMsg[*sgv1.CheckSendResponse])
	p.clock.Advance(time.Minute)
}

// newMsg returns a new message of type R.
func newMsg[R proto.Message]() R {
	var r R
	return r.ProtoReflect().Type().New().Interface().(R)
}

// phones are the numbers the history names, and one it does not.
var pairPhones = []string{"+5511987650001", "+5511987650002", "+5511987650003", "+5511987650004", "+5511987650005"}

func TestAPIEqualCheckSend(t *testing.T) {
	p := newAPIPair(t)
	p.feed(t)
	for _, phone := range pairPhones {
		for _, c := range []sgv1.Category{sgv1.Category_CATEGORY_MARKETING, sgv1.Category_CATEGORY_UTILITY} {
			r := marketing(phone)
			r.Category, r.RequestId = c, phone+c.String()
			same(t, p, "CheckSend", r, newMsg[*sgv1.CheckSendResponse])
		}
	}
	// A DEFER carries its reasons and retry_at the same way over both.
	if resp := same(t, p, "CheckSend", marketing(pairPhones[0]), newMsg[*sgv1.CheckSendResponse]); resp.GetVerdict() != sgv1.Verdict_VERDICT_DEFER || resp.GetRetryAt() == nil {
		t.Fatalf("the 131049 did not defer: %v", resp)
	}
}

func TestAPIEqualCheckSendBatch(t *testing.T) {
	p := newAPIPair(t)
	p.feed(t)
	req := &sgv1.CheckSendBatchRequest{Requests: batchRows()}
	for _, phone := range pairPhones {
		r := marketing(phone)
		r.Reserve, r.MessageRef = true, "batch-"+phone
		req.Requests = append(req.Requests, r)
	}
	resp := same(t, p, "CheckSendBatch", req, newMsg[*sgv1.CheckSendBatchResponse])
	if len(resp.GetResponses()) != len(req.GetRequests()) {
		t.Fatalf("%d answers for %d rows", len(resp.GetResponses()), len(req.GetRequests()))
	}
}

func TestAPIEqualReportResult(t *testing.T) {
	p := newAPIPair(t)
	p.feed(t)
	for i, status := range []sgv1.MessageStatus{sgv1.MessageStatus_MESSAGE_STATUS_SENT, sgv1.MessageStatus_MESSAGE_STATUS_DELIVERED, sgv1.MessageStatus_MESSAGE_STATUS_READ} {
		req := &sgv1.ReportResultRequest{BusinessId: "acme", Phone: "551187650004", MessageId: "wamid.out4", MessageRef: "ref-4",
			Status: status, Timestamp: timestamppb.New(t0.Add(time.Duration(i) * time.Second))}
		same(t, p, "ReportResult", req, newMsg[*sgv1.ReportResultResponse])
		same(t, p, "ReportResult", req, newMsg[*sgv1.ReportResultResponse]) // a duplicate
	}
}

func TestAPIEqualReportInbound(t *testing.T) {
	p := newAPIPair(t)
	p.feed(t)
	for _, text := range []string{"hi", "START", "STOP"} {
		same(t, p, "ReportInbound", &sgv1.ReportInboundRequest{BusinessId: "acme", Phone: "+5511987650002", MessageId: "wamid." + text,
			Text: text, Timestamp: timestamppb.New(t0)}, newMsg[*sgv1.ReportInboundResponse])
	}
}

func TestAPIEqualGetContact(t *testing.T) {
	p := newAPIPair(t)
	p.feed(t)
	for _, phone := range pairPhones {
		same(t, p, "GetContact", &sgv1.GetContactRequest{BusinessId: "acme", Phone: phone}, newMsg[*sgv1.GetContactResponse])
	}
}

func TestAPIEqualSetOptOut(t *testing.T) {
	p := newAPIPair(t)
	p.feed(t)
	for _, out := range []bool{false, true, false} {
		same(t, p, "SetOptOut", &sgv1.SetOptOutRequest{BusinessId: "acme", Phone: "+5511987650003", OptedOut: out, Reason: "form"},
			newMsg[*sgv1.SetOptOutResponse])
		same(t, p, "GetContact", &sgv1.GetContactRequest{BusinessId: "acme", Phone: "+5511987650003"}, newMsg[*sgv1.GetContactResponse])
	}
}

func TestAPIEqualForgetContact(t *testing.T) {
	p := newAPIPair(t)
	p.feed(t)
	for _, phone := range pairPhones {
		same(t, p, "ForgetContact", &sgv1.ForgetContactRequest{BusinessId: "acme", Phone: phone}, newMsg[*sgv1.ForgetContactResponse])
		same(t, p, "GetContact", &sgv1.GetContactRequest{BusinessId: "acme", Phone: phone}, newMsg[*sgv1.GetContactResponse])
	}
}

func TestAPIEqualGetPolicy(t *testing.T) {
	p := newAPIPair(t)
	p.feed(t)
	for _, b := range []string{"acme", "globex"} {
		same(t, p, "GetPolicy", &sgv1.GetPolicyRequest{BusinessId: b}, newMsg[*sgv1.GetPolicyResponse])
	}
}

func TestAPIEqualSetPolicy(t *testing.T) {
	p := newAPIPair(t)
	p.feed(t)
	same(t, p, "SetPolicy", &sgv1.SetPolicyRequest{BusinessId: "acme", Policy: &sgv1.Policy{
		RequireOptIn: proto.Bool(true), QuietHours: &sgv1.QuietHours{Start: "21:00", End: "08:00"},
		OptOutKeywords: []string{"BAJA", "PARAR"}, ShadowRules: []sgv1.Rule{sgv1.Rule_RULE_QUIET_HOURS},
	}}, newMsg[*sgv1.SetPolicyResponse])
	same(t, p, "GetPolicy", &sgv1.GetPolicyRequest{BusinessId: "acme"}, newMsg[*sgv1.GetPolicyResponse])
	same(t, p, "CheckSend", marketing("+5511987650005"), newMsg[*sgv1.CheckSendResponse])
}

// TestAPIEqualCheckSendStream: the stream over the Connect streaming protocol
// (HTTP/2) answers as over gRPC, row for row.
func TestAPIEqualCheckSendStream(t *testing.T) {
	p := newAPIPair(t)
	p.feed(t)
	rows := batchRows()
	st, err := p.grpc.CheckStream(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var body bytes.Buffer
	for _, r := range rows {
		if err := st.Send(r); err != nil {
			t.Fatal(err)
		}
		b, _ := protojson.Marshal(r)
		body.Write(envelope(0, b))
	}
	st.CloseSend()
	h2c := &http.Client{Transport: &http.Transport{Protocols: new(http.Protocols)}}
	h2c.Transport.(*http.Transport).Protocols.SetUnencryptedHTTP2(true)
	resp, err := h2c.Post("http://"+p.json.APIAddr()+"/sendguard.v1.SendGuard/CheckSendStream", "application/connect+json", &body)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	frames := readEnvelopes(t, resp.Body)
	if len(frames) != len(rows)+1 {
		t.Fatalf("%d frames for %d rows", len(frames), len(rows))
	}
	for i := range rows {
		viaGRPC, err := st.Recv()
		if err != nil {
			t.Fatal(err)
		}
		var viaJSON sgv1.CheckSendResponse
		if err := protojson.Unmarshal(frames[i].data, &viaJSON); err != nil {
			t.Fatal(err)
		}
		if !proto.Equal(viaGRPC, &viaJSON) {
			t.Fatalf("row %d: gRPC %v\nJSON %v", i, viaGRPC, &viaJSON)
		}
	}
}
