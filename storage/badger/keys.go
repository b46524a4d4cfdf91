package badger

// Key layout. Every key is a one-byte kind, a NUL, and NUL-separated parts.
// Callers guarantee that ids, business names, user IDs, hashes and dedup keys
// contain no NUL byte, so a prefix ending in NUL matches exactly one value of the
// parts before it.
//
//	c\x00<id>                    contact record: the number-wide facts and every business's
//	                             relationship (record.go), each with its expiry; the key
//	                             expires with the longest-lived part
//	d\x00<business>\x00<dedup>   dedup key of an applied event, empty value, TTL storage.DedupTTL
//	l\x00<business>\x00<userID>  BSUID → number link, value the number, no TTL
//	s\x00<business>\x00<hash>    suppression of a forgotten opted-out recipient, empty value, no TTL
//	b\x00<business>              business state (codec.AppendBusiness), no TTL
//	p\x00<business>              policy overrides (an encoded sendguard.v1.Policy), no TTL
//
// <id> is a storage.ContactKey.ID (prefixes in storage/keys.go): an E.164
// number, "h:" + its keyed hash (hash_numbers), or "u:" + BSUID (whose record
// has no facts).
//
// Stores written before the contact record kept a relationship under
// r\x00<id>\x00<business> and the facts under n\x00<id>; Open moves them into
// contact records (migrate.go).

const (
	kindContact     = 'c'
	kindRel         = 'r' // before the contact record
	kindFacts       = 'n' // before the contact record
	kindDedup       = 'd'
	kindLink        = 'l'
	kindSuppression = 's'
	kindBusiness    = 'b'
	kindPolicy      = 'p'
)

func key1(kind byte, a string) []byte {
	k := make([]byte, 0, 2+len(a))
	k = append(k, kind, 0)
	return append(k, a...)
}

func key2(kind byte, a, b string) []byte {
	k := make([]byte, 0, 3+len(a)+len(b))
	k = append(k, kind, 0)
	k = append(k, a...)
	k = append(k, 0)
	return append(k, b...)
}

func contactKey(id string) []byte { return key1(kindContact, id) }

// factsKey is the key of a number's facts in the layout before contact records
// (migrate.go).
func factsKey(id string) []byte { return key1(kindFacts, id) }

func dedupKey(business, key string) []byte     { return key2(kindDedup, business, key) }
func linkKey(business, userID string) []byte   { return key2(kindLink, business, userID) }
func suppressionKey(business, h string) []byte { return key2(kindSuppression, business, h) }
func businessKey(business string) []byte       { return key1(kindBusiness, business) }
func policyKey(business string) []byte         { return key1(kindPolicy, business) }
