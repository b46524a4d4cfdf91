package webhook

import (
	"strings"
	"testing"
)

func TestVerify(t *testing.T) {
	body := readTestdata(t, "status_failed_131049.json")
	secret := []byte("6f1c0e3b9a2d4c8e7f5a1b2c3d4e5f60")
	good := Sign(body, secret)
	if !strings.HasPrefix(good, "sha256=") || len(good) != len("sha256=")+64 {
		t.Fatalf("Sign = %q", good)
	}
	altered := append([]byte(nil), body...)
	altered[len(altered)/2] ^= 1

	for _, tt := range []struct {
		name   string
		body   []byte
		header string
		secret []byte
		want   bool
	}{
		{"correct", body, good, secret, true},
		{"upper-case hex", body, "sha256=" + strings.ToUpper(good[7:]), secret, true},
		{"missing header", body, "", secret, false},
		{"prefix only", body, "sha256=", secret, false},
		{"wrong prefix", body, "sha1=" + good[7:], secret, false},
		{"no prefix", body, good[7:], secret, false},
		{"upper-case prefix", body, "SHA256=" + good[7:], secret, false},
		{"wrong hex", body, "sha256=" + strings.Repeat("zz", 32), secret, false},
		{"short hex", body, good[:len(good)-2], secret, false},
		{"long hex", body, good + "00", secret, false},
		{"odd hex", body, good[:len(good)-1], secret, false},
		{"space around", body, " " + good, secret, false},
		{"wrong secret", body, good, []byte("another-app-secret"), false},
		{"empty secret", body, Sign(body, nil), nil, false},
		{"body altered by one byte", altered, good, secret, false},
		{"body with a byte added", append(append([]byte(nil), body...), '\n'), good, secret, false},
		{"empty body", nil, Sign(nil, secret), secret, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := Verify(tt.body, tt.header, tt.secret); got != tt.want {
				t.Errorf("Verify = %v, want %v", got, tt.want)
			}
			half := len(tt.body) / 2
			if got := VerifyParts(tt.header, tt.secret, tt.body[:half], nil, tt.body[half:]); got != tt.want {
				t.Errorf("VerifyParts in two parts = %v, want %v", got, tt.want)
			}
		})
	}
}

// TestSignKnownAnswer pins Sign to a value computed independently
// (printf '{"object":"whatsapp_business_account","entry":[]}' | openssl dgst -sha256 -hmac secret).
func TestSignKnownAnswer(t *testing.T) {
	const want = "sha256=56a21e195072d3c07ec2bbf608e0dfeaf322e1917ec30f0cb399c2a43588216e"
	got := Sign([]byte(`{"object":"whatsapp_business_account","entry":[]}`), []byte("secret"))
	if got != want {
		t.Errorf("Sign = %s, want %s", got, want)
	}
}
