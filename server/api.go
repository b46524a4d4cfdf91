package server

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"time"

	"connectrpc.com/connect"
	"connectrpc.com/vanguard"
	"connectrpc.com/vanguard/vanguardgrpc"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/sendguard/sendguard/console"
	sgv1 "github.com/sendguard/sendguard/proto/sendguard/v1"
)

// The API port serves every RPC as JSON over HTTP — the Connect protocol
// (POST /sendguard.v1.SendGuard/<Method>, Content-Type: application/json,
// protojson names) and gRPC-Web — with Connect's Vanguard transcoder in front of
// the one grpc.Server: a request is transcoded to gRPC and served by
// grpc.Server.ServeHTTP, through the same interceptors (recovery, metrics,
// logging, API keys and scopes, bad requests, default deadline) and the same
// handlers as a call on the gRPC port, and its answer (or its gRPC status,
// mapped to an HTTP status as Connect defines) is transcoded back. Plain gRPC
// works there too, over HTTP/2. The port also serves /admin/backup, the
// OpenAPI document, the operator console (/console/, package console) and a
// copy of /metrics for it. It is not the webhook port (DESIGN.md, "Reaching it
// from every stack"): that one sits behind Meta-facing proxies, which make
// every caller look local.
//
// What gRPC's own transport bounds is bounded here by the HTTP server and
// apiCalls: connections (MaxConnections, closed at once beyond), calls in
// progress (the same MaxConcurrentCalls counter as gRPC's), calls per HTTP/2
// connection (MaxConcurrentStreams) with the same fixed flow-control windows,
// one request body (maxRecvMsgSize, RESOURCE_EXHAUSTED beyond), and the time a
// unary call may take to send its body (DefaultDeadline).

// DefaultAPIAddr is the default of Config.APIAddr.
const DefaultAPIAddr = "127.0.0.1:8081"

// apiMaxBuffer bounds what the transcoder buffers of one message in either
// direction: a response's JSON is larger than its protobuf (maxSendMsgSize).
const apiMaxBuffer = 4 * maxSendMsgSize

// APIAddr returns the bound API address, or "" when the API is off.
func (s *Server) APIAddr() string {
	if s.apiLis == nil {
		return ""
	}
	return s.apiLis.Addr().String()
}

// APIHandler returns the API port's handler (tests serve it themselves).
func (s *Server) APIHandler() (http.Handler, error) { return s.apiHandler() }

// apiHandler is the API port's handler: the transcoder behind apiCalls,
// /admin/backup, the OpenAPI document, the console and /metrics.
func (s *Server) apiHandler() (http.Handler, error) {
	tc, err := vanguardgrpc.NewTranscoder(s.grpc,
		vanguard.WithDefaultServiceOptions(vanguard.WithMaxMessageBufferBytes(apiMaxBuffer)),
		vanguard.WithCodec(newAPIJSON),
	)
	if err != nil {
		return nil, fmt.Errorf("api: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+BackupPath, s.handleBackup)
	mux.HandleFunc("GET "+OpenAPIPath, serveOpenAPI)
	hosts := console.NewHosts(s.cfg.APIAddr, s.cfg.ConsoleHosts)
	mux.Handle("GET "+console.Path, hosts.Check(console.Handler()))
	mux.Handle("GET /metrics", hosts.Check(s.apiMetrics()))
	mux.Handle("/", s.apiCalls(tc))
	if len(s.keys) == 0 {
		// Without API keys nothing but the loopback binding guards the port, and
		// a page whose own name points at 127.0.0.1 (DNS rebinding) is same-origin
		// with it: its script could call every RPC and read /admin/backup. The
		// Host check refuses such a name on every path. (With keys, a caller
		// needs a key, which such a page does not have; the API then answers to
		// any name a proxy or load balancer gives it.)
		return hosts.Check(mux), nil
	}
	return mux, nil
}

// apiMetrics is the API port's read-only copy of the HTTP port's /metrics, for
// the console's live page (which cannot read another origin under its CSP).
// With API keys configured it takes any known key (the metrics name no
// business): a missing or unknown one is 401 with the Connect error body that
// the API answers.
func (s *Server) apiMetrics() http.Handler {
	h := promhttp.HandlerFor(s.metrics.registry, promhttp.HandlerOpts{})
	errw := connect.NewErrorWriter()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if len(s.keys) > 0 {
			md := metadata.MD{}
			if a := r.Header.Get("Authorization"); a != "" {
				md.Set("authorization", a)
			}
			if _, err := s.authenticate(metadata.NewIncomingContext(r.Context(), md)); err != nil {
				// The error writer answers JSON to a request that is not gRPC.
				r.Header.Set("Content-Type", "application/json")
				_ = errw.Write(w, r, connect.NewError(connect.CodeUnauthenticated, errors.New(status.Convert(err).Message())))
				return
			}
		}
		h.ServeHTTP(w, r)
	})
}

// apiJSON is the transcoder's JSON codec (protojson, unknown fields ignored)
// with two changes. Answers leave out fields at their zero value, as Connect's
// own servers and grpcurl do (the transcoder writes every field, unset
// messages as null). A request that does not decode (broken JSON, a string
// where a number goes, a timestamp that is not RFC 3339) is INVALID_ARGUMENT,
// as gRPC answers a malformed request, instead of the transcoder's UNKNOWN (500).
type apiJSON struct{ *vanguard.JSONCodec }

func newAPIJSON(res vanguard.TypeResolver) vanguard.Codec {
	c := vanguard.NewJSONCodec(res)
	c.MarshalOptions.EmitUnpopulated = false
	return apiJSON{c}
}

// Unmarshal decodes a JSON request; see apiJSON.
func (c apiJSON) Unmarshal(b []byte, m proto.Message) error {
	if err := c.JSONCodec.Unmarshal(b, m); err != nil {
		return connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("request body: %w", err))
	}
	return nil
}

// OpenAPIPath serves the OpenAPI document of the JSON API, generated from the
// .proto (tools/apidocs).
const OpenAPIPath = "/openapi.yaml"

func serveOpenAPI(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/yaml")
	_, _ = w.Write(sgv1.OpenAPI)
}

// listenAPI binds the API port, when there is one.
func (s *Server) listenAPI() error {
	if s.cfg.APIAddr == "" {
		return nil
	}
	h, err := s.apiHandler()
	if err != nil {
		return err
	}
	lis, err := net.Listen("tcp", s.cfg.APIAddr)
	if err != nil {
		return fmt.Errorf("api listen: %w", err)
	}
	s.apiLis = newLimitListener(lis, s.cfg.MaxConnections)
	s.api = &http.Server{
		Handler:           h,
		ReadHeaderTimeout: httpReadHeaderTimeout,
		IdleTimeout:       httpIdleTimeout,
		MaxHeaderBytes:    httpMaxHeaderBytes,
		Protocols:         new(http.Protocols),
		HTTP2: &http.HTTP2Config{
			MaxConcurrentStreams:          int(s.cfg.MaxConcurrentStreams),
			MaxReceiveBufferPerStream:     initialWindowSize,
			MaxReceiveBufferPerConnection: initialConnWindowSize,
		},
	}
	s.api.Protocols.SetHTTP1(true)
	if s.cfg.TLS.CertFile != "" {
		if s.api.TLSConfig, err = tlsConfig(s.cfg.TLS); err != nil {
			return errors.Join(err, s.apiLis.Close())
		}
		s.api.Protocols.SetHTTP2(true)
	} else {
		// HTTP/2 without TLS (prior knowledge), for bidi streams and gRPC
		// clients on loopback.
		s.api.Protocols.SetUnencryptedHTTP2(true)
	}
	return nil
}

// serveAPI serves the API port until it is shut down.
func (s *Server) serveAPI() error {
	var err error
	if s.api.TLSConfig != nil {
		err = s.api.ServeTLS(s.apiLis, "", "") // the certificate is in TLSConfig
	} else {
		err = s.api.Serve(s.apiLis)
	}
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// shutdownAPI stops the API port: no new calls; those in progress get grace to
// finish (as gRPC's streams do), then are cut. The returned channel is closed
// once it has stopped.
func (s *Server) shutdownAPI(grace time.Duration) <-chan struct{} {
	done := make(chan struct{})
	if s.api == nil {
		close(done)
		return done
	}
	go func() {
		defer close(done)
		ctx, cancel := context.WithTimeout(context.Background(), grace)
		defer cancel()
		if err := s.api.Shutdown(ctx); err != nil {
			_ = s.api.Close()
		}
	}()
	return done
}

// apiCalls admits the calls of the API port as gRPC's transport admits its own
// (grpc.Server.ServeHTTP has no tap): each counts against MaxConcurrentCalls
// (health checks excepted; a call refused is UNAVAILABLE before its body is
// read), and a unary call's body is bounded to maxRecvMsgSize
// (RESOURCE_EXHAUSTED) and must arrive within DefaultDeadline. Refusals are
// written in the caller's protocol (Connect, gRPC-Web or gRPC).
func (s *Server) apiCalls(next http.Handler) http.Handler {
	streams := clientStreams(s)
	errw := connect.NewErrorWriter()
	refuse := func(w http.ResponseWriter, r *http.Request, err error) {
		st := status.Convert(err)
		_ = errw.Write(w, r, connect.NewError(connect.Code(st.Code()), errors.New(st.Message())))
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		method := r.URL.Path
		if !streams[method] {
			connectUnary(r)
		}
		if !s.calls.methods[method] {
			next.ServeHTTP(w, r) // the health check, or not a method (the transcoder answers 404)
			return
		}
		if !s.calls.take() {
			refuse(w, r, errBusy)
			return
		}
		defer s.calls.give()
		if !streams[method] {
			if err := s.readUnaryBody(w, r); err != nil {
				refuse(w, r, err)
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// readUnaryBody reads a unary call's body before it is transcoded (the
// transcoder would buffer it whole all the same), so that a body over
// maxAPIBody is RESOURCE_EXHAUSTED however it is sent (a Content-Length over it
// is refused before reading), and a body that does not arrive within
// DefaultDeadline is DEADLINE_EXCEEDED.
func (s *Server) readUnaryBody(w http.ResponseWriter, r *http.Request) error {
	if r.ContentLength > maxAPIBody {
		return errBodyTooLarge
	}
	rc := http.NewResponseController(w)
	// An error means no deadline can be set (a test's recorder).
	_ = rc.SetReadDeadline(time.Now().Add(s.cfg.DefaultDeadline))
	body, err := io.ReadAll(io.LimitReader(r.Body, maxAPIBody+1))
	if err != nil && r.ProtoMajor == 1 {
		// Close the connection after the answer: otherwise the server would
		// wait for the rest of the body before answering.
		w.Header().Set("Connection", "close")
	}
	if err == nil {
		_ = rc.SetReadDeadline(time.Time{})
	}
	switch {
	case errors.Is(err, os.ErrDeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, "request body not received within the deadline")
	case err != nil:
		return status.Error(codes.Canceled, "request body not received: "+err.Error())
	case len(body) > maxAPIBody:
		return errBodyTooLarge
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	r.ContentLength = int64(len(body))
	return nil
}

// connectUnary marks a unary POST of application/json (or application/proto)
// as the Connect protocol's, as Connect's own servers take it: the transcoder
// takes such a POST without the Connect-Protocol-Version header for a REST call
// (of which this service has none, so it would be a 404), and plain curl does
// not send the header.
func connectUnary(r *http.Request) {
	if r.Method != http.MethodPost || r.Header.Get("Connect-Protocol-Version") != "" {
		return
	}
	switch r.Header.Get("Content-Type") {
	case "application/json", "application/json; charset=utf-8", "application/proto":
		r.Header.Set("Connect-Protocol-Version", "1")
	}
}

// maxAPIBody bounds a unary call's body on the API port: one request
// (maxRecvMsgSize) and gRPC-Web's 5-byte frame header.
const maxAPIBody = maxRecvMsgSize + 5

var errBodyTooLarge = status.Errorf(codes.ResourceExhausted, "request body is larger than %d bytes (one request is at most 1 MiB)", maxRecvMsgSize)

// clientStreams are the methods whose requests are streams (their bodies are
// not bounded as one request).
func clientStreams(s *Server) map[string]bool {
	out := map[string]bool{}
	for svc, info := range s.grpc.GetServiceInfo() {
		for _, m := range info.Methods {
			if m.IsClientStream {
				out["/"+svc+"/"+m.Name] = true
			}
		}
	}
	return out
}

// handleBackupMoved answers the webhook port's old /admin/backup: 410 Gone,
// saying where the backup is now. Not a redirect: the backup holds every
// business's data, and the webhook port is the one put behind public proxies,
// which make every caller look local; a client following a redirect from there
// would only hide that it is pointed at the wrong port.
func (s *Server) handleBackupMoved(w http.ResponseWriter, _ *http.Request) {
	http.Error(w, "gone: "+BackupPath+" moved to the API port (api_addr, --api-addr; default "+DefaultAPIAddr+
		"): run `sendguard backup --api-addr HOST:PORT`", http.StatusGone)
}
