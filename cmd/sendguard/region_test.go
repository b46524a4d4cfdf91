package main

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"

	sgv1 "github.com/sendguard/sendguard/proto/sendguard/v1"
)

// regionRecorder keeps the region of every request that names a phone, by
// method, as the server got it.
type regionRecorder struct {
	mu  sync.Mutex
	got map[string][]string
}

func (r *regionRecorder) intercept(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if m, ok := req.(interface {
		GetPhone() string
		GetRegion() string
	}); ok && m.GetPhone() != "" {
		r.mu.Lock()
		r.got[info.FullMethod] = append(r.got[info.FullMethod], m.GetRegion())
		r.mu.Unlock()
	}
	return handler(ctx, req)
}

// take returns what was recorded since the last take.
func (r *regionRecorder) take() map[string][]string {
	r.mu.Lock()
	defer r.mu.Unlock()
	got := r.got
	r.got = map[string][]string{}
	return got
}

// TestRegionFlag: --region of check, report, inbound, contact, forget, optout,
// optin and optout --in reaches the server as each request's region field (and
// no region is sent without it).
func TestRegionFlag(t *testing.T) {
	t.Setenv(envAPIKey, "")
	s := startInProcess(t, goldenT0)
	rec := &regionRecorder{got: map[string][]string{}}
	g := grpc.NewServer(grpc.UnaryInterceptor(rec.intercept))
	sgv1.RegisterSendGuardServer(g, s.srv)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = g.Serve(lis) }()
	t.Cleanup(g.Stop)
	// Each region's run has its own numbers, so that optout finds none opted out.
	phones := map[string]string{"BR": "+5511987650060", "": "+5511987650061"}
	dir := t.TempDir()
	for region, phone := range phones {
		if err := os.WriteFile(filepath.Join(dir, "list"+region+".csv"), []byte("phone\n"+phone+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	const phone, list = "PHONE", "LIST"
	const svc = "/sendguard.v1.SendGuard/"
	for _, tc := range []struct {
		name    string
		mk      func() *cobra.Command
		args    []string
		methods []string // the calls that name the phone
	}{
		{"check", checkCmd, []string{phone, "--business", "acme"}, []string{"CheckSend"}},
		{"report", reportCmd, []string{"--business", "acme", "--phone", phone, "--message-id", "w.60", "--status", "delivered"}, []string{"ReportResult"}},
		{"inbound", inboundCmd, []string{"--business", "acme", "--phone", phone, "--message-id", "in.60", "--text", "hi"}, []string{"ReportInbound"}},
		{"contact", contactCmd, []string{phone, "--business", "acme"}, []string{"GetContact"}},
		{"optout", optOutCmd, []string{phone, "--business", "acme"}, []string{"GetContact", "SetOptOut"}},
		{"optin", optInCmd, []string{phone, "--business", "acme"}, []string{"GetContact", "SetOptOut"}},
		{"optout --in", optOutCmd, []string{"--in", list, "--business", "acme"}, []string{"GetContact", "SetOptOut"}},
		{"forget", forgetCmd, []string{phone, "--business", "acme"}, []string{"GetContact", "ForgetContact"}},
	} {
		for _, region := range []string{"BR", ""} {
			args := replaceArg(tc.args, phone, phones[region])
			args = replaceArg(args, list, filepath.Join(dir, "list"+region+".csv"))
			args = append(args, "--addr", lis.Addr().String())
			if region != "" {
				args = append(args, "--region", region)
			}
			if _, stderr, err := runCmd(t, tc.mk(), args...); err != nil {
				t.Fatalf("%s %v: %v\n%s", tc.name, args, err, stderr)
			}
			got := rec.take()
			for _, m := range tc.methods {
				if regions := got[svc+m]; len(regions) != 1 || regions[0] != region {
					t.Errorf("%s --region %q: %s got regions %q, want [%q]", tc.name, region, m, regions, region)
				}
				delete(got, svc+m)
			}
			if len(got) > 0 {
				t.Errorf("%s: other calls %v", tc.name, got)
			}
		}
	}
}
