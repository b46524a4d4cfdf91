package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"golang.org/x/term"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/sendguard/sendguard/client"
	"github.com/sendguard/sendguard/internal/audience"
)

// Exit status of a validate run that was interrupted (128 + SIGINT, as shells do).
const exitInterrupted = 130

// drainTimeout is how long an interrupted run waits for the answers to rows it
// already sent (with --reserve they may be reserved: their answers belong in the
// output). A second Ctrl-C stops at once.
const drainTimeout = 5 * time.Second

// errInterrupted ends a run stopped by SIGINT or SIGTERM.
var errInterrupted = audience.ErrInterrupted

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
		v                                validateFlags
		o                                = &v.Options
		category, sendAt, price, refFlag string
		delimiter, outDelimiter          string
	)
	cmd := &cobra.Command{
		Use:   "validate --business B --in audience.csv --out verdicts.csv [flags]",
		Short: "Check a whole audience file before a campaign: a verdict per row, in order, and a summary",
		Long: `Stream every row of a CSV audience through CheckSendStream and write one output row
per input row, in input order: the input columns plus verdict, rules, retry_at
(RFC 3339, UTC, rounded up to the second), phone_e164 and message. A summary follows:
verdict counts, counts per rule, and the sends the campaign avoids.

The delimiter (, ; tab |) is detected from the header, or given with --delimiter; a
UTF-8 byte order mark is dropped and CRLF line ends (Excel's) work. The output is
written as the input is, with its delimiter (or --out-delimiter), its line ends and
its byte order mark, so that a spreadsheet's export opens in it again with columns. The phone column
is found by its header (phone, phone_number, msisdn, mobile, whatsapp, wa_id, number,
telefone, celular… in any case and spelling) or named with --phone-column (a header
name or a 1-based column number); a user ID column (user_id, bsuid) is picked up too,
or named with --user-id-column. With --no-header the file has no header row and
--phone-column is a column number (default 1).

--region (e.g. BR) reads national spellings such as "(31) 99551-1909" as numbers of
that region. Without it the server reads them by the business policy's
default_region (else the deployment's); when neither is set, validate warns before
it starts if most of the first 100 phones have no + or 00.

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

Exit status: 0 when the run completed, every line was read as CSV and the server
judged every row it could, whatever the verdicts (a row with another number of fields
than the header is CSV: its ERROR row is like one the server refuses for good, such
as INVALID_ARGUMENT); 3 when the run completed but some lines were not CSV (each has
its ERROR row); 4 when the run completed but the server could not judge some rows
for now (UNAVAILABLE, e.g. its disk is nearly full and reservations are refused;
RESOURCE_EXHAUSTED; DEADLINE_EXCEEDED; ABORTED): each has its ERROR row, and the
summary counts them: validate them again later; 1 when it could not run (or the stream broke: the
output then holds the rows answered so far); 130 on Ctrl-C (SIGINT or SIGTERM):
reading stops, the rows already read (at most --window) are still judged (up to 5 s;
a second Ctrl-C stops at once), and the output holds every row answered, in order,
as a valid CSV, followed by the partial summary. When several apply: 130, then 1,
then 3, then 4. Memory is bounded by --window whatever the file's size. A progress bar
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
		if o.Category, err = parseCategory(category); err != nil {
			return fmt.Errorf("--category: %w", err)
		}
		if o.SendAt, err = optionalTime("send-at", sendAt, time.Now(), loc); err != nil {
			return err
		}
		if price != "" {
			if o.Price, err = strconv.ParseFloat(price, 64); err != nil || o.Price < 0 {
				return fmt.Errorf("--price-per-message %q: want a number like 0.025", price)
			}
			o.Priced = true
		}
		switch refFlag {
		case "recipient", "phone":
		case "row":
			o.RefByRow = true
		default:
			return fmt.Errorf("--ref-key %q: want recipient or row", refFlag)
		}
		if v.outComma, err = parseDelimiter("--out-delimiter", outDelimiter); err != nil {
			return err
		}
		if o.Delimiter, err = parseDelimiter("--delimiter", delimiter); err != nil {
			return err
		}
		if o.Region, err = parseRegion(o.Region); err != nil {
			return err
		}
		if o.Reserve && o.Campaign == "" && o.Template == "" {
			return errors.New("--reserve needs --campaign or --template (the message_ref of each row starts with it)")
		}
		if o.Workers < 1 || o.Workers > 16 {
			return errors.New("--workers must be between 1 and 16")
		}
		if o.Window < o.Workers || o.Window > 100_000 {
			return fmt.Errorf("--window must be between --workers and 100000")
		}
		if v.in == "" || v.out == "" {
			return errors.New("--in and --out are required (- for standard input or output)")
		}
		return runValidate(cmd, cf, &v, env)
	}
	f := cmd.Flags()
	f.StringVar(&o.Business, "business", "", "the sender's business_id (required)")
	f.StringVar(&category, "category", "marketing", "marketing, utility, authentication or service")
	f.StringVar(&o.Template, "template", "", "the template name")
	f.StringVar(&o.Campaign, "campaign", "", "the campaign id (recorded with reservations; default with --reserve: --template)")
	f.StringVar(&o.Sender, "sender", "", "the sending number's phone_number_id (default: every row judged against every sender of the business)")
	f.StringVar(&o.Language, "template-language", "", "the template's language (e.g. pt_BR)")
	f.StringVar(&o.SenderColumn, "sender-column", "", "a column holding each row's sender (phone_number_id): a header name or a 1-based number; an empty cell takes --sender")
	f.StringVar(&sendAt, "send-at", "", "judge the campaign at a planned time instead of now (RFC 3339, local \"2026-11-27 10:00\", or +2h)")
	f.StringVar(&v.in, "in", "", "the audience CSV (- for standard input)")
	f.StringVar(&v.out, "out", "", "where to write the verdicts CSV (- for standard output; the summary then goes to stderr)")
	f.StringVar(&o.PhoneColumn, "phone-column", "", "the phone column: a header name or a 1-based number (default: found by header)")
	f.StringVar(&o.UserIDColumn, "user-id-column", "", "the user ID (BSUID) column: a header name or a 1-based number (default: found by header)")
	f.BoolVar(&o.NoHeader, "no-header", false, "the file has no header row (columns are named column1, column2, …)")
	f.BoolVar(&o.Reserve, "reserve", false, "reserve every allowed send (the sending step; see above)")
	f.StringVar(&refFlag, "ref-key", "recipient", "with --reserve: what identifies a row in its message_ref: recipient (derived by the server) or row")
	f.StringVar(&delimiter, "delimiter", "", `the field delimiter: ",", ";", tab, "|" or another character (default: detected from the header)`)
	f.StringVar(&outDelimiter, "out-delimiter", "", `the output's field delimiter (default: the input's)`)
	f.StringVar(&o.Region, "region", "", "the region (ISO 3166 alpha-2, e.g. BR) to read national spellings of numbers by")
	f.StringVar(&price, "price-per-message", "", "price of one delivered template, to value the unwanted sends avoided (e.g. 0.025)")
	f.IntVar(&o.Workers, "workers", 2, "concurrent streams (the server judges each stream's rows one after another)")
	f.IntVar(&o.Window, "window", 1000, "rows in flight at most (bounds memory)")
	_ = cmd.MarkFlagRequired("business")
	return cmd
}

// validateFlags are what a validate run asks: the audience's options and the
// files it reads and writes ("-": standard input or output).
type validateFlags struct {
	audience.Options
	in, out  string
	outComma byte // --out-delimiter; 0: the input's
}

// parseDelimiter reads a delimiter flag (--delimiter, --out-delimiter): one
// character, "tab" or "\t" for a tab; "" for the default. A quote or a line end
// cannot delimit fields.
func parseDelimiter(flag, v string) (byte, error) {
	switch v {
	case "":
		return 0, nil
	case "tab", `\t`:
		return '\t', nil
	}
	if len(v) != 1 || v[0] == '"' || v[0] == '\r' || v[0] == '\n' || v[0] >= utf8.RuneSelf {
		return 0, fmt.Errorf(`%s %q: want one ASCII character such as "," ";" "|", or tab (not a quote or a line end)`, flag, v)
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

// runValidate runs one validate: it opens the audience, dials the server,
// creates the output, runs the audience pipeline under Ctrl-C handling, and
// writes the summary and the exit status.
func runValidate(cmd *cobra.Command, cf *clientFlags, v *validateFlags, env validateEnv) error {
	stderr := cmd.ErrOrStderr()
	o, inPath, outPath := &v.Options, v.in, v.out
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
	input, err := audience.Open(in, inPath, o)
	if err != nil {
		return err
	}
	c, err := cf.dial(cmd)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := probe(cmd.Context(), c, cf); err != nil {
		return err
	}
	if o.Region == "" {
		if warning := input.RegionWarning(inPath); warning != "" && defaultRegion(cmd.Context(), c, o.Business) == "" {
			fmt.Fprintln(stderr, warning)
		}
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
	// The output is written as the input is: its delimiter, line ends and byte
	// order mark (a ;-delimited Excel export opens in Excel again).
	comma, bom, crlf := input.Dialect()
	if v.outComma != 0 {
		comma = v.outComma
	}
	w.Comma, w.UseCRLF = rune(comma), crlf
	if bom {
		_, _ = bw.WriteString("\ufeff")
	}

	stop, kill, release := interrupts(cmd.Context())
	defer release()

	aenv := audience.Env{Now: env.now, Kill: kill}
	var bar *progressbar.ProgressBar
	if fd, ok := stderr.(*os.File); ok && term.IsTerminal(int(fd.Fd())) {
		bar = newRowBar(stderr, inPath, size, o.NoHeader)
		aenv.Progress = func(n int) { _ = bar.Add(n) }
	}
	sum, runErr := audience.Run(stop, c, input, w, o, aenv)
	if bar != nil {
		_ = bar.Finish()
	}
	w.Flush()
	flushErr := errors.Join(w.Error(), bw.Flush())
	if outFile != nil {
		flushErr = errors.Join(flushErr, outFile.Close())
	}
	where := outPath // where the verdicts went, for the messages
	if outPath == "-" {
		where = "standard output"
	}
	if sum.Rows > 0 || runErr == nil || sum.Interrupted {
		sum.Write(sumOut, where)
	}
	failed := runErr
	if errors.Is(runErr, errInterrupted) {
		failed = nil
	}
	if flushErr != nil {
		failed = errors.Join(fmt.Errorf("write %s: %w", outPath, flushErr), failed)
	}
	switch code := exitStatus(sum.Interrupted, failed != nil, sum.NotCSV, sum.Unjudged()); code {
	case exitInterrupted:
		if failed != nil {
			fmt.Fprintln(stderr, "sendguard:", failed)
		}
		fmt.Fprintf(stderr, "sendguard: interrupted: %s holds the first %d rows, in order\n", where, sum.Rows)
		env.exit(code)
		return errInterrupted
	case exitFailed:
		return failed
	case exitNotCSV:
		fmt.Fprintf(stderr, "sendguard: %s: %s; each is an ERROR row of %s with its line number and the line as read\n",
			inPath, plurals(sum.NotCSV, "line is not CSV", "lines are not CSV"), where)
		if sum.Unjudged() > 0 {
			unjudgedLine(stderr, sum.Unjudged(), where)
		}
		env.exit(code)
	case exitUnjudged:
		unjudgedLine(stderr, sum.Unjudged(), where)
		env.exit(code)
	}
	return nil
}

// unjudgedLine says on stderr how many rows the server could not judge for now.
func unjudgedLine(w io.Writer, n int, where string) {
	fmt.Fprintf(w, "sendguard: the server could not judge %s for now; each is an ERROR row of %s saying why: validate them again later\n",
		plurals(n, "row", "rows"), where)
}

// Exit statuses of a validate run beyond 0 (it completed and every line was read
// as CSV, whatever the verdicts).
const (
	exitFailed = 1 // it could not run, or the stream broke: the output holds the rows answered so far
	exitNotCSV = 3 // it completed, but some lines were not CSV: each is an ERROR row
	// exitUnjudged: it completed, but the server could not judge some rows for
	// now (UNAVAILABLE, such as a nearly full disk refusing reservations;
	// RESOURCE_EXHAUSTED; DEADLINE_EXCEEDED; ABORTED): each is an ERROR row.
	exitUnjudged = 4
	// exitInterrupted (130) is Ctrl-C.
)

// exitStatus is the status of a validate run: when several apply, interrupted
// before failed before lines that were not CSV before rows the server could not
// judge for now. A line with another number of fields than the header is CSV:
// its ERROR row is like one the server refuses for good (INVALID_ARGUMENT).
func exitStatus(interrupted, failed bool, notCSV, unjudged int) int {
	switch {
	case interrupted:
		return exitInterrupted
	case failed:
		return exitFailed
	case notCSV > 0:
		return exitNotCSV
	case unjudged > 0:
		return exitUnjudged
	}
	return 0
}

// defaultRegion is the region the server reads a national spelling by for the
// business (its policy's default_region, else the deployment's), or "" when it
// has none or cannot say (a key without access to the policy).
func defaultRegion(ctx context.Context, c *client.Client, business string) string {
	resp, err := c.Policy(ctx, business)
	if err != nil {
		return ""
	}
	return resp.GetEffective().GetDefaultRegion()
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

// interrupts handles Ctrl-C for a run: the first SIGINT or SIGTERM ends stop
// (the reading stops), the second, or drainTimeout after the first, closes kill
// (stop waiting for the answers to the rows already read). release ends it.
func interrupts(ctx context.Context) (stop context.Context, kill <-chan struct{}, release func()) {
	stop, stopNow := context.WithCancel(ctx)
	killed := make(chan struct{})
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	finished := make(chan struct{})
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
		close(killed)
	}()
	return stop, killed, func() {
		close(finished)
		signal.Stop(sigs)
		stopNow()
	}
}
