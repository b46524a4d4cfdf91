package server

import "testing"

// TestHasherFixedValues: the keyed hashes are written to stores (contact keys
// under hash_numbers, message ids, dedup keys, suppressions), so under a given
// secret they never change. The expected values were computed apart from this
// code (Python's hmac over the same bytes). Each is asked for twice, the second
// time from a pooled HMAC.
func TestHasherFixedValues(t *testing.T) {
	h := newHasher([]byte("0123456789abcdef0123456789abcdef"))
	tests := []struct {
		name, got, want string
	}{
		{"number", h.opaque("n", "+5511987654321"), "c8bhQbolwKvuKikLTJUK-g"},
		{"message id", h.opaque("m", "wamid.HBgM"), "BWr4KWifN6SBnDkO7mQJUg"},
		{"dedup", h.opaque("d", "s\x00+5511987654321\x00ref-1"), "vLsTt5qGiVKIsmGtLlQMOw"},
		{"empty", h.opaque("m", ""), ""},
		{"suppression of a user ID", h.suppression("u:BR.123"), "78c89076c5cdd369e47dca6b37b651311b7db2453b895b619b96f40ce2521d76"},
		{"suppression of a number", h.suppression("+5511987654321"), "be23d609e35fc418bc205fc0bb3e1609e17c5949b3fe585bc3930d1a0922fdc4"},
		{"number again", h.opaque("n", "+5511987654321"), "c8bhQbolwKvuKikLTJUK-g"},
		{"suppression again", h.suppression("+5511987654321"), "be23d609e35fc418bc205fc0bb3e1609e17c5949b3fe585bc3930d1a0922fdc4"},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%s: %q, want %q", tt.name, tt.got, tt.want)
		}
	}
}
