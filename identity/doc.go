// Package identity turns the many spellings of a WhatsApp recipient's phone
// number into one canonical E.164 number, the key of every per-number history
// in sendguard, and validates business-scoped user IDs (BSUIDs).
//
// # Parsing
//
// [Parse] reads a phone by its spelling and a region (DESIGN.md, "Number
// identity"): '+' and "00" are international; digits only are international
// without a region (Meta's webhooks send "16505551234") and national first
// with one; any other spelling (spaces, brackets, dashes, dots) is national by
// its look, read by the region, or [ErrNational] without one, so that a
// Brazilian CRM's "(31) 99551-1909" never becomes the Netherlands'
// +31 995511909. See [Parse] for the exact order.
//
// A number is rejected ([ErrInvalid]) when it is not a *possible* number
// for libphonenumber (wrong length for its country, unknown country code). A
// possible number outside libphonenumber's known ranges is returned with
// [Number.Valid] false: the metadata lags newly opened ranges, so whether to
// send to it is the caller's policy.
//
// # WhatsApp-ID folding
//
// Some WhatsApp IDs are spellings libphonenumber rejects. A spelling is
// folded only when it is invalid as given and the folded form is a valid
// mobile number; a number that is valid as given is never rewritten:
//
//   - Mexico ([FoldMexico]): "5215512345678" (a '1' after 52) is +525512345678.
//   - Brazil ([FoldBrazil]): "551187654321" (pre-2012 8-digit mobile
//     subscriber) is +5511987654321. Landlines (subscriber starting 2-5) are
//     valid as given and never touched.
//   - Argentina ([FoldArgentina]): the national "15" mobile prefix is folded
//     into the "+54 9 <area> <number>" mobile form.
//
// The spelling as given is kept in [Number.Input] and returned by
// [Number.WaID] when it differs from the canonical number, so it can be
// remembered as the number's WhatsApp ID; [Unfold] rebuilds it from the
// canonical number and the [Fold] when only those are stored.
//
// # Time zones
//
// [Zones] maps a number to the IANA time zones libphonenumber associates with
// its prefix. The package imports time/tzdata so zones load even on hosts
// without a zoneinfo database (about 450 KB of binary size).
package identity
