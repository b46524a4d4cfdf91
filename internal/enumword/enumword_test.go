package enumword

import (
	"strings"
	"testing"

	sgv1 "github.com/sendguard/sendguard/proto/sendguard/v1"
)

// check wants E's words to be its values' String() without prefix, for every
// declared number and a few it does not declare.
func check[E interface {
	Enum
	String() string
}](t *testing.T, prefix string) {
	t.Helper()
	w := New[E]()
	var zero E
	n := zero.Descriptor().Values().Len()
	for i := -1; i < n+2; i++ {
		e := E(i)
		want := strings.TrimPrefix(e.String(), prefix)
		if got := w.Upper(e); got != want {
			t.Errorf("Upper(%d) = %q, want %q", i, got, want)
		}
		// Exactly lower case (not EqualFold): the labels are matched exactly.
		if got, lower := w.Lower(e), strings.ToLower(want); got != lower {
			t.Errorf("Lower(%d) = %q, want %q", i, got, lower)
		}
		if got, known := w.Known(e), i >= 0 && i < n; got != known {
			t.Errorf("Known(%d) = %v, want %v", i, got, known)
		}
	}
}

func TestWords(t *testing.T) {
	check[sgv1.Verdict](t, "VERDICT_")
	check[sgv1.Rule](t, "RULE_")
	check[sgv1.Category](t, "CATEGORY_")
	check[sgv1.MessageStatus](t, "MESSAGE_STATUS_")
	check[sgv1.InboundKind](t, "INBOUND_KIND_")
	if got := New[sgv1.Rule]().Upper(sgv1.Rule_RULE_QUIET_HOURS); got != "QUIET_HOURS" {
		t.Errorf("QUIET_HOURS: %q", got)
	}
}

func TestWordsAllocateNothing(t *testing.T) {
	w := New[sgv1.Rule]()
	if n := testing.AllocsPerRun(100, func() {
		_ = w.Upper(sgv1.Rule_RULE_QUIET_HOURS)
		_ = w.Lower(sgv1.Rule_RULE_QUIET_HOURS)
	}); n != 0 {
		t.Errorf("%v allocations per word", n)
	}
}
