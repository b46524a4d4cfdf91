package server

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	sgv1 "github.com/sendguard/sendguard/proto/sendguard/v1"
)

// apiPost POSTs a JSON body to an RPC on the API port, as curl would (no
// Connect-Protocol-Version header), with an API key unless key is "".
func apiPost(t testing.TB, srv *Server, method, key, body string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, "http://"+srv.APIAddr()+"/"+method, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b
}

// connectError is the Connect protocol's error body.
type connectError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// wantError fails the test unless an answer is the HTTP status and Connect
// error code given, with a message containing msg.
func wantError(t testing.TB, what string, code int, body []byte, wantCode int, wantErr, msg string) {
	t.Helper()
	var e connectError
	if err := json.Unmarshal(body, &e); err != nil || code != wantCode || e.Code != wantErr || !strings.Contains(e.Message, msg) {
		t.Errorf("%s: %d %s; want %d %s %q", what, code, body, wantCode, wantErr, msg)
	}
}

const checkJSON = `{"business_id":"acme","phone":"+5511987654321","category":"CATEGORY_MARKETING","template":"promo"}`

// TestAPIConnectJSON: every unary RPC answers JSON (protojson names) on the API
// port; errors are Connect's JSON with gRPC's code mapped to an HTTP status.
func TestAPIConnectJSON(t *testing.T) {
	srv := runServer(t, nil)
	code, body := apiPost(t, srv, "sendguard.v1.SendGuard/CheckSend", "", checkJSON)
	var resp sgv1.CheckSendResponse
	if err := protojson.Unmarshal(body, &resp); code != 200 || err != nil || resp.GetVerdict() != sgv1.Verdict_VERDICT_ALLOW || resp.GetPhoneE164() != "+5511987654321" {
		t.Fatalf("CheckSend: %d %s (%v)", code, body, err)
	}
	if !bytes.Contains(body, []byte(`"phoneE164"`)) {
		t.Errorf("answer not in protojson names: %s", body)
	}
	code, body = apiPost(t, srv, "sendguard.v1.SendGuard/CheckSend", "", `{"business_id":"acme","phone":"+5511987654321"}`)
	wantError(t, "no category", code, body, 400, "invalid_argument", "category is required")
	code, body = apiPost(t, srv, "sendguard.v1.SendGuard/CheckSend", "", `{"business_id":`)
	wantError(t, "broken JSON", code, body, 400, "invalid_argument", "request body")
	code, body = apiPost(t, srv, "sendguard.v1.SendGuard/CheckSend", "", `{"business_id":5}`)
	wantError(t, "a number for a string", code, body, 400, "invalid_argument", "businessId")
	code, body = apiPost(t, srv, "sendguard.v1.SendGuard/NoSuchMethod", "", `{}`)
	if code != 404 {
		t.Errorf("unknown method: %d %s", code, body)
	}
	// The health check answers JSON too.
	if code, body := apiPost(t, srv, "grpc.health.v1.Health/Check", "", `{}`); code != 200 || !bytes.Contains(body, []byte("SERVING")) {
		t.Errorf("health: %d %s", code, body)
	}
}

// TestAPIStreams: CheckSendStream is a bidi stream: over HTTP/1.1 it is
// refused 505 (HTTP Version Not Supported; plain text, from the transcoder)
// before anything is read; over HTTP/2 (here without TLS, with prior knowledge)
// the Connect streaming protocol runs it, one answer per row, in order.
func TestAPIStreams(t *testing.T) {
	srv := runServer(t, nil)
	url := "http://" + srv.APIAddr() + "/sendguard.v1.SendGuard/CheckSendStream"
	var rows bytes.Buffer
	for _, id := range []string{"a", "b"} {
		msg := fmt.Sprintf(`{"request_id":%q,"business_id":"acme","phone":"+5511987654321","category":"CATEGORY_UTILITY"}`, id)
		rows.Write(envelope(0, []byte(msg)))
	}
	resp, err := http.Post(url, "application/connect+json", bytes.NewReader(rows.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusHTTPVersionNotSupported || !strings.Contains(string(b), "HTTP/2") {
		t.Errorf("bidi over HTTP/1.1: %s %s", resp.Status, b)
	}

	h2c := &http.Client{Transport: &http.Transport{Protocols: new(http.Protocols)}}
	h2c.Transport.(*http.Transport).Protocols.SetUnencryptedHTTP2(true)
	resp, err = h2c.Post(url, "application/connect+json", bytes.NewReader(rows.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	frames := readEnvelopes(t, resp.Body)
	if resp.ProtoMajor != 2 || len(frames) != 3 {
		t.Fatalf("over HTTP/2: %s, %d frames", resp.Proto, len(frames))
	}
	for i, id := range []string{"a", "b"} {
		var r sgv1.CheckSendResponse
		if err := protojson.Unmarshal(frames[i].data, &r); err != nil || r.GetRequestId() != id || r.GetVerdict() != sgv1.Verdict_VERDICT_ALLOW {
			t.Errorf("row %d: %s (%v)", i, frames[i].data, err)
		}
	}
	if end := frames[2]; end.flags&2 == 0 || string(bytes.TrimSpace(end.data)) != "{}" {
		t.Errorf("end of stream: flags %d, %s", end.flags, end.data)
	}
}

// envelope is one message of Connect's streaming protocol or of gRPC-Web: a
// flags byte, a 4-byte length and the message.
func envelope(flags byte, msg []byte) []byte {
	b := []byte{flags, 0, 0, 0, 0}
	binary.BigEndian.PutUint32(b[1:], uint32(len(msg)))
	return append(b, msg...)
}

type frame struct {
	flags byte
	data  []byte
}

func readEnvelopes(t testing.TB, r io.Reader) []frame {
	t.Helper()
	var out []frame
	br := bufio.NewReader(r)
	for {
		var head [5]byte
		if _, err := io.ReadFull(br, head[:]); err == io.EOF {
			return out
		} else if err != nil {
			t.Fatal(err)
		}
		data := make([]byte, binary.BigEndian.Uint32(head[1:]))
		if _, err := io.ReadFull(br, data); err != nil {
			t.Fatal(err)
		}
		out = append(out, frame{head[0], data})
	}
}

// TestAPIGRPCWeb: a gRPC-Web call (binary protobuf, as a browser's client sends
// it) gets the same answer as over gRPC, with grpc-status in the trailer frame.
func TestAPIGRPCWeb(t *testing.T) {
	srv := runServer(t, nil)
	req := &sgv1.CheckSendRequest{BusinessId: "acme", Phone: brPhone, Category: sgv1.Category_CATEGORY_UTILITY, RequestId: "web"}
	raw, _ := proto.Marshal(req)
	hr, _ := http.NewRequest(http.MethodPost, "http://"+srv.APIAddr()+"/sendguard.v1.SendGuard/CheckSend", bytes.NewReader(envelope(0, raw)))
	hr.Header.Set("Content-Type", "application/grpc-web+proto")
	hr.Header.Set("X-Grpc-Web", "1")
	resp, err := http.DefaultClient.Do(hr)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	frames := readEnvelopes(t, resp.Body)
	if resp.StatusCode != 200 || len(frames) != 2 || frames[1].flags&0x80 == 0 || !strings.Contains(strings.ToLower(string(frames[1].data)), "grpc-status: 0") {
		t.Fatalf("gRPC-Web: %s %v", resp.Status, frames)
	}
	var got sgv1.CheckSendResponse
	if err := proto.Unmarshal(frames[0].data, &got); err != nil || got.GetRequestId() != "web" || got.GetVerdict() != sgv1.Verdict_VERDICT_ALLOW {
		t.Fatalf("gRPC-Web answer: %v %v", &got, err)
	}
}

// TestAPIKeys: the API port takes the same API keys and scopes as gRPC
// (Authorization: Bearer), answered with Connect's codes and HTTP statuses;
// health stays open.
func TestAPIKeys(t *testing.T) {
	srv := runServer(t, func(c *Config) {
		c.APIKeys = []APIKey{
			{Name: "acme", SHA256: HashAPIKey(keyAcme), Businesses: []string{"acme"}},
			{Name: "acme-admin", SHA256: HashAPIKey(keyAdmin), Businesses: []string{"acme"}, Admin: true},
		}
	})
	const check = "sendguard.v1.SendGuard/CheckSend"
	code, body := apiPost(t, srv, check, "", checkJSON)
	wantError(t, "no key", code, body, 401, "unauthenticated", "missing API key")
	code, body = apiPost(t, srv, check, "not-a-key", checkJSON)
	wantError(t, "unknown key", code, body, 401, "unauthenticated", "unknown API key")
	code, body = apiPost(t, srv, check, keyAcme, strings.Replace(checkJSON, "acme", "globex", 1))
	wantError(t, "another business", code, body, 403, "permission_denied", `business_id "globex"`)
	code, body = apiPost(t, srv, "sendguard.v1.SendGuard/GetPolicy", keyAcme, `{"business_id":"acme"}`)
	wantError(t, "no admin scope", code, body, 403, "permission_denied", "no admin scope")
	if code, body := apiPost(t, srv, "sendguard.v1.SendGuard/GetPolicy", keyAdmin, `{"business_id":"acme"}`); code != 200 {
		t.Errorf("admin key: %d %s", code, body)
	}
	if code, body := apiPost(t, srv, check, keyAcme, checkJSON); code != 200 {
		t.Errorf("acme key: %d %s", code, body)
	}
	// A batch row of another business is that row's PERMISSION_DENIED.
	code, body = apiPost(t, srv, "sendguard.v1.SendGuard/CheckSendBatch", keyAcme,
		`{"requests":[`+checkJSON+`,`+strings.Replace(checkJSON, "acme", "globex", 1)+`]}`)
	var batch sgv1.CheckSendBatchResponse
	if err := protojson.Unmarshal(body, &batch); code != 200 || err != nil || len(batch.GetResponses()) != 2 ||
		batch.GetResponses()[0].GetError() != nil || codes.Code(batch.GetResponses()[1].GetError().GetCode()) != codes.PermissionDenied {
		t.Errorf("batch: %d %s", code, body)
	}
	if code, body := apiPost(t, srv, "grpc.health.v1.Health/Check", "", `{}`); code != 200 {
		t.Errorf("health without a key: %d %s", code, body)
	}
}

// TestAPIBodyLimit: a body over 1 MiB is RESOURCE_EXHAUSTED (429, as Connect
// maps it), whether its length is announced or it is sent chunked; gRPC refuses
// such a request the same way.
func TestAPIBodyLimit(t *testing.T) {
	srv := runServer(t, nil)
	big := strings.Replace(checkJSON, `"promo"`, `"`+strings.Repeat("x", maxRecvMsgSize)+`"`, 1)
	code, body := apiPost(t, srv, "sendguard.v1.SendGuard/CheckSend", "", big)
	wantError(t, "announced", code, body, 429, "resource_exhausted", "larger than 1048576 bytes")

	req, _ := http.NewRequest(http.MethodPost, "http://"+srv.APIAddr()+"/sendguard.v1.SendGuard/CheckSend",
		io.MultiReader(strings.NewReader(big))) // no length: sent chunked
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if req.ContentLength != 0 || len(resp.TransferEncoding) != 0 && resp.TransferEncoding[0] != "chunked" {
		t.Fatalf("the request was not sent chunked")
	}
	wantError(t, "chunked", resp.StatusCode, b, 429, "resource_exhausted", "larger than 1048576 bytes")

	// Below the limit, the request is read and judged (its template is too long).
	under := strings.Replace(checkJSON, `"promo"`, `"`+strings.Repeat("x", maxRecvMsgSize-200)+`"`, 1)
	code, body = apiPost(t, srv, "sendguard.v1.SendGuard/CheckSend", "", under)
	wantError(t, "under the limit", code, body, 400, "invalid_argument", "template is")
	_, err = dialServer(t, srv).Check(context.Background(), &sgv1.CheckSendRequest{BusinessId: "acme", Phone: brPhone,
		Category: sgv1.Category_CATEGORY_UTILITY, Template: strings.Repeat("x", maxRecvMsgSize)})
	if status.Code(err) != codes.ResourceExhausted {
		t.Errorf("gRPC: %v", err)
	}
}

// TestAPIBusy: calls on the API port count against max_concurrent_calls with
// gRPC's: past it a call is UNAVAILABLE (503) before its body is read; the
// health check is still answered.
func TestAPIBusy(t *testing.T) {
	srv := runServer(t, func(c *Config) { c.MaxConcurrentCalls = 1 })
	ctx, cancel := context.WithCancel(context.Background())
	c := dialServer(t, srv)
	st, err := c.CheckStream(ctx) // holds the only call
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Send(marketing(brPhone)); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Recv(); err != nil {
		t.Fatal(err)
	}
	code, body := apiPost(t, srv, "sendguard.v1.SendGuard/CheckSend", "", checkJSON)
	wantError(t, "busy", code, body, 503, "unavailable", "server busy")
	if code, body := apiPost(t, srv, "grpc.health.v1.Health/Check", "", `{}`); code != 200 {
		t.Errorf("health while busy: %d %s", code, body)
	}
	cancel()
	waitFor(t, "the stream's call to end", func() bool { return srv.calls.n.Load() == 0 })
	if code, body := apiPost(t, srv, "sendguard.v1.SendGuard/CheckSend", "", checkJSON); code != 200 {
		t.Errorf("after the stream: %d %s", code, body)
	}
	if srv.calls.refused.Load() != 1 {
		t.Errorf("%d refusals counted, want 1", srv.calls.refused.Load())
	}
}

// TestAPIBodyDeadline: a unary call whose body does not arrive within the
// default deadline is DEADLINE_EXCEEDED (504) and gives its call back.
func TestAPIBodyDeadline(t *testing.T) {
	srv := runServer(t, func(c *Config) { c.DefaultDeadline = 200 * time.Millisecond })
	conn, err := net.Dial("tcp", srv.APIAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST /sendguard.v1.SendGuard/CheckSend HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"business_id\"")
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	wantError(t, "stalled body", resp.StatusCode, b, 504, "deadline_exceeded", "request body not received")
	waitFor(t, "the call to be given back", func() bool { return srv.calls.n.Load() == 0 })
}

// apiPostHost is apiPost under another Host header, as a page whose own name
// points at 127.0.0.1 (DNS rebinding) would send it.
func apiPostHost(t testing.TB, srv *Server, host, path, key, body string) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, "http://"+srv.APIAddr()+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Host = host
	req.Header.Set("Content-Type", "application/json")
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestAPIHostCheck: without API keys the API port answers only to loopback
// names, the API address's host and console_hosts, on every path (RPCs and
// /admin/backup included), so that a DNS-rebinding page cannot call it as
// same-origin; with keys, an RPC with a key answers under any name.
func TestAPIHostCheck(t *testing.T) {
	srv := runServer(t, func(c *Config) { c.ConsoleHosts = []string{"sendguard.internal"} })
	const check = "/sendguard.v1.SendGuard/CheckSend"
	for host, want := range map[string]int{
		"rebound.example:8081": http.StatusMisdirectedRequest,
		"rebound.example":      http.StatusMisdirectedRequest,
		"127.0.0.1:8081":       http.StatusOK,
		"localhost":            http.StatusOK,
		"[::1]:8081":           http.StatusOK,
		"sendguard.internal":   http.StatusOK,
	} {
		if got := apiPostHost(t, srv, host, check, "", checkJSON); got != want {
			t.Errorf("CheckSend under Host %q: %d, want %d", host, got, want)
		}
	}
	req, _ := http.NewRequest(http.MethodGet, "http://"+srv.APIAddr()+BackupPath, http.NoBody)
	req.Host = "rebound.example"
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMisdirectedRequest {
		t.Errorf("backup under another Host: %s", resp.Status)
	}

	keyed := runServer(t, func(c *Config) {
		c.APIKeys = []APIKey{{Name: "acme", SHA256: HashAPIKey(keyAcme), Businesses: []string{"acme"}}}
	})
	if got := apiPostHost(t, keyed, "api.example.com", check, keyAcme, checkJSON); got != http.StatusOK {
		t.Errorf("with keys, CheckSend under another name: %d", got)
	}
}
