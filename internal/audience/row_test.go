package audience

import (
	"strings"
	"testing"
	"time"

	sgv1 "github.com/sendguard/sendguard/proto/sendguard/v1"
)

// TestSummary: the summary counts rows by verdict, by rule and by class
// (the classification itself is tested in classify_test.go).
func TestSummary(t *testing.T) {
	deny, deferV, allow := sgv1.Verdict_VERDICT_DENY, sgv1.Verdict_VERDICT_DEFER, sgv1.Verdict_VERDICT_ALLOW
	o := &Options{Reserve: true}
	s := newSummary(o)
	for _, r := range []*row{
		{resp: &sgv1.CheckSendResponse{Verdict: allow}},
		{resp: &sgv1.CheckSendResponse{Verdict: allow, Duplicate: true}},
		{errMsg: "no phone"},
		{resp: &sgv1.CheckSendResponse{Error: &sgv1.RowError{Code: 3, Message: "phone is 70 bytes"}}},
		{resp: &sgv1.CheckSendResponse{Verdict: deny, Reasons: []*sgv1.Reason{reason(sgv1.Rule_RULE_OPTED_OUT, 131050, false)}}},
		{resp: &sgv1.CheckSendResponse{Verdict: deny, Reasons: []*sgv1.Reason{reason(sgv1.Rule_RULE_OPTED_OUT, 0, false)}}},
		{resp: &sgv1.CheckSendResponse{Verdict: deny, Reasons: []*sgv1.Reason{reason(sgv1.Rule_RULE_INVALID_NUMBER, 0, false)}}},
		{resp: &sgv1.CheckSendResponse{Verdict: deferV, Reasons: []*sgv1.Reason{reason(sgv1.Rule_RULE_FREQUENCY_CAP, 0, false), reason(sgv1.Rule_RULE_ECOSYSTEM_LIMIT, 131049, false)}}},
	} {
		s.add(r)
	}
	if s.Rows != 8 || s.verdicts["ALLOW"] != 1 || s.verdicts[verdictDuplicate] != 1 || s.verdicts[verdictError] != 2 ||
		s.verdicts["DENY"] != 3 || s.verdicts["DEFER"] != 1 || s.doomed != 3 || s.unwanted != 1 || s.reserved != 1 || s.invalid != 1 {
		t.Fatalf("summary %+v", s)
	}
	if oo := s.rules[sgv1.Rule_RULE_OPTED_OUT]; oo.doomed != 1 || oo.unwanted != 1 {
		t.Errorf("OPTED_OUT %+v", oo)
	}
	if s.codes[131050] != 1 || s.codes[131049] != 1 || len(s.codes) != 2 {
		t.Errorf("codes %v", s.codes)
	}
}

// TestRowRef: --ref-key row names a row's send CAMPAIGN/row-N, hashed when
// longer than the server takes.
func TestRowRef(t *testing.T) {
	if got := rowRef(&Options{Template: "bf"}, 7); got != "bf/row-7" {
		t.Errorf("template: %q", got)
	}
	if got := rowRef(&Options{Template: "bf", Campaign: "nov"}, 7); got != "nov/row-7" {
		t.Errorf("campaign: %q", got)
	}
	long := &Options{Campaign: strings.Repeat("c", 300)}
	if ref := rowRef(long, 1); len(ref) > maxRefLen || !strings.HasPrefix(ref, "sha256:") || ref == rowRef(long, 2) {
		t.Errorf("long ref %q", ref)
	}
}

// TestNewRow: a row's request carries the run's region, and with Reserve the
// campaign the server derives the message_ref from.
func TestNewRow(t *testing.T) {
	o := &Options{Business: "acme", Region: "BR", Reserve: true, Template: "t"}
	cols := Columns{Width: 1, Phone: 0, UserID: -1}
	if r := newRow(o, cols, 1, Record{Fields: []string{"(31) 99551-1909"}, Line: 2, Lines: 1}); r.req.GetRegion() != "BR" ||
		r.req.GetCampaignId() != "t" || r.req.GetMessageRef() != "" || !r.req.GetReserve() {
		t.Fatalf("request %v", r.req)
	}
}

func TestCeilSecond(t *testing.T) {
	base := time.Date(2026, 11, 28, 9, 0, 0, 0, time.UTC)
	if got := ceilSecond(base); !got.Equal(base) {
		t.Errorf("%v", got)
	}
	if got := ceilSecond(base.Add(time.Nanosecond)); !got.Equal(base.Add(time.Second)) {
		t.Errorf("%v", got)
	}
	if got := ceilSecond(base.Add(999 * time.Millisecond).In(time.FixedZone("x", 3600))); got.Location() != time.UTC || !got.Equal(base.Add(time.Second)) {
		t.Errorf("%v", got)
	}
}
