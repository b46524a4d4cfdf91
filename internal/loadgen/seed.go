package loadgen

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	sgv1 "github.com/sendguard/sendguard/proto/sendguard/v1"
	"github.com/sendguard/sendguard/storage"
	"github.com/sendguard/sendguard/validator"
)

// Business is the business_id every workload acts for.
const Business = "bench"

// seedEvent is one report or inbound message of a number's seeded history.
type seedEvent struct {
	inbound   bool
	status    sgv1.MessageStatus
	code      int32
	category  sgv1.Category
	template  string
	text      string
	messageID string
	at        time.Time
}

// mix64 is splitmix64: a well-spread hash of a number's index.
func mix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ x>>30) * 0xbf58476d1ce4e5b9
	x = (x ^ x>>27) * 0x94d049bb133111eb
	return x ^ x>>31
}

// History kinds, by share of the numbers with history.
const (
	histMetaOptOut    = iota // 131050: DENY marketing (OPTED_OUT)
	histOwnOptOut            // a STOP keyword: DENY marketing (OPTED_OUT)
	histEcosystem            // 131049 two hours ago: DEFER marketing (ECOSYSTEM_LIMIT)
	histUndeliverable        // 131026 a day ago: DEFER everything (UNDELIVERABLE)
	histExperiment           // 130472 three days ago: DEFER marketing (EXPERIMENT)
	histRecentSend           // a marketing send three hours ago and a reply: DEFER marketing (FREQUENCY_CAP)
)

func historyKind(h uint64) int {
	switch p := h >> 40 % 100; {
	case p < 17:
		return histMetaOptOut
	case p < 34:
		return histOwnOptOut
	case p < 51:
		return histEcosystem
	case p < 61:
		return histUndeliverable
	case p < 68:
		return histExperiment
	default:
		return histRecentSend
	}
}

// mix is how the seeded numbers divide: a fraction with history, a fraction
// never seeded (fresh), the rest with one delivered utility message.
type mix struct{ history, fresh float64 }

// mix is how cfg divides the seeded numbers.
func (c *Config) mix() mix { return mix{c.History, c.Fresh} }

// isFresh tells whether number i is never seeded.
func (m mix) isFresh(i int) bool { return float64(mix64(uint64(i))%1000) >= (1-m.fresh)*1000 }

// stored is how many of the numbers [0, n) are seeded.
func (m mix) stored(n int) int {
	k := 0
	for i := range n {
		if !m.isFresh(i) {
			k++
		}
	}
	return k
}

// seedEvents is number i's history as of now: a fraction history of the numbers
// (chosen by a hash of i) get a few weeks' worth of sends and one of the histories
// above; a fraction fresh nothing (nil); the others one delivered utility message
// two days ago.
func seedEvents(i int, m mix, now time.Time) []seedEvent {
	h := mix64(uint64(i))
	id := func(k int) string { return fmt.Sprintf("wamid.bench.%d.%d", i, k) }
	sent := func(k int, cat sgv1.Category, tmpl string, ago time.Duration, st sgv1.MessageStatus) seedEvent {
		return seedEvent{status: st, category: cat, template: tmpl, messageID: id(k), at: now.Add(-ago)}
	}
	const (
		mkt  = sgv1.Category_CATEGORY_MARKETING
		util = sgv1.Category_CATEGORY_UTILITY
		dlv  = sgv1.MessageStatus_MESSAGE_STATUS_DELIVERED
		fail = sgv1.MessageStatus_MESSAGE_STATUS_FAILED
	)
	if m.isFresh(i) {
		return nil
	} else if p := float64(h % 1000); p >= m.history*1000 {
		return []seedEvent{sent(0, util, "order_shipped", 48*time.Hour, dlv)}
	}
	evs := []seedEvent{
		sent(0, mkt, "autumn_sale", 6*24*time.Hour, dlv),
		sent(1, util, "order_shipped", 5*24*time.Hour, dlv),
		sent(2, util, "delivery_update", 4*24*time.Hour, sgv1.MessageStatus_MESSAGE_STATUS_READ),
	}
	failure := func(code int32, ago time.Duration) seedEvent {
		e := sent(3, mkt, "black_friday", ago, fail)
		e.code = code
		return e
	}
	switch historyKind(h) {
	case histMetaOptOut:
		evs = append(evs, failure(131050, 24*time.Hour))
	case histOwnOptOut:
		evs = append(evs, seedEvent{inbound: true, text: "STOP", messageID: id(3), at: now.Add(-30 * time.Hour)})
	case histEcosystem:
		evs = append(evs, failure(131049, 2*time.Hour))
	case histUndeliverable:
		evs = append(evs, failure(131026, 24*time.Hour))
	case histExperiment:
		evs = append(evs, failure(130472, 3*24*time.Hour))
	case histRecentSend:
		evs = append(evs, sent(3, mkt, "black_friday", 3*time.Hour, dlv),
			seedEvent{inbound: true, text: "thanks, when does it end?", messageID: id(4), at: now.Add(-time.Hour)})
	}
	return evs
}

// applySeed applies number i's history to a stored contact, as the server's
// ReportResult and ReportInbound would.
func applySeed(c *storage.Contact, evs []seedEvent, p *validator.Policy, optOut func(string) bool) {
	for _, e := range evs {
		if e.inbound {
			in := validator.Inbound{At: e.at, MessageID: e.messageID, Text: e.text}
			if optOut(e.text) {
				in.Keyword = validator.KeywordOptOut
			}
			validator.ApplyInbound(&c.Rel, &c.Facts, p, in)
			continue
		}
		validator.ApplyResult(&c.Rel, &c.Facts, p, validator.Result{
			Status: e.status, ErrorCode: e.code, Category: e.category, Template: e.template,
			MessageID: e.messageID, At: e.at,
		})
	}
}

// seedBatch is how many numbers one UpdateContacts call seeds.
const seedBatch = 1000

// seedStore writes the history of numbers [from, to) straight into the store of an
// in-process server (the same records ReportResult would write, much faster),
// with workers concurrent batches. progress is called now and then with the
// number of numbers done.
func seedStore(ctx context.Context, st storage.Store, from, to int, m mix, workers int, progress func(done int)) error {
	p := validator.Defaults()
	keywords := map[string]bool{}
	for _, k := range p.OptOutKeywords {
		keywords[k] = true
	}
	optOut := func(s string) bool { return keywords[s] }
	now := time.Now()
	return inParallel(ctx, workers, from, to, seedBatch, progress, func(start, end int) error {
		updates := make([]storage.ContactUpdate, 0, end-start)
		for i := start; i < end; i++ {
			evs := seedEvents(i, m, now)
			if evs == nil {
				continue // a fresh number: no record
			}
			updates = append(updates, storage.ContactUpdate{
				Key: storage.ContactKey{Business: Business, ID: Number(i)},
				Fn: func(c *storage.Contact) (storage.Write, error) {
					before := c.Facts
					applySeed(c, evs, &p, optOut)
					w := storage.Write{Rel: true, RelTTL: storage.TTLUntil(c.Rel.ExpiresAt(&p), now)}
					if c.Facts != before {
						w.Facts, w.FactsTTL = true, storage.TTLUntil(c.Facts.ExpiresAt(&p), now)
					}
					return w, nil
				},
			})
		}
		results, err := st.UpdateContacts(ctx, updates)
		for _, r := range results {
			if err == nil {
				err = r
			}
		}
		if err != nil {
			return fmt.Errorf("seed: %w", err)
		}
		return nil
	})
}

// seedAPI plays the history of numbers [from, to) to a server through ReportResult
// and ReportInbound (for a server this process cannot reach into), with callers
// concurrent callers.
func seedAPI(ctx context.Context, api sgv1.SendGuardClient, from, to int, m mix, callers int, progress func(done int)) error {
	now := time.Now()
	every := func(n int) {
		if progress != nil && n%10_000 == 0 {
			progress(n)
		}
	}
	return inParallel(ctx, callers, from, to, 1, every, func(i, _ int) error {
		for _, e := range seedEvents(i, m, now) {
			var err error
			cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			if e.inbound {
				_, err = api.ReportInbound(cctx, &sgv1.ReportInboundRequest{
					BusinessId: Business, Phone: Number(i), MessageId: e.messageID, Text: e.text,
					Timestamp: timestamppb.New(e.at),
				})
			} else {
				_, err = api.ReportResult(cctx, &sgv1.ReportResultRequest{
					BusinessId: Business, Phone: Number(i), MessageId: e.messageID, Status: e.status,
					ErrorCode: e.code, Category: e.category, Template: e.template, Timestamp: timestamppb.New(e.at),
				})
			}
			cancel()
			if err != nil {
				return fmt.Errorf("seed number %d: %w", i, err)
			}
		}
		return nil
	})
}

// inParallel runs work on [from, to) in ranges of step numbers, from workers
// goroutines, until every range is done, one fails (its error is returned) or
// ctx ends. progress, when set, is called after each range with the numbers
// done so far, by one worker at a time.
func inParallel(ctx context.Context, workers, from, to, step int, progress func(done int), work func(start, end int) error) error {
	var (
		next       atomic.Int64
		done       atomic.Int64
		wg         sync.WaitGroup
		progressMu sync.Mutex // progress is called by one worker at a time
		errc       = make(chan error, max(workers, 1))
	)
	next.Store(int64(from))
	for range max(workers, 1) {
		wg.Go(func() {
			for ctx.Err() == nil {
				start := int(next.Add(int64(step))) - step
				if start >= to {
					return
				}
				end := min(start+step, to)
				if err := work(start, end); err != nil {
					errc <- err
					return
				}
				if n := done.Add(int64(end - start)); progress != nil {
					progressMu.Lock()
					progress(int(n))
					progressMu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	close(errc)
	if err := <-errc; err != nil {
		return err
	}
	return ctx.Err()
}
