package main

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"
)

// readAllLines reads every record of in after its header.
func readAllLines(t testing.TB, in string, comma rune) (csvRecord, []csvRecord) {
	t.Helper()
	c := newCSVLines(strings.NewReader(in))
	h, err := c.readHeader(comma)
	if err != nil {
		t.Fatal(err)
	}
	c.width = len(h.fields)
	var recs []csvRecord
	for {
		r, err := c.next()
		if errors.Is(err, io.EOF) {
			return h, recs
		}
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, r)
	}
}

// show prints a record as "line:fields" or "line:BAD raw".
func show(r csvRecord) string {
	if r.err != nil {
		return fmt.Sprintf("%d:BAD %s", r.line, r.raw)
	}
	return fmt.Sprintf("%d:%s", r.line, strings.Join(r.fields, "|"))
}

func TestCSVLines(t *testing.T) {
	tests := []struct {
		name, in string
		header   string
		want     []string
	}{
		{"plain", "id,phone\n1,+5511\n2,+5512\n", "id|phone", []string{"2:1|+5511", "3:2|+5512"}},
		{"BOM, CRLF, no final newline, empty lines", "\ufeffid;phone\r\n1;+5511\r\n\r\n2;+5512", "id|phone", []string{"2:1|+5511", "4:2|+5512"}},
		{"tab", "id\tphone\n1\t+5511\n", "id|phone", []string{"2:1|+5511"}},
		{"pipe, quoted header", "\"id\"|\"phone\"\n1|+5511\n", "id|phone", []string{"2:1|+5511"}},
		{"quoted fields with the delimiter and doubled quotes", "name,phone\n\"Silva, \"\"Mia\"\"\",+5511\n", "name|phone", []string{`2:Silva, "Mia"|+5511`}},
		{"a quoted field over three lines", "id,address,phone\n1,\"Rua X, 12\nBairro Y\nSão Paulo\",+5511\n2,Rua Z,+5513\n", "id|address|phone",
			[]string{"2:1|Rua X, 12\nBairro Y\nSão Paulo|+5511", "5:2|Rua Z|+5513"}},
		{"a quoted field over lines that look like rows is not taken", "id,address,phone\n1,\"Rua X\nBairro, Y, Z\nSão Paulo\",+5511\n", "id|address|phone",
			[]string{`2:BAD 1,"Rua X`, "3:Bairro| Y| Z", `4:BAD São Paulo",+5511`}},
		{"a stray quote is one bad line, not the rest of the file", "name,phone\n\"Maria,+5511\nJoão,+5512\nAna,+5513\n", "name|phone",
			[]string{`2:BAD "Maria,+5511`, "3:João|+5512", "4:Ana|+5513"}},
		{"two stray quotes do not join the lines between them", "name,phone\n\"Maria,+5511\nJoão,+5512\nAna\",+5513\nBia,+5514\n", "name|phone",
			[]string{`2:BAD "Maria,+5511`, "3:João|+5512", `4:BAD Ana",+5513`, "5:Bia|+5514"}},
		{"a bare quote", "name,phone\nO\"Neil,+5511\nBia,+5512\n", "name|phone", []string{`2:BAD O"Neil,+5511`, "3:Bia|+5512"}},
		{"text after a closing quote", "name,phone\n\"Mia\"x,+5511\n", "name|phone", []string{`2:BAD "Mia"x,+5511`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h, recs := readAllLines(t, tc.in, 0)
			if got := strings.Join(h.fields, "|"); got != tc.header || h.err != nil {
				t.Errorf("header %q (%v), want %q", got, h.err, tc.header)
			}
			var got []string
			for _, r := range recs {
				got = append(got, show(r))
				if r.err != nil && !errors.Is(r.err, errNotCSV) {
					t.Errorf("line %d: %v does not wrap errNotCSV", r.line, r.err)
				}
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("records\n got: %q\nwant: %q", got, tc.want)
			}
		})
	}
}

func TestDetectDelimiter(t *testing.T) {
	for header, want := range map[string]rune{
		"id,phone,name":           ',',
		"id;phone;name":           ';',
		"id\tphone\tname":         '\t',
		"id|phone|name":           '|',
		"phone":                   ',',
		`"a;b",phone`:             ',', // the ; is quoted
		"nome;telefone,celular;x": ';',
	} {
		if got := detectDelimiter(header); got != want {
			t.Errorf("%q: %q, want %q", header, got, want)
		}
	}
	for _, s := range []string{",", ";", "|", "tab", `\t`} {
		if _, err := parseDelimiter(s); err != nil {
			t.Errorf("%q: %v", s, err)
		}
	}
	if _, err := parseDelimiter(":"); err == nil {
		t.Error(`":" accepted`)
	}
}

// FuzzCSVLines: whatever the bytes, reading ends, records come in line order
// without overlapping, every non-empty line is in exactly one record, and a
// line without quotes is its fields split at the delimiter.
func FuzzCSVLines(f *testing.F) {
	f.Add("id,phone\n1,+5511\n\"2,+5512\n3,\"x\ny\",+5513\n")
	f.Add("\ufeffa;b\r\n\"\"\"\";x\r\n")
	f.Add("a|b\n\"|\"\n\n\"")
	f.Fuzz(func(t *testing.T, in string) {
		c := newCSVLines(strings.NewReader(in))
		h, err := c.readHeader(0)
		if errors.Is(err, io.EOF) {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		c.width = len(h.fields)
		lines := strings.Split(strings.TrimPrefix(in, "\ufeff"), "\n")
		end := h.line + h.lines - 1
		for {
			r, err := c.next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			if r.line <= end || r.lines < 1 || r.line+r.lines-1 > len(lines) {
				t.Fatalf("record at line %d (+%d) after line %d of %d", r.line, r.lines, end, len(lines))
			}
			for l := end + 1; l < r.line; l++ {
				if strings.TrimSuffix(lines[l-1], "\r") != "" {
					t.Fatalf("line %d (%q) skipped", l, lines[l-1])
				}
			}
			raw := strings.TrimSuffix(lines[r.line-1], "\r")
			if r.err == nil && r.lines == 1 && !strings.Contains(raw, `"`) && !slices.Equal(r.fields, strings.Split(raw, string(c.comma))) {
				t.Fatalf("line %d %q read as %q", r.line, raw, r.fields)
			}
			end = r.line + r.lines - 1
		}
	})
}
