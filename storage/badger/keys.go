package badger

// Key layout. Every key is a one-byte kind, a NUL, and NUL-separated parts.
// Callers guarantee that ids, business names, user IDs, hashes and dedup keys
// contain no NUL byte, so a prefix ending in NUL matches exactly one value of the
// parts before it.
//
//	r\x00<id>\x00<business>      relationship (codec.AppendRelationship), TTL from Write.RelTTL
//	n\x00<id>                    number-wide facts (codec.AppendNumberFacts), TTL from Write.FactsTTL
//	d\x00<business>\x00<dedup>   dedup key of an applied event, empty value, TTL storage.DedupTTL
//	l\x00<business>\x00<userID>  BSUID → number link, value the number, no TTL
//	s\x00<business>\x00<hash>    suppression of a forgotten opted-out recipient, empty value, no TTL
//	b\x00<business>              business state (codec.AppendBusiness), no TTL
//	p\x00<business>              policy overrides (an encoded sendguard.v1.Policy), no TTL
//
// <id> is a storage.ContactKey.ID: an E.164 number, or "u:" + BSUID. Relationships
// are keyed by id first so that one prefix scan of "r\x00<id>\x00" finds every
// business that holds state for a number (DeleteContact uses it to decide whether
// the number-wide facts may go). A BSUID id never has an "n" key.

const (
	kindRel         = 'r'
	kindFacts       = 'n'
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

func relKey(id, business string) []byte { return key2(kindRel, id, business) }

// relPrefix is the prefix of every relationship of one id, whatever the business.
func relPrefix(id string) []byte { return append(key1(kindRel, id), 0) }

func factsKey(id string) []byte                { return key1(kindFacts, id) }
func dedupKey(business, key string) []byte     { return key2(kindDedup, business, key) }
func linkKey(business, userID string) []byte   { return key2(kindLink, business, userID) }
func suppressionKey(business, h string) []byte { return key2(kindSuppression, business, h) }
func businessKey(business string) []byte       { return key1(kindBusiness, business) }
func policyKey(business string) []byte         { return key1(kindPolicy, business) }
