package audience

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc/codes"

	sgv1 "github.com/sendguard/sendguard/proto/sendguard/v1"
)

// Summary counts what a run found.
type Summary struct {
	Rows        int  // rows written
	NotCSV      int  // ERROR rows for lines that are not CSV
	Complete    bool // every line was read and every row written
	Interrupted bool // a stop or a kill ended the run before it completed

	opts             *Options
	verdicts         map[string]int
	rules            map[sgv1.Rule]*ruleCount
	codes            map[int32]int      // Meta errors predicted, per doomed row's reasons
	unjudged         map[codes.Code]int // ERROR rows the server could not judge for now (Retryable), per code
	invalid          int                // doomed rows whose phone is not a number
	doomed, unwanted int
	shadowed         int // ALLOW rows that a shadowed rule would have blocked
	reserved         int // new reservations (ALLOW with Reserve)
	wrongWidth       int // ERROR rows for lines with another number of fields than the header
	emptyLines       int // empty lines skipped
	elapsed          time.Duration
}

// ruleCount is one rule's rows: blocking ones that predict a Meta error (doomed),
// blocking ones that do not, and shadowed ones.
type ruleCount struct{ doomed, unwanted, shadow int }

func newSummary(o *Options) *Summary {
	return &Summary{opts: o, verdicts: map[string]int{}, rules: map[sgv1.Rule]*ruleCount{}, codes: map[int32]int{},
		unjudged: map[codes.Code]int{}}
}

func (s *Summary) add(r *row) {
	s.Rows++
	resp := r.resp
	switch r.bad {
	case lineNotCSV:
		s.NotCSV++
	case lineWidth:
		s.wrongWidth++
	}
	switch {
	case r.errMsg != "" || resp.GetError() != nil:
		s.verdicts[verdictError]++
		if e := resp.GetError(); e != nil && Retryable(codes.Code(e.GetCode())) {
			s.unjudged[codes.Code(e.GetCode())]++
		}
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
		if s.opts.Reserve {
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
		case ReasonDoomed(reason):
			rc.doomed++
		default:
			rc.unwanted++
		}
	}
	switch Classify(resp) {
	case Doomed:
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
	case Unwanted:
		s.unwanted++
	}
}

// Retryable tells whether a row refused with code c may get a verdict when it
// is validated again later: the server could not judge it for now (it is
// unavailable, its disk is nearly full, it is overloaded, or the row's deadline
// passed), rather than finding the row itself wrong.
func Retryable(c codes.Code) bool {
	switch c {
	case codes.Unavailable, codes.ResourceExhausted, codes.DeadlineExceeded, codes.Aborted:
		return true
	}
	return false
}

// malformed is how many lines were not rows of the file.
func (s *Summary) malformed() int { return s.NotCSV + s.wrongWidth }

// Unjudged is how many ERROR rows the server could not judge for now
// (Retryable): validated again later, they get verdicts.
func (s *Summary) Unjudged() int {
	n := 0
	for _, c := range s.unjudged {
		n += c
	}
	return n
}

// unjudgedText says how many rows the server could not judge for now, and with
// which codes: "3 rows could not be judged for now (UNAVAILABLE 3)".
func (s *Summary) unjudgedText() string {
	cs := slices.Sorted(maps.Keys(s.unjudged))
	parts := make([]string, 0, len(cs))
	for _, c := range cs {
		parts = append(parts, fmt.Sprintf("%s %d", CodeName(c), s.unjudged[c]))
	}
	return plurals(s.Unjudged(), "row", "rows") + " could not be judged for now (" + strings.Join(parts, ", ") + ")"
}

// summaryVerdicts are the rows of the verdict table, in order.
var summaryVerdicts = []string{"ALLOW", "DEFER", "DENY", verdictError}

// Write prints the end of a run whose verdicts went to out: what was done, the
// verdicts, the rules, and the sends avoided.
func (s *Summary) Write(w io.Writer, out string) {
	rate := float64(s.Rows) / max(s.elapsed.Seconds(), 1e-9)
	fmt.Fprintf(w, "validated %d rows in %s (%.0f rows/s); verdicts in %s\n", s.Rows, s.elapsed.Round(time.Millisecond), rate, out)
	if s.Interrupted {
		fmt.Fprintf(w, "stopped early: the output holds the first %d rows, in order; the rest were not checked\n", s.Rows)
	}
	if s.malformed() > 0 {
		fmt.Fprintf(w, "%s: ERROR rows whose message holds the line number and the line as read; fix those lines and validate them again\n", s.malformedText())
	}
	if s.Unjudged() > 0 {
		fmt.Fprintf(w, "%s: ERROR rows whose message says why; validate them again later", s.unjudgedText())
		if s.opts.Reserve {
			fmt.Fprint(w, " (the whole file may be run again with the same flags: a row reserved now answers DUPLICATE)")
		}
		fmt.Fprintln(w)
	}
	if s.emptyLines > 0 {
		fmt.Fprintf(w, "%s skipped\n", plurals(s.emptyLines, "empty line", "empty lines"))
	}
	if s.Rows == 0 {
		return
	}
	share := func(n int) string { return fmt.Sprintf("%5.1f%%", 100*float64(n)/float64(s.Rows)) }
	verdicts := summaryVerdicts
	if s.opts.Reserve {
		verdicts = append(slices.Clone(verdicts), verdictDuplicate)
	}
	fmt.Fprintf(w, "\n%-10s %10s %7s\n", "verdict", "rows", "share")
	for _, v := range verdicts {
		n := s.verdicts[v]
		note := ""
		switch {
		case v == "ALLOW" && s.opts.Reserve:
			note = "  reserved: send these"
		case v == verdictDuplicate:
			note = "  reserved before: do not send"
		case v == "ALLOW" && s.shadowed > 0:
			note = fmt.Sprintf("  (%d would be blocked by a rule in shadow mode)", s.shadowed)
		}
		fmt.Fprintf(w, "%-10s %10d %7s%s\n", v, n, share(n), note)
	}

	if len(s.rules) > 0 {
		rules := make([]sgv1.Rule, 0, len(s.rules))
		for r := range s.rules {
			rules = append(rules, r)
		}
		slices.Sort(rules)
		width := len("rule")
		for _, r := range rules {
			width = max(width, len(ruleWord(r)))
		}
		fmt.Fprintf(w, "\n%-*s %10s %10s %10s\n", width, "rule", "doomed", "unwanted", "shadow")
		for _, r := range rules {
			c := s.rules[r]
			fmt.Fprintf(w, "%-*s %10s %10s %10s\n", width, ruleWord(r), dash(c.doomed), dash(c.unwanted), dash(c.shadow))
		}
	}

	avoided := s.doomed + s.unwanted
	fmt.Fprintf(w, "\navoided sends: %d of %d rows\n", avoided, s.Rows)
	doomed := "Meta would refuse them: no charge, but each lowers your quality rating"
	if len(s.codes) > 0 || s.invalid > 0 {
		metaCodes := make([]int32, 0, len(s.codes))
		for c := range s.codes {
			metaCodes = append(metaCodes, c)
		}
		slices.Sort(metaCodes)
		var parts []string
		if s.invalid > 0 {
			parts = append(parts, fmt.Sprintf("not a number x%d", s.invalid))
		}
		for _, c := range metaCodes {
			parts = append(parts, fmt.Sprintf("%d x%d", c, s.codes[c]))
		}
		doomed = "Meta would refuse them (" + strings.Join(parts, ", ") + "): no charge, but each lowers your quality rating"
	}
	fmt.Fprintf(w, "  doomed   %10d  %s\n", s.doomed, doomed)
	unwanted := "Meta would deliver them, against your own rules"
	if s.opts.Priced {
		unwanted += fmt.Sprintf("; at %s per message they would have cost %.2f", strconv.FormatFloat(s.opts.Price, 'f', -1, 64), float64(s.unwanted)*s.opts.Price)
	} else {
		unwanted += " (--price-per-message prices them)"
	}
	fmt.Fprintf(w, "  unwanted %10d  %s\n", s.unwanted, unwanted)
	if s.verdicts["DEFER"] > 0 {
		fmt.Fprintf(w, "DEFER rows may be sent after their retry_at.\n")
	}
}

// malformedText says how many lines were not rows of the file, and why.
func (s *Summary) malformedText() string {
	switch {
	case s.NotCSV > 0 && s.wrongWidth > 0:
		return fmt.Sprintf("%d lines are not rows of the file: %d not CSV, %d with another number of fields than the header",
			s.malformed(), s.NotCSV, s.wrongWidth)
	case s.NotCSV == 1:
		return "1 line is not CSV"
	case s.NotCSV > 0:
		return fmt.Sprintf("%d lines are not CSV", s.NotCSV)
	case s.wrongWidth == 1:
		return "1 line has another number of fields than the header"
	}
	return fmt.Sprintf("%d lines have another number of fields than the header", s.wrongWidth)
}

// plurals is n with the singular or the plural form given: "1 line", "2 lines".
func plurals(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return strconv.Itoa(n) + " " + many
}

func dash(n int) string {
	if n == 0 {
		return "-"
	}
	return strconv.Itoa(n)
}
