// Package client is a small Go client for sendguard: it dials with sane defaults,
// puts a deadline on every call, and has one typed helper per RPC.
package client

import (
	"context"
	"crypto/tls"
	"errors"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	sgv1 "github.com/sendguard/sendguard/proto/sendguard/v1"
)

// DefaultTimeout is the deadline of a call whose context has none.
const DefaultTimeout = 5 * time.Second

// Options configure a Client. Exactly one of Insecure and TLS must be set: the
// client never falls back to plaintext on its own.
type Options struct {
	// Insecure dials without transport security (a loopback or trusted network).
	Insecure bool
	// TLS dials with this TLS configuration.
	TLS *tls.Config
	// APIKey, when set, is sent with every call as "authorization: Bearer <key>".
	APIKey string
	// Timeout is the deadline of unary calls whose context has none (default
	// DefaultTimeout). Streams take their deadline from their context only.
	Timeout time.Duration
	// DialOptions are passed to grpc.NewClient after the client's own.
	DialOptions []grpc.DialOption
}

// Client talks to one sendguard server.
type Client struct {
	conn    *grpc.ClientConn
	api     sgv1.SendGuardClient
	timeout time.Duration
}

// Dial connects to addr ("host:port"). The connection is made lazily and reused by
// every call; Close releases it.
func Dial(addr string, o Options) (*Client, error) {
	var creds credentials.TransportCredentials
	switch {
	case o.Insecure && o.TLS != nil:
		return nil, errors.New("client: set Insecure or TLS, not both")
	case o.Insecure:
		creds = insecure.NewCredentials()
	case o.TLS != nil:
		creds = credentials.NewTLS(o.TLS)
	default:
		return nil, errors.New("client: no transport security configured; set TLS, or Insecure for plaintext")
	}
	opts := []grpc.DialOption{grpc.WithTransportCredentials(creds)}
	if o.APIKey != "" {
		opts = append(opts, grpc.WithPerRPCCredentials(bearer{key: o.APIKey, secure: o.TLS != nil}))
	}
	opts = append(opts, o.DialOptions...)
	conn, err := grpc.NewClient(addr, opts...)
	if err != nil {
		return nil, err
	}
	c := New(conn, o.Timeout)
	return c, nil
}

// New wraps an existing connection (e.g. a bufconn in tests). Close closes conn.
func New(conn *grpc.ClientConn, timeout time.Duration) *Client {
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	return &Client{conn: conn, api: sgv1.NewSendGuardClient(conn), timeout: timeout}
}

// API returns the generated client, for calls the helpers do not cover.
func (c *Client) API() sgv1.SendGuardClient { return c.api }

// Conn returns the underlying connection.
func (c *Client) Conn() *grpc.ClientConn { return c.conn }

// Close closes the connection.
func (c *Client) Close() error { return c.conn.Close() }

func (c *Client) ctx(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, c.timeout)
}

// Check judges one planned send (CheckSend).
func (c *Client) Check(ctx context.Context, req *sgv1.CheckSendRequest) (*sgv1.CheckSendResponse, error) {
	ctx, cancel := c.ctx(ctx)
	defer cancel()
	return c.api.CheckSend(ctx, req)
}

// CheckStream opens a CheckSendStream; the stream lives as long as ctx.
func (c *Client) CheckStream(ctx context.Context) (sgv1.SendGuard_CheckSendStreamClient, error) {
	return c.api.CheckSendStream(ctx)
}

// CheckBatch judges up to 1,000 planned sends in one call (CheckSendBatch): one
// answer per request, in order; a request that could not be judged gets an answer
// carrying Error.
func (c *Client) CheckBatch(ctx context.Context, reqs []*sgv1.CheckSendRequest) ([]*sgv1.CheckSendResponse, error) {
	ctx, cancel := c.ctx(ctx)
	defer cancel()
	resp, err := c.api.CheckSendBatch(ctx, &sgv1.CheckSendBatchRequest{Requests: reqs})
	return resp.GetResponses(), err
}

// Report records what happened to a send (ReportResult).
func (c *Client) Report(ctx context.Context, req *sgv1.ReportResultRequest) (*sgv1.ReportResultResponse, error) {
	ctx, cancel := c.ctx(ctx)
	defer cancel()
	return c.api.ReportResult(ctx, req)
}

// Inbound records a message or call from the user (ReportInbound).
func (c *Client) Inbound(ctx context.Context, req *sgv1.ReportInboundRequest) (*sgv1.ReportInboundResponse, error) {
	ctx, cancel := c.ctx(ctx)
	defer cancel()
	return c.api.ReportInbound(ctx, req)
}

// Contact returns everything known about a recipient (GetContact).
func (c *Client) Contact(ctx context.Context, req *sgv1.GetContactRequest) (*sgv1.Contact, error) {
	ctx, cancel := c.ctx(ctx)
	defer cancel()
	resp, err := c.api.GetContact(ctx, req)
	if err != nil {
		return nil, err
	}
	return resp.GetContact(), nil
}

// SetOptOut records an opt-out (optedOut) or an opt-in.
func (c *Client) SetOptOut(ctx context.Context, req *sgv1.SetOptOutRequest) (*sgv1.SetOptOutResponse, error) {
	ctx, cancel := c.ctx(ctx)
	defer cancel()
	return c.api.SetOptOut(ctx, req)
}

// Forget erases a recipient (ForgetContact).
func (c *Client) Forget(ctx context.Context, req *sgv1.ForgetContactRequest) (*sgv1.ForgetContactResponse, error) {
	ctx, cancel := c.ctx(ctx)
	defer cancel()
	return c.api.ForgetContact(ctx, req)
}

// Policy returns a business's effective policy and overrides (GetPolicy).
func (c *Client) Policy(ctx context.Context, businessID string) (*sgv1.GetPolicyResponse, error) {
	ctx, cancel := c.ctx(ctx)
	defer cancel()
	return c.api.GetPolicy(ctx, &sgv1.GetPolicyRequest{BusinessId: businessID})
}

// SetPolicy changes a business's policy (SetPolicy).
func (c *Client) SetPolicy(ctx context.Context, req *sgv1.SetPolicyRequest) (*sgv1.SetPolicyResponse, error) {
	ctx, cancel := c.ctx(ctx)
	defer cancel()
	return c.api.SetPolicy(ctx, req)
}

// bearer sends an API key as "authorization: Bearer <key>". Over plaintext it is
// only what the caller asked for (Insecure: a loopback or trusted network).
type bearer struct {
	key    string
	secure bool
}

func (b bearer) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + b.key}, nil
}

func (b bearer) RequireTransportSecurity() bool { return b.secure }
