package audience

import (
	"fmt"
	"strconv"
	"strings"
	"unicode"

	"golang.org/x/text/unicode/norm"
)

// Columns says where the recipient is in each row and what the output header is.
type Columns struct {
	Width  int      // fields per row (the header's)
	Phone  int      // index of the phone column, -1 if none
	UserID int      // index of the user ID column, -1 if none
	Sender int      // 1 + the index of the sender column, 0 if none
	Out    []string // the output header: the input's, then the verdict columns
}

// Header names that hold a phone number or a user ID, most specific first, as
// normalized by normalizeHeader.
var (
	phoneHeaders = []string{
		"phone", "phonenumber", "phonee164", "e164", "msisdn", "whatsapp", "whatsappnumber",
		"whatsappphone", "waid", "mobile", "mobilenumber", "mobilephone", "cellphone", "cell",
		"telefone", "telefono", "celular", "movil", "telephone", "tel", "number", "numero",
		"to", "recipient",
	}
	userIDHeaders = []string{"userid", "bsuid", "wauserid", "whatsappuserid", "businessscopeduserid"}
)

// outColumns are appended to every row; message_ref follows them with --reserve.
var outColumns = []string{"verdict", "rules", "retry_at", "phone_e164", "message", "message_ref"}

// normalizeHeader folds a header for matching: lower case, accents and everything
// but letters and digits removed ("Phone Number" and "phone_number" → "phonenumber",
// "Número" → "numero"); a UTF-8 byte order mark goes too.
func normalizeHeader(s string) string {
	var b strings.Builder
	for _, r := range norm.NFD.String(s) {
		switch {
		case unicode.Is(unicode.Mn, r):
		case unicode.IsLetter(r) || unicode.IsDigit(r):
			b.WriteRune(unicode.ToLower(r))
		}
	}
	return b.String()
}

// DetectColumns finds the phone and user ID columns. flag values name a column
// (header name, exact or normalized) or number it (1-based); empty means: find it
// by the header names above. At least one of the two must be found.
func DetectColumns(header []string, phoneFlag, userFlag string, noHeader bool) (Columns, error) {
	c := Columns{Width: len(header), Phone: -1, UserID: -1}
	names := headerNames(header, noHeader)
	find := func(flag, what string, candidates []string) (int, error) {
		if flag != "" {
			return namedColumn(names, flag, what, noHeader)
		}
		if noHeader {
			return -1, nil
		}
		norms := make([]string, len(names))
		for i, n := range names {
			norms[i] = normalizeHeader(n)
		}
		for _, cand := range candidates {
			for i, n := range norms {
				if n == cand {
					return i, nil
				}
			}
		}
		return -1, nil
	}
	var err error
	if c.Phone, err = find(phoneFlag, "phone", phoneHeaders); err != nil {
		return c, err
	}
	if noHeader && phoneFlag == "" && userFlag == "" {
		c.Phone = 0
	}
	if c.UserID, err = find(userFlag, "user ID", userIDHeaders); err != nil {
		return c, err
	}
	if c.Phone >= 0 && c.Phone == c.UserID {
		return c, fmt.Errorf("the phone and user ID columns are both %q", names[c.Phone])
	}
	if c.Phone < 0 && c.UserID < 0 {
		return c, fmt.Errorf("no phone column in the header (%s): name it with --phone-column", strings.Join(names, ", "))
	}
	taken := map[string]bool{}
	for _, n := range names {
		taken[strings.ToLower(n)] = true
	}
	c.Out = append(c.Out, names...)
	for _, n := range outColumns {
		if taken[n] {
			n = "sendguard_" + n
		}
		c.Out = append(c.Out, n)
	}
	return c, nil
}

// headerNames are the names of the columns: the header's, or column1, column2…
// without one.
func headerNames(header []string, noHeader bool) []string {
	names := make([]string, len(header))
	for i, h := range header {
		if noHeader {
			names[i] = "column" + strconv.Itoa(i+1)
		} else {
			names[i] = strings.TrimPrefix(h, "\ufeff")
		}
	}
	return names
}

// namedColumn finds the column a flag names: a header name (exact, or
// normalized) or a 1-based number.
func namedColumn(names []string, flag, what string, noHeader bool) (int, error) {
	for i, n := range names {
		if n == flag {
			return i, nil
		}
	}
	if !noHeader {
		for i, n := range names {
			if normalizeHeader(n) == normalizeHeader(flag) && normalizeHeader(flag) != "" {
				return i, nil
			}
		}
	}
	if k, err := strconv.Atoi(flag); err == nil {
		if k < 1 || k > len(names) {
			return -1, fmt.Errorf("%s column %d: the file has %d columns", what, k, len(names))
		}
		return k - 1, nil
	}
	return -1, fmt.Errorf("%s column %q is not in the header (%s)", what, flag, strings.Join(names, ", "))
}
