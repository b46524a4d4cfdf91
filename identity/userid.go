package identity

import "strings"

// MaxUserIDLen is the longest business-scoped user ID [ValidUserID] accepts.
const MaxUserIDLen = 140

// ValidUserID reports whether s is a well-formed business-scoped user ID
// (BSUID): two upper-case ASCII letters (a country code), a dot, then 1 to
// 128 ASCII letters or digits, e.g. "BR.1502576394655843". Parent IDs of
// portfolios linked by Meta, "<CC>.ENT.<1-128 alphanumerics>" (e.g.
// "US.ENT.123abc"), are accepted too. The total length is at most
// [MaxUserIDLen] bytes.
func ValidUserID(s string) bool {
	if len(s) < 4 || len(s) > MaxUserIDLen {
		return false
	}
	if !isUpper(s[0]) || !isUpper(s[1]) || s[2] != '.' {
		return false
	}
	rest := s[3:]
	if alnum(rest) {
		return true
	}
	rest, ok := strings.CutPrefix(rest, "ENT.")
	return ok && alnum(rest)
}

func isUpper(c byte) bool { return c >= 'A' && c <= 'Z' }

// alnum reports whether s is 1 to 128 ASCII letters or digits.
func alnum(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
			return false
		}
	}
	return true
}
