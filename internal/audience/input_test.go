package audience

import (
	"strconv"
	"strings"
	"testing"
)

// TestRegionWarning: without --region, a warning naming --region when most of
// the first phones have no + or 00; none when most have, or when there is no
// phone column.
func TestRegionWarning(t *testing.T) {
	cols := Columns{Width: 2, Phone: 1, UserID: -1}
	rows := func(phones ...string) []Record {
		var out []Record
		for i, p := range phones {
			out = append(out, Record{Fields: []string{strconv.Itoa(i), p}, Line: i + 2, Lines: 1})
		}
		return out
	}
	for _, tc := range []struct {
		name string
		rows []Record
		warn bool
	}{
		{"national", rows("(31) 99551-1909", "31 99551-1910", "+55 31 99551-1911"), true},
		{"digits only", rows("31995511909", "31995511910"), true},
		{"international", rows("+55 31 99551-1909", "0055 31 99551-1910", "31995511911"), false},
		{"half and half", rows("+5531995511909", "31995511910"), false},
		{"no phones", rows("", " "), false},
		{"not CSV and short rows are left out", append(rows("+5531995511909"),
			Record{Err: errBareQuote, Raw: `1,"31`}, Record{Fields: []string{"x"}}), false},
	} {
		got := regionWarning(tc.rows, cols, "a.csv")
		if (got != "") != tc.warn || tc.warn && !strings.Contains(got, "--region") {
			t.Errorf("%s: %q", tc.name, got)
		}
	}
	if got := regionWarning(rows("31995511909"), Columns{Width: 2, Phone: -1, UserID: 0}, "a.csv"); got != "" {
		t.Errorf("no phone column: %q", got)
	}
}
