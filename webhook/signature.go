package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"strings"
)

// signaturePrefix starts the X-Hub-Signature-256 header value.
const signaturePrefix = "sha256="

// Verify reports whether header, the value of the X-Hub-Signature-256 header
// ("sha256=<hex>"), is the HMAC-SHA256 of body keyed with secret (the app
// secret). The comparison is constant-time. A missing or malformed header, or
// an empty secret, is never valid.
func Verify(body []byte, header string, secret []byte) bool {
	return VerifyParts(header, secret, body)
}

// VerifyParts is Verify for a body held in parts: the body is the parts
// concatenated in order.
func VerifyParts(header string, secret []byte, parts ...[]byte) bool {
	if len(secret) == 0 {
		return false
	}
	hexSum, ok := strings.CutPrefix(header, signaturePrefix)
	if !ok || len(hexSum) != hex.EncodedLen(sha256.Size) {
		return false
	}
	var got [sha256.Size]byte
	if _, err := hex.Decode(got[:], []byte(hexSum)); err != nil {
		return false
	}
	h := hmac.New(sha256.New, secret)
	for _, p := range parts {
		h.Write(p)
	}
	return hmac.Equal(got[:], h.Sum(nil))
}

// Sign returns the X-Hub-Signature-256 header value Meta would send with
// body, for tests and the replay tool. Verify rejects every signature made
// with an empty secret.
func Sign(body []byte, secret []byte) string {
	return signaturePrefix + hex.EncodeToString(mac(body, secret))
}

func mac(body, secret []byte) []byte {
	h := hmac.New(sha256.New, secret)
	h.Write(body)
	return h.Sum(nil)
}
