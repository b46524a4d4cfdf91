package keyword

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestNormalize(t *testing.T) {
	tests := []struct{ in, want string }{
		{"STOP", "stop"},
		{"  Stop  ", "stop"},
		{"parar.", "parar"},
		{"¡Baja!", "baja"},
		{`"STOP"`, "stop"},
		{"«Sair»", "sair"},
		{"'quit'", "quit"},
		{"STOP 🛑", "stop"},
		{"stop :)", "stop"},
		{"DÉTENER", "detener"},
		{"Dé de baja", "de de baja"},
		{"stop\t\n all", "stop all"},
		{"st.op", "st.op"},
		{"ＳＴＯＰ", "stop"},       // full-width
		{"S\u200bTOP", "stop"}, // zero-width space
		{"Descadastrar\u00a0", "descadastrar"},
		{"ÇÃÕ", "cao"},
		{"İptal", "iptal"},
		{"", ""},
		{" !!! ", ""},
		{"…", ""},
	}
	for _, tt := range tests {
		if got := Normalize(tt.in); got != tt.want {
			t.Errorf("Normalize(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestMatch(t *testing.T) {
	out := NewMatcher(DefaultOptOut)
	in := NewMatcher(DefaultOptIn)
	tests := []struct {
		text   string
		optOut bool
		optIn  bool
	}{
		{"STOP", true, false},
		{"stop", true, false},
		{" Stop ", true, false},
		{"Baja", true, false},
		{"PARAR ", true, false},
		{"parar.", true, false},
		{"Stop!", true, false},
		{"STOP ALL", false, false},
		{"stopall", true, false},
		{"DÉTENER", true, false},
		{"détener", true, false},
		{"Unsubscribe.", true, false},
		{"sair", true, false},
		{"Cancelar", true, false},
		{"ＳＴＯＰ", true, false},
		{"Dé de baja", false, false},
		{"Please stop sending me these", false, false},
		{"stop sending", false, false},
		{"stopped", false, false},
		{"STOPP", false, false},
		{"s t o p", false, false},
		{"st0p", false, false},
		{"", false, false},
		{"   ", false, false},
		{"!", false, false},
		// Chatbot navigation is not an opt-in (issue 14).
		{"ALTA", false, false},
		{"Voltar", false, false},
		{"VOLVER", false, false},
		{"Iniciar!", false, false},
		{"start", false, true},
		{"Volver a empezar", false, false},
		{"unstop", false, true},
		{" START ", false, true},
		// The labels of Meta's marketing opt-out button, as a tap sends them.
		{"Stop promotions", true, false},
		{"STOP PROMOTIONS", true, false},
		{"Parar promoções", true, false},
		{"parar promocoes", true, false},
		{"Detener promociones", true, false},
		{"Detener  promociones!", true, false},
		{"Please stop promotions", false, false},
		{"stop promotion", false, false},
	}
	for _, tt := range tests {
		if got := out.Match(tt.text); got != tt.optOut {
			t.Errorf("opt-out Match(%q) = %v, want %v", tt.text, got, tt.optOut)
		}
		if got := in.Match(tt.text); got != tt.optIn {
			t.Errorf("opt-in Match(%q) = %v, want %v", tt.text, got, tt.optIn)
		}
	}
	// Long messages are rejected early but correctly.
	if out.Match(strings.Repeat("stop ", 1000)) {
		t.Error("repeated stop matched")
	}
	if !out.Match("STOP" + strings.Repeat("!", 1000)) {
		t.Error("STOP!!!... did not match")
	}
}

func TestMatcherEdgeCases(t *testing.T) {
	var nilMatcher *Matcher
	if nilMatcher.Match("stop") {
		t.Error("nil Matcher matched")
	}
	m := NewMatcher([]string{"", "  ", "!!", "Stop All", "Baixa"})
	for text, want := range map[string]bool{"": false, " ": false, "!!": false, "stop   all": true, "STOP ALL.": true, "baixa": true, "stop": false} {
		if got := m.Match(text); got != want {
			t.Errorf("Match(%q) = %v, want %v", text, got, want)
		}
	}
	if NewMatcher(nil).Match("stop") {
		t.Error("empty Matcher matched")
	}
}

func FuzzMatch(f *testing.F) {
	for _, s := range []string{"STOP", " Stop ", "parar.", "DÉTENER", "Please stop sending me these", "stopped", "¡Baja!", "ＳＴＯＰ", "S\u200bTOP", "ﷺ", "Ⅻ", "\xff", ""} {
		f.Add(s, "STOP")
		f.Add(s, s)
	}
	f.Fuzz(func(t *testing.T, text, extra string) {
		keywords := append(append(append([]string{}, DefaultOptOut...), DefaultOptIn...), extra)
		m := NewMatcher(keywords)
		got := m.Match(text) // must not panic
		for _, k := range keywords {
			if Normalize(k) != "" && !m.Match(k) {
				t.Fatalf("Match(%q) = false for keyword %q", k, k)
			}
		}
		n := Normalize(text)
		if _, in := m.set[n]; got != in {
			t.Fatalf("Match(%q) = %v but Normalize gives %q (in set: %v)", text, got, n, in)
		}
		if got && n == "" {
			t.Fatalf("Match(%q) matched the empty string", text)
		}
		if Normalize(n) != n {
			t.Fatalf("Normalize not idempotent: %q -> %q -> %q", text, n, Normalize(n))
		}
		if !utf8.ValidString(n) {
			t.Fatalf("Normalize(%q) = %q is not valid UTF-8", text, n)
		}
	})
}

var sink bool

func BenchmarkMatch(b *testing.B) {
	m := NewMatcher(DefaultOptOut)
	for _, bb := range []struct{ name, text string }{
		{"keyword", " Stop! "},
		{"accented", "DÉTENER"},
		{"sentence", "Hi, can you tell me when my order will arrive? Thanks"},
		{"short_nomatch", "ok"},
	} {
		b.Run(bb.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				sink = m.Match(bb.text)
			}
		})
	}
}

func BenchmarkNormalize(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		_ = Normalize("  ¡DÉTENER!  ")
	}
}
