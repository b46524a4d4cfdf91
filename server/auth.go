package server

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// APIKey is one configured API key: only its SHA-256 is kept (keys are 32 random
// bytes, so a plain hash is enough; `sendguard keygen` makes one).
type APIKey struct {
	// Name identifies the key in logs.
	Name string
	// SHA256 is the hex SHA-256 of the key.
	SHA256 string
	// Businesses are the business_ids the key may act for; "*" means all.
	Businesses []string
	// Admin lets the key read and change policies and forget contacts.
	Admin bool
}

// principal is the caller an API key authenticated.
type principal struct {
	key *APIKey
}

type principalKey struct{}

// adminMethods need the admin scope.
var adminMethods = map[string]bool{
	"/sendguard.v1.SendGuard/GetPolicy":        true,
	"/sendguard.v1.SendGuard/SetPolicy":        true,
	"/sendguard.v1.SendGuard/ForgetContact":    true,
	"/sendguard.v1.SendGuard/ClearRestriction": true,
}

// authenticated methods: everything of SendGuard; health and reflection stay open
// (they say nothing about any business).
func needsAuth(method string) bool { return strings.HasPrefix(method, "/sendguard.v1.SendGuard/") }

// keyIndex finds API keys by the hash of the presented key.
type keyIndex map[string]*APIKey

func newKeyIndex(keys []APIKey) (keyIndex, error) {
	idx := keyIndex{}
	for i := range keys {
		k := &keys[i]
		h := strings.ToLower(strings.TrimSpace(k.SHA256))
		if b, err := hex.DecodeString(h); err != nil || len(b) != sha256.Size {
			return nil, fmt.Errorf("api_keys[%d] (%s): sha256 must be 64 hex digits", i, k.Name)
		}
		if len(k.Businesses) == 0 {
			return nil, fmt.Errorf("api_keys[%d] (%s): businesses is empty (use [\"*\"] for all)", i, k.Name)
		}
		if _, dup := idx[h]; dup {
			return nil, fmt.Errorf("api_keys[%d] (%s): the same key is listed twice", i, k.Name)
		}
		idx[h] = k
	}
	return idx, nil
}

// HashAPIKey returns the hex SHA-256 that the config keeps for key.
func HashAPIKey(key string) string {
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:])
}

// authenticate finds the caller's key from "authorization: Bearer <key>".
func (s *Server) authenticate(ctx context.Context) (context.Context, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	vals := md.Get("authorization")
	if len(vals) == 0 {
		return nil, status.Error(codes.Unauthenticated, "missing API key: send metadata \"authorization: Bearer <key>\"")
	}
	token, ok := strings.CutPrefix(vals[0], "Bearer ")
	if !ok {
		return nil, status.Error(codes.Unauthenticated, "authorization must be \"Bearer <key>\"")
	}
	k := s.keys[HashAPIKey(strings.TrimSpace(token))]
	if k == nil {
		return nil, status.Error(codes.Unauthenticated, "unknown API key")
	}
	return context.WithValue(ctx, principalKey{}, &principal{key: k}), nil
}

// authorize checks that the caller may act for business (and, for admin methods,
// holds the admin scope). Without configured keys everything is allowed: the
// server then listens on loopback only.
func (s *Server) authorize(ctx context.Context, business string, admin bool) error {
	if len(s.keys) == 0 {
		return nil
	}
	p, _ := ctx.Value(principalKey{}).(*principal)
	if p == nil {
		return status.Error(codes.Unauthenticated, "missing API key")
	}
	if admin && !p.key.Admin {
		return status.Errorf(codes.PermissionDenied, "API key %q has no admin scope", p.key.Name)
	}
	if !slices.Contains(p.key.Businesses, "*") && !slices.Contains(p.key.Businesses, business) {
		return status.Errorf(codes.PermissionDenied, "API key %q may not act for business_id %q", p.key.Name, business)
	}
	return nil
}

// businessRequest is every SendGuard request: each names one business.
type businessRequest interface{ GetBusinessId() string }

// unaryAuth authenticates SendGuard calls and checks the request's business.
func (s *Server) unaryAuth(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if len(s.keys) == 0 || !needsAuth(info.FullMethod) {
		return handler(ctx, req)
	}
	ctx, err := s.authenticate(ctx)
	if err != nil {
		return nil, err
	}
	// A request that could not be decoded is refused by unaryBadRequest next,
	// not judged by its garbled business_id.
	if br, ok := req.(businessRequest); ok && !undecoded(req) {
		if err := s.authorize(ctx, br.GetBusinessId(), adminMethods[info.FullMethod]); err != nil {
			return nil, err
		}
	}
	return handler(ctx, req)
}

// streamAuth authenticates a stream; each row's business is checked by the
// handler (a row of another business gets PERMISSION_DENIED, the stream goes on).
func (s *Server) streamAuth(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	if len(s.keys) == 0 || !needsAuth(info.FullMethod) {
		return handler(srv, ss)
	}
	ctx, err := s.authenticate(ss.Context())
	if err != nil {
		return err
	}
	return handler(srv, &authedStream{ServerStream: ss, ctx: ctx})
}

type authedStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (a *authedStream) Context() context.Context { return a.ctx }

// requireLoopback refuses a non-loopback listen address when no API keys are
// configured: an unauthenticated sendguard must not be reachable from a network.
func requireLoopback(what, addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	if host == "localhost" {
		return nil
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		return errors.New(what + " address " + addr + " is not a loopback address, and no API keys are configured: " +
			"an unauthenticated sendguard must not be reachable from a network. Configure api_keys (see README, Guarantees) " +
			"or listen on 127.0.0.1")
	}
	return nil
}
