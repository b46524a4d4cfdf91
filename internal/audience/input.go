package audience

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// regionSample is how many rows Open reads before the run starts, for
// RegionWarning.
const regionSample = 100

// Input is an audience file opened for a run: its reader, its columns, and the
// records read ahead of the run.
type Input struct {
	rd   *Reader
	cols Columns
	// ahead are the records read before the run, in order: with NoHeader, the
	// lines before the first CSV one and that one, then the first rows (up to
	// regionSample, for RegionWarning).
	ahead []Record
}

// Open reads the header of the audience in r (name is how messages call it) and
// finds its columns; a header that is not CSV, or one without a recipient
// column, is an error, and so is a file without one CSV line.
func Open(r io.Reader, name string, o *Options) (*Input, error) {
	rd := NewReader(bufio.NewReaderSize(r, 1<<20), o.Delimiter)
	var ahead []Record
	header, err := rd.Read()
	for ; err == nil && header.Err != nil && o.NoHeader; header, err = rd.Read() {
		ahead = append(ahead, header) // not CSV: an ERROR row like any other
	}
	switch {
	case errors.Is(err, io.EOF) && len(ahead) > 0:
		return nil, fmt.Errorf("%s: no line is CSV; line %d: %v; the line as read: %s", name, ahead[0].Line, ahead[0].Err, ahead[0].Raw)
	case errors.Is(err, io.EOF):
		return nil, fmt.Errorf("%s is empty", name)
	case err != nil:
		return nil, fmt.Errorf("%s: header: %w", name, err)
	case header.Err != nil:
		return nil, fmt.Errorf("%s: line %d, the header, is not CSV: %v; the line as read: %s", name, header.Line, header.Err, header.Raw)
	}
	rd.SetWidth(len(header.Fields))
	cols, err := DetectColumns(header.Fields, o.PhoneColumn, o.UserIDColumn, o.NoHeader)
	if err == nil && o.SenderColumn != "" {
		var i int
		i, err = namedColumn(headerNames(header.Fields, o.NoHeader), o.SenderColumn, "sender", o.NoHeader)
		cols.Sender = i + 1
	}
	if err != nil {
		how := "detected"
		if o.Delimiter != 0 {
			how = "given"
		}
		return nil, fmt.Errorf("%s (fields delimited by %s, %s): %w", name, delimiterName(rd.Comma()), how, err)
	}
	if o.NoHeader {
		ahead = append(ahead, header)
	}
	for len(ahead) < regionSample {
		rec, err := rd.Read()
		if err != nil {
			break // the run reads it again (errors are sticky)
		}
		ahead = append(ahead, rec)
	}
	return &Input{rd: rd, cols: cols, ahead: ahead}, nil
}

// delimiterName spells a delimiter for a message.
func delimiterName(c byte) string {
	if c == '\t' {
		return "tab"
	}
	return strconv.Quote(string(c))
}

// Dialect is how the file is written: its delimiter, whether it starts with a
// UTF-8 byte order mark, and whether its lines end with CRLF. The output of a
// run is written the same way, so that a file exported from a spreadsheet
// opens in it again with its columns.
func (in *Input) Dialect() (comma byte, bom, crlf bool) {
	return in.rd.Comma(), in.rd.BOM(), in.rd.CRLF()
}

// RegionWarning warns, for a run without a region, when most of the phones in
// the first rows have no "+" or "00": a national export would be read as
// international (digits only) or refused as INVALID_NUMBER (other spellings).
// "" when there is nothing to say.
func (in *Input) RegionWarning(name string) string {
	return regionWarning(in.ahead, in.cols, name)
}

func regionWarning(rows []Record, cols Columns, name string) string {
	if cols.Phone < 0 {
		return ""
	}
	phones, national := 0, 0
	var example string
	for _, rec := range rows {
		if rec.Err != nil || cols.Phone >= len(rec.Fields) {
			continue
		}
		p := strings.TrimSpace(rec.Fields[cols.Phone])
		if p == "" {
			continue
		}
		phones++
		if !strings.HasPrefix(p, "+") && !strings.HasPrefix(p, "00") {
			national++
			if example == "" {
				example = p
			}
		}
	}
	if national*2 <= phones {
		return ""
	}
	return fmt.Sprintf("sendguard: warning: %d of the first %d phone numbers in %s have no + or 00 (e.g. %q). "+
		"If they are national numbers, set --region (e.g. --region BR) to read them as such: without a region "+
		"(here, in the business policy's default_region or in the deployment's), digits-only numbers are read as international, "+
		"country code first, and other national spellings are INVALID_NUMBER.", national, phones, name, example)
}
