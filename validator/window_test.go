package validator

import (
	"testing"
	"time"

	sgv1 "github.com/sendguard/sendguard/proto/sendguard/v1"
)

func TestServiceWindow(t *testing.T) {
	closed := "DENY SERVICE_WINDOW 131047 -"
	tests := []struct {
		name        string
		setup       func(f *fixture)
		cat         sgv1.Category
		when        time.Time
		want        want
		windowUntil time.Time
	}{
		{"never wrote", func(*fixture) {}, svc, t0, denied(closed), time.Time{}},
		{"templates need no window", func(*fixture) {}, util, t0, allowed(), time.Time{}},
		{"open after a message", func(f *fixture) { f.inbound(t0) }, svc, at(23*hour + 59*time.Minute), allowed(), at(24 * hour)},
		{"open after a call", func(f *fixture) {
			ApplyInbound(&f.rel, &f.facts, &f.pol, Inbound{Kind: sgv1.InboundKind_INBOUND_KIND_CALL, At: t0})
		}, svc, at(hour), allowed(), at(24 * hour)},
		{"closed 24h later", func(f *fixture) { f.inbound(t0) }, svc, at(24 * hour), denied(closed), time.Time{}},
		{"closed early by a 131047", func(f *fixture) { f.inbound(t0); f.fail(svc, 131047, at(2*hour)) }, svc, at(3 * hour), denied(closed), time.Time{}},
		{"open until the 131047", func(f *fixture) { f.inbound(t0); f.fail(svc, 131047, at(2*hour)) }, svc, at(hour), allowed(), at(2 * hour)},
		{"reopened by a later message", func(f *fixture) {
			f.inbound(t0)
			f.fail(svc, 131047, at(2*hour))
			f.inbound(at(4 * hour))
		}, svc, at(5 * hour), allowed(), at(28 * hour)},
		{"a 131047 before the last message changes nothing", func(f *fixture) {
			f.fail(svc, 131047, at(-hour))
			f.inbound(t0)
		}, svc, at(hour), allowed(), at(24 * hour)},
		{"an older inbound does not move it back", func(f *fixture) { f.inbound(at(2 * hour)); f.inbound(t0) }, svc, at(25 * hour), allowed(), at(26 * hour)},
		{"rule off with a zero window", func(f *fixture) { f.pol.ServiceWindow = 0 }, svc, t0, allowed(), time.Time{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture()
			tc.setup(f)
			d := f.decide(tc.cat, tc.when)
			checkDecision(t, d, tc.want)
			if !d.WindowUntil.Equal(tc.windowUntil) {
				t.Errorf("WindowUntil %s, want %s", fmtT(d.WindowUntil), fmtT(tc.windowUntil))
			}
		})
	}
}
