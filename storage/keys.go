package storage

// The prefixes of stored identifiers, kept together so that no two mean the
// same thing and a reader of a data directory finds them in one place. An
// unprefixed ContactKey.ID is a canonical E.164 number ("+5511987654321"); an
// unprefixed stored WhatsApp ID is the spelling Meta uses for the number.
const (
	// UserIDPrefix starts a ContactKey.ID that is a business-scoped user ID
	// rather than a number (a user whose number is not known): "u:" + BSUID.
	UserIDPrefix = "u:"
	// HashedNumberPrefix starts a ContactKey.ID that is a keyed hash of a
	// number, written instead of the number when the deployment stores no
	// numbers (hash_numbers).
	HashedNumberPrefix = "h:"
	// FoldPrefix starts a stored WhatsApp ID (Relationship.WaID,
	// NumberFacts.WaID) that is only the name of the folding Meta applied to the
	// number ("fold:mexico"), kept instead of the spelling when numbers are
	// hashed; the spelling is rebuilt from the number in the request.
	FoldPrefix = "fold:"
)
