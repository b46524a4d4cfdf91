// Package enumword spells the values of the API's enums as words: each value's
// name without the prefix the enum's values share, which is the name of its
// zero value minus "UNSPECIFIED" ("RULE_QUIET_HOURS" is QUIET_HOURS, or
// quiet_hours). The words are built once, from the enum's descriptor, so that
// spelling a value allocates nothing (the metrics label every decision with
// them). It knows no I/O: the rules use it too.
package enumword

import (
	"strconv"
	"strings"

	"google.golang.org/protobuf/reflect/protoreflect"

	sgv1 "github.com/sendguard/sendguard/proto/sendguard/v1"
)

// The words of the API's enums, built once.
var (
	Verdicts     = New[sgv1.Verdict]()       // ALLOW, DEFER, DENY
	Rules        = New[sgv1.Rule]()          // QUIET_HOURS, …
	Categories   = New[sgv1.Category]()      // MARKETING, UTILITY, AUTHENTICATION, SERVICE
	Statuses     = New[sgv1.MessageStatus]() // SENT, DELIVERED, READ, PLAYED, FAILED
	InboundKinds = New[sgv1.InboundKind]()   // MESSAGE, CALL
)

// Enum is a generated enum type of the API.
type Enum interface {
	~int32
	protoreflect.Enum
}

// Words are the words of the values of the enum E.
type Words[E Enum] struct {
	upper, lower []string // by number; "" for a number the enum does not declare
}

// New builds the words of E's values. E's numbers are expected to be small
// (the table is as long as the largest).
func New[E Enum]() *Words[E] {
	var zero E
	values := zero.Descriptor().Values()
	prefix := strings.TrimSuffix(string(values.ByNumber(0).Name()), "UNSPECIFIED")
	w := &Words[E]{}
	for i := range values.Len() {
		v := values.Get(i)
		n := int(v.Number())
		if n < 0 {
			continue
		}
		for len(w.upper) <= n {
			w.upper, w.lower = append(w.upper, ""), append(w.lower, "")
		}
		word := strings.TrimPrefix(string(v.Name()), prefix)
		w.upper[n], w.lower[n] = word, strings.ToLower(word)
	}
	return w
}

// Known reports whether e is a value E declares.
func (w *Words[E]) Known(e E) bool { return e >= 0 && int(e) < len(w.upper) && w.upper[e] != "" }

// Upper is e's word as declared ("QUIET_HOURS", "UNSPECIFIED"); a number E
// does not declare is spelled in decimal, as its String method does.
func (w *Words[E]) Upper(e E) string {
	if w.Known(e) {
		return w.upper[e]
	}
	return strconv.Itoa(int(e))
}

// Lower is e's word in lower case ("quiet_hours", "unspecified"); a number E
// does not declare is spelled in decimal.
func (w *Words[E]) Lower(e E) string {
	if w.Known(e) {
		return w.lower[e]
	}
	return strconv.Itoa(int(e))
}
