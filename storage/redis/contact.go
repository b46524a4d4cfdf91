package redis

import (
	"context"
	crand "crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/sendguard/sendguard/storage"
	"github.com/sendguard/sendguard/storage/codec"
	"github.com/sendguard/sendguard/storage/internal/batch"
)

// A recipient is one hash, <p>{<id>}, so that a check is one HMGET on one key:
//
//	field "r:<business>"  a business's relationship (codec)
//	field "n"             the number-wide facts (codec); never for a BSUID id
//
// Each value starts with its expiry as 13 decimal digits of Unix milliseconds
// (all zeros: none), since Redis 7.0 has no per-field TTL. A field past its
// expiry reads as missing; the key itself expires with its longest-lived field
// (PEXPIREAT, kept by the commit script, which also drops expired fields), so
// TTLs mirror Badger's per-record ones. The holders of a number (for
// DeleteContact) are the hash's own "r:" fields: no index to keep.
//
//	<p>{<id>}:d:<len>:<business>:<dedup>   a dedup key, "1", TTL storage.DedupTTL
//
// <id> is a storage.ContactKey.ID; every key of a recipient carries it as the
// hash tag, so they share one slot. A business name is written with its length
// before it, so no business name or dedup key can make two keys collide.
func (s *Store) contactKey(id string) string { return s.pre + "{" + id + "}" }
func relField(business string) string        { return "r:" + business }
func (s *Store) dedupKey(k storage.ContactKey, dedup string) string {
	return s.contactKey(k.ID) + ":d:" + strconv.Itoa(len(k.Business)) + ":" + k.Business + ":" + dedup
}

// receiptKey is a new key on id's slot where deleteScript records that this
// attempt ran, so that a replay of it changes nothing.
func (s *Store) receiptKey(id string) string { return s.contactKey(id) + ":x:" + token() }

// factsField is the facts' field of a recipient hash.
const factsField = "n"

// expWidth is the width of a value's expiry prefix.
const expWidth = 13

// entry is a field value: the expiry (Unix ms, 0 for none) and the record.
func entry(rec []byte, expMs int64) string {
	digits := strconv.FormatInt(expMs, 10)
	var b strings.Builder
	b.Grow(expWidth + len(rec))
	for range expWidth - len(digits) {
		b.WriteByte('0')
	}
	b.WriteString(digits)
	b.Write(rec)
	return b.String()
}

// liveRecord returns the record of a field value, or false when the value is
// missing ("") or expired at nowMs.
func liveRecord(raw string, nowMs int64) ([]byte, bool, error) {
	if raw == "" {
		return nil, false, nil
	}
	if len(raw) < expWidth {
		return nil, false, errors.New("short value")
	}
	exp, err := strconv.ParseInt(raw[:expWidth], 10, 64)
	if err != nil || exp < 0 {
		return nil, false, errors.New("bad expiry")
	}
	if exp != 0 && exp <= nowMs {
		return nil, false, nil
	}
	return []byte(raw[expWidth:]), true, nil
}

// Replays. go-redis sends a command again when its connection fails before the
// answer arrives (a read timeout, a reset), even if Redis had run it. Every
// script that changes state therefore carries a token of its attempt and
// recognises its own earlier run: a replayed commit answers 0 (done) instead of
// failing its compare-and-set and having fn run a second time on its own result.

// prune is the Lua that, after a write, drops expired fields of KEYS[1] and sets
// the key to expire with its longest-lived field (ARGV[now] is the time); the
// token field "t" lives as long as the key; a key left with no record goes.
const prune = `
local function prune(now)
  local kv = redis.call('HGETALL', KEYS[1])
  local forever, maxExp, maxStr, live = false, 0, nil, 0
  for i = 1, #kv, 2 do
    if kv[i] ~= 't' then
      local es = string.sub(kv[i+1], 1, 13)
      local e = tonumber(es)
      if e == 0 then
        forever, live = true, live + 1
      elseif e <= now then
        redis.call('HDEL', KEYS[1], kv[i])
      else
        live = live + 1
        if e > maxExp then maxExp, maxStr = e, es end
      end
    end
  end
  if live == 0 then
    redis.call('DEL', KEYS[1])
  elseif forever then
    redis.call('PERSIST', KEYS[1])
  elseif maxStr then
    redis.call('PEXPIREAT', KEYS[1], maxStr)
  end
end
`

// commitScript is the compare-and-set of UpdateContact. The caller read the two
// fields, ran the rules, and sends back what it read ("" for a missing field; a
// value is never empty) and what to write. If either field changed since,
// nothing is written and the answer is 1 (read again, retry). A dedup key is
// recorded with SET NX PX in the same atomic step; if it exists the answer is 2
// (a duplicate) and nothing is written. A write leaves its token in field "t"
// (and as the dedup key's value), by which a replay of it answers 0.
//
//	KEYS: 1 recipient hash, 2 dedup key (when ARGV 8 is not "")
//	ARGV: 1 relationship field, 2 old relationship, 3 old facts,
//	      4 relationship op ("" none, "s" set, "d" delete), 5 new relationship,
//	      6 facts op, 7 new facts, 8 dedup TTL ms or "", 9 now (Unix ms), 10 token
var commitScript = goredis.NewScript(prune + `
local tok = ARGV[10]
local function cur(f)
  local v = redis.call('HGET', KEYS[1], f)
  if not v then return '' end
  return v
end
if redis.call('HGET', KEYS[1], 't') == tok then return 0 end
if cur(ARGV[1]) ~= ARGV[2] or cur('n') ~= ARGV[3] then
  if ARGV[8] ~= '' and redis.call('GET', KEYS[2]) == tok then return 0 end
  return 1
end
if ARGV[8] ~= '' then
  if not redis.call('SET', KEYS[2], tok, 'NX', 'PX', ARGV[8]) then
    if redis.call('GET', KEYS[2]) == tok then return 0 end
    return 2
  end
end
local function put(f, op, v)
  if op == 's' then redis.call('HSET', KEYS[1], f, v) elseif op == 'd' then redis.call('HDEL', KEYS[1], f) end
end
put(ARGV[1], ARGV[4], ARGV[5])
put('n', ARGV[6], ARGV[7])
if ARGV[4] ~= '' or ARGV[6] ~= '' then
  redis.call('HSET', KEYS[1], 't', tok)
  prune(tonumber(ARGV[9]))
end
return 0
`)

// deleteScript is DeleteContact: it returns the two fields as they were ("" when
// missing) and 1 when it deleted a live one. The facts go when no other
// business's relationship is live. Its answer is kept for a minute under a
// receipt key, which a replay answers from.
//
//	KEYS: 1 recipient hash, 2 receipt key
//	ARGV: 1 relationship field, 2 now (Unix ms), 3 "1" for a number
var deleteScript = goredis.NewScript(prune + `
local saved = redis.call('HMGET', KEYS[2], 'rel', 'facts', 'found')
if saved[3] then return {saved[1], saved[2], tonumber(saved[3])} end
local now = tonumber(ARGV[2])
local function live(v)
  if not v then return false end
  local e = tonumber(string.sub(v, 1, 13))
  return e == 0 or e > now
end
local rel = redis.call('HGET', KEYS[1], ARGV[1])
local facts = redis.call('HGET', KEYS[1], 'n')
local found = 0
if rel then
  redis.call('HDEL', KEYS[1], ARGV[1])
  if live(rel) then found = 1 end
end
if ARGV[3] == '1' and facts then
  local others = false
  for _, f in ipairs(redis.call('HKEYS', KEYS[1])) do
    if string.sub(f, 1, 2) == 'r:' and live(redis.call('HGET', KEYS[1], f)) then
      others = true
      break
    end
  end
  if not others then
    redis.call('HDEL', KEYS[1], 'n')
    if live(facts) then found = 1 end
  end
end
if redis.call('EXISTS', KEYS[1]) == 1 then prune(now) end
redis.call('HSET', KEYS[2], 'rel', rel or '', 'facts', facts or '', 'found', found)
redis.call('PEXPIRE', KEYS[2], 60000)
return {rel or '', facts or '', found}
`)

// token returns a random token for one attempt of a script.
func token() string {
	var b [9]byte
	_, _ = crand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// GetContact implements storage.Store: one HMGET of one key.
func (s *Store) GetContact(ctx context.Context, k storage.ContactKey) (storage.Contact, error) {
	if err := s.enter(ctx); err != nil {
		return storage.Contact{}, err
	}
	fields, _ := s.read(ctx, s.c, k, "")
	vals, err := fields.Result()
	if err != nil {
		return storage.Contact{}, s.fail(ctx, "get contact", err)
	}
	return decodeContact(k, str(vals[0]), str(vals[1]), time.Now().UnixMilli())
}

// str is an HMGET element as a string ("" for a missing field).
func str(v any) string {
	s, _ := v.(string)
	return s
}

// decodeContact decodes the raw field values of k, as of nowMs.
func decodeContact(k storage.ContactKey, rel, facts string, nowMs int64) (storage.Contact, error) {
	var c storage.Contact
	rec, ok, err := liveRecord(rel, nowMs)
	if err == nil && ok {
		err = codec.DecodeRelationship(rec, &c.Rel)
		c.RelFound = true
	}
	if err != nil {
		return storage.Contact{}, fmt.Errorf("storage/redis: corrupt relationship record: %w", err)
	}
	if k.Number() == "" {
		return c, nil
	}
	rec, ok, err = liveRecord(facts, nowMs)
	if err == nil && ok {
		err = codec.DecodeNumberFacts(rec, &c.Facts)
		c.FactsFound = true
	}
	if err != nil {
		return storage.Contact{}, fmt.Errorf("storage/redis: corrupt number facts record: %w", err)
	}
	return c, nil
}

// UpdateContact implements storage.Store by optimistic compare-and-set: read the
// fields (one HMGET, with an EXISTS of the dedup key in the same round trip),
// run fn, and commit with commitScript, which writes only if neither field
// changed in between — atomic across every replica sharing the
// deployment. A lost race reads again and calls fn again (up to maxAttempts, with
// a short random backoff), then gives up with storage.ErrConflict. Within one
// process, updates of one number are serialised by a stripe lock first, so that
// the process's own goroutines do not race each other.
func (s *Store) UpdateContact(ctx context.Context, k storage.ContactKey, dedup string, fn func(c *storage.Contact) (storage.Write, error)) error {
	return s.locked(ctx, k.ID, func() (bool, error) {
		p, err := s.prepare(ctx, k, dedup, fn)
		if err != nil {
			return false, err
		}
		res, err := s.commit(ctx, p)
		switch {
		case err != nil:
			return false, err
		case res == resDuplicate:
			return false, storage.ErrDuplicate
		}
		return res == resOK, nil
	})
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
	// afterRel and afterFacts are the raw fields the commit leaves (for the
	// next update of the same number in a batch).
	afterRel, afterFacts string
	// dedup tells whether the commit records the update's dedup key.
	dedup bool
}

const (
	resOK        = 0
	resConflict  = 1
	resDuplicate = 2
)

// read reads (or queues on a pipeline) k's two fields and, with a dedup key,
// whether it was recorded.
func (s *Store) read(ctx context.Context, pipe goredis.Cmdable, k storage.ContactKey, dedup string) (*goredis.SliceCmd, *goredis.IntCmd) {
	fields := pipe.HMGet(ctx, s.contactKey(k.ID), relField(k.Business), factsField)
	var seen *goredis.IntCmd
	if dedup != "" {
		seen = pipe.Exists(ctx, s.dedupKey(k, dedup))
	}
	return fields, seen
}

// prepare reads k's fields (and dedup key) in one round trip, runs fn and builds
// the commit.
func (s *Store) prepare(ctx context.Context, k storage.ContactKey, dedup string, fn func(c *storage.Contact) (storage.Write, error)) (*pending, error) {
	var (
		fields *goredis.SliceCmd
		seen   *goredis.IntCmd
		err    error
	)
	if dedup == "" {
		fields, _ = s.read(ctx, s.c, k, "")
		err = fields.Err()
	} else {
		pipe := s.c.Pipeline()
		fields, seen = s.read(ctx, pipe, k, dedup)
		_, err = pipe.Exec(ctx)
	}
	if err != nil {
		return nil, s.fail(ctx, "read contact", err)
	}
	if seen != nil && seen.Val() > 0 {
		return nil, storage.ErrDuplicate
	}
	vals := fields.Val()
	return s.build(k, dedup, str(vals[0]), str(vals[1]), fn)
}

// build runs fn on the decoded fields and encodes its writes.
func (s *Store) build(k storage.ContactKey, dedup string, rel, facts string, fn func(c *storage.Contact) (storage.Write, error)) (*pending, error) {
	now := time.Now().UnixMilli()
	c, err := decodeContact(k, rel, facts, now)
	if err != nil {
		return nil, err
	}
	w, err := fn(&c)
	if err != nil {
		return nil, err
	}
	p := &pending{keys: []string{s.contactKey(k.ID)}, afterRel: rel, afterFacts: facts}
	relOp, relVal := "", ""
	if w.Rel {
		relOp, relVal = op(codec.AppendRelationship(nil, &c.Rel), w.RelTTL, now)
		p.afterRel = relVal
	}
	factsOp, factsVal := "", ""
	if w.Facts && k.Number() != "" {
		factsOp, factsVal = op(codec.AppendNumberFacts(nil, &c.Facts), w.FactsTTL, now)
		p.afterFacts = factsVal
	}
	dedupTTL := ""
	if dedup != "" && !w.SkipDedup {
		dedupTTL = dedupTTLMillis
		p.keys = append(p.keys, s.dedupKey(k, dedup))
		p.dedup = true
	}
	p.args = []any{relField(k.Business), rel, facts, relOp, relVal, factsOp, factsVal, dedupTTL, now, token()}
	return p, nil
}

// dedupTTLMillis is storage.DedupTTL as the commit script takes it.
var dedupTTLMillis = strconv.FormatInt(ttlMillis(storage.DedupTTL), 10)

// op is the script operation and field value for a record written with ttl at
// nowMs: a negative TTL has expired already and deletes the field.
func op(rec []byte, ttl time.Duration, nowMs int64) (string, string) {
	switch {
	case ttl < 0:
		return "d", ""
	case ttl == 0:
		return "s", entry(rec, 0)
	}
	return "s", entry(rec, nowMs+ttlMillis(ttl))
}

func (s *Store) commit(ctx context.Context, p *pending) (int64, error) {
	res, err := s.runReplicated(ctx, commitScript, p.keys, p.args...).Int64()
	if err != nil {
		return 0, s.fail(ctx, "commit contact", err)
	}
	return res, nil
}

// DeleteContact implements storage.Store in one script on the recipient's key.
func (s *Store) DeleteContact(ctx context.Context, k storage.ContactKey) (storage.Contact, bool, error) {
	var (
		prev  storage.Contact
		found bool
	)
	err := s.locked(ctx, k.ID, func() (bool, error) {
		isNumber := "0"
		if k.Number() != "" {
			isNumber = "1"
		}
		now := time.Now().UnixMilli()
		keys := []string{s.contactKey(k.ID), s.receiptKey(k.ID)}
		res, err := s.runReplicated(ctx, deleteScript, keys, relField(k.Business), now, isNumber).Slice()
		if err != nil {
			return true, s.fail(ctx, "delete contact", err)
		}
		if len(res) != 3 {
			return true, fmt.Errorf("%w: redis delete contact: %d results", storage.ErrUnavailable, len(res))
		}
		if prev, err = decodeContact(k, str(res[0]), str(res[1]), now); err != nil {
			return true, err
		}
		n, _ := res[2].(int64)
		found = n == 1
		return true, nil
	})
	if err != nil {
		return storage.Contact{}, false, err
	}
	return prev, found, nil
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
	return batch.Apply(ctx, updates, batchChunk, s.updateChunk)
}

// batchChunk bounds one pipeline of UpdateContacts.
const batchChunk = 500

func (s *Store) updateChunk(ctx context.Context, updates []storage.ContactUpdate, results []error) error {
	if err := s.enter(ctx); err != nil {
		return err
	}
	if s.waitReplicas > 0 {
		// Each update waits for its replicas on its own connection: one by one.
		for i, u := range updates {
			if err := s.single(ctx, u, results, i); err != nil {
				return err
			}
		}
		return nil
	}
	// Read every record of the chunk in one pipeline.
	pipe := s.c.Pipeline()
	fields := make([]*goredis.SliceCmd, len(updates))
	seen := make([]*goredis.IntCmd, len(updates))
	for i, u := range updates {
		fields[i], seen[i] = s.read(ctx, pipe, u.Key, u.Dedup)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return s.fail(ctx, "read batch", err)
	}
	// Run the updates in order on what was read, chaining updates of one number.
	type dedupID struct {
		storage.ContactKey
		dedup string
	}
	latest := map[storage.ContactKey]string{} // raw relationship
	factsOf := map[string]string{}            // raw facts by id
	done := map[dedupID]int{}                 // the update that carried a dedup key first
	dupOf := map[int]int{}                    // an update that repeats an earlier one's dedup key
	preps := make([]*pending, len(updates))
	for i, u := range updates {
		vals := fields[i].Val()
		if u.Dedup != "" {
			if seen[i].Val() > 0 {
				results[i] = storage.ErrDuplicate
				continue
			}
			if j, ok := done[dedupID{u.Key, u.Dedup}]; ok {
				results[i] = storage.ErrDuplicate
				dupOf[i] = j
				continue
			}
		}
		rel, ok := latest[u.Key]
		if !ok {
			rel = str(vals[0])
		}
		facts, ok := factsOf[u.Key.ID]
		if !ok {
			facts = str(vals[1])
		}
		p, err := s.build(u.Key, u.Dedup, rel, facts, u.Fn)
		if err != nil {
			results[i] = err // fn's error (or a corrupt record): this update alone is skipped
			continue
		}
		if p.dedup {
			done[dedupID{u.Key, u.Dedup}] = i
		}
		latest[u.Key] = p.afterRel
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
		if err := s.single(ctx, u, results, i); err != nil {
			return err
		}
	}
	// A repeat of a dedup key within the chunk was answered as a duplicate of
	// the earlier update; if that one was not applied after all (its redo failed),
	// the repeat gets its own chance, as it would have one by one.
	for i := range updates {
		j, ok := dupOf[i]
		if !ok || results[j] == nil || errors.Is(results[j], storage.ErrDuplicate) {
			continue
		}
		if err := s.single(ctx, updates[i], results, i); err != nil {
			return err
		}
	}
	return nil
}

// single applies one update of a batch on its own (UpdateContact), its result
// into results[i]; it returns the error that fails the whole batch: the
// context's, or the engine's.
func (s *Store) single(ctx context.Context, u storage.ContactUpdate, results []error, i int) error {
	results[i] = s.UpdateContact(ctx, u.Key, u.Dedup, u.Fn)
	if err := ctx.Err(); err != nil {
		return err
	}
	if errors.Is(results[i], storage.ErrUnavailable) {
		return results[i]
	}
	return nil
}

func isNoScript(err error) bool {
	return err != nil && goredis.HasErrorPrefix(err, "NOSCRIPT")
}
