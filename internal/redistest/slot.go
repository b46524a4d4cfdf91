package redistest

import "strings"

// slotCount is the number of hash slots in a Redis cluster.
const slotCount = 16384

// Slot returns the cluster slot of key (CRC16 of the hash tag or the whole
// key, mod 16384). The hash tag is the text between the first '{' and the
// first '}' after it, used only when it is not empty, exactly as Redis does,
// so "{user1000}.following" and "{user1000}.followers" share a slot.
func Slot(key string) int {
	if open := strings.IndexByte(key, '{'); open >= 0 {
		if end := strings.IndexByte(key[open+1:], '}'); end > 0 {
			key = key[open+1 : open+1+end]
		}
	}
	return int(crc16(key)) % slotCount
}

// crc16 is CRC-16/XMODEM (polynomial 0x1021, initial value 0, no reflection),
// the checksum Redis Cluster hashes keys with.
func crc16(s string) uint16 {
	var crc uint16
	for i := 0; i < len(s); i++ {
		crc ^= uint16(s[i]) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return crc
}
