package audience

import (
	"strings"
	"testing"
)

func TestNormalizeHeader(t *testing.T) {
	for in, want := range map[string]string{
		"Phone": "phone", "phone_number": "phonenumber", "Phone Number": "phonenumber", " MSISDN ": "msisdn",
		"wa_id": "waid", "WhatsApp": "whatsapp", "Número": "numero", "Teléfono": "telefono", "\ufeffphone": "phone",
		"e.164": "e164", "": "",
	} {
		if got := normalizeHeader(in); got != want {
			t.Errorf("normalizeHeader(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestDetectColumns(t *testing.T) {
	for _, tc := range []struct {
		header              []string
		phoneFlag, userFlag string
		noHeader            bool
		phone, user         int
		err                 string
	}{
		{header: []string{"id", "name", "phone"}, phone: 2, user: -1},
		{header: []string{"\ufeffPhone Number", "name"}, phone: 0, user: -1},
		{header: []string{"name", "MSISDN"}, phone: 1, user: -1},
		{header: []string{"name", "Mobile", "city"}, phone: 1, user: -1},
		{header: []string{"wa_id", "name"}, phone: 0, user: -1},
		{header: []string{"WhatsApp"}, phone: 0, user: -1},
		{header: []string{"Celular", "Nome"}, phone: 0, user: -1},
		// The most specific name wins over column order: "number" may be an order number.
		{header: []string{"order number", "number", "phone"}, phone: 2, user: -1},
		{header: []string{"number", "name"}, phone: 0, user: -1},
		{header: []string{"phone", "user_id"}, phone: 0, user: 1},
		{header: []string{"BSUID", "name"}, phone: -1, user: 0},
		{header: []string{"name", "tel", "bsuid"}, phone: 1, user: 2},
		// Named by flag: exact, normalized, or numbered.
		{header: []string{"contact", "name"}, phoneFlag: "contact", phone: 0, user: -1},
		{header: []string{"Contact No", "name"}, phoneFlag: "contact_no", phone: 0, user: -1},
		{header: []string{"a", "b", "c"}, phoneFlag: "3", phone: 2, user: -1},
		{header: []string{"phone", "x"}, phoneFlag: "x", phone: 1, user: -1},
		{header: []string{"phone", "x"}, userFlag: "x", phone: 0, user: 1},
		{header: []string{"+5511987654321", "Ana"}, noHeader: true, phone: 0, user: -1},
		{header: []string{"Ana", "+5511987654321"}, noHeader: true, phoneFlag: "2", phone: 1, user: -1},
		// Errors.
		{header: []string{"name", "city"}, err: "no phone column"},
		{header: []string{"name"}, phoneFlag: "phone", err: "not in the header"},
		{header: []string{"a", "b"}, phoneFlag: "3", err: "has 2 columns"},
		{header: []string{"phone"}, userFlag: "phone", err: "both"},
	} {
		c, err := DetectColumns(tc.header, tc.phoneFlag, tc.userFlag, tc.noHeader)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q %q %q: err %v, want %q", tc.header, tc.phoneFlag, tc.userFlag, err, tc.err)
			}
			continue
		}
		if err != nil || c.Phone != tc.phone || c.UserID != tc.user || c.Width != len(tc.header) {
			t.Errorf("%q %q %q: phone %d user %d (%v); want %d %d", tc.header, tc.phoneFlag, tc.userFlag, c.Phone, c.UserID, err, tc.phone, tc.user)
		}
	}
	// Output columns: the input's, then ours, renamed when the input has them.
	c, _ := DetectColumns([]string{"phone", "Verdict"}, "", "", false)
	want := []string{"phone", "Verdict", "sendguard_verdict", "rules", "retry_at", "phone_e164", "message", "message_ref"}
	if strings.Join(c.Out, ",") != strings.Join(want, ",") {
		t.Errorf("out %v, want %v", c.Out, want)
	}
	c, _ = DetectColumns([]string{"a", "b"}, "", "", true)
	if c.Out[0] != "column1" || c.Out[1] != "column2" || c.Phone != 0 {
		t.Errorf("--no-header: %+v", c)
	}
}
