package keyword

import (
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// DefaultOptOut are the common opt-out keywords in English, Spanish and
// Portuguese, and the labels of Meta's marketing opt-out quick-reply button,
// which Meta shows in the template's language ("Stop promotions", and as
// senders' templates and webhook fixtures show it in Portuguese and Spanish)
// and does not act on: a tap arrives as a button reply whose text is the
// label, and the business must opt the user out.
var DefaultOptOut = []string{
	"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT",
	"BAJA", "DETENER", "PARAR", "SALIR", "DESUSCRIBIR",
	"SAIR", "CANCELAR", "REMOVER", "DESCADASTRAR",
	"Stop promotions", "Parar promoções", "Detener promociones",
}

// DefaultOptIn are the keywords for opting back in: only the explicit ones.
// Chatbot navigation words (VOLTAR, VOLVER, INICIAR: "back", "start"), which
// users tap in menus, are not a request for marketing.
var DefaultOptIn = []string{"START", "UNSTOP"}

// Normalize returns the form in which keywords are compared:
//   - compatibility-decomposed (NFKD) with combining marks dropped, so
//     accents go ("DÉTENER" -> "detener") and full-width or ligature forms
//     become plain letters;
//   - lower-cased;
//   - invisible format characters (zero-width spaces and joiners, BOM)
//     dropped anywhere;
//   - runs of white space collapsed to one ASCII space;
//   - punctuation, symbols (emoji included) and white space trimmed from
//     both ends ("¡Baja!", "\"STOP\"", "parar." -> "baja", "stop",
//     "parar"). Inner punctuation is kept: "st.op" stays "st.op".
func Normalize(s string) string {
	var buf [64]byte
	return string(appendNormalized(buf[:0], s))
}

// appendNormalized appends Normalize(s) to dst.
func appendNormalized(dst []byte, s string) []byte {
	if isASCII(s) {
		return appendFolded(dst, s)
	}
	var tmp [256]byte
	return appendFolded(dst, norm.NFKD.AppendString(tmp[:0], s))
}

// appendFolded does the work of appendNormalized on s, which is ASCII or
// already NFKD-decomposed.
func appendFolded[S string | []byte](dst []byte, s S) []byte {
	start := len(dst)
	space := false // a white-space run is pending
	for i := 0; i < len(s); {
		r, size := rune(s[i]), 1
		if r >= utf8.RuneSelf {
			r, size = decodeRune(s[i:])
		}
		i += size
		switch {
		case r < utf8.RuneSelf:
			if r == ' ' || r >= '\t' && r <= '\r' {
				space = true
				continue
			}
			if r >= 'A' && r <= 'Z' {
				r += 'a' - 'A'
			}
		case unicode.IsSpace(r):
			space = true
			continue
		case unicode.Is(unicode.Mn, r) || unicode.Is(unicode.Cf, r):
			continue
		default:
			r = unicode.ToLower(r)
		}
		if space {
			if len(dst) > start {
				dst = append(dst, ' ')
			}
			space = false
		}
		dst = utf8.AppendRune(dst, r)
	}
	// Trim punctuation, symbols and spaces at both ends.
	out := dst[start:]
	for len(out) > 0 {
		r, size := utf8.DecodeRune(out)
		if !isEdge(r) {
			break
		}
		out = out[size:]
	}
	for len(out) > 0 {
		r, size := utf8.DecodeLastRune(out)
		if !isEdge(r) {
			break
		}
		out = out[:len(out)-size]
	}
	n := copy(dst[start:], out)
	return dst[:start+n]
}

// isEdge reports the runes trimmed from both ends of a normalized message.
func isEdge(r rune) bool {
	if r < utf8.RuneSelf {
		return r == ' ' || r >= '!' && r <= '/' || r >= ':' && r <= '@' || r >= '[' && r <= '`' || r >= '{' && r <= '~' || r < ' ' || r == 0x7f
	}
	return unicode.IsPunct(r) || unicode.IsSymbol(r) || unicode.IsSpace(r) || unicode.IsControl(r) || r == utf8.RuneError
}

func decodeRune[S string | []byte](s S) (rune, int) {
	switch v := any(s).(type) {
	case string:
		return utf8.DecodeRuneInString(v)
	case []byte:
		return utf8.DecodeRune(v)
	}
	return utf8.RuneError, 1
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// Matcher matches a message that IS one of its keywords (after [Normalize]),
// never a sentence that merely contains one. It is safe for concurrent use.
type Matcher struct {
	set    map[string]struct{}
	maxLen int // longest normalized keyword, in runes
}

// NewMatcher returns a Matcher for keywords. Keywords that normalize to the
// empty string (blank or punctuation only) are ignored, so an empty message
// never matches.
func NewMatcher(keywords []string) *Matcher {
	m := &Matcher{set: make(map[string]struct{}, len(keywords))}
	for _, k := range keywords {
		n := Normalize(k)
		if n == "" {
			continue
		}
		m.set[n] = struct{}{}
		m.maxLen = max(m.maxLen, utf8.RuneCountInString(n))
	}
	return m
}

// Match reports whether text, normalized, is one of m's keywords.
func (m *Matcher) Match(text string) bool {
	if m == nil || len(m.set) == 0 {
		return false
	}
	// Normalizing never removes letters or digits (NFKD keeps or expands
	// them, lower-casing keeps them), so a text with more letters and digits
	// than the longest keyword has runes cannot match. This keeps long
	// messages cheap.
	if letters(text, m.maxLen) > m.maxLen {
		return false
	}
	var buf [128]byte
	b := appendNormalized(buf[:0], text)
	_, ok := m.set[string(b)] // no allocation for the lookup
	return ok
}

// letters counts the letters and digits in s, stopping once past limit.
func letters(s string, limit int) int {
	n := 0
	for _, r := range s {
		if r < utf8.RuneSelf {
			if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' {
				n++
			}
		} else if unicode.IsLetter(r) || unicode.IsDigit(r) {
			n++
		}
		if n > limit {
			break
		}
	}
	return n
}
