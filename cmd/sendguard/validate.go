package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"golang.org/x/term"
	"golang.org/x/text/unicode/norm"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/sendguard/sendguard/client"
	"github.com/sendguard/sendguard/internal/audience"
	sgv1 "github.com/sendguard/sendguard/proto/sendguard/v1"
)

// Exit status of a validate run that was interrupted (128 + SIGINT, as shells do).
const exitInterrupted = 130

// drainTimeout is how long an interrupted run waits for the answers to rows it
// already sent (with --reserve they may be reserved: their answers belong in the
// output). A second Ctrl-C stops at once.
const drainTimeout = 5 * time.Second

// errInterrupted ends a run stopped by SIGINT or SIGTERM.
var errInterrupted = errors.New("interrupted")

func validateCmd() *cobra.Command { return newValidateCmd(validateEnv{exit: os.Exit, now: time.Now}) }

// validateEnv is what a validate run takes from the process: exit ends it with the
// interrupted status once everything is written, now is the clock of the summary's
// timing (tests pass their own).
type validateEnv struct {
	exit func(int)
	now  func() time.Time
}

func newValidateCmd(env validateEnv) *cobra.Command {
	var (
		o                                  auditOptions
		category, sendAt, in, out, price   string
		phoneColumn, userIDColumn, refFlag string
		delimiter                          string
	)
	cmd := &cobra.Command{
		Use:   "validate --business B --in audience.csv --out verdicts.csv [flags]",
		Short: "Check a whole audience file before a campaign: a verdict per row, in order, and a summary",
		Long: `Stream every row of a CSV audience through CheckSendStream and write one output row
per input row, in input order: the input columns plus verdict, rules, retry_at
(RFC 3339, UTC, rounded up to the second), phone_e164 and message. A summary follows:
verdict counts, counts per rule, and the sends the campaign avoids.

The delimiter (, ; tab |) is detected from the header, or given with --delimiter; a
UTF-8 byte order mark is dropped and CRLF line ends (Excel's) work. The phone column
is found by its header (phone, phone_number, msisdn, mobile, whatsapp, wa_id, number,
telefone, celular… in any case and spelling) or named with --phone-column (a header
name or a 1-based column number); a user ID column (user_id, bsuid) is picked up too,
or named with --user-id-column. With --no-header the file has no header row and
--phone-column is a column number (default 1).

--region (e.g. BR) reads national spellings such as "(31) 99551-1909" as numbers of
that region. Without it, validate warns before it starts when most of the first 100
phones have no + or 00.

A line that is not CSV never ends or shortens the run: it becomes an ERROR row whose
message holds its line number and the line as read, and reading resumes at the next
line. Not CSV: a " inside a field that does not start with one, text after a closing
", a quoted field that does not close within 10 lines or before the end of the file
(only its first line is the bad one: the lines after it are read again), a line over
1 MiB. A quoted field may span lines (up to 10) when the row it ends then has the
header's number of fields. A line with another number of fields than the header is
an ERROR row too, with the line; so are a row with neither phone nor user ID and one
the server refuses. An unparsable phone is not an error: it is DENY (INVALID_NUMBER).
Empty lines are skipped. Only a header that is not CSV stops the run before it starts
(its columns are needed); with --no-header the first line that is CSV gives the
number of fields.

Avoided sends are the DEFER and DENY rows, in two kinds:
  doomed    Meta would refuse them: a rule that predicts a Meta error
            (REGION_BLOCKED 131049, OPTED_OUT by Meta's record 131050, ECOSYSTEM_LIMIT
            131049, EXPERIMENT 130472, UNDELIVERABLE 131026, SERVICE_WINDOW 131047,
            PAIR_RATE 131056, TEMPLATE_PAUSED 132015/132016) or INVALID_NUMBER.
            Meta does not charge them, but each one lowers your quality rating.
  unwanted  Meta would deliver them, and charge for them, but your own rules say no:
            OPTED_OUT by your own opt-out, NO_CONSENT, FREQUENCY_CAP, QUIET_HOURS,
            TEMPLATE_REPEAT, MESSAGING_LIMIT. --price-per-message prices them.
A row with both kinds counts as doomed. DEFER rows may be sent after their retry_at.

--reserve is for the sending step: every ALLOW is recorded at once, atomically per
number, under a message_ref that the server derives as CAMPAIGN/KEY, where CAMPAIGN
is --campaign (default: --template) and KEY the recipient as the server stores it
(the E.164 number, its keyed hash when the server hashes numbers, or u:USER_ID).
The ref is written in a message_ref column (ALLOW and DUPLICATE rows only): pass it
to Meta as biz_opaque_callback_data so that status webhooks find the send. Every
spelling of a number is one send: a number listed twice, two workers sharing one
audience, or a rerun, cannot send twice: the later reservation answers DUPLICATE (do
not send), counted apart in the summary. The rows of one number go to the same
stream, so that the earlier row wins, as in the input order. --ref-key row sends
CAMPAIGN/row-N instead (then two rows of one number are two sends).

Exit status: 0 when the run completed and every line was read as CSV, whatever the
verdicts (a row with another number of fields than the header is CSV: its ERROR row
is like one the server refuses); 3 when the run completed but some lines were not
CSV (each has its ERROR row); 1 when it could not run (or the stream broke: the
output then holds the rows answered so far); 130 on Ctrl-C (SIGINT or SIGTERM):
reading stops, the rows already read (at most --window) are still judged (up to 5 s;
a second Ctrl-C stops at once), and the output holds every row answered, in order,
as a valid CSV, followed by the partial summary. When several apply: 130, then 1,
then 3. Memory is bounded by --window whatever the file's size. A progress bar
(rows/s, ETA) shows when stderr is a terminal.
` + connHelp,
		Args: cobra.NoArgs,
	}
	cf := addClientFlags(cmd)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		loc, err := cf.location()
		if err != nil {
			return err
		}
		if o.category, err = parseCategory(category); err != nil {
			return fmt.Errorf("--category: %w", err)
		}
		if o.sendAt, err = optionalTime("send-at", sendAt, time.Now(), loc); err != nil {
			return err
		}
		if price != "" {
			if o.price, err = strconv.ParseFloat(price, 64); err != nil || o.price < 0 {
				return fmt.Errorf("--price-per-message %q: want a number like 0.025", price)
			}
			o.priced = true
		}
		switch refFlag {
		case "recipient", "phone":
		case "row":
			o.refByRow = true
		default:
			return fmt.Errorf("--ref-key %q: want recipient or row", refFlag)
		}
		if o.delimiter, err = parseDelimiter(delimiter); err != nil {
			return err
		}
		if o.region, err = parseRegion(o.region); err != nil {
			return err
		}
		if o.reserve && o.campaign == "" && o.template == "" {
			return errors.New("--reserve needs --campaign or --template (the message_ref of each row starts with it)")
		}
		if o.workers < 1 || o.workers > 16 {
			return errors.New("--workers must be between 1 and 16")
		}
		if o.window < o.workers || o.window > 100_000 {
			return fmt.Errorf("--window must be between --workers and 100000")
		}
		if in == "" || out == "" {
			return errors.New("--in and --out are required (- for standard input or output)")
		}
		return runValidate(cmd, cf, &o, in, out, phoneColumn, userIDColumn, env)
	}
	f := cmd.Flags()
	f.StringVar(&o.business, "business", "", "the sender's business_id (required)")
	f.StringVar(&category, "category", "marketing", "marketing, utility, authentication or service")
	f.StringVar(&o.template, "template", "", "the template name")
	f.StringVar(&o.campaign, "campaign", "", "the campaign id (recorded with reservations; default with --reserve: --template)")
	f.StringVar(&o.sender, "sender", "", "the sending number's phone_number_id (default: every row judged against every sender of the business)")
	f.StringVar(&o.language, "template-language", "", "the template's language (e.g. pt_BR)")
	f.StringVar(&o.senderColumn, "sender-column", "", "a column holding each row's sender (phone_number_id): a header name or a 1-based number; an empty cell takes --sender")
	f.StringVar(&sendAt, "send-at", "", "judge the campaign at a planned time instead of now (RFC 3339, local \"2026-11-27 10:00\", or +2h)")
	f.StringVar(&in, "in", "", "the audience CSV (- for standard input)")
	f.StringVar(&out, "out", "", "where to write the verdicts CSV (- for standard output; the summary then goes to stderr)")
	f.StringVar(&phoneColumn, "phone-column", "", "the phone column: a header name or a 1-based number (default: found by header)")
	f.StringVar(&userIDColumn, "user-id-column", "", "the user ID (BSUID) column: a header name or a 1-based number (default: found by header)")
	f.BoolVar(&o.noHeader, "no-header", false, "the file has no header row (columns are named column1, column2, …)")
	f.BoolVar(&o.reserve, "reserve", false, "reserve every allowed send (the sending step; see above)")
	f.StringVar(&refFlag, "ref-key", "recipient", "with --reserve: what identifies a row in its message_ref: recipient (derived by the server) or row")
	f.StringVar(&delimiter, "delimiter", "", `the field delimiter: ",", ";", tab, "|" or another character (default: detected from the header)`)
	f.StringVar(&o.region, "region", "", "the region (ISO 3166 alpha-2, e.g. BR) to read national spellings of numbers by")
	f.StringVar(&price, "price-per-message", "", "price of one delivered template, to value the unwanted sends avoided (e.g. 0.025)")
	f.IntVar(&o.workers, "workers", 2, "concurrent streams (the server judges each stream's rows one after another)")
	f.IntVar(&o.window, "window", 1000, "rows in flight at most (bounds memory)")
	_ = cmd.MarkFlagRequired("business")
	return cmd
}

// auditOptions are what a validate run asks.
type auditOptions struct {
	business, template, campaign string
	region                       string // passed on every request; "" for none
	sender, language             string // passed on every request; "" for none
	senderColumn                 string // --sender-column: a row's sender, when not empty, instead of sender
	category                     sgv1.Category
	sendAt                       *timestamppb.Timestamp
	noHeader, reserve, refByRow  bool
	delimiter                    byte // 0: detected from the header
	price                        float64
	priced                       bool
	workers, window              int
}

// refCampaign is what a reservation's message_ref starts with: --campaign, else
// --template.
func (o *auditOptions) refCampaign() string {
	if o.campaign != "" {
		return o.campaign
	}
	return o.template
}

// parseDelimiter reads --delimiter: one character, "tab" or "\t" for a tab; ""
// for detection. A quote or a line end cannot delimit fields.
func parseDelimiter(v string) (byte, error) {
	switch v {
	case "":
		return 0, nil
	case "tab", `\t`:
		return '\t', nil
	}
	if len(v) != 1 || v[0] == '"' || v[0] == '\r' || v[0] == '\n' || v[0] >= utf8.RuneSelf {
		return 0, fmt.Errorf(`--delimiter %q: want one ASCII character such as "," ";" "|", or tab (not a quote or a line end)`, v)
	}
	return v[0], nil
}

// parseRegion checks the shape of --region (two letters) and upper-cases it;
// what a region means for a number is the server's to say.
func parseRegion(v string) (string, error) {
	if v == "" {
		return "", nil
	}
	if len(v) != 2 || !isLetter(v[0]) || !isLetter(v[1]) {
		return "", fmt.Errorf("--region %q: want an ISO 3166 alpha-2 code such as BR, MX or IN", v)
	}
	return strings.ToUpper(v), nil
}

func isLetter(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }

func runValidate(cmd *cobra.Command, cf *clientFlags, o *auditOptions, inPath, outPath, phoneCol, userCol string, env validateEnv) error {
	stderr := cmd.ErrOrStderr()
	var (
		in   io.Reader
		size int64 = -1
	)
	if inPath == "-" {
		in = cmd.InOrStdin()
	} else {
		f, err := os.Open(inPath)
		if err != nil {
			return err
		}
		defer f.Close()
		in = f
		if st, err := f.Stat(); err == nil && st.Mode().IsRegular() {
			size = st.Size()
		}
	}
	rd := newAudienceReader(bufio.NewReaderSize(in, 1<<20), o.delimiter)
	// The rows read before the run starts, in order: with --no-header, the
	// lines before the first CSV one and that one, then (see regionWarning)
	// the first rows.
	var ahead []audienceRecord
	header, err := rd.Read()
	for ; err == nil && header.err != nil && o.noHeader; header, err = rd.Read() {
		ahead = append(ahead, header) // not CSV: an ERROR row like any other
	}
	switch {
	case errors.Is(err, io.EOF) && len(ahead) > 0:
		return fmt.Errorf("%s: no line is CSV; line %d: %v; the line as read: %s", inPath, ahead[0].line, ahead[0].err, ahead[0].raw)
	case errors.Is(err, io.EOF):
		return fmt.Errorf("%s is empty", inPath)
	case err != nil:
		return fmt.Errorf("%s: header: %w", inPath, err)
	case header.err != nil:
		return fmt.Errorf("%s: line %d, the header, is not CSV: %v; the line as read: %s", inPath, header.line, header.err, header.raw)
	}
	rd.width = len(header.fields)
	cols, err := detectColumns(header.fields, phoneCol, userCol, o.noHeader)
	if err == nil && o.senderColumn != "" {
		var i int
		i, err = namedColumn(headerNames(header.fields, o.noHeader), o.senderColumn, "sender", o.noHeader)
		cols.sender = i + 1
	}
	if err != nil {
		how := "detected"
		if o.delimiter != 0 {
			how = "given"
		}
		return fmt.Errorf("%s (fields delimited by %s, %s): %w", inPath, delimiterName(rd.comma), how, err)
	}
	if o.noHeader {
		ahead = append(ahead, header)
	}
	for len(ahead) < regionSample {
		rec, err := rd.Read()
		if err != nil {
			break // the run reads it again (errors are sticky)
		}
		ahead = append(ahead, rec)
	}
	if o.region == "" {
		if warning := regionWarning(ahead, cols, inPath); warning != "" {
			fmt.Fprintln(stderr, warning)
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

	var (
		out     io.Writer
		outFile *os.File
		sumOut  = cmd.OutOrStdout()
	)
	if outPath == "-" {
		out, sumOut = cmd.OutOrStdout(), stderr
	} else {
		if inSt, err := os.Stat(inPath); err == nil {
			if outSt, err := os.Stat(outPath); err == nil && os.SameFile(inSt, outSt) {
				return fmt.Errorf("--out %s is the input file", outPath)
			}
		}
		// 0600: the verdicts name people, like the audience does.
		if outFile, err = os.OpenFile(outPath, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600); err != nil {
			return err
		}
		defer outFile.Close()
		out = outFile
	}
	bw := bufio.NewWriterSize(out, 1<<20)
	w := csv.NewWriter(bw)

	// Ctrl-C: the first signal stops the reading, the second (or drainTimeout)
	// stops waiting for the answers to the rows already read.
	stop, stopNow := context.WithCancel(cmd.Context())
	defer stopNow()
	kill := make(chan struct{})
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)
	finished := make(chan struct{})
	defer close(finished)
	go func() {
		select {
		case <-sigs:
		case <-finished:
			return
		}
		stopNow()
		t := time.NewTimer(drainTimeout)
		defer t.Stop()
		select {
		case <-sigs:
		case <-t.C:
		case <-finished:
			return
		}
		close(kill)
	}()

	a := &audit{opts: o, cols: cols, ahead: ahead, now: env.now, kill: kill}
	var bar *progressbar.ProgressBar
	if fd, ok := stderr.(*os.File); ok && term.IsTerminal(int(fd.Fd())) {
		bar = newRowBar(stderr, inPath, size, o.noHeader)
		a.progress = func(n int) { _ = bar.Add(n) }
	}
	sum, runErr := a.run(stop, c, rd, w)
	if bar != nil {
		_ = bar.Finish()
	}
	w.Flush()
	flushErr := errors.Join(w.Error(), bw.Flush())
	if outFile != nil {
		flushErr = errors.Join(flushErr, outFile.Close())
	}
	sum.out = outPath
	if outPath == "-" {
		sum.out = "standard output"
	}
	if sum.rows > 0 || runErr == nil || sum.interrupted {
		writeSummary(sumOut, sum)
	}
	failed := runErr
	if errors.Is(runErr, errInterrupted) {
		failed = nil
	}
	if flushErr != nil {
		failed = errors.Join(fmt.Errorf("write %s: %w", outPath, flushErr), failed)
	}
	switch code := exitStatus(sum.interrupted, failed != nil, sum.notCSV); code {
	case exitInterrupted:
		if failed != nil {
			fmt.Fprintln(stderr, "sendguard:", failed)
		}
		fmt.Fprintf(stderr, "sendguard: interrupted: %s holds the first %d rows, in order\n", outPath, sum.rows)
		env.exit(code)
		return errInterrupted
	case exitFailed:
		return failed
	case exitNotCSV:
		fmt.Fprintf(stderr, "sendguard: %s: %s; each is an ERROR row of %s with its line number and the line as read\n",
			inPath, plurals(sum.notCSV, "line is not CSV", "lines are not CSV"), outPath)
		env.exit(code)
	}
	return nil
}

// Exit statuses of a validate run beyond 0 (it completed and every line was read
// as CSV, whatever the verdicts).
const (
	exitFailed = 1 // it could not run, or the stream broke: the output holds the rows answered so far
	exitNotCSV = 3 // it completed, but some lines were not CSV: each is an ERROR row
	// exitInterrupted (130) is Ctrl-C.
)

// exitStatus is the status of a validate run: when several apply, interrupted
// before failed before lines that were not CSV. A line with another number of
// fields than the header is CSV: its ERROR row is like one the server refuses.
func exitStatus(interrupted, failed bool, notCSV int) int {
	switch {
	case interrupted:
		return exitInterrupted
	case failed:
		return exitFailed
	case notCSV > 0:
		return exitNotCSV
	}
	return 0
}

// delimiterName spells a delimiter for a message.
func delimiterName(c byte) string {
	if c == '\t' {
		return "tab"
	}
	return strconv.Quote(string(c))
}

// regionSample is how many rows are read before the run starts, for
// regionWarning.
const regionSample = 100

// regionWarning warns, for a run without --region, when most of the phones in
// the first rows have no "+" or "00": a national export would be read as
// international (digits only) or refused as INVALID_NUMBER (other spellings).
// "" when there is nothing to say.
func regionWarning(rows []audienceRecord, cols columns, inPath string) string {
	if cols.phone < 0 {
		return ""
	}
	phones, national := 0, 0
	var example string
	for _, rec := range rows {
		if rec.err != nil || cols.phone >= len(rec.fields) {
			continue
		}
		p := strings.TrimSpace(rec.fields[cols.phone])
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
		"(here or in the business policy's default_region), digits-only numbers are read as international, "+
		"country code first, and other national spellings are INVALID_NUMBER.", national, phones, inPath, example)
}

// probe asks the server's health service whether it serves sendguard before a run
// creates its output: an unreachable server, a TLS mismatch or a server whose store
// is down stop the run with a clear message and no output file.
func probe(ctx context.Context, c *client.Client, cf *clientFlags) error {
	ctx, cancel := context.WithTimeout(ctx, cf.timeout)
	defer cancel()
	resp, err := healthpb.NewHealthClient(c.Conn()).Check(ctx, &healthpb.HealthCheckRequest{Service: "sendguard.v1.SendGuard"})
	switch {
	case status.Code(err) == codes.Unimplemented || status.Code(err) == codes.NotFound:
		return nil // no health service: the stream will tell
	case err != nil:
		return callError("health check", cf.addr, err)
	case resp.GetStatus() != healthpb.HealthCheckResponse_SERVING:
		return fmt.Errorf("the server at %s is %s (its store may be unavailable); try again later", cf.addr, resp.GetStatus())
	}
	return nil
}

// newRowBar is the progress bar of a run on a terminal: rows, rows/s and the time
// left. The total is the file's line count (a row with a quoted newline spans two
// lines, so it is an upper bound); standard input gets a spinner.
func newRowBar(w io.Writer, path string, size int64, noHeader bool) *progressbar.ProgressBar {
	total := int64(-1)
	if size >= 0 {
		if n, err := countLines(path); err == nil {
			total = n
			if !noHeader && total > 0 {
				total--
			}
		}
	}
	return progressbar.NewOptions64(total,
		progressbar.OptionSetWriter(w),
		progressbar.OptionSetDescription("validate"),
		progressbar.OptionShowCount(),
		progressbar.OptionShowIts(),
		progressbar.OptionSetItsString("rows"),
		progressbar.OptionSetPredictTime(true),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionClearOnFinish(),
	)
}

func countLines(path string) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	buf := make([]byte, 1<<20)
	var n int64
	last := byte('\n')
	for {
		k, err := f.Read(buf)
		if k > 0 {
			n += int64(bytes.Count(buf[:k], []byte{'\n'}))
			last = buf[k-1]
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return 0, err
		}
	}
	if last != '\n' {
		n++
	}
	return n, nil
}

// columns says where the recipient is in each row and what the output header is.
type columns struct {
	width  int      // fields per row (the header's)
	phone  int      // index of the phone column, -1 if none
	userID int      // index of the user ID column, -1 if none
	sender int      // 1 + the index of the --sender-column, 0 if none
	out    []string // the output header: the input's, then the verdict columns
}

// Header names that hold a phone number or a user ID, most specific first, as
// normalized by normalizeHeader.
var (
	phoneHeaders = []string{
		"phone", "phonenumber", "phonee164", "e164", "msisdn", "whatsapp", "whatsappnumber",
		"whatsappphone", "waid", "mobile", "mobilenumber", "mobilephone", "cellphone", "cell",
		"telefone", "telefono", "celular", "movil", "telephone", "tel", "number", "numero",
		"to", "recipient",
	}
	userIDHeaders = []string{"userid", "bsuid", "wauserid", "whatsappuserid", "businessscopeduserid"}
)

// normalizeHeader folds a header for matching: lower case, accents and everything
// but letters and digits removed ("Phone Number" and "phone_number" → "phonenumber",
// "Número" → "numero"); a UTF-8 byte order mark goes too.
func normalizeHeader(s string) string {
	var b strings.Builder
	for _, r := range norm.NFD.String(s) {
		switch {
		case unicode.Is(unicode.Mn, r):
		case unicode.IsLetter(r) || unicode.IsDigit(r):
			b.WriteRune(unicode.ToLower(r))
		}
	}
	return b.String()
}

// detectColumns finds the phone and user ID columns. flag values name a column
// (header name, exact or normalized) or number it (1-based); empty means: find it
// by the header names above. At least one of the two must be found.
func detectColumns(header []string, phoneFlag, userFlag string, noHeader bool) (columns, error) {
	c := columns{width: len(header), phone: -1, userID: -1}
	names := headerNames(header, noHeader)
	find := func(flag, what string, candidates []string) (int, error) {
		if flag != "" {
			return namedColumn(names, flag, what, noHeader)
		}
		if noHeader {
			return -1, nil
		}
		norms := make([]string, len(names))
		for i, n := range names {
			norms[i] = normalizeHeader(n)
		}
		for _, cand := range candidates {
			for i, n := range norms {
				if n == cand {
					return i, nil
				}
			}
		}
		return -1, nil
	}
	var err error
	if c.phone, err = find(phoneFlag, "phone", phoneHeaders); err != nil {
		return c, err
	}
	if noHeader && phoneFlag == "" && userFlag == "" {
		c.phone = 0
	}
	if c.userID, err = find(userFlag, "user ID", userIDHeaders); err != nil {
		return c, err
	}
	if c.phone >= 0 && c.phone == c.userID {
		return c, fmt.Errorf("the phone and user ID columns are both %q", names[c.phone])
	}
	if c.phone < 0 && c.userID < 0 {
		return c, fmt.Errorf("no phone column in the header (%s): name it with --phone-column", strings.Join(names, ", "))
	}
	taken := map[string]bool{}
	for _, n := range names {
		taken[strings.ToLower(n)] = true
	}
	c.out = append(c.out, names...)
	for _, n := range outColumns {
		if taken[n] {
			n = "sendguard_" + n
		}
		c.out = append(c.out, n)
	}
	return c, nil
}

// headerNames are the names of the columns: the header's, or column1, column2…
// without one.
func headerNames(header []string, noHeader bool) []string {
	names := make([]string, len(header))
	for i, h := range header {
		if noHeader {
			names[i] = "column" + strconv.Itoa(i+1)
		} else {
			names[i] = strings.TrimPrefix(h, "\ufeff")
		}
	}
	return names
}

// namedColumn finds the column a flag names: a header name (exact, or
// normalized) or a 1-based number.
func namedColumn(names []string, flag, what string, noHeader bool) (int, error) {
	for i, n := range names {
		if n == flag {
			return i, nil
		}
	}
	if !noHeader {
		for i, n := range names {
			if normalizeHeader(n) == normalizeHeader(flag) && normalizeHeader(flag) != "" {
				return i, nil
			}
		}
	}
	if k, err := strconv.Atoi(flag); err == nil {
		if k < 1 || k > len(names) {
			return -1, fmt.Errorf("%s column %d: the file has %d columns", what, k, len(names))
		}
		return k - 1, nil
	}
	return -1, fmt.Errorf("%s column %q is not in the header (%s)", what, flag, strings.Join(names, ", "))
}

// outColumns are appended to every row; message_ref follows them with --reserve.
var outColumns = []string{"verdict", "rules", "retry_at", "phone_e164", "message", "message_ref"}

// audit is one validate run.
type audit struct {
	opts     *auditOptions
	cols     columns
	ahead    []audienceRecord // records read before the run (--no-header: the first row, read as the header, too)
	now      func() time.Time
	kill     <-chan struct{} // closed: stop waiting for answers in flight
	progress func(int)       // rows written (batched); nil: no progress shown
}

// auditRow is one input row on its way through the pipeline.
type auditRow struct {
	n      int      // data row number, from 1: the request_id
	fields []string // the input fields, padded or cut to the header's width
	errMsg string   // why the row was not sent (ERROR)
	bad    badLine  // the row is not a row of the file
	req    *sgv1.CheckSendRequest
	resp   *sgv1.CheckSendResponse
	// done is closed once the row has its answer or never will (lost); nil for a
	// row that is not sent.
	done chan struct{}
	lost bool
}

// run streams the rows of rd through CheckSendStream and writes them to w, in
// order. When stop ends, reading stops; the rows already read (at most a window)
// are still sent and their answers awaited, until a.kill is closed, so that the
// output holds every row read, and no row is reserved without being written. The
// pipeline:
//
//	reader ──order──────────────────────────────────────▶ writer (this goroutine)
//	   └──sendq[i]──▶ sender i ──recvq[i]──▶ receiver i ──(row.done)──┘
//
// The reader deals the rows to the streams in turn; each stream is answered in
// order, so each receiver matches answers to its own queue, and the writer takes
// the rows in input order from order, waiting for each row's answer. Every channel
// is bounded, so at most about three windows of rows are in memory.
func (a *audit) run(stop context.Context, c *client.Client, rd *audienceReader, w *csv.Writer) (*auditSummary, error) {
	start := a.now()
	sum := newSummary(a.opts)
	streamCtx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	var (
		failMu  sync.Mutex
		failErr error
	)
	fail := func(err error) {
		failMu.Lock()
		if failErr == nil {
			failErr = err
		}
		failMu.Unlock()
		cancel(err)
	}
	go func() {
		select {
		case <-a.kill:
			cancel(errInterrupted)
		case <-streamCtx.Done():
		}
	}()

	n := a.opts.workers
	streams := make([]sgv1.SendGuard_CheckSendStreamClient, n)
	for i := range streams {
		s, err := c.CheckStream(streamCtx)
		if err != nil {
			return sum, fmt.Errorf("open CheckSendStream: %w", err)
		}
		streams[i] = s
	}
	if err := w.Write(a.header()); err != nil {
		return sum, err
	}

	per := max(a.opts.window/n, 1)
	order := make(chan *auditRow, a.opts.window)
	sendq := make([]chan *auditRow, n)
	recvq := make([]chan *auditRow, n)
	for i := range n {
		sendq[i] = make(chan *auditRow, per)
		recvq[i] = make(chan *auditRow, per)
	}
	stopped := func() bool { return stop.Err() != nil || streamCtx.Err() != nil }

	var wg sync.WaitGroup
	var (
		readErr    error
		readAll    bool
		emptyLines int
	)
	wg.Go(func() {
		defer func() {
			close(order)
			for _, q := range sendq {
				close(q)
			}
		}()
		rows, rr := 0, 0
		// deal hands a row to the writer and, when it is sent, to its stream;
		// false when the run failed meanwhile.
		deal := func(rec audienceRecord) bool {
			rows++
			r := a.row(rows, rec)
			select {
			case order <- r:
			case <-streamCtx.Done():
				return false
			}
			if r.done == nil {
				return true
			}
			select {
			case sendq[a.worker(r.req, &rr)] <- r:
				return true
			case <-streamCtx.Done():
				r.lost = true
				close(r.done)
				return false
			}
		}
		for _, rec := range a.ahead {
			if stopped() || !deal(rec) {
				return
			}
		}
		// The file is read in a goroutine of its own, so that a stop is not held
		// up by a read that blocks (standard input from a pipe): the reader then
		// stops at once and leaves that goroutine to end with its read.
		type record struct {
			rec   audienceRecord
			err   error
			empty int // empty lines skipped so far
		}
		records := make(chan record, 64)
		quit := make(chan struct{})
		defer close(quit)
		go func() {
			for {
				rec, err := rd.Read()
				select {
				case records <- record{rec, err, rd.empty}:
				case <-quit:
					return
				}
				if err != nil {
					return // io.EOF or a read error: the reader has it
				}
			}
		}()
		for !stopped() {
			var got record
			select {
			case got = <-records:
			case <-stop.Done():
				return
			case <-streamCtx.Done():
				return
			}
			switch {
			case errors.Is(got.err, io.EOF):
				readAll, emptyLines = true, got.empty
				return
			case got.err != nil:
				readErr = got.err
				fail(got.err)
				return
			}
			if !deal(got.rec) {
				return
			}
		}
	})
	for i := range n {
		st := streams[i]
		wg.Go(func() {
			defer func() {
				_ = st.CloseSend()
				close(recvq[i])
			}()
			for r := range sendq[i] {
				// A stop (Ctrl-C) ends the reading; the rows already dealt are
				// still sent, so that the output ends exactly where the reading
				// did. Only a kill or a failure drops them.
				if streamCtx.Err() != nil {
					r.lost = true
					close(r.done)
					continue
				}
				err := st.Send(r.req)
				if err != nil {
					// io.EOF: the stream ended; its receiver learns why.
					if !errors.Is(err, io.EOF) && streamCtx.Err() == nil {
						fail(streamError(err))
					}
					r.lost = true
					close(r.done)
					continue
				}
				r.req = nil
				recvq[i] <- r
			}
		})
		wg.Go(func() {
			broken := false
			for r := range recvq[i] {
				if !broken {
					resp, err := st.Recv()
					switch {
					case err != nil:
						broken = true
						if context.Cause(streamCtx) == nil {
							if errors.Is(err, io.EOF) {
								err = errors.New("the server ended the stream early")
							}
							fail(streamError(err))
						}
					case resp.GetRequestId() != strconv.Itoa(r.n):
						broken = true
						fail(fmt.Errorf("the server answered row %s where row %d was expected", resp.GetRequestId(), r.n))
					default:
						r.resp = resp
					}
				}
				r.lost = r.resp == nil
				close(r.done)
			}
		})
	}

	// The writer: rows in input order, up to the first one that has no answer.
	var (
		writeErr error
		pending  int
		cut      bool
	)
	for r := range order {
		if r.done != nil {
			<-r.done
		}
		if cut || writeErr != nil {
			continue
		}
		if r.lost {
			cut = true
			continue
		}
		rec := a.record(r)
		if err := w.Write(rec); err != nil {
			writeErr = err
			fail(err)
			continue
		}
		sum.add(r)
		if a.progress != nil {
			pending++
			if pending == 256 {
				a.progress(pending)
				pending = 0
			}
		}
		if sum.rows%4096 == 0 {
			if err := w.Error(); err != nil {
				writeErr = err
				fail(err)
			}
		}
	}
	wg.Wait()
	if a.progress != nil && pending > 0 {
		a.progress(pending)
	}
	sum.elapsed = a.now().Sub(start)
	sum.emptyLines = emptyLines
	sum.complete = readAll && !cut && failErr == nil && writeErr == nil
	// Interrupted: a stop (Ctrl-C) or a kill ended the run before it completed,
	// whatever else went wrong meanwhile (the exit status says interrupted first).
	sum.interrupted = !sum.complete && (stop.Err() != nil || errors.Is(failErr, errInterrupted))
	switch {
	case writeErr != nil:
		return sum, writeErr
	case readErr != nil:
		return sum, fmt.Errorf("read: %w", readErr)
	case failErr != nil && !errors.Is(failErr, errInterrupted):
		return sum, failErr
	case !sum.complete:
		sum.interrupted = true
		return sum, errInterrupted
	}
	return sum, nil
}

// worker is the stream a row is sent on: every row of one person on the same
// one, so that the earlier row of a person is judged (and reserved) before the
// later, as in the input order, and a later spelling of the same number is the
// DUPLICATE, whatever the number of workers. A person is the last six digits of
// the phone, which every spelling of a number shares (the WhatsApp-ID folds and
// national or international prefixes change only the digits before them); the
// server's stream lanes (server.route) take the same digits, so that within the
// stream, too, the rows of a number are decided in order. A row without a phone
// goes by its user ID; one whose phone has no digit (nobody's) to the stream
// after *rr's, which it advances. (A user ID that the server has linked to a number is one
// person with that number's rows too, which no client can see: those two rows
// are still one send, but which of them is the ALLOW depends on the streams'
// pace.)
func (a *audit) worker(req *sgv1.CheckSendRequest, rr *int) int {
	n := uint32(a.opts.workers)
	h, digits := uint32(2166136261), 0 // FNV-1a
	phone := req.GetPhone()
	for i := len(phone) - 1; i >= 0 && digits < 6; i-- {
		if c := phone[i]; c >= '0' && c <= '9' {
			h = (h ^ uint32(c)) * 16777619
			digits++
		}
	}
	if digits == 0 {
		id := req.GetUserId()
		if id == "" {
			*rr = (*rr + 1) % int(n)
			return *rr
		}
		for i := 0; i < len(id); i++ {
			h = (h ^ uint32(id[i])) * 16777619
		}
	}
	return int(h % n)
}

// streamError says what a broken stream means for the user.
func streamError(err error) error {
	st, ok := status.FromError(err)
	if !ok {
		return err
	}
	switch st.Code() {
	case codes.Unavailable:
		return fmt.Errorf("CheckSendStream: the server is unavailable: %s", st.Message())
	case codes.Unauthenticated, codes.PermissionDenied:
		return fmt.Errorf("CheckSendStream: %s: %s (set SENDGUARD_API_KEY to a key for this business)", codeName(st.Code()), st.Message())
	}
	return fmt.Errorf("CheckSendStream: %s: %s", codeName(st.Code()), st.Message())
}

func (a *audit) header() []string {
	if a.opts.reserve {
		return a.cols.out
	}
	return a.cols.out[:len(a.cols.out)-1]
}

// badLine says why an input line is not a row of the file.
type badLine uint8

const (
	lineOK     badLine = iota
	lineNotCSV         // not CSV: see audienceReader
	lineWidth          // another number of fields than the header
)

// row turns one record into a row: a request, or an ERROR.
func (a *audit) row(n int, rec audienceRecord) *auditRow {
	r := &auditRow{n: n, fields: rec.fields}
	width := a.cols.width
	switch {
	case rec.err != nil:
		r.bad = lineNotCSV
		r.errMsg = fmt.Sprintf("line %d is not CSV: %v; the line as read: %s", rec.line, rec.err, rec.raw)
	case len(rec.fields) != width:
		r.bad = lineWidth
		header := "the header"
		if a.opts.noHeader {
			header = "the first row"
		}
		r.errMsg = fmt.Sprintf("line %d has %d fields where %s has %d; the line as read: %s", rec.line, len(rec.fields), header, width, rec.raw)
	}
	if len(r.fields) != width {
		fields := make([]string, width)
		copy(fields, rec.fields)
		r.fields = fields
	}
	if r.errMsg != "" {
		return r
	}
	var phone, userID string
	if a.cols.phone >= 0 {
		phone = strings.TrimSpace(r.fields[a.cols.phone])
	}
	if a.cols.userID >= 0 {
		userID = strings.TrimSpace(r.fields[a.cols.userID])
	}
	if phone == "" && userID == "" {
		r.errMsg = "no phone number and no user ID"
		return r
	}
	o := a.opts
	r.req = &sgv1.CheckSendRequest{
		BusinessId: o.business, Phone: phone, UserId: userID, Category: o.category, Template: o.template,
		CampaignId: o.campaign, RequestId: strconv.Itoa(n), SendAt: o.sendAt, Region: o.region,
		Sender: o.sender, TemplateLanguage: o.language,
	}
	if a.cols.sender > 0 {
		if v := strings.TrimSpace(r.fields[a.cols.sender-1]); v != "" {
			r.req.Sender = v
		}
	}
	if o.reserve {
		// The server derives the ref from the recipient unless --ref-key row.
		r.req.Reserve, r.req.CampaignId = true, o.refCampaign()
		if o.refByRow {
			r.req.MessageRef = rowRef(o, n)
		}
	}
	r.done = make(chan struct{})
	return r
}

// maxRefLen is the server's limit on message_ref.
const maxRefLen = 256

// rowRef is the message_ref of row n with --ref-key row: CAMPAIGN/row-N, or a
// SHA-256 of that when it is longer than the server takes.
func rowRef(o *auditOptions, n int) string {
	ref := o.refCampaign() + "/row-" + strconv.Itoa(n)
	if len(ref) > maxRefLen {
		sum := sha256.Sum256([]byte(ref))
		ref = "sha256:" + hex.EncodeToString(sum[:])
	}
	return ref
}

// Verdict words of the output beyond the API's.
const (
	verdictError     = "ERROR"
	verdictDuplicate = "DUPLICATE"
)

// record is a row's output: its fields, then verdict, rules, retry_at, phone_e164,
// message (and message_ref with --reserve).
func (a *audit) record(r *auditRow) []string {
	rec := make([]string, 0, len(a.cols.out))
	rec = append(rec, r.fields...)
	var verdict, rules, retry, e164, msg, ref string
	resp := r.resp
	switch {
	case r.errMsg != "":
		verdict, msg = verdictError, r.errMsg
	case resp.GetError() != nil:
		verdict = verdictError
		msg = codeName(codes.Code(resp.GetError().GetCode())) + ": " + resp.GetError().GetMessage()
	default:
		verdict = verdictWord(resp.GetVerdict())
		if resp.GetDuplicate() {
			verdict = verdictDuplicate
			msg = "already reserved (by another worker, an earlier run, or an earlier row with the same recipient): do not send; the verdict now would be " + verdictWord(resp.GetVerdict())
		}
		rules = rulesCell(resp.GetReasons())
		if t := resp.GetRetryAt(); t != nil {
			retry = ceilSecond(t.AsTime()).Format(time.RFC3339)
		}
		e164 = resp.GetPhoneE164()
		// The ref the server reserved the send under: only a send reserved now
		// (ALLOW) or before (DUPLICATE) has one to pass to Meta.
		if resp.GetDuplicate() || resp.GetVerdict() == sgv1.Verdict_VERDICT_ALLOW {
			ref = resp.GetMessageRef()
		}
	}
	rec = append(rec, verdict, rules, retry, e164, msg)
	if a.opts.reserve {
		rec = append(rec, ref)
	}
	return rec
}

// rulesCell lists a decision's rules, ";"-separated; shadowed ones are marked.
func rulesCell(rs []*sgv1.Reason) string {
	var b strings.Builder
	for i, r := range rs {
		if i > 0 {
			b.WriteByte(';')
		}
		if r.GetShadow() {
			b.WriteString("shadow:")
		}
		b.WriteString(ruleWord(r.GetRule()))
	}
	return b.String()
}

// ceilSecond rounds up to the second: a retry at the printed time is never early.
func ceilSecond(t time.Time) time.Time {
	t = t.UTC()
	if t.Nanosecond() == 0 {
		return t
	}
	return t.Truncate(time.Second).Add(time.Second)
}

// auditSummary counts what a run found.
type auditSummary struct {
	opts                  *auditOptions
	out                   string
	rows                  int // rows written
	verdicts              map[string]int
	rules                 map[sgv1.Rule]*ruleCount
	codes                 map[int32]int // Meta errors predicted, per doomed row's reasons
	invalid               int           // doomed rows whose phone is not a number
	doomed, unwanted      int
	shadowed              int // ALLOW rows that a shadowed rule would have blocked
	reserved              int // new reservations (ALLOW with --reserve)
	notCSV, wrongWidth    int // ERROR rows for lines that are not rows of the file
	emptyLines            int // empty lines skipped
	elapsed               time.Duration
	complete, interrupted bool
}

// ruleCount is one rule's rows: blocking ones that predict a Meta error (doomed),
// blocking ones that do not, and shadowed ones.
type ruleCount struct{ doomed, unwanted, shadow int }

func newSummary(o *auditOptions) *auditSummary {
	return &auditSummary{opts: o, verdicts: map[string]int{}, rules: map[sgv1.Rule]*ruleCount{}, codes: map[int32]int{}}
}

func (s *auditSummary) add(r *auditRow) {
	s.rows++
	resp := r.resp
	switch r.bad {
	case lineNotCSV:
		s.notCSV++
	case lineWidth:
		s.wrongWidth++
	}
	switch {
	case r.errMsg != "" || resp.GetError() != nil:
		s.verdicts[verdictError]++
		return
	case resp.GetDuplicate():
		s.verdicts[verdictDuplicate]++
		return
	}
	s.verdicts[verdictWord(resp.GetVerdict())]++
	if resp.GetVerdict() == sgv1.Verdict_VERDICT_ALLOW {
		if resp.GetShadow() {
			s.shadowed++
		}
		if s.opts.reserve {
			s.reserved++
		}
	}
	for _, reason := range resp.GetReasons() {
		rc := s.rules[reason.GetRule()]
		if rc == nil {
			rc = &ruleCount{}
			s.rules[reason.GetRule()] = rc
		}
		switch {
		case reason.GetShadow():
			rc.shadow++
		case audience.ReasonDoomed(reason):
			rc.doomed++
		default:
			rc.unwanted++
		}
	}
	switch audience.Classify(resp) {
	case audience.Doomed:
		s.doomed++
		for _, reason := range resp.GetReasons() {
			switch {
			case reason.GetShadow():
			case reason.GetMetaErrorCode() != 0:
				s.codes[reason.GetMetaErrorCode()]++
			case reason.GetRule() == sgv1.Rule_RULE_INVALID_NUMBER:
				s.invalid++
			}
		}
	case audience.Unwanted:
		s.unwanted++
	}
}

// malformed is how many lines were not rows of the file.
func (s *auditSummary) malformed() int { return s.notCSV + s.wrongWidth }

// codeName spells a gRPC code as the API documents it: INVALID_ARGUMENT.
func codeName(c codes.Code) string {
	var b strings.Builder
	for i, r := range c.String() {
		if i > 0 && unicode.IsUpper(r) {
			b.WriteByte('_')
		}
		b.WriteRune(unicode.ToUpper(r))
	}
	return b.String()
}
