package webhook

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

func FuzzParse(f *testing.F) {
	files, err := filepath.Glob(filepath.Join("testdata", "*.json"))
	if err != nil || len(files) == 0 {
		f.Fatalf("no seeds: %v", err)
	}
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add(statusBatch(3))
	f.Add([]byte(`{"object":"whatsapp_business_account","entry":[{"changes":[{"field":"calls","value":{"metadata":{"phone_number_id":"1"},"calls":[{"id":"wacid.1","from":"BR.ENT.1","event":"connect","direction":"user_initiated","timestamp":1.7e9}]}}]}]}`))
	known := map[string]bool{}
	for _, r := range Reasons() {
		known[r] = true
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		evs, st, err := Parse(body)
		if err != nil {
			if evs != nil || st.Skipped != nil {
				t.Fatalf("events or stats returned with error %v", err)
			}
			return
		}
		if len(evs) > MaxEvents {
			t.Fatalf("%d events", len(evs))
		}
		for reason, n := range st.Skipped {
			if n <= 0 || !known[reason] {
				t.Fatalf("Skipped[%q] = %d: not a positive count of a reason of Reasons()", reason, n)
			}
		}
		for i, e := range evs {
			if e.Kind < KindStatus || e.Kind > KindQuality {
				t.Fatalf("event %d has no kind: %+v", i, e)
			}
			if e.Kind == KindAccountRestriction || e.Kind == KindAccountBan {
				if e.WABAID == "" || len(e.WABAID) > MaxPhoneNumberIDLen || e.Restriction == "" && e.BanState == "" ||
					len(e.Restriction) > MaxShortLen || len(e.BanState) > MaxShortLen || e.PhoneNumberID != "" {
					t.Fatalf("account event %d is malformed: %+v", i, e)
				}
				continue
			}
			if e.Kind >= KindTemplateStatus {
				if e.WABAID == "" || len(e.WABAID) > MaxPhoneNumberIDLen || e.PhoneNumberID != "" ||
					(e.Kind == KindTemplateStatus || e.Kind == KindTemplateCategory) && (e.Template == "" || len(e.Template) > MaxShortLen) ||
					e.Kind == KindCapability && e.Tier == 0 {
					t.Fatalf("account event %d is malformed: %+v", i, e)
				}
				continue
			}
			if e.PhoneNumberID == "" || e.Phone == "" && e.UserID == "" {
				t.Fatalf("event %d lacks an identity: %+v", i, e)
			}
			if e.Kind == KindIdentityChange && e.NewPhone == "" && e.NewUserID == "" {
				t.Fatalf("identity change %d names no new identity: %+v", i, e)
			}
			if len(e.Phone) > MaxPhoneLen || len(e.UserID) > MaxUserIDLen || len(e.MessageID) > MaxMessageIDLen ||
				len(e.NewPhone) > MaxPhoneLen || len(e.NewUserID) > MaxUserIDLen {
				t.Fatalf("event %d has a field over its limit: %+v", i, e)
			}
			if e.Kind != KindUserPreference && e.MessageID == "" {
				t.Fatalf("event %d has no message id: %+v", i, e)
			}
			if !e.Timestamp.IsZero() && e.Timestamp.Location().String() != "UTC" {
				t.Fatalf("event %d time not UTC: %v", i, e.Timestamp)
			}
		}
	})
}

func FuzzVerify(f *testing.F) {
	f.Add([]byte(`{"object":"whatsapp_business_account","entry":[]}`), []byte("secret"), "sha256=00")
	f.Add([]byte{}, []byte{0}, "")
	f.Add([]byte("body"), []byte("k"), "sha256="+string(bytes.Repeat([]byte("a"), 64)))
	f.Fuzz(func(t *testing.T, body, key []byte, header string) {
		_ = Verify(body, header, key) // must not panic
		if len(key) > 0 && !Verify(body, Sign(body, key), key) {
			t.Fatalf("Verify(b, Sign(b, k), k) = false")
		}
		if len(key) == 0 && Verify(body, header, key) {
			t.Fatalf("Verify accepted an empty key")
		}
	})
}
