package main

import (
	"bufio"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strings"
)

// csvLines reads a delimited file (an audience, a suppression list) one record
// at a time so that a line that is not CSV never ends or shortens the reading:
// it comes back as a bad record holding the raw line, and reading resumes at the
// next line. encoding/csv alone cannot do that: one stray quote makes it read the
// rest of the file as a single quoted field.
//
// A record is one line, or several when a quoted field holds line breaks: a line
// with an odd number of quote characters opens a field that a later line closes,
// and the lines are joined while the count stays odd (at most csvMaxRecordLines
// lines). A stray quote opens a field too, and joining would then swallow the
// rows up to the next stray quote, so lines are joined only when none of them
// but the last could be a row by itself (it has fewer fields than the header:
// see partial) and the joined record has the header's number of fields. Otherwise the first line is bad and the lines after it are read again
// on their own: a real multi-line field that fails the test is reported as bad
// lines, never read as rows it is not. A UTF-8 byte order mark before the first
// line is dropped, CRLF line ends are read as LF, and empty lines are skipped.
type csvLines struct {
	br    *bufio.Reader
	comma rune
	// width is the number of fields a joined record must have (the header's);
	// 0 takes any.
	width int
	line  int      // physical lines read so far
	back  []string // lines read ahead and given back, oldest first
	eof   bool
}

// csvMaxRecordLines bounds the lines one quoted field may span.
const csvMaxRecordLines = 16

// csvRecord is one record of a csvLines.
type csvRecord struct {
	line   int      // its first line, from 1
	lines  int      // the lines it spans
	fields []string // nil when err is set
	raw    string   // the line as read (for a bad line: what to show)
	err    error    // why the line is not CSV
}

func newCSVLines(r io.Reader) *csvLines {
	return &csvLines{br: bufio.NewReaderSize(r, 1<<20), comma: ','}
}

// errNotCSV wraps every bad line's error.
var errNotCSV = errors.New("not CSV")

// physical returns the next line without its line end, or io.EOF.
func (c *csvLines) physical() (string, error) {
	if n := len(c.back); n > 0 {
		l := c.back[0]
		c.back = c.back[1:]
		c.line++
		return l, nil
	}
	if c.eof {
		return "", io.EOF
	}
	s, err := c.br.ReadString('\n')
	switch {
	case errors.Is(err, io.EOF):
		c.eof = true
		if s == "" {
			return "", io.EOF
		}
	case err != nil:
		return "", err
	}
	c.line++
	s = strings.TrimSuffix(strings.TrimSuffix(s, "\n"), "\r")
	if c.line == 1 {
		s = strings.TrimPrefix(s, "\ufeff")
	}
	return s, nil
}

// unread gives lines back to be read again, in order.
func (c *csvLines) unread(lines []string) {
	c.back = append(append([]string(nil), lines...), c.back...)
	c.line -= len(lines)
}

// next returns the next record, or io.EOF after the last; any other error is
// the input's (a read error), and ends the reading.
func (c *csvLines) next() (csvRecord, error) {
	var l string
	for l == "" {
		var err error
		if l, err = c.physical(); err != nil {
			return csvRecord{}, err
		}
	}
	rec := csvRecord{line: c.line, lines: 1, raw: l}
	quotes := strings.Count(l, `"`)
	if quotes == 0 {
		rec.fields = strings.Split(l, string(c.comma))
		return rec, nil
	}
	if quotes%2 == 0 {
		rec.fields, rec.err = c.parse(l, rec.line, false)
		return rec, nil
	}
	// An open quoted field: join the lines that may close it.
	var ahead []string
	joined := l
	for open := c.partial(l, true); open && len(ahead) < csvMaxRecordLines-1; {
		more, err := c.physical()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return csvRecord{}, err
		}
		ahead = append(ahead, more)
		joined += "\n" + more
		if quotes += strings.Count(more, `"`); quotes%2 == 0 {
			if fields, err := c.parse(joined, rec.line, true); err == nil {
				rec.fields, rec.lines = fields, 1+len(ahead)
				return rec, nil
			}
			break
		}
		if !c.partial(more, false) {
			break
		}
	}
	c.unread(ahead)
	_, rec.err = c.parse(l, rec.line, false)
	return rec, nil
}

// partial reports whether a line has fewer fields than the header, so that it
// cannot be a row by itself: the first line of a record counted as CSV would
// (delimiters inside its open quoted field do not count), a line after it split
// at every delimiter (it may be a row that a stray quote above has swallowed).
func (c *csvLines) partial(line string, first bool) bool {
	if c.width == 0 {
		return true
	}
	n, quoted := 1, false
	for _, r := range line {
		switch {
		case r == '"' && first:
			quoted = !quoted
		case r == c.comma && !quoted:
			n++
		}
	}
	return n < c.width
}

// parse reads s as one CSV record; a joined record must have the header's width.
func (c *csvLines) parse(s string, line int, joined bool) ([]string, error) {
	r := csv.NewReader(strings.NewReader(s))
	r.Comma, r.FieldsPerRecord = c.comma, -1
	fields, err := r.Read()
	if err == nil {
		if _, err2 := r.Read(); !errors.Is(err2, io.EOF) {
			err = errors.New("more than one record")
		}
	}
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		err = pe.Err
	}
	switch {
	case err != nil:
		return nil, fmt.Errorf("line %d is %w: %v", line, errNotCSV, err)
	case joined && c.width > 0 && len(fields) != c.width:
		return nil, fmt.Errorf("line %d is %w: a quoted field is not closed on it", line, errNotCSV)
	}
	return fields, nil
}

// readHeader reads the first record, the header, after detecting the delimiter
// from its line unless comma is given (non-zero).
func (c *csvLines) readHeader(comma rune) (csvRecord, error) {
	var l string
	for l == "" {
		var err error
		if l, err = c.physical(); err != nil {
			return csvRecord{}, err
		}
	}
	if comma == 0 {
		comma = detectDelimiter(l)
	}
	c.comma = comma
	c.unread([]string{l})
	return c.next()
}

// csvDelimiters are the delimiters detected from a header line.
var csvDelimiters = []rune{',', ';', '\t', '|'}

// detectDelimiter picks the delimiter of a file from its header line: the one of
// csvDelimiters found most often outside quotes (a comma when none is).
func detectDelimiter(header string) rune {
	counts := map[rune]int{}
	quoted := false
	for _, r := range header {
		if r == '"' {
			quoted = !quoted
			continue
		}
		if !quoted {
			counts[r]++
		}
	}
	best := ','
	for _, d := range csvDelimiters {
		if counts[d] > counts[best] {
			best = d
		}
	}
	return best
}

// parseDelimiter reads --delimiter: , ; | or tab (also "\t").
func parseDelimiter(s string) (rune, error) {
	switch s {
	case ",", ";", "|":
		return rune(s[0]), nil
	case "tab", "\\t", "\t", "TAB":
		return '\t', nil
	}
	return 0, fmt.Errorf("--delimiter %q: want , ; | or tab", s)
}
