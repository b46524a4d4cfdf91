package redis

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/sendguard/sendguard/storage"
	"github.com/sendguard/sendguard/storage/codec"
	"github.com/sendguard/sendguard/validator"
)

// Key layout of everything that is not a recipient. A business's records are
// spread over several slots so that no single slot carries a busy business:
//
//	<p>l:{<len>:<business>:<userID>}   BSUID → number link, no TTL
//	<p>s:{<len>:<business>:<hash>}     suppression, "1", no TTL
//	<p>p:{<business>}                  policy overrides, no TTL
//	<p>t:{<business>}                  hash: template name → codec-encoded state, no TTL
//	<p>t:{<business>}:v                version of the templates and restrictions hashes
//	                                   (compare-and-set)
//	<p>r:{<business>}                  hash: "<kind>:<sender>" → codec-encoded restriction
//	                                   (a one-restriction business), no TTL; same slot as t:
//	<p>m:{<len>:<business>:<hour>}     hash: Unix minute → users first reached; one key per
//	                                   hour, so increments move to a new slot every hour;
//	                                   TTL 26 h past the end of the hour
//	<p>mi:{<business>}                 hash: hour → "1", the hours that may hold counts
//
// Checks read business state from the server's per-business cache, not from
// here, so the business's own slots see writes (pauses, first reaches) and a
// refresh per replica per second, not a read per check.
func (s *Store) scoped(kind, business, name string) string {
	return s.pre + kind + ":{" + strconv.Itoa(len(business)) + ":" + business + ":" + name + "}"
}
func (s *Store) linkKey(business, userID string) string { return s.scoped("l", business, userID) }
func (s *Store) suppressionKey(business, h string) string {
	return s.scoped("s", business, h)
}
func (s *Store) policyKey(business string) string    { return s.pre + "p:{" + business + "}" }
func (s *Store) templatesKey(business string) string { return s.pre + "t:{" + business + "}" }
func (s *Store) versionKey(business string) string   { return s.templatesKey(business) + ":v" }
func (s *Store) restrictionsKey(business string) string {
	return s.pre + "r:{" + business + "}"
}
func (s *Store) hourIndexKey(business string) string { return s.pre + "mi:{" + business + "}" }
func (s *Store) hourKey(business string, h int64) string {
	return s.scoped("m", business, strconv.FormatInt(h, 10))
}

// GetLink implements storage.Store.
func (s *Store) GetLink(ctx context.Context, business, userID string) (string, error) {
	if err := s.enter(ctx); err != nil {
		return "", err
	}
	v, err := s.c.Get(ctx, s.linkKey(business, userID)).Result()
	if errors.Is(err, goredis.Nil) {
		return "", storage.ErrNotFound
	}
	return v, s.fail(ctx, "get link", err)
}

// SetLink implements storage.Store.
func (s *Store) SetLink(ctx context.Context, business, userID, number string) error {
	if err := s.enter(ctx); err != nil {
		return err
	}
	return s.fail(ctx, "set link", s.c.Set(ctx, s.linkKey(business, userID), number, 0).Err())
}

// DeleteLink implements storage.Store.
func (s *Store) DeleteLink(ctx context.Context, business, userID string) error {
	if err := s.enter(ctx); err != nil {
		return err
	}
	return s.fail(ctx, "delete link", s.c.Del(ctx, s.linkKey(business, userID)).Err())
}

// PutSuppression implements storage.Store.
func (s *Store) PutSuppression(ctx context.Context, business, hash string) error {
	if err := s.enter(ctx); err != nil {
		return err
	}
	return s.fail(ctx, "put suppression", s.c.Set(ctx, s.suppressionKey(business, hash), "1", 0).Err())
}

// HasSuppression implements storage.Store.
func (s *Store) HasSuppression(ctx context.Context, business, hash string) (bool, error) {
	if err := s.enter(ctx); err != nil {
		return false, err
	}
	n, err := s.c.Exists(ctx, s.suppressionKey(business, hash)).Result()
	return n == 1, s.fail(ctx, "get suppression", err)
}

// DeleteSuppression implements storage.Store.
func (s *Store) DeleteSuppression(ctx context.Context, business, hash string) error {
	if err := s.enter(ctx); err != nil {
		return err
	}
	return s.fail(ctx, "delete suppression", s.c.Del(ctx, s.suppressionKey(business, hash)).Err())
}

// GetPolicy implements storage.Store.
func (s *Store) GetPolicy(ctx context.Context, business string) ([]byte, error) {
	if err := s.enter(ctx); err != nil {
		return nil, err
	}
	v, err := s.c.Get(ctx, s.policyKey(business)).Bytes()
	if errors.Is(err, goredis.Nil) {
		return nil, storage.ErrNotFound
	}
	if err != nil {
		return nil, s.fail(ctx, "get policy", err)
	}
	return v, nil
}

// PutPolicy implements storage.Store.
func (s *Store) PutPolicy(ctx context.Context, business string, policy []byte) error {
	if err := s.enter(ctx); err != nil {
		return err
	}
	return s.fail(ctx, "put policy", s.c.Set(ctx, s.policyKey(business), policy, 0).Err())
}

// templatesScript writes template and restriction changes if their version is
// still the one read, and sets a new version. The version is a random token
// rather than a counter, so that a replay of this very call (go-redis resends a
// command whose answer was lost) finds its own new version and answers 0. KEYS:
// 1 templates hash, 2 version, 3 restrictions hash (one slot). ARGV: 1 version
// read ("" for none), 2 new version, then triples: op ("s" set, "d" delete a
// template; "S", "D" a restriction), field, value.
var templatesScript = goredis.NewScript(`
local v = redis.call('GET', KEYS[2])
if not v then v = '' end
if v == ARGV[2] then return 0 end
if v ~= ARGV[1] then return 1 end
for i = 3, #ARGV, 3 do
  local op = ARGV[i]
  if op == 's' then redis.call('HSET', KEYS[1], ARGV[i+1], ARGV[i+2])
  elseif op == 'd' then redis.call('HDEL', KEYS[1], ARGV[i+1])
  elseif op == 'S' then redis.call('HSET', KEYS[3], ARGV[i+1], ARGV[i+2])
  else redis.call('HDEL', KEYS[3], ARGV[i+1]) end
end
redis.call('SET', KEYS[2], ARGV[2])
return 0
`)

// reachScript adds counts to one hour's hash, once per token: a replay of the
// same call finds its token key and adds nothing. KEYS: 1 hour hash, 2 token key
// (same slot). ARGV: 1 TTL ms, then pairs: minute, delta. A count that falls to
// zero is removed.
var reachScript = goredis.NewScript(`
if not redis.call('SET', KEYS[2], '1', 'NX', 'PX', 60000) then return 0 end
for i = 2, #ARGV, 2 do
  if redis.call('HINCRBY', KEYS[1], ARGV[i], ARGV[i+1]) <= 0 then redis.call('HDEL', KEYS[1], ARGV[i]) end
end
if redis.call('EXISTS', KEYS[1]) == 1 and redis.call('PTTL', KEYS[1]) < tonumber(ARGV[1]) then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
end
return 0
`)

// GetBusiness implements storage.Store.
func (s *Store) GetBusiness(ctx context.Context, business string) (validator.Business, error) {
	if err := s.enter(ctx); err != nil {
		return validator.Business{}, err
	}
	b, _, err := s.readBusiness(ctx, business)
	return b, err
}

// readBusiness reads the templates and restrictions (with their version,
// atomically) and the reach counts of every indexed hour.
func (s *Store) readBusiness(ctx context.Context, business string) (validator.Business, string, error) {
	var b validator.Business
	tk := s.templatesKey(business)
	tx := s.c.TxPipeline()
	ver := tx.Get(ctx, s.versionKey(business))
	all := tx.HGetAll(ctx, tk)
	rall := tx.HGetAll(ctx, s.restrictionsKey(business))
	if _, err := tx.Exec(ctx); err != nil && !errors.Is(err, goredis.Nil) {
		return b, "", s.fail(ctx, "read templates", err)
	}
	version := ver.Val()
	var err error
	for name, v := range all.Val() {
		var one validator.Business
		if err := codec.DecodeBusiness([]byte(v), &one); err != nil || len(one.Templates) != 1 {
			return b, "", fmt.Errorf("storage/redis: corrupt template record: %v", err)
		}
		if b.Templates == nil {
			b.Templates = map[string][]validator.TemplateState{}
		}
		for _, st := range one.Templates {
			b.Templates[name] = st
		}
	}
	for field, v := range rall.Val() {
		var one validator.Business
		if field == tierField {
			if err := codec.DecodeBusiness([]byte(v), &one); err != nil {
				return b, "", fmt.Errorf("storage/redis: corrupt tier record: %v", err)
			}
			b.Tier, b.TierAt = one.Tier, one.TierAt
			continue
		}
		if err := codec.DecodeBusiness([]byte(v), &one); err != nil || len(one.Restrictions) != 1 ||
			restrictionField(one.Restrictions[0]) != field {
			return b, "", fmt.Errorf("storage/redis: corrupt restriction record %q: %v", field, err)
		}
		b.Restrictions = append(b.Restrictions, one.Restrictions[0])
	}
	slices.SortFunc(b.Restrictions, compareRestrictions)
	if b.Reached, err = s.readReach(ctx, business); err != nil {
		return b, "", err
	}
	return b, version, nil
}

// readReach reads the reach counts of every indexed hour, in minute order.
func (s *Store) readReach(ctx context.Context, business string) ([]validator.ReachBucket, error) {
	hours, err := s.c.HKeys(ctx, s.hourIndexKey(business)).Result()
	if err != nil {
		return nil, s.fail(ctx, "read reach index", err)
	}
	if len(hours) == 0 {
		return nil, nil
	}
	pipe := s.c.Pipeline()
	cmds := make([]*goredis.MapStringStringCmd, len(hours))
	for i, h := range hours {
		n, err := strconv.ParseInt(h, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("storage/redis: corrupt reach index entry %q", h)
		}
		cmds[i] = pipe.HGetAll(ctx, s.hourKey(business, n))
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, s.fail(ctx, "read reach", err)
	}
	// An hour that is empty long after it could count leaves the index. A recent
	// empty hour stays: another replica may have indexed it and be about to count.
	var (
		reached []validator.ReachBucket
		gone    []string
	)
	oldest := time.Now().Add(-27*time.Hour).Unix() / 3600
	for i, c := range cmds {
		m := c.Val()
		if len(m) == 0 {
			if n, _ := strconv.ParseInt(hours[i], 10, 64); n < oldest {
				gone = append(gone, hours[i])
			}
			continue
		}
		for minute, count := range m {
			mi, err1 := strconv.ParseInt(minute, 10, 64)
			n, err2 := strconv.Atoi(count)
			if err1 != nil || err2 != nil {
				return nil, errors.New("storage/redis: corrupt reach record")
			}
			if n > 0 {
				reached = append(reached, validator.ReachBucket{Minute: mi, Count: n})
			}
		}
	}
	slices.SortFunc(reached, func(x, y validator.ReachBucket) int { return int(x.Minute - y.Minute) })
	if len(gone) > 0 {
		// Expired hours leave the index (best effort: a later read retries).
		if err := s.c.HDel(ctx, s.hourIndexKey(business), gone...).Err(); err == nil {
			s.hoursMu.Lock()
			for _, h := range gone {
				delete(s.hours, hourID{business, h})
			}
			s.hoursMu.Unlock()
		}
	}
	return reached, nil
}

// UpdateBusiness implements storage.Store. Template changes are a
// compare-and-set on the templates' version (fn runs again when another replica
// changed them in between); reach counts are added as increments, which commute,
// so concurrent replicas never lose one, and then read back: the state returned
// holds every reach counted before this one, by any replica.
func (s *Store) UpdateBusiness(ctx context.Context, business string, fn func(b *validator.Business) error) (validator.Business, error) {
	var next validator.Business
	err := s.locked(ctx, "\x00business\x00"+business, func() (bool, error) {
		old, version, err := s.readBusiness(ctx, business)
		if err != nil {
			return false, err
		}
		next = validator.Business{Templates: maps.Clone(old.Templates), Reached: slices.Clone(old.Reached),
			Restrictions: slices.Clone(old.Restrictions), Tier: old.Tier, TierAt: old.TierAt}
		if err := fn(&next); err != nil {
			return false, err
		}
		args := templateChanges(old.Templates, next.Templates)
		args = append(args, restrictionChanges(old.Restrictions, next.Restrictions)...)
		if next.Tier != old.Tier || !next.TierAt.Equal(old.TierAt) {
			one := validator.Business{Tier: next.Tier, TierAt: next.TierAt}
			args = append(args, "S", tierField, string(codec.AppendBusiness(nil, &one)))
		}
		if len(args) > 0 {
			res, err := templatesScript.Run(ctx, s.c, []string{s.templatesKey(business), s.versionKey(business), s.restrictionsKey(business)},
				append([]any{version, token()}, args...)...).Int64()
			if err != nil {
				return false, s.fail(ctx, "write templates", err)
			}
			if res != 0 {
				return false, nil // another replica changed the templates: read again
			}
		}
		deltas := reachDeltas(old.Reached, next.Reached)
		if len(deltas) == 0 {
			return true, nil
		}
		if err := s.addReach(ctx, business, deltas); err != nil {
			return true, err
		}
		// Another replica's reaches counted between the read and the add are
		// missing from next: read the counts back. If that fails, the add stands
		// and the caller gets what fn made.
		if reached, err := s.readReach(ctx, business); err == nil {
			next.Reached = reached
		}
		return true, nil
	})
	if err != nil {
		return validator.Business{}, err
	}
	return next, nil
}

// tierField is the restrictions hash's field that holds Meta's messaging tier
// (a restriction's field is "<kind>:<sender>", never this).
const tierField = "tier"

func templateChanges(old, next map[string][]validator.TemplateState) []any {
	var args []any
	for _, name := range slices.Sorted(maps.Keys(old)) {
		if _, ok := next[name]; !ok {
			args = append(args, "d", name, "")
		}
	}
	for _, name := range slices.Sorted(maps.Keys(next)) {
		st := next[name]
		if o, ok := old[name]; ok && slices.Equal(o, st) {
			continue
		}
		one := validator.Business{Templates: map[string][]validator.TemplateState{name: st}}
		args = append(args, "s", name, string(codec.AppendBusiness(nil, &one)))
	}
	return args
}

// restrictionField is the hash field of a restriction: its kind and sender.
func restrictionField(r validator.Restriction) string {
	return strconv.Itoa(int(r.Kind)) + ":" + r.Sender
}

// compareRestrictions is the order of Business.Restrictions: kind, then sender.
func compareRestrictions(a, b validator.Restriction) int {
	if a.Kind != b.Kind {
		return int(a.Kind) - int(b.Kind)
	}
	return strings.Compare(a.Sender, b.Sender)
}

// restrictionChanges is the script arguments that turn the stored restrictions
// old into next.
func restrictionChanges(old, next []validator.Restriction) []any {
	before := make(map[string]validator.Restriction, len(old))
	for _, r := range old {
		before[restrictionField(r)] = r
	}
	var args []any
	for _, r := range next {
		f := restrictionField(r)
		if o, ok := before[f]; ok {
			delete(before, f)
			if o == r {
				continue
			}
		}
		one := validator.Business{Restrictions: []validator.Restriction{r}}
		args = append(args, "S", f, string(codec.AppendBusiness(nil, &one)))
	}
	for _, f := range slices.Sorted(maps.Keys(before)) {
		args = append(args, "D", f, "")
	}
	return args
}

// reachDeltas is what fn changed in the reach counts, per minute of a bucket fn
// kept or added. A bucket fn dropped is left to expire: the validator drops the
// buckets that no longer count at the time of the send it adds.
func reachDeltas(old, next []validator.ReachBucket) map[int64]int {
	before := map[int64]int{}
	for _, b := range old {
		before[b.Minute] += b.Count
	}
	d := map[int64]int{}
	for _, b := range next { // one bucket per minute, as the validator keeps them
		if v := b.Count - before[b.Minute]; v != 0 {
			d[b.Minute] = v
		}
	}
	return d
}

// reachTTL keeps an hour's counts for 26 h past the end of the hour, and at least
// 26 h from now (a count written for a past hour still lives a day).
func reachTTL(hour int64, now time.Time) time.Duration {
	end := time.Unix((hour+1)*3600, 0)
	return max(26*time.Hour, end.Add(26*time.Hour).Sub(now))
}

// hourID names one business's hour in Store.hours.
type hourID struct{ business, hour string }

func (s *Store) addReach(ctx context.Context, business string, deltas map[int64]int) error {
	if len(deltas) == 0 {
		return nil
	}
	now := time.Now()
	byHour := map[int64][]any{}
	for m, v := range deltas {
		h := m / 60
		byHour[h] = append(byHour[h], m, v)
	}
	var fresh []string // hours this process has not indexed yet
	s.hoursMu.Lock()
	for h := range byHour {
		hs := strconv.FormatInt(h, 10)
		if _, ok := s.hours[hourID{business, hs}]; !ok {
			fresh = append(fresh, hs)
		}
	}
	s.hoursMu.Unlock()
	if len(fresh) > 0 {
		index := make([]any, 0, 2*len(fresh))
		for _, h := range fresh {
			index = append(index, h, "1")
		}
		if err := s.c.HSet(ctx, s.hourIndexKey(business), index...).Err(); err != nil {
			return s.fail(ctx, "index reach", err)
		}
	}
	// One script per hour touched (usually one). Script.Run loads the script on a
	// node that lacks it, such as a replica promoted by a failover.
	for _, h := range slices.Sorted(maps.Keys(byHour)) {
		args := append([]any{reachTTL(h, now).Milliseconds()}, byHour[h]...)
		hk := s.hourKey(business, h)
		if err := reachScript.Run(ctx, s.c, []string{hk, hk + ":t:" + token()}, args...).Err(); err != nil {
			return s.fail(ctx, "add reach", err)
		}
	}
	s.hoursMu.Lock()
	for _, h := range fresh {
		s.hours[hourID{business, h}] = struct{}{}
	}
	s.hoursMu.Unlock()
	return nil
}
