package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
	"unicode"

	"github.com/spf13/cobra"

	"github.com/sendguard/sendguard/client"
	"github.com/sendguard/sendguard/internal/audience"
)

// importOptions are what `optout --in` reads.
type importOptions struct {
	path, phoneCol, userCol string
	comma                   byte // 0: detected
	noHeader                bool
	workers                 int
}

// importNotes is how many bad lines and invalid numbers the summary lists.
const importNotes = 10

// importSummary counts what an import did.
type importSummary struct {
	path                                  string
	business                              string
	rows, optedOut, already, invalid, bad int
	badNotes, invalidNotes                []lineNote // the first importNotes, by line
	elapsed                               time.Duration
	interrupted                           bool
	lastLine                              int // the last line read
}

// lineNote is what was wrong with one line.
type lineNote struct {
	line int
	msg  string
}

// note keeps n among the first importNotes notes by line.
func note(notes []lineNote, n lineNote) []lineNote {
	notes = append(notes, n)
	slices.SortFunc(notes, func(a, b lineNote) int { return a.line - b.line })
	return notes[:min(len(notes), importNotes)]
}

// importRow is one recipient of the file on its way to the server.
type importRow struct {
	line          int
	phone, userID string
}

// runImport imports a suppression list: every row's recipient is opted out of
// the business's marketing unless it already is (optOutOne).
func runImport(cmd *cobra.Command, cf *clientFlags, o *optOutFlags, opts importOptions) error {
	var in = cmd.InOrStdin()
	if opts.path != "-" {
		f, err := os.Open(opts.path)
		if err != nil {
			return err
		}
		defer f.Close()
		in = f
	}
	rd := audience.NewReader(in, opts.comma)
	header, err := rd.Read()
	if errors.Is(err, io.EOF) {
		return fmt.Errorf("%s is empty", opts.path)
	}
	if err != nil {
		return fmt.Errorf("read %s: %w", opts.path, err)
	}
	if header.Err != nil {
		return fmt.Errorf("%s: the header: %w", opts.path, header.Err)
	}
	cols, err := audience.DetectColumns(header.Fields, opts.phoneCol, opts.userCol, opts.noHeader)
	if err != nil {
		return fmt.Errorf("%s: %w", opts.path, err)
	}
	rd.SetWidth(cols.Width)
	if o.reason == "" {
		o.reason = "suppression list " + filepath.Base(opts.path)
		if opts.path == "-" {
			o.reason = "suppression list"
		}
	}

	c, err := cf.dial(cmd)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := probe(cmd.Context(), c, cf); err != nil {
		return err
	}
	stop, cancel := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
	defer cancel()

	imp := &importer{c: c, addr: cf.addr, opts: o, cols: cols, workers: opts.workers}
	var first *audience.Record
	if opts.noHeader {
		first = &header
	}
	sum, runErr := imp.run(stop, rd, first)
	sum.path, sum.business = opts.path, o.business
	if opts.path == "-" {
		sum.path = "standard input"
	}
	writeImportSummary(cmd.OutOrStdout(), sum)
	switch {
	case runErr != nil:
		return runErr
	case sum.interrupted:
		return &exitError{code: exitInterrupted, err: fmt.Errorf("interrupted: the lines after line %d were not imported; importing the file again is safe", sum.lastLine)}
	case sum.bad > 0 || sum.invalid > 0:
		return &exitError{code: exitUnreadLines, err: notImported(sum)}
	}
	return nil
}

// notImported says which rows of a completed import were not imported: a
// suppression list exists so that nobody on it is messaged, so a row left out
// is never a silent success (exit status 3).
func notImported(s *importSummary) error {
	var parts []string
	if s.bad > 0 {
		parts = append(parts, plural(s.bad, "line")+" that could not be read")
	}
	if s.invalid > 0 {
		parts = append(parts, plural(s.invalid, "invalid number")+" (not a number, or a national spelling without --region)")
	}
	return fmt.Errorf("%s of %s not imported (listed above): %s; whoever is on them is not opted out", plural(s.bad+s.invalid, "row"), s.path, strings.Join(parts, ", "))
}

// importer sends the rows of a suppression list to the server.
type importer struct {
	c       *client.Client
	addr    string // the server's, for messages
	opts    *optOutFlags
	cols    audience.Columns
	workers int

	mu  sync.Mutex
	sum importSummary
}

// run reads rd to its end, or until stop ends (the rows already read are still
// sent), and opts every row's recipient out with a pool of workers. A row the
// server refuses for its phone or user ID is an invalid number; any other
// failure stops the import and is returned. first, with --no-header, is the line
// read as the header.
func (imp *importer) run(stop context.Context, rd *audience.Reader, first *audience.Record) (*importSummary, error) {
	start := time.Now()
	ctx, fail := context.WithCancelCause(context.Background())
	defer fail(nil)
	rows := make(chan importRow, 4*imp.workers)
	var wg sync.WaitGroup
	for range imp.workers {
		wg.Go(func() {
			for r := range rows {
				if ctx.Err() != nil {
					continue
				}
				if err := imp.send(ctx, r); err != nil {
					fail(err)
				}
			}
		})
	}
	var (
		readErr error
		readAll bool
	)
	take := func(rec audience.Record) bool {
		r, ok := imp.row(rec)
		if !ok {
			return true
		}
		select {
		case rows <- r:
			return true
		case <-ctx.Done():
			return false
		}
	}
	if first != nil {
		take(*first)
	}
	for stop.Err() == nil && ctx.Err() == nil {
		rec, err := rd.Read()
		if errors.Is(err, io.EOF) {
			readAll = true
			break
		}
		if err != nil {
			readErr = err
			break
		}
		imp.mu.Lock()
		imp.sum.lastLine = rec.Line + rec.Lines - 1
		imp.mu.Unlock()
		if !take(rec) {
			break
		}
	}
	close(rows)
	wg.Wait()
	imp.mu.Lock()
	defer imp.mu.Unlock()
	sum := imp.sum
	sum.elapsed = time.Since(start)
	sum.interrupted = !readAll && stop.Err() != nil && readErr == nil && context.Cause(ctx) == nil
	switch {
	case readErr != nil:
		return &sum, fmt.Errorf("read: %w", readErr)
	case context.Cause(ctx) != nil:
		return &sum, context.Cause(ctx)
	}
	return &sum, nil
}

// row turns a record into a row to send; a record that is not one (a bad line,
// another number of fields, no recipient) is counted and not sent.
func (imp *importer) row(rec audience.Record) (importRow, bool) {
	imp.mu.Lock()
	defer imp.mu.Unlock()
	imp.sum.rows++
	switch {
	case rec.Err != nil:
		imp.sum.bad++
		imp.sum.badNotes = note(imp.sum.badNotes, lineNote{rec.Line, fmt.Sprintf("line %d is not CSV: %v: %s", rec.Line, rec.Err, shown(clip(rec.Raw, 80)))})
		return importRow{}, false
	case len(rec.Fields) != imp.cols.Width:
		imp.sum.bad++
		imp.sum.badNotes = note(imp.sum.badNotes, lineNote{rec.Line, fmt.Sprintf("line %d has %d fields; the header has %d", rec.Line, len(rec.Fields), imp.cols.Width)})
		return importRow{}, false
	}
	r := importRow{line: rec.Line}
	if i := imp.cols.Phone; i >= 0 {
		r.phone = strings.TrimSpace(rec.Fields[i])
	}
	if i := imp.cols.UserID; i >= 0 {
		r.userID = strings.TrimSpace(rec.Fields[i])
	}
	if r.phone == "" && r.userID == "" {
		imp.sum.invalid++
		imp.sum.invalidNotes = note(imp.sum.invalidNotes, lineNote{rec.Line, fmt.Sprintf("line %d: no phone number", rec.Line)})
		return importRow{}, false
	}
	return r, true
}

// send opts one row's recipient out and counts what happened.
func (imp *importer) send(ctx context.Context, r importRow) error {
	req := imp.opts.request(true)
	req.Phone, req.UserId = r.phone, r.userID
	res, err := optOutOne(ctx, imp.c, req)
	imp.mu.Lock()
	defer imp.mu.Unlock()
	if msg, ok := recipientError(err); ok {
		imp.sum.invalid++
		imp.sum.invalidNotes = note(imp.sum.invalidNotes, lineNote{r.line, fmt.Sprintf("line %d: %q: %s", r.line, clip(r.phone+r.userID, 40), msg)})
		return nil
	}
	if err != nil {
		return fmt.Errorf("line %d: %w", r.line, callError("SetOptOut", imp.addr, err))
	}
	if res.already {
		imp.sum.already++
	} else {
		imp.sum.optedOut++
	}
	return nil
}

// shown prints a line of the input as it is, or quoted when it holds control
// characters (which a terminal would act on).
func shown(s string) string {
	if strings.IndexFunc(s, unicode.IsControl) >= 0 {
		return strconv.Quote(s)
	}
	return s
}

// clip shortens s to at most n runes for a message.
func clip(s string, n int) string {
	if r := []rune(s); len(r) > n {
		return string(r[:n]) + "…"
	}
	return s
}

// writeImportSummary says what an import did.
func writeImportSummary(w io.Writer, s *importSummary) {
	rate := float64(s.rows) / max(s.elapsed.Seconds(), 1e-9)
	fmt.Fprintf(w, "imported %s into business %s's opt-outs: %d rows in %s (%.0f rows/s)\n", s.path, s.business, s.rows, s.elapsed.Round(time.Millisecond), rate)
	if s.interrupted {
		fmt.Fprintf(w, "stopped early, after line %d: the lines after it were not read\n", s.lastLine)
	}
	fmt.Fprintf(w, "  opted out          %8d  no marketing from %s from now on\n", s.optedOut, s.business)
	fmt.Fprintf(w, "  already opted out  %8d  left as they were (their opt-out time and reason kept)\n", s.already)
	fmt.Fprintf(w, "  invalid numbers    %8d  not imported: not a number, or a national spelling without --region\n", s.invalid)
	fmt.Fprintf(w, "  bad lines          %8d  not CSV, or not the header's number of fields: skipped\n", s.bad)
	if s.optedOut == 0 && s.already > 0 {
		fmt.Fprintf(w, "nothing changed: every number was already opted out\n")
	}
	for _, x := range []struct {
		what  string
		n     int
		notes []lineNote
	}{{"bad lines", s.bad, s.badNotes}, {"invalid numbers", s.invalid, s.invalidNotes}} {
		if x.n == 0 {
			continue
		}
		fmt.Fprintf(w, "%s (first %d of %d):\n", x.what, len(x.notes), x.n)
		for _, n := range x.notes {
			fmt.Fprintf(w, "  %s\n", n.msg)
		}
	}
}
