package audience

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"unicode/utf8"
)

// An audience file is read line by line, and a line that is not CSV never ends
// or shortens the run: it is handed on as a record of its own that keeps the
// line as read, and reading resumes at the next line. The rules (RFC 4180, as
// encoding/csv reads it without LazyQuotes, plus what exports really hold):
//
//   - Lines end with "\n" or "\r\n" (Excel); a UTF-8 byte order mark before the
//     first line is dropped; an empty line is skipped (and counted).
//   - A field that starts with `"` is quoted: it ends at a `"` followed by the
//     delimiter or the end of the line, and `""` inside it is one `"`. It may
//     span lines (an address, a note), up to maxRecordLines lines, a line end
//     in it read as "\n".
//   - A `"` anywhere else, text after a closing `"`, a quoted field that does
//     not close within maxRecordLines lines or before the end of the file, and
//     a line longer than maxLineBytes make the line not CSV.
//   - A quoted field that closes on a later line is one record only if the
//     record then has as many fields as the header: otherwise the quote was a
//     stray one (a `"` left open swallows the lines after it until the next
//     stray `"`), the first line is not CSV and the next lines are read again
//     as lines of their own.
//
// So every line of the file is in exactly one record, in order: a record of
// one or more lines, a line that is not CSV, or an empty line skipped.

// Limits of the reader.
const (
	// maxLineBytes bounds a line, and the lines of one record together: a
	// longer line is not CSV (its start is kept), so memory stays bounded
	// whatever the file holds.
	maxLineBytes = 1 << 20
	// maxRecordLines is how many lines one record (a quoted field with line
	// breaks) may span.
	maxRecordLines = 10
	// keptLongLine is how much of a line over maxLineBytes is kept.
	keptLongLine = 1 << 10
)

// Record is one record of an audience file: its fields, or, for a line
// that is not CSV, the line as read and why.
type Record struct {
	Fields []string // nil when Err is set
	Line   int      // the record's first line, from 1
	Lines  int      // the lines it spans
	// Raw is the line as read (without its line end) when the line is not CSV
	// or has another number of fields than the header.
	Raw string
	Err error // why the line is not CSV
}

// Why a line is not CSV.
var (
	errBareQuote     = errors.New(`a " inside a field that does not start with one (quote the whole field and double the ")`)
	errAfterQuote    = errors.New(`text after the " that closes a quoted field (a " inside a quoted field is written "")`)
	errNeverClosed   = errors.New(`a quoted field opened on this line never closes`)
	errTooManyLines  = fmt.Errorf(`a quoted field opened on this line does not close within %d lines`, maxRecordLines)
	errLineTooLong   = fmt.Errorf(`the line is longer than %d MiB`, maxLineBytes>>20)
	errRecordTooLong = fmt.Errorf(`a quoted field opened on this line runs past %d MiB`, maxLineBytes>>20)
)

// spanError is a quoted field that closes on a later line, after which the
// record has the wrong number of fields: the quote was a stray one.
type spanError struct{ closes, fields, want int }

func (e *spanError) Error() string {
	return fmt.Sprintf(`a quoted field opened on this line closes on line %d, but the row then has %d fields, not %d: the " is a stray one`, e.closes, e.fields, e.want)
}

// Reader reads the records of an audience file. Read errors (not CSV
// errors) are sticky, as is io.EOF.
type Reader struct {
	br    *bufio.Reader
	comma byte // the delimiter
	// width is how many fields a record that spans lines must have (the
	// header's, set once it is read); 0: any. A one-line record with another
	// number of fields keeps its raw line for the caller to report.
	width int
	ahead []physLine // lines read but not yet consumed, from line next on
	next  int        // the number of ahead[0]
	err   error      // what ended the input (io.EOF or a read error), once ahead is drained
	empty int        // empty lines skipped
	bom   bool       // the start of the file was looked at
	// hasBOM and crlf tell whether the file starts with a UTF-8 byte order
	// mark, and whether its first line ends with CRLF (Excel's exports do
	// both): the output is written the same way.
	hasBOM, crlf bool
	buf          []byte // the fields of the record being parsed, one after the other
	ends         []int  // where each field ends in buf
}

// physLine is one line of the file, without its line end.
type physLine struct {
	text []byte
	long bool // longer than maxLineBytes: text holds its first keptLongLine bytes
}

// NewReader reads r with the delimiter comma, or, when comma is 0, the
// one detectDelimiter finds in the first line that is not empty.
func NewReader(r io.Reader, comma byte) *Reader {
	ar := &Reader{br: bufio.NewReaderSize(r, 1<<16), comma: comma, next: 1}
	if comma == 0 {
		ar.comma = ','
		for i := 0; ; i++ {
			l, ok := ar.peek(i)
			if !ok {
				break
			}
			if len(l.text) > 0 || l.long {
				ar.comma = detectDelimiter(l.text)
				break
			}
		}
	}
	return ar
}

// delimiters are the delimiters detectDelimiter knows, in the order that breaks
// ties.
var delimiters = []byte{',', ';', '\t', '|'}

// detectDelimiter is the delimiter of a header line: the one of `,` `;` tab `|`
// that occurs most often outside quotes (ties go to the earlier one), `,` when
// none does (a file of one column).
func detectDelimiter(header []byte) byte {
	var counts [4]int
	quoted := false
	for _, c := range header {
		if c == '"' {
			quoted = !quoted
			continue
		}
		if quoted {
			continue
		}
		if i := bytes.IndexByte(delimiters, c); i >= 0 {
			counts[i]++
		}
	}
	best := 0
	for i := range counts {
		if counts[i] > counts[best] {
			best = i
		}
	}
	return delimiters[best]
}

// SetWidth sets how many fields a record that spans lines must have: the
// header's, once it is read.
func (r *Reader) SetWidth(n int) { r.width = n }

// Comma is the delimiter, given or detected.
func (r *Reader) Comma() byte { return r.comma }

// BOM tells whether the file starts with a UTF-8 byte order mark (once its
// first line was read).
func (r *Reader) BOM() bool { return r.hasBOM }

// CRLF tells whether the file's first line ends with CRLF (once it was read).
func (r *Reader) CRLF() bool { return r.crlf }

// Empty is how many empty lines were skipped so far.
func (r *Reader) Empty() int { return r.empty }

// Read returns the next record: a record of one or more lines, or a line that
// is not CSV (err set). It returns io.EOF at the end of the input, or the error
// that stopped reading it.
func (r *Reader) Read() (Record, error) {
	for {
		l, ok := r.peek(0)
		if !ok {
			return Record{}, r.err
		}
		line := r.next
		switch {
		case l.long:
			r.consume(1)
			return Record{Line: line, Lines: 1, Raw: keptText(l.text) + "…", Err: errLineTooLong}, nil
		case len(l.text) == 0:
			r.consume(1)
			r.empty++
			continue
		}
		fields, n, err := r.parse()
		if err == nil && n > 1 && r.width > 0 && len(fields) != r.width {
			err = &spanError{closes: line + n - 1, fields: len(fields), want: r.width}
		}
		if err != nil {
			if r.err != nil && !errors.Is(r.err, io.EOF) && errors.Is(err, errNeverClosed) {
				// The input broke inside a quoted field: that is a read error,
				// not a line that is not CSV.
				return Record{}, r.err
			}
			r.consume(1)
			return Record{Line: line, Lines: 1, Raw: string(l.text), Err: err}, nil
		}
		rec := Record{Fields: fields, Line: line, Lines: n}
		if r.width > 0 && len(fields) != r.width {
			rec.Raw = string(l.text)
		}
		r.consume(n)
		return rec, nil
	}
}

// parse reads the record that starts at ahead[0]: its fields and how many lines
// it spans, or why its first line is not CSV. The fields' text is gathered in
// r.buf and cut from one string, as encoding/csv does: two allocations a
// record.
func (r *Reader) parse() ([]string, int, error) {
	var (
		li   int // the line being read, as an index into ahead
		line = r.ahead[0].text
		size = len(line)
		i    int
	)
	r.buf, r.ends = r.buf[:0], r.ends[:0]
	for {
		if i >= len(line) || line[i] != '"' {
			// An unquoted field: up to the next delimiter or the end of the line.
			j := bytes.IndexByte(line[i:], r.comma)
			end := len(line)
			if j >= 0 {
				end = i + j
			}
			if bytes.IndexByte(line[i:end], '"') >= 0 {
				return nil, 0, errBareQuote
			}
			r.buf = append(r.buf, line[i:end]...)
			r.ends = append(r.ends, len(r.buf))
			if j < 0 {
				return r.fields(), li + 1, nil
			}
			i = end + 1
			continue
		}
		// A quoted field.
		i++
		for {
			j := bytes.IndexByte(line[i:], '"')
			if j < 0 {
				// The field goes on on the next line.
				r.buf = append(r.buf, line[i:]...)
				li++
				if li >= maxRecordLines {
					return nil, 0, errTooManyLines
				}
				next, ok := r.peek(li)
				if !ok {
					return nil, 0, errNeverClosed
				}
				if size += len(next.text) + 1; next.long || size > maxLineBytes {
					return nil, 0, errRecordTooLong
				}
				r.buf = append(r.buf, '\n')
				line, i = next.text, 0
				continue
			}
			r.buf = append(r.buf, line[i:i+j]...)
			i += j + 1
			if i < len(line) && line[i] == '"' {
				r.buf = append(r.buf, '"')
				i++
				continue
			}
			break
		}
		r.ends = append(r.ends, len(r.buf))
		switch {
		case i == len(line):
			return r.fields(), li + 1, nil
		case line[i] == r.comma:
			i++ // a delimiter at the end of the line: one more, empty, field
		default:
			return nil, 0, errAfterQuote
		}
	}
}

// fields cuts the fields that parse gathered.
func (r *Reader) fields() []string {
	all := string(r.buf)
	fields := make([]string, len(r.ends))
	start := 0
	for k, end := range r.ends {
		fields[k] = all[start:end]
		start = end
	}
	return fields
}

// peek returns the line i lines after the next one to consume, reading it if
// need be; false when the input ends (or broke) before it.
func (r *Reader) peek(i int) (physLine, bool) {
	for len(r.ahead) <= i {
		if r.err != nil {
			return physLine{}, false
		}
		l, ok, err := r.readLine()
		if err != nil {
			r.err = err
		}
		if !ok {
			return physLine{}, false
		}
		r.ahead = append(r.ahead, l)
	}
	return r.ahead[i], true
}

// consume drops the next n lines.
func (r *Reader) consume(n int) {
	k := copy(r.ahead, r.ahead[n:])
	clear(r.ahead[k:]) // let the lines go
	r.ahead = r.ahead[:k]
	r.next += n
}

// readLine reads one line of the input: false with io.EOF at its end; a line
// with an error when the input ends (or breaks) after it without a line end.
func (r *Reader) readLine() (physLine, bool, error) {
	var (
		l    physLine
		read int // bytes of the line read, its line end included
	)
	for {
		chunk, err := r.br.ReadSlice('\n')
		read += len(chunk)
		switch {
		case l.long:
		case l.text == nil:
			l.text = bytes.Clone(chunk) // most lines are one chunk: one allocation of their size
		default:
			l.text = append(l.text, chunk...)
		}
		if !l.long {
			if len(l.text) > maxLineBytes+len("\r\n") {
				l.text, l.long = bytes.Clone(l.text[:keptLongLine]), true
			}
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if read == 0 {
			return l, false, err
		}
		if !l.long {
			if !r.bom {
				r.crlf = bytes.HasSuffix(l.text, []byte("\r\n"))
			}
			l.text = bytes.TrimSuffix(l.text, []byte("\n"))
			l.text = bytes.TrimSuffix(l.text, []byte("\r"))
			if len(l.text) > maxLineBytes {
				l.text, l.long = bytes.Clone(l.text[:keptLongLine]), true
			}
		}
		if !r.bom {
			r.bom = true
			r.hasBOM = bytes.HasPrefix(l.text, []byte("\ufeff"))
			l.text = bytes.TrimPrefix(l.text, []byte("\ufeff"))
		}
		return l, true, err
	}
}

// keptText is what is kept of a long line: its start, without a character cut
// in two.
func keptText(b []byte) string {
	b = b[:min(len(b), keptLongLine)]
	for i := len(b) - 1; i >= 0 && i >= len(b)-utf8.UTFMax; i-- {
		if utf8.RuneStart(b[i]) {
			if !utf8.FullRune(b[i:]) {
				b = b[:i]
			}
			break
		}
	}
	return string(b)
}
