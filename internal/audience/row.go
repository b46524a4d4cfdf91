package audience

import (
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode"

	"google.golang.org/grpc/codes"

	"github.com/sendguard/sendguard/internal/enumword"
	sgv1 "github.com/sendguard/sendguard/proto/sendguard/v1"
)

// row is one input row on its way through the pipeline.
type row struct {
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

// badLine says why an input line is not a row of the file.
type badLine uint8

const (
	lineOK     badLine = iota
	lineNotCSV         // not CSV: see Reader
	lineWidth          // another number of fields than the header
)

// Verdict words of the output beyond the API's.
const (
	verdictError     = "ERROR"
	verdictDuplicate = "DUPLICATE"
)

// newRow turns one record into a row: a request, or an ERROR.
func newRow(o *Options, cols Columns, n int, rec Record) *row {
	r := &row{n: n, fields: rec.Fields}
	width := cols.Width
	switch {
	case rec.Err != nil:
		r.bad = lineNotCSV
		r.errMsg = fmt.Sprintf("line %d is not CSV: %v; the line as read: %s", rec.Line, rec.Err, rec.Raw)
	case len(rec.Fields) != width:
		r.bad = lineWidth
		header := "the header"
		if o.NoHeader {
			header = "the first row"
		}
		r.errMsg = fmt.Sprintf("line %d has %d fields where %s has %d; the line as read: %s", rec.Line, len(rec.Fields), header, width, rec.Raw)
	}
	if len(r.fields) != width {
		fields := make([]string, width)
		copy(fields, rec.Fields)
		r.fields = fields
	}
	if r.errMsg != "" {
		return r
	}
	var phone, userID string
	if cols.Phone >= 0 {
		phone = strings.TrimSpace(r.fields[cols.Phone])
	}
	if cols.UserID >= 0 {
		userID = strings.TrimSpace(r.fields[cols.UserID])
	}
	if phone == "" && userID == "" {
		r.errMsg = "no phone number and no user ID"
		return r
	}
	r.req = &sgv1.CheckSendRequest{
		BusinessId: o.Business, Phone: phone, UserId: userID, Category: o.Category, Template: o.Template,
		CampaignId: o.Campaign, RequestId: strconv.Itoa(n), SendAt: o.SendAt, Region: o.Region,
		Sender: o.Sender, TemplateLanguage: o.Language,
	}
	if cols.Sender > 0 {
		if v := strings.TrimSpace(r.fields[cols.Sender-1]); v != "" {
			r.req.Sender = v
		}
	}
	if o.Reserve {
		// The server derives the ref from the recipient unless RefByRow.
		r.req.Reserve, r.req.CampaignId = true, o.refCampaign()
		if o.RefByRow {
			r.req.MessageRef = rowRef(o, n)
		}
	}
	r.done = make(chan struct{})
	return r
}

// outHeader is the output's header: the input's columns, then verdict, rules,
// retry_at, phone_e164, message (and message_ref with Reserve).
func outHeader(o *Options, cols Columns) []string {
	if o.Reserve {
		return cols.Out
	}
	return cols.Out[:len(cols.Out)-1]
}

// outRecord is a row's output: its fields, then verdict, rules, retry_at,
// phone_e164, message (and message_ref with Reserve).
func outRecord(o *Options, cols Columns, r *row) []string {
	rec := make([]string, 0, len(cols.Out))
	rec = append(rec, r.fields...)
	var verdict, rules, retry, e164, msg, ref string
	resp := r.resp
	switch {
	case r.errMsg != "":
		verdict, msg = verdictError, r.errMsg
	case resp.GetError() != nil:
		verdict = verdictError
		msg = CodeName(codes.Code(resp.GetError().GetCode())) + ": " + resp.GetError().GetMessage()
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
	if o.Reserve {
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

func verdictWord(v sgv1.Verdict) string { return enumword.Verdicts.Upper(v) }
func ruleWord(r sgv1.Rule) string       { return enumword.Rules.Upper(r) }

// CodeName spells a gRPC code as the API documents it: INVALID_ARGUMENT.
func CodeName(c codes.Code) string {
	var b strings.Builder
	for i, r := range c.String() {
		if i > 0 && unicode.IsUpper(r) {
			b.WriteByte('_')
		}
		b.WriteRune(unicode.ToUpper(r))
	}
	return b.String()
}
