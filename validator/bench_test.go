package validator

import (
	"fmt"
	"testing"
	"time"
)

// history is a contact with a realistic past: three marketing sends in the last
// ten days (sent and delivered), a 131049 cooldown long over, and a window that
// closed days ago.
func history() *fixture {
	f := newFixture()
	f.chk.Zones = []*time.Location{brt}
	f.chk.Template = "promo"
	f.inbound(at(-4 * 24 * hour))
	for i, d := range []time.Duration{-10 * 24 * hour, -6 * 24 * hour, -2 * 24 * hour} {
		ref := string(rune('a' + i))
		f.reserve(mkt, "promo", at(d), ref)
		f.result(Result{Status: sent, Ref: ref, MessageID: "wamid." + ref, At: at(d + sec)})
		f.result(Result{Status: delivered, MessageID: "wamid." + ref, Category: mkt, At: at(d + 5*sec)})
	}
	f.fail(mkt, 131049, at(-9*24*hour))
	return f
}

func BenchmarkDecide(b *testing.B) {
	b.Run("fresh", func(b *testing.B) {
		f := newFixture()
		in := f.input(mkt, t0)
		in.Check.Template = "promo"
		b.ReportAllocs()
		for b.Loop() {
			if Decide(in).Verdict != allow {
				b.Fatal("not allowed")
			}
		}
	})
	b.Run("history", func(b *testing.B) {
		f := history()
		in := f.input(mkt, t0)
		in.Check.Template = "promo"
		b.ReportAllocs()
		for b.Loop() {
			if Decide(in).Verdict != allow {
				b.Fatal(summary(Decide(in)))
			}
		}
	})
	b.Run("history-two-senders", func(b *testing.B) {
		// The history of "history" from two senders of the business (the
		// window and every other send with A, the rest with B), checked from A:
		// what per-sender state costs a check.
		f := newFixture()
		f.chk.Zones = []*time.Location{brt}
		f.chk.Template = "promo"
		f.chk.Sender = senderA
		f.inboundFrom(senderA, at(-4*24*hour), false)
		for i, d := range []time.Duration{-10 * 24 * hour, -6 * 24 * hour, -2 * 24 * hour} {
			ref := string(rune('a' + i))
			sender := []string{senderA, senderB}[i%2]
			f.reserveFrom(mkt, "promo", at(d), ref, sender)
			f.result(Result{Status: sent, Ref: ref, MessageID: "wamid." + ref, At: at(d + sec), Sender: sender})
			f.result(Result{Status: delivered, MessageID: "wamid." + ref, Category: mkt, At: at(d + 5*sec), Sender: sender})
		}
		f.failFrom(senderB, mkt, 131049, "wamid.eco", time.Time{}, at(-9*24*hour))
		in := f.input(mkt, t0)
		b.ReportAllocs()
		for b.Loop() {
			if Decide(in).Verdict != allow {
				b.Fatal(summary(Decide(in)))
			}
		}
	})
	b.Run("history-deferred", func(b *testing.B) {
		// The same contact a day after a new send and a 131049: two reasons with
		// sentences, and a retry_at search.
		f := history()
		f.reserve(mkt, "promo", at(-hour), "d")
		f.fail(mkt, 131049, at(-30*time.Minute))
		in := f.input(mkt, t0)
		in.Check.Template = "promo"
		b.ReportAllocs()
		for b.Loop() {
			if Decide(in).Verdict != deferVT {
				b.Fatal(summary(Decide(in)))
			}
		}
	})
	b.Run("history-restrictions", func(b *testing.B) {
		// The same contact, from a sender of a business whose 20 other senders
		// are limited (131048) and whose account had a 131042 that ended: every
		// restriction is read, none applies.
		f := history()
		for i := range 20 {
			f.restrict(SenderSpam, fmt.Sprintf("1065403522429%02d", i), at(-10*time.Minute))
		}
		f.restrict(AccountPayment, "", at(-2*hour))
		in := f.input(mkt, t0)
		in.Check.Template, in.Check.Sender = "promo", "206540352242922"
		b.ReportAllocs()
		for b.Loop() {
			if Decide(in).Verdict != allow {
				b.Fatal(summary(Decide(in)))
			}
		}
	})
	b.Run("history-sender-limited", func(b *testing.B) {
		// The same, from one of the limited senders: a DEFER with its sentence
		// and a retry_at search.
		f := history()
		for i := range 20 {
			f.restrict(SenderSpam, fmt.Sprintf("1065403522429%02d", i), at(-10*time.Minute))
		}
		in := f.input(mkt, t0)
		in.Check.Template, in.Check.Sender = "promo", "106540352242907"
		b.ReportAllocs()
		for b.Loop() {
			if Decide(in).Verdict != deferVT {
				b.Fatal(summary(Decide(in)))
			}
		}
	})
	b.Run("longest-history", func(b *testing.B) {
		// The most a policy keeps: MaxSends sends (a cap of MaxCapCount a year,
		// a burst of MaxPairBurst), half of them planned ahead of the check, so
		// that PAIR_RATE tries every gap and FREQUENCY_CAP every run.
		f := newFixture()
		f.pol.FrequencyCaps = []Cap{{Count: MaxCapCount, Window: 365 * 24 * hour}, {Count: 3, Window: week}}
		f.pol.PairBurst = MaxPairBurst
		for i := range MaxSends {
			cat := mkt // the older half counted by the cap, the newer half not
			if i >= MaxCapCount {
				cat = util
			}
			f.reserve(cat, "promo", at(time.Duration(i-MaxSends/2)*time.Minute), fmt.Sprint(i))
		}
		if len(f.rel.Sends) != MaxSends {
			b.Fatalf("%d sends", len(f.rel.Sends))
		}
		in := f.input(mkt, t0)
		in.Check.Template = "promo"
		b.ReportAllocs()
		for b.Loop() {
			if Decide(in).Verdict != deferVT {
				b.Fatal(summary(Decide(in)))
			}
		}
	})
}

func BenchmarkReserve(b *testing.B) {
	f := history()
	p := &f.pol
	b.ReportAllocs()
	for b.Loop() {
		rel := f.rel
		rel.Sends = append([]Send(nil), f.rel.Sends...)
		rel.Events = append([]Event(nil), f.rel.Events...)
		Reserve(&rel, &f.biz, p, Send{At: t0, Ref: "new", Category: mkt, Template: "promo"})
	}
}
