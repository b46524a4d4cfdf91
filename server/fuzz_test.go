package server

import (
	"context"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	sgv1 "github.com/sendguard/sendguard/proto/sendguard/v1"
	"github.com/sendguard/sendguard/storage/badger"
)

// FuzzRequests feeds arbitrary requests to the handlers (validation, identity
// with any region, rules, storage): every call either answers or fails with
// INVALID_ARGUMENT, never panics or fails otherwise, and a check always carries a
// verdict.
func FuzzRequests(f *testing.F) {
	f.Add("acme", "+5511987654321", "", "", int32(1), "promo", "ref", int64(0), true, int32(5), int32(131049), "STOP")
	f.Add("acme", "5215512345678", "BR.1502576394655843", "MX", int32(4), "", "", int64(-86400), false, int32(2), int32(0), "hi")
	f.Add("", "not a phone", "US.ENT.x", "ZZ", int32(9), "t", "r", int64(1<<40), true, int32(7), int32(-1), "")
	f.Add("a\x00b", "+1 (650) 555-1234", "", "us", int32(0), "\xff", "", int64(0), false, int32(1), int32(132016), "Baja")
	f.Add("acme", "(31) 99551-1909", "", "BR", int32(1), "promo", "ref", int64(0), false, int32(2), int32(0), "PARAR")
	f.Add("acme", "011 44 7700 900123", "", "US", int32(2), "", "", int64(0), false, int32(2), int32(0), "")
	f.Add("acme", "+11951373735", "", "", int32(2), "", "", int64(0), false, int32(2), int32(0), "")
	st, err := badger.Open(badger.Options{InMemory: true})
	if err != nil {
		f.Fatal(err)
	}
	defer st.Close()
	cfg := DefaultConfig()
	cfg.HashSecret, cfg.Logger = testHashSecret, discardLogger()
	cfg.Now = func() time.Time { return t0 }
	s, err := New(st, cfg)
	if err != nil {
		f.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	ok := func(t *testing.T, what string, err error) {
		if err != nil && status.Code(err) != codes.InvalidArgument {
			t.Fatalf("%s: %v", what, err)
		}
	}
	f.Fuzz(func(t *testing.T, business, phone, userID, region string, category int32, template, ref string, offset int64,
		reserve bool, statusCode, errorCode int32, text string) {
		var sendAt *timestamppb.Timestamp
		if offset != 0 {
			sendAt = timestamppb.New(t0.Add(time.Duration(offset) * time.Second))
		}
		resp, err := s.CheckSend(ctx, &sgv1.CheckSendRequest{BusinessId: business, Phone: phone, UserId: userID, Region: region,
			Category: sgv1.Category(category), Template: template, MessageRef: ref, SendAt: sendAt, Reserve: reserve})
		ok(t, "CheckSend", err)
		if err == nil && resp.GetVerdict() == sgv1.Verdict_VERDICT_UNSPECIFIED {
			t.Fatalf("CheckSend answered without a verdict: %v", resp)
		}
		_, err = s.ReportResult(ctx, &sgv1.ReportResultRequest{BusinessId: business, Phone: phone, UserId: userID, Region: region, MessageId: ref,
			MessageRef: template, Status: sgv1.MessageStatus(statusCode), ErrorCode: errorCode, Category: sgv1.Category(category),
			Template: template, Timestamp: sendAt})
		ok(t, "ReportResult", err)
		_, err = s.ReportInbound(ctx, &sgv1.ReportInboundRequest{BusinessId: business, Phone: phone, UserId: userID, Region: region, MessageId: ref,
			Text: text, Timestamp: sendAt})
		ok(t, "ReportInbound", err)
		_, err = s.GetContact(ctx, &sgv1.GetContactRequest{BusinessId: business, Phone: phone, UserId: userID, Region: region})
		ok(t, "GetContact", err)
	})
}
