package redistest

import "testing"

func TestSlot(t *testing.T) {
	tests := []struct {
		key  string
		want int
	}{
		{"foo", 12182},        // from the Redis cluster tutorial
		{"123456789", 0x31c3}, // the CRC-16/XMODEM check value
		{"", 0},               // CRC of nothing
		{"{user1000}.following", Slot("user1000")},
		{"foo{}{bar}", int(crc16("foo{}{bar}")) % slotCount}, // empty tag: the whole key
		{"foo{{bar}}zap", Slot("{bar")},                      // the tag ends at the first '}'
		{"foo{bar}{zap}", Slot("bar")},                       // only the first tag counts
		{"{bar", int(crc16("{bar")) % slotCount},             // no '}': the whole key
	}
	for _, tt := range tests {
		if got := Slot(tt.key); got != tt.want {
			t.Errorf("Slot(%q) = %d, want %d", tt.key, got, tt.want)
		}
	}
}

func FuzzSlot(f *testing.F) {
	for _, k := range []string{"", "foo", "{a}b", "a{}b", "}{", "{{}}"} {
		f.Add(k)
	}
	f.Fuzz(func(t *testing.T, key string) {
		if s := Slot(key); s < 0 || s >= slotCount {
			t.Fatalf("Slot(%q) = %d, out of range", key, s)
		}
	})
}
