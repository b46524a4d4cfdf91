// Package keyword recognises opt-out and opt-in keyword messages ("STOP",
// "BAJA", "SAIR", "START", ...).
//
// Meta does not act on keywords; the business must. A keyword message is a
// message that IS the keyword, trimmed and compared case- and
// accent-insensitively ("Stop", " stop! ", "DÉTENER" match), never a
// sentence that merely contains one ("Please stop sending me these" does not
// match STOP). [Normalize] defines the comparison; a [Matcher] holds a set of
// normalized keywords.
package keyword
