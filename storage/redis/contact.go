package redis

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/sendguard/sendguard/storage"
	"github.com/sendguard/sendguard/storage/codec"
	"github.com/sendguard/sendguard/storage/internal/stripe"
)

// commitScript is the compare-and-set of UpdateContact. The caller read the
// relationship and facts, ran the rules, and sends back what it read (ARGV 1, 2;
// "" for a missing record: an encoding is never empty) and what to write. If
// either record changed since, nothing is written and the answer is 1 (read
// again, retry). A dedup key is recorded with SET NX PX in the same atomic step;
// if it exists the answer is 2 (a duplicate) and nothing is written.
//
//	KEYS: 1 relationship, 2 facts, 3 holders (businesses with a relationship), 4 dedup
//	ARGV: 1 old rel, 2 old facts,
//	      3 rel op ("" none, "s" set, "d" delete), 4 new rel, 5 rel TTL ms (0 = none),
//	      6 facts op, 7 new facts, 8 facts TTL ms,
//	      9 dedup TTL ms ("" when there is no dedup key), 10 business
var commitScript = goredis.NewScript(`
local function cur(k)
  local v = redis.call('GET', k)
  if not v then return '' end
  return v
end
if cur(KEYS[1]) ~= ARGV[1] or cur(KEYS[2]) ~= ARGV[2] then return 1 end
if ARGV[9] ~= '' then
  if not redis.call('SET', KEYS[4], '1', 'NX', 'PX', ARGV[9]) then return 2 end
end
local function put(k, op, v, ttl)
  if op == 's' then
    if ttl == '0' then redis.call('SET', k, v) else redis.call('SET', k, v, 'PX', ttl) end
  elseif op == 'd' then
    redis.call('DEL', k)
  end
end
put(KEYS[1], ARGV[3], ARGV[4], ARGV[5])
put(KEYS[2], ARGV[6], ARGV[7], ARGV[8])
if ARGV[3] == 's' then
  local existed = redis.call('EXISTS', KEYS[3])
  redis.call('SADD', KEYS[3], ARGV[10])
  if ARGV[5] == '0' then
    redis.call('PERSIST', KEYS[3])
  else
    local pt = redis.call('PTTL', KEYS[3])
    if existed == 0 or (pt >= 0 and pt < tonumber(ARGV[5])) then redis.call('PEXPIRE', KEYS[3], ARGV[5]) end
  end
elseif ARGV[3] == 'd' then
  redis.call('SREM', KEYS[3], ARGV[10])
end
return 0
`)

// deleteScript is DeleteContact: it returns the relationship and facts as they
// were ("" when missing) and 1 when it deleted anything. The facts go when no
// other business's relationship remains; holders whose relationship expired are
// dropped from the set on the way.
//
//	KEYS: 1 relationship, 2 facts, 3 holders
//	ARGV: 1 business, 2 prefix of the number's relationship keys, 3 "1" for a number
var deleteScript = goredis.NewScript(`
local rel = redis.call('GET', KEYS[1])
local facts = redis.call('GET', KEYS[2])
local found = 0
if rel then redis.call('DEL', KEYS[1]); found = 1 end
redis.call('SREM', KEYS[3], ARGV[1])
if ARGV[3] == '1' then
  local others = 0
  for _, m in ipairs(redis.call('SMEMBERS', KEYS[3])) do
    if redis.call('EXISTS', ARGV[2] .. m) == 1 then others = 1 else redis.call('SREM', KEYS[3], m) end
  end
  if others == 0 then
    if facts then redis.call('DEL', KEYS[2]); found = 1 end
    redis.call('DEL', KEYS[3])
  end
end
return {rel or '', facts or '', found}
`)

// Key layout. Every key of one recipient carries the recipient's id as its hash
// tag, so one check or update touches one slot (and one node) of a cluster:
//
//	<p>{<id>}:r:<business>          relationship (codec), TTL from Write.RelTTL
//	<p>{<id>}:n                     number-wide facts (codec), TTL from Write.FactsTTL
//	<p>{<id>}:h                     set of businesses holding a relationship (for DeleteContact)
//	<p>{<id>}:d:<len>:<business>:<dedup>   dedup key, "1", TTL storage.DedupTTL
//
// <id> is a storage.ContactKey.ID. A business name is stored with its length
// before it so that no business name or dedup key can make two keys collide.
func (s *Store) relPrefix(id string) string { return s.pre + "{" + id + "}:r:" }
func (s *Store) relKey(k storage.ContactKey) string {
	return s.relPrefix(k.ID) + k.Business
}
func (s *Store) factsKey(id string) string   { return s.pre + "{" + id + "}:n" }
func (s *Store) holdersKey(id string) string { return s.pre + "{" + id + "}:h" }
func (s *Store) dedupKey(k storage.ContactKey, dedup string) string {
	return s.pre + "{" + k.ID + "}:d:" + strconv.Itoa(len(k.Business)) + ":" + k.Business + ":" + dedup
}

// GetContact implements storage.Store: one MGET on the number's slot.
func (s *Store) GetContact(ctx context.Context, k storage.ContactKey) (storage.Contact, error) {
	if err := s.enter(ctx); err != nil {
		return storage.Contact{}, err
	}
	vals, err := s.c.MGet(ctx, s.relKey(k), s.factsKey(k.ID)).Result()
	if err != nil {
		return storage.Contact{}, s.fail(ctx, "get contact", err)
	}
	var c storage.Contact
	if err := decodeContact(k, str(vals[0]), str(vals[1]), &c); err != nil {
		return storage.Contact{}, err
	}
	return c, nil
}

// str is an MGET element as a string ("" for a missing key).
func str(v any) string {
	s, _ := v.(string)
	return s
}

func decodeContact(k storage.ContactKey, rel, facts string, c *storage.Contact) error {
	*c = storage.Contact{}
	if rel != "" {
		if err := codec.DecodeRelationship([]byte(rel), &c.Rel); err != nil {
			return fmt.Errorf("storage/redis: corrupt relationship record: %w", err)
		}
		c.RelFound = true
	}
	if facts != "" && k.Number() != "" {
		if err := codec.DecodeNumberFacts([]byte(facts), &c.Facts); err != nil {
			return fmt.Errorf("storage/redis: corrupt number facts record: %w", err)
		}
		c.FactsFound = true
	}
	return nil
}

// UpdateContact implements storage.Store by optimistic compare-and-set: read the
// records (one MGET), run fn, and commit with commitScript, which writes only if
// neither record changed in between — atomic across every replica sharing the
// deployment. A lost race reads again and calls fn again (up to maxAttempts, with
// a short random backoff), then gives up with storage.ErrConflict. Within one
// process, updates of one number are serialised by a stripe lock first, so that
// the process's own goroutines do not race each other.
func (s *Store) UpdateContact(ctx context.Context, k storage.ContactKey, dedup string, fn func(c *storage.Contact) (storage.Write, error)) error {
	if err := s.enter(ctx); err != nil {
		return err
	}
	lk, err := s.contacts.Lock(ctx, s.seed, k.ID)
	if err != nil {
		return err
	}
	defer stripe.Unlock(lk)
	for attempt := range maxAttempts {
		if attempt > 0 {
			if err := backoff(ctx, attempt); err != nil {
				return err
			}
		}
		p, err := s.prepare(ctx, k, dedup, fn)
		if err != nil {
			return err
		}
		switch res, err := s.commit(ctx, p); {
		case err != nil:
			return err
		case res == resDuplicate:
			return storage.ErrDuplicate
		case res == resOK:
			return nil
		}
	}
	return storage.ErrConflict
}

// backoff sleeps a random 0.2–2 ms, longer as attempts grow, or returns when ctx
// ends.
func backoff(ctx context.Context, attempt int) error {
	d := time.Duration(200+rand.IntN(200*min(attempt, 10))) * time.Microsecond
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// pending is one prepared compare-and-set.
type pending struct {
	keys []string
	args []any
	// after is the state the commit leaves (for the next update of the same
	// number in a batch).
	afterRel, afterFacts string
}

const (
	resOK        = 0
	resConflict  = 1
	resDuplicate = 2
)

// prepare reads k's records (and dedup key), runs fn and builds the commit.
func (s *Store) prepare(ctx context.Context, k storage.ContactKey, dedup string, fn func(c *storage.Contact) (storage.Write, error)) (*pending, error) {
	keys := s.contactKeys(k, dedup)
	vals, err := s.c.MGet(ctx, keys...).Result()
	if err != nil {
		return nil, s.fail(ctx, "read contact", err)
	}
	if dedup != "" && vals[3] != nil {
		return nil, storage.ErrDuplicate
	}
	return s.build(k, dedup, keys, str(vals[0]), str(vals[1]), fn)
}

func (s *Store) contactKeys(k storage.ContactKey, dedup string) []string {
	keys := []string{s.relKey(k), s.factsKey(k.ID), s.holdersKey(k.ID)}
	if dedup != "" {
		keys = append(keys, s.dedupKey(k, dedup))
	}
	return keys
}

// build runs fn on the decoded records and encodes its writes.
func (s *Store) build(k storage.ContactKey, dedup string, keys []string, rel, facts string, fn func(c *storage.Contact) (storage.Write, error)) (*pending, error) {
	var c storage.Contact
	if err := decodeContact(k, rel, facts, &c); err != nil {
		return nil, err
	}
	w, err := fn(&c)
	if err != nil {
		return nil, err
	}
	p := &pending{keys: keys, afterRel: rel, afterFacts: facts}
	relOp, relVal, relTTL := "", "", int64(0)
	if w.Rel {
		relOp, relVal, relTTL = op(string(codec.AppendRelationship(nil, &c.Rel)), w.RelTTL)
		p.afterRel = relVal
	}
	factsOp, factsVal, factsTTL := "", "", int64(0)
	if w.Facts && k.Number() != "" {
		factsOp, factsVal, factsTTL = op(string(codec.AppendNumberFacts(nil, &c.Facts)), w.FactsTTL)
		p.afterFacts = factsVal
	}
	dedupTTL := ""
	if dedup != "" {
		dedupTTL = strconv.FormatInt(ttlMillis(storage.DedupTTL), 10)
	}
	p.args = []any{rel, facts, relOp, relVal, relTTL, factsOp, factsVal, factsTTL, dedupTTL, k.Business}
	return p, nil
}

// op is the script operation for a record written with ttl: a negative TTL has
// expired already and deletes it.
func op(v string, ttl time.Duration) (string, string, int64) {
	if ttl < 0 {
		return "d", "", 0
	}
	return "s", v, ttlMillis(ttl)
}

func (s *Store) commit(ctx context.Context, p *pending) (int64, error) {
	res, err := commitScript.Run(ctx, s.c, p.keys, p.args...).Int64()
	if err != nil {
		return 0, s.fail(ctx, "commit contact", err)
	}
	return res, nil
}

// DeleteContact implements storage.Store in one script on the number's slot.
func (s *Store) DeleteContact(ctx context.Context, k storage.ContactKey) (storage.Contact, bool, error) {
	if err := s.enter(ctx); err != nil {
		return storage.Contact{}, false, err
	}
	lk, err := s.contacts.Lock(ctx, s.seed, k.ID)
	if err != nil {
		return storage.Contact{}, false, err
	}
	defer stripe.Unlock(lk)
	isNumber := "0"
	if k.Number() != "" {
		isNumber = "1"
	}
	res, err := deleteScript.Run(ctx, s.c, []string{s.relKey(k), s.factsKey(k.ID), s.holdersKey(k.ID)},
		k.Business, s.relPrefix(k.ID), isNumber).Slice()
	if err != nil {
		return storage.Contact{}, false, s.fail(ctx, "delete contact", err)
	}
	if len(res) != 3 {
		return storage.Contact{}, false, fmt.Errorf("%w: redis delete contact: %d results", storage.ErrUnavailable, len(res))
	}
	var prev storage.Contact
	if err := decodeContact(k, str(res[0]), str(res[1]), &prev); err != nil {
		return storage.Contact{}, false, err
	}
	found, _ := res[2].(int64)
	return prev, found == 1, nil
}

// UpdateContacts implements storage.Store. Each update is atomic on its own (a
// compare-and-set on its number's slot, as UpdateContact); a batch is not one
// transaction, since its numbers live on many nodes. To keep a 1,000-event
// webhook POST to a few round trips, a chunk's records are read in one pipeline,
// the updates run in order against what was read (an update sees the writes of
// the updates before it), and the commits go out in a second pipeline. Updates
// whose commit lost a race are applied again one by one, in order.
//
// On an engine error the updates committed so far stay applied (each has its
// dedup key recorded with it, so applying the batch again is safe).
func (s *Store) UpdateContacts(ctx context.Context, updates []storage.ContactUpdate) ([]error, error) {
	results := make([]error, len(updates))
	for start := 0; start < len(updates); start += batchChunk {
		end := min(start+batchChunk, len(updates))
		if err := s.updateChunk(ctx, updates[start:end], results[start:end]); err != nil {
			return results, err
		}
	}
	return results, nil
}

// batchChunk bounds one pipeline of UpdateContacts.
const batchChunk = 500

func (s *Store) updateChunk(ctx context.Context, updates []storage.ContactUpdate, results []error) error {
	if err := s.enter(ctx); err != nil {
		return err
	}
	// Read every record of the chunk in one pipeline.
	pipe := s.c.Pipeline()
	reads := make([]*goredis.SliceCmd, len(updates))
	for i, u := range updates {
		reads[i] = pipe.MGet(ctx, s.contactKeys(u.Key, u.Dedup)...)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return s.fail(ctx, "read batch", err)
	}
	// Run the updates in order on what was read, chaining updates of one number.
	type state struct{ rel, facts string }
	type dedupID struct {
		id, business, dedup string
	}
	latest := map[string]state{} // by relationship key for rel, by id for facts
	factsOf := map[string]string{}
	seen := map[dedupID]bool{}
	preps := make([]*pending, len(updates))
	for i, u := range updates {
		vals := reads[i].Val()
		if u.Dedup != "" {
			d := dedupID{u.Key.ID, u.Key.Business, u.Dedup}
			if vals[3] != nil || seen[d] {
				results[i] = storage.ErrDuplicate
				continue
			}
		}
		rk := s.relKey(u.Key)
		st, ok := latest[rk]
		if !ok {
			st.rel = str(vals[0])
		}
		facts, ok := factsOf[u.Key.ID]
		if !ok {
			facts = str(vals[1])
		}
		st.facts = facts
		p, err := s.build(u.Key, u.Dedup, s.contactKeys(u.Key, u.Dedup), st.rel, st.facts, u.Fn)
		if err != nil {
			results[i] = err // fn's error (or a corrupt record): this update alone is skipped
			continue
		}
		if u.Dedup != "" {
			seen[dedupID{u.Key.ID, u.Key.Business, u.Dedup}] = true
		}
		latest[rk] = state{rel: p.afterRel}
		factsOf[u.Key.ID] = p.afterFacts
		preps[i] = p
	}
	// Commit them in one pipeline; a pipeline keeps the order of one node's
	// commands, so chained updates of one number commit in order.
	pipe = s.c.Pipeline()
	commits := make([]*goredis.Cmd, len(updates))
	for i, p := range preps {
		if p != nil {
			commits[i] = commitScript.EvalSha(ctx, pipe, p.keys, p.args...)
		}
	}
	// Errors are per command (a NOSCRIPT on a node is not fatal); they are
	// looked at one by one below.
	_, _ = pipe.Exec(ctx)
	// Updates that lost a race (or found the script not loaded on a node yet) run
	// again one by one, in order. When one update of a number lost, the later
	// updates of that number lose too (each expected the one before it to have
	// committed), so they are all redone, in order.
	for i, u := range updates {
		if preps[i] == nil {
			continue
		}
		res, err := commits[i].Int64()
		switch {
		case err != nil && !isNoScript(err):
			return s.fail(ctx, "commit batch", err)
		case err == nil && res == resOK:
			continue
		case err == nil && res == resDuplicate:
			results[i] = storage.ErrDuplicate
			continue
		}
		results[i] = s.UpdateContact(ctx, u.Key, u.Dedup, u.Fn)
		if err := ctx.Err(); err != nil {
			return err
		}
		if errors.Is(results[i], storage.ErrUnavailable) {
			return results[i]
		}
	}
	return nil
}

func isNoScript(err error) bool {
	return err != nil && goredis.HasErrorPrefix(err, "NOSCRIPT")
}
