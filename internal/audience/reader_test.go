package audience

import (
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"
	"testing/iotest"
	"unicode/utf8"
)

// readAll reads every record of input with delimiter comma (0: detect) and
// header width (0: any), and returns them and the reader.
func readAll(t testing.TB, input string, comma byte, width int) ([]Record, *Reader) {
	t.Helper()
	ar := NewReader(strings.NewReader(input), comma)
	ar.width = width
	var recs []Record
	for {
		rec, err := ar.Read()
		if errors.Is(err, io.EOF) {
			return recs, ar
		}
		if err != nil {
			t.Fatalf("read: %v", err)
		}
		recs = append(recs, rec)
	}
}

// show prints a record for comparison: "L3 [a|b|c]" for a record of line 3,
// "L3-4 [a|b]" for one of lines 3 and 4, "L3! why: raw" for a line that is
// not CSV, "L3 [a|b] raw" for a record with another number of fields.
func show(rec Record) string {
	at := fmt.Sprintf("L%d", rec.Line)
	if rec.Lines > 1 {
		at += fmt.Sprintf("-%d", rec.Line+rec.Lines-1)
	}
	if rec.Err != nil {
		return fmt.Sprintf("%s! %s: %s", at, errName(rec.Err), rec.Raw)
	}
	s := at + " [" + strings.Join(rec.Fields, "|") + "]"
	if rec.Raw != "" {
		s += " raw " + rec.Raw
	}
	return s
}

func errName(err error) string {
	var span *spanError
	switch {
	case errors.Is(err, errBareQuote):
		return "bare"
	case errors.Is(err, errAfterQuote):
		return "after"
	case errors.Is(err, errNeverClosed):
		return "unclosed"
	case errors.Is(err, errTooManyLines):
		return "lines"
	case errors.Is(err, errLineTooLong):
		return "long"
	case errors.Is(err, errRecordTooLong):
		return "big"
	case errors.As(err, &span):
		return fmt.Sprintf("span(%d,%d)", span.closes, span.fields)
	}
	return err.Error()
}

// TestReader: every shape of broken quote, field count, line end and
// delimiter gives the records it should, and every line is in exactly one.
func TestReader(t *testing.T) {
	elevenLines := strings.Repeat("2,b,c\n", 11)
	for _, tc := range []struct {
		name  string
		in    string
		comma byte
		width int
		want  []string
	}{
		{name: "plain", in: "id,name,phone\n1,Ana,+55\n2,Bia,+56\n", want: []string{"L1 [id|name|phone]", "L2 [1|Ana|+55]", "L3 [2|Bia|+56]"}},
		{name: "no final line end", in: "a,b\n1,2", want: []string{"L1 [a|b]", "L2 [1|2]"}},
		{name: "BOM, CRLF and ;", in: "\ufeffid;nome;telefone\r\n1;Ana;(31) 99551-1909\r\n2;\"Bia; Jr\";+55\r\n", want: []string{"L1 [id|nome|telefone]", "L2 [1|Ana|(31) 99551-1909]", "L3 [2|Bia; Jr|+55]"}},
		{name: "tab", in: "id\tphone\n1\t+55 11\n", want: []string{"L1 [id|phone]", "L2 [1|+55 11]"}},
		{name: "pipe", in: "id|phone|city\n1|+55|São Paulo, SP\n", want: []string{"L1 [id|phone|city]", "L2 [1|+55|São Paulo, SP]"}},
		{name: "given delimiter", in: "a;b,c\n1;2,3\n", comma: ';', want: []string{"L1 [a|b,c]", "L2 [1|2,3]"}},
		{name: "quoted fields", in: `a,b,c` + "\n" + `"x ""y"" z","",","` + "\n", want: []string{"L1 [a|b|c]", `L2 [x "y" z||,]`}},
		{name: "trailing delimiter", in: "a,b,c\n1,2,\n1,\"2\",\n", want: []string{"L1 [a|b|c]", "L2 [1|2|]", "L3 [1|2|]"}},
		{name: "stray quote mid-field", in: "a,b,c\n1,Ana \"Bia\" Costa,+55\n2,Caio,+56\n", width: 3,
			want: []string{"L1 [a|b|c]", `L2! bare: 1,Ana "Bia" Costa,+55`, "L3 [2|Caio|+56]"}},
		{name: "quote at the end of an unquoted field", in: "1,12\",+55\n2,b,c\n", width: 3,
			want: []string{`L1! bare: 1,12",+55`, "L2 [2|b|c]"}},
		{name: "quote after spaces", in: "1, \"b\",c\n", width: 3, want: []string{`L1! bare: 1, "b",c`}},
		{name: "text after the closing quote", in: "1,\"Ana\"x,+55\n2,b,c\n", width: 3,
			want: []string{`L1! after: 1,"Ana"x,+55`, "L2 [2|b|c]"}},
		{name: "unterminated quote at EOF", in: "1,\"Ana,+55\n2,Bia,+56\n3,Caio,+57", width: 3,
			want: []string{`L1! unclosed: 1,"Ana,+55`, "L2 [2|Bia|+56]", "L3 [3|Caio|+57]"}},
		{name: "unterminated quote on the last line", in: "1,b,c\n2,\"b,c\n", width: 3,
			want: []string{"L1 [1|b|c]", `L2! unclosed: 2,"b,c`}},
		{name: "a quoted field over lines", in: "id,address,phone\n1,\"Rua A, 10\r\nApto 2\n\nSP\",+55\n2,b,c\n", width: 3,
			want: []string{"L1 [id|address|phone]", "L2-5 [1|Rua A, 10\nApto 2\n\nSP|+55]", "L6 [2|b|c]"}},
		{name: "two stray quotes: the span has too many fields", in: "1,\"Ana,+55\n2,Bia\",+56,x\n3,c,d\n", width: 3,
			want: []string{`L1! span(2,4): 1,"Ana,+55`, `L2! bare: 2,Bia",+56,x`, "L3 [3|c|d]"}},
		{name: "two stray quotes: text after the close", in: "1,\"Ana,+55\n2,Bia,+56\n3,\"Caio\",+57\n", width: 3,
			want: []string{`L1! after: 1,"Ana,+55`, "L2 [2|Bia|+56]", `L3 [3|Caio|+57]`}},
		{name: "a span without a header width is taken", in: "1,\"a\nb\",c,d\n", want: []string{"L1-2 [1|a\nb|c|d]"}},
		{name: "a quote open past the line limit", in: "1,\"open\n" + elevenLines, width: 3,
			want: append([]string{`L1! lines: 1,"open`}, func() []string {
				var w []string
				for i := 2; i <= 12; i++ {
					w = append(w, fmt.Sprintf("L%d [2|b|c]", i))
				}
				return w
			}()...)},
		{name: "a quote closing on the last line allowed", in: "1,\"a" + strings.Repeat("\nx", maxRecordLines-1) + "\",c\n", width: 3,
			want: []string{"L1-10 [1|a" + strings.Repeat("\nx", maxRecordLines-1) + "|c]"}},
		{name: "wrong field counts", in: "a,b,c\n1,2\n1,2,3,4\n1,2,3\n", width: 3,
			want: []string{"L1 [a|b|c]", "L2 [1|2] raw 1,2", "L3 [1|2|3|4] raw 1,2,3,4", "L4 [1|2|3]"}},
		{name: "empty lines", in: "\n\r\na,b\n\n1,2\r\n\r\n", width: 2, want: []string{"L3 [a|b]", "L5 [1|2]"}},
		{name: "a line of spaces is a field", in: "  \n", want: []string{"L1 [  ]"}},
		{name: "a bare CR inside a line is kept", in: "a\rb,c\n", want: []string{"L1 [a\rb|c]"}},
		{name: "a BOM only at the start", in: "\ufeffa,b\n\ufeff1,2\n", want: []string{"L1 [a|b]", "L2 [\ufeff1|2]"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			recs, ar := readAll(t, tc.in, tc.comma, tc.width)
			var got []string
			for _, r := range recs {
				got = append(got, show(r))
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("records:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(tc.want, "\n  "))
			}
			if skipped := checkCoverage(t, []byte(tc.in), recs); ar.empty != skipped {
				t.Errorf("%d empty lines counted, %d skipped", ar.empty, skipped)
			}
		})
	}
}

// TestReaderLong: a line over maxLineBytes is not CSV and keeps its
// start; a quoted field that runs past it too; the lines after them are read.
func TestReaderLong(t *testing.T) {
	long := "1,é" + strings.Repeat("x", maxLineBytes) + ",c"
	recs, ar := readAll(t, "a,b,c\n"+long+"\r\n2,b,c\n1,\"x\n"+strings.Repeat("y", maxLineBytes-5)+"\",c\n3,b,c", 0, 3)
	if len(recs) != 6 || ar.empty != 0 {
		t.Fatalf("%d records", len(recs))
	}
	if recs[1].Err != errLineTooLong || recs[1].Line != 2 || !strings.HasSuffix(recs[1].Raw, "…") || !strings.HasPrefix(recs[1].Raw, "1,é") ||
		len(recs[1].Raw) > keptLongLine+len("…") || !utf8.ValidString(recs[1].Raw) {
		t.Fatalf("long line: %v line %d raw %d bytes", recs[1].Err, recs[1].Line, len(recs[1].Raw))
	}
	if show(recs[2]) != "L3 [2|b|c]" || recs[3].Err != errRecordTooLong || recs[3].Line != 4 || recs[4].Err != errBareQuote || show(recs[5]) != "L6 [3|b|c]" {
		t.Fatalf("after the long line: %s / %v / %v / %s", show(recs[2]), recs[3].Err, recs[4].Err, show(recs[5]))
	}
	// A character cut in two at keptLongLine is dropped.
	cut := strings.Repeat("x", keptLongLine-1) + "é"
	if got := keptText([]byte(cut)); got != strings.Repeat("x", keptLongLine-1) {
		t.Fatalf("keptText cut a character: %q", got[len(got)-3:])
	}
}

// TestReaderReadError: a read error ends the records after the lines
// read before it; inside an open quoted field it is the read error, not a line
// that is not CSV.
func TestReaderReadError(t *testing.T) {
	boom := errors.New("disk on fire")
	for _, tc := range []struct {
		in   string
		want []string
	}{
		{"a,b\n1,2\n", []string{"L1 [a|b]", "L2 [1|2]"}},
		{"a,b\n1,\"2\n3", []string{"L1 [a|b]"}},
		{"a,b\n1,2", []string{"L1 [a|b]", "L2 [1|2]"}},
	} {
		ar := NewReader(io.MultiReader(strings.NewReader(tc.in), iotest.ErrReader(boom)), 0)
		var got []string
		var err error
		for {
			var rec Record
			if rec, err = ar.Read(); err != nil {
				break
			}
			got = append(got, show(rec))
		}
		if !errors.Is(err, boom) || !slices.Equal(got, tc.want) {
			t.Errorf("%q: %q then %v; want %q then %v", tc.in, got, err, tc.want, boom)
		}
		if _, again := ar.Read(); !errors.Is(again, boom) {
			t.Errorf("%q: the error is not sticky: %v", tc.in, again)
		}
	}
}

func TestDetectDelimiter(t *testing.T) {
	for in, want := range map[string]byte{
		"id,name,phone":         ',',
		"id;nome;telefone":      ';',
		"id\tname\tphone":       '\t',
		"id|name|phone":         '|',
		`"name, full";phone`:    ';',
		`"a;b;c",d`:             ',',
		"phone":                 ',',
		"":                      ',',
		"a,b;c":                 ',', // a tie: the earlier one
		"a;b|c|d":               '|',
		"Name, Jr;Phone;City":   ';',
		"\ufeffid;name;phone":   ';',
		"id,name;phone;x;y;z,w": ';',
	} {
		if got := detectDelimiter([]byte(in)); got != want {
			t.Errorf("detectDelimiter(%q) = %q, want %q", in, got, want)
		}
	}
	// The reader detects from the first line that is not empty, after the BOM.
	if _, ar := readAll(t, "\r\n\ufeff\n", 0, 0); ar.comma != ',' {
		t.Errorf("nothing but empty lines: %q", ar.comma)
	}
	if _, ar := readAll(t, "\ufeff\r\n\r\nid;phone\r\n", 0, 0); ar.comma != ';' {
		t.Errorf("after empty lines: %q", ar.comma)
	}
}

// physicalLines splits input as the reader does: at "\n", the line end not
// included; a final line end starts no line.
func physicalLines(input []byte) [][]byte {
	if len(input) == 0 {
		return nil
	}
	lines := bytes.Split(input, []byte("\n"))
	if len(lines[len(lines)-1]) == 0 {
		lines = lines[:len(lines)-1]
	}
	return lines
}

// checkCoverage checks that every line of input is in exactly one record, in
// order, or is an empty line skipped, and that a line that is not CSV keeps
// its text. It returns the number of empty lines skipped.
func checkCoverage(t testing.TB, input []byte, recs []Record) (skipped int) {
	t.Helper()
	lines := physicalLines(input)
	text := func(i int) []byte { // line i (from 1) as the reader sees it
		l := bytes.TrimSuffix(lines[i-1], []byte("\r"))
		if i == 1 {
			l = bytes.TrimPrefix(l, []byte("\ufeff"))
		}
		return l
	}
	next := 1
	for _, rec := range recs {
		for ; next < rec.Line; next++ {
			if len(text(next)) != 0 {
				t.Fatalf("line %d (%q) is in no record (the next record starts on line %d)", next, text(next), rec.Line)
			}
			skipped++
		}
		if rec.Line != next || rec.Lines < 1 || rec.Lines > maxRecordLines || (rec.Err != nil && rec.Lines != 1) {
			t.Fatalf("record at line %d spanning %d lines; line %d expected", rec.Line, rec.Lines, next)
		}
		if rec.Err != nil && !errors.Is(rec.Err, errLineTooLong) && rec.Raw != string(text(rec.Line)) {
			t.Fatalf("line %d is not CSV and its raw text %q is not the line %q", rec.Line, rec.Raw, text(rec.Line))
		}
		next += rec.Lines
	}
	for ; next <= len(lines); next++ {
		if len(text(next)) != 0 {
			t.Fatalf("line %d (%q), after the last record, is in none", next, text(next))
		}
		skipped++
	}
	return skipped
}

// FuzzReader: whatever the input, no line is lost or read twice, the
// records come in order, and an input that encoding/csv reads in full (strict
// quotes, no record over the reader's limits) gives the same fields.
func FuzzReader(f *testing.F) {
	for _, seed := range []string{
		"id,name,phone\n1,Ana,+55\n",
		"\ufeffid;nome;telefone\r\n1;\"Ana; \"\"A\"\"\";(31) 99551-1909\r\n",
		"a,b,c\n1,\"Ana,+55\n2,Bia\",+56,x\n3,c,d\n",
		"a|b\n1|\"x\ny\"\n\n2|3",
		"1,12\",+55\n\"\n\"\"\n",
		"a\tb\n\"a\"b\t\n",
	} {
		f.Add([]byte(seed), uint8(0), uint8(0))
		f.Add([]byte(seed), uint8(3), uint8(1))
	}
	f.Fuzz(func(t *testing.T, input []byte, width, comma uint8) {
		var c byte
		if comma > 0 {
			c = delimiters[int(comma)%len(delimiters)]
		}
		recs, ar := readAll(t, string(input), c, int(width%8))
		if skipped := checkCoverage(t, input, recs); ar.empty != skipped {
			t.Fatalf("%d empty lines counted, %d skipped", ar.empty, skipped)
		}

		// Against encoding/csv, where it reads everything and the reader's own
		// limits and rules (spans with the header's width) do not apply.
		if width%8 != 0 || !utf8.Valid(input) || len(input) > maxLineBytes {
			return
		}
		rd := csv.NewReader(bytes.NewReader(bytes.TrimPrefix(input, []byte("\ufeff"))))
		rd.Comma = rune(ar.comma)
		rd.FieldsPerRecord = -1
		want, err := rd.ReadAll()
		if err != nil {
			return
		}
		for _, rec := range recs {
			if rec.Err != nil {
				if errors.Is(rec.Err, errTooManyLines) {
					return
				}
				t.Fatalf("line %d is not CSV for the reader (%v) but encoding/csv reads the file: %q", rec.Line, rec.Err, want)
			}
		}
		if len(recs) != len(want) {
			t.Fatalf("%d records, encoding/csv %d", len(recs), len(want))
		}
		for i, rec := range recs {
			if !slices.Equal(rec.Fields, want[i]) {
				t.Fatalf("record %d: %q, encoding/csv %q", i, rec.Fields, want[i])
			}
		}
	})
}

// BenchmarkReader reads a 100,000-row export with the audience reader
// and, as the baseline, with encoding/csv (what validate used before).
func BenchmarkReader(b *testing.B) {
	var in bytes.Buffer
	in.WriteString("id;nome;celular;cidade\r\n")
	for i := range 100_000 {
		fmt.Fprintf(&in, "%d;\"Cliente %d\";(11) 9%04d-%04d;São Paulo\r\n", i, i, i/10000, i%10000)
	}
	data := in.Bytes()
	b.Run("Reader", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			rd := NewReader(bytes.NewReader(data), 0)
			for {
				if _, err := rd.Read(); err != nil {
					break
				}
			}
		}
	})
	b.Run("encoding_csv", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			rd := csv.NewReader(bytes.NewReader(data))
			rd.Comma, rd.FieldsPerRecord = ';', -1
			for {
				if _, err := rd.Read(); err != nil {
					break
				}
			}
		}
	})
}
