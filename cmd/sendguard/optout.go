package main

import (
	"context"
	"errors"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/sendguard/sendguard/client"
	sgv1 "github.com/sendguard/sendguard/proto/sendguard/v1"
)

func optOutCmd() *cobra.Command {
	var (
		o                                    optOutFlags
		in, phoneCol, userCol, delim, region string
		noHeader                             bool
		workers                              int
	)
	cmd := &cobra.Command{
		Use:   "optout [PHONE] --business B [--reason R] | optout --in FILE --business B",
		Short: "Opt a number out of a business's marketing, or import a suppression list (--in)",
		Long: `Record the business's own opt-out of a recipient (SetOptOut): marketing to it is
DENY (OPTED_OUT) until it opts in again (sendguard optin, or an opt-in keyword).
A recipient already opted out is left as it is, its opt-out time and reason kept:
running it twice changes nothing the second time and says so.

--in FILE imports an existing suppression list (- reads standard input): any
audience file that validate reads. The phone column is found by its header
(phone, msisdn, whatsapp, telefone, celular…) or named with --phone-column (a header
name or a 1-based number); a user ID column (user_id, bsuid) is used too. The
delimiter (, ; tab |) is detected from the header or given with --delimiter; a
UTF-8 byte order mark and Windows line ends are fine. A line that is not CSV, or
does not have the header's number of fields, is reported by its line number and
skipped; the import goes on. Importing the same file again changes nothing.

The summary counts the numbers opted out now, those already opted out, the invalid
numbers (not imported: a national spelling needs --region) and the lines that could
not be read. Exit status: 0 when every row was imported, 3 when some were skipped
(lines that are not CSV, invalid numbers: the rest were imported), 1 when the
import could not run or stopped, 130 on Ctrl-C (the rows already sent are
finished; importing again is safe).
` + connHelp,
		Args: cobra.MaximumNArgs(1),
	}
	cf := addClientFlags(cmd)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		o.region = region
		if in != "" {
			if len(args) > 0 || o.userID != "" {
				return errors.New("--in imports a file: give no PHONE or --user-id with it")
			}
			if workers < 1 || workers > 64 {
				return errors.New("--workers must be between 1 and 64")
			}
			comma, err := parseDelimiter("--delimiter", delim)
			if err != nil {
				return err
			}
			return runImport(cmd, cf, &o, importOptions{path: in, phoneCol: phoneCol, userCol: userCol, comma: comma, noHeader: noHeader, workers: workers})
		}
		if len(args) == 1 {
			o.phone = args[0]
		}
		if o.phone == "" && o.userID == "" {
			return errors.New("name the recipient: PHONE or --user-id (or import a file with --in)")
		}
		return runOptOut(cmd, cf, &o, true)
	}
	f := cmd.Flags()
	o.register(f)
	addRegionFlag(cmd, &region)
	f.StringVar(&in, "in", "", "import a suppression list: a CSV file (- for standard input)")
	f.StringVar(&phoneCol, "phone-column", "", "with --in: the phone column, a header name or a 1-based number (default: found by header)")
	f.StringVar(&userCol, "user-id-column", "", "with --in: the user ID (BSUID) column (default: found by header)")
	f.StringVar(&delim, "delimiter", "", "with --in: the delimiter, , ; | or tab (default: detected from the header)")
	f.BoolVar(&noHeader, "no-header", false, "with --in: the file has no header row (--phone-column is then a number, default 1)")
	f.IntVar(&workers, "workers", 4, "with --in: rows in flight at once")
	_ = cmd.MarkFlagRequired("business")
	return cmd
}

func optInCmd() *cobra.Command {
	var (
		o      optOutFlags
		region string
	)
	cmd := &cobra.Command{
		Use:   "optin PHONE --business B [--reason R]",
		Short: "Record a number's opt-in (consent) and lift the business's own opt-out",
		Long: `Record an explicit opt-in (SetOptOut with opted_out false): consent, with its time
and --reason (e.g. "web form 2026-11-20"), which NO_CONSENT asks for when the policy
has require_opt_in; it lifts the business's own opt-out. It does not lift Meta's
(131050): only the user's resume, or a delivered marketing message sent after the
stop, does.
` + connHelp,
		Args: cobra.MaximumNArgs(1),
	}
	cf := addClientFlags(cmd)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		o.region = region
		if len(args) == 1 {
			o.phone = args[0]
		}
		if o.phone == "" && o.userID == "" {
			return errors.New("name the recipient: PHONE or --user-id")
		}
		return runOptOut(cmd, cf, &o, false)
	}
	o.register(cmd.Flags())
	addRegionFlag(cmd, &region)
	_ = cmd.MarkFlagRequired("business")
	return cmd
}

// optOutFlags are the flags optout and optin share.
type optOutFlags struct {
	business, phone, userID, reason, region string
	asJSON                                  bool
}

func (o *optOutFlags) register(f *pflag.FlagSet) {
	f.StringVar(&o.business, "business", "", "the business (required)")
	f.StringVar(&o.userID, "user-id", "", "the recipient's business-scoped user ID (BSUID)")
	f.StringVar(&o.reason, "reason", "", `why, kept with the record (e.g. "support ticket 42"; default: how it was recorded)`)
	f.BoolVar(&o.asJSON, "json", false, "print the response as JSON")
}

func (o *optOutFlags) request(optedOut bool) *sgv1.SetOptOutRequest {
	return &sgv1.SetOptOutRequest{BusinessId: o.business, Phone: o.phone, UserId: o.userID, OptedOut: optedOut, Reason: o.reason, Region: o.region}
}

// runOptOut opts one recipient out (optOut) or in, and says what changed.
func runOptOut(cmd *cobra.Command, cf *clientFlags, o *optOutFlags, optOut bool) error {
	loc, err := cf.location()
	if err != nil {
		return err
	}
	c, err := cf.dial(cmd)
	if err != nil {
		return err
	}
	defer c.Close()
	req := o.request(optOut)
	var res optOutResult
	if optOut {
		res, err = optOutOne(cmd.Context(), c, req)
	} else {
		res, err = optInOne(cmd.Context(), c, req)
	}
	if err != nil {
		return callError("SetOptOut", cf.addr, err)
	}
	if o.asJSON {
		return printJSON(cmd, res.resp)
	}
	p := &printer{w: cmd.OutOrStdout(), loc: loc}
	who := recipient(res.contact.GetPhoneE164(), "", o.userID, o.phone)
	if !optOut {
		writeOptIn(p, o.business, who, res)
		return nil
	}
	writeOptOut(p, o.business, who, res)
	return nil
}

// optOutResult is what opting one recipient out or in did.
type optOutResult struct {
	already bool                    // an opt-out was in force: nothing was written
	contact *sgv1.Contact           // the recipient before
	resp    *sgv1.SetOptOutResponse // the state after
}

// optOutOne opts a recipient out of the business's marketing unless an opt-out of
// the business is already in force (its own, or a suppression entry left by a
// forget): then nothing is written, so that its time and reason are kept and an
// import run twice changes nothing. It reads the contact first (GetContact).
func optOutOne(ctx context.Context, c *client.Client, req *sgv1.SetOptOutRequest) (optOutResult, error) {
	ct, err := c.Contact(ctx, &sgv1.GetContactRequest{BusinessId: req.GetBusinessId(), Phone: req.GetPhone(), UserId: req.GetUserId(), Region: req.GetRegion()})
	if err != nil {
		return optOutResult{}, err
	}
	res := optOutResult{contact: ct}
	if ct.GetOptedOut() || ct.GetSuppressed() {
		res.already = true
		res.resp = &sgv1.SetOptOutResponse{OptedOut: true, MetaOptedOut: ct.GetMetaOptedOut()}
		return res, nil
	}
	res.resp, err = c.SetOptOut(ctx, req)
	return res, err
}

// optInOne records an opt-in; it reads the contact first to say what it lifted.
func optInOne(ctx context.Context, c *client.Client, req *sgv1.SetOptOutRequest) (optOutResult, error) {
	ct, err := c.Contact(ctx, &sgv1.GetContactRequest{BusinessId: req.GetBusinessId(), Phone: req.GetPhone(), UserId: req.GetUserId(), Region: req.GetRegion()})
	if err != nil {
		return optOutResult{}, err
	}
	res := optOutResult{contact: ct}
	res.resp, err = c.SetOptOut(ctx, req)
	return res, err
}

func writeOptOut(p *printer, business, who string, res optOutResult) {
	ct := res.contact
	switch {
	case res.already && ct.GetOptedOut():
		p.f("already opted out: %s has been opted out of %s's marketing since %s%s; nothing changed\n",
			who, business, p.ts(ct.GetOptedOutAt()), reasonSuffix(ct.GetOptOutReason()))
	case res.already:
		p.f("already opted out: %s was forgotten after opting out, and its suppression entry blocks %s's marketing; nothing changed\n", who, business)
	default:
		p.f("opted out: %s gets no marketing from %s from now on (OPTED_OUT), until it opts in again\n", who, business)
	}
	if res.resp.GetMetaOptedOut() {
		p.f("  Meta's opt-out (131050) is in force too\n")
	}
}

func writeOptIn(p *printer, business, who string, res optOutResult) {
	ct := res.contact
	p.f("opted in: consent of %s to %s's marketing recorded\n", who, business)
	switch {
	case ct.GetOptedOut():
		p.f("  lifted:  the business's opt-out of %s%s\n", p.ts(ct.GetOptedOutAt()), reasonSuffix(ct.GetOptOutReason()))
	case ct.GetSuppressed():
		p.f("  lifted:  the suppression entry a forget had left\n")
	}
	if res.resp.GetMetaOptedOut() {
		p.f("  still:   Meta's opt-out (131050) is in force, and only Meta's evidence lifts it (the user's resume, a delivered marketing message): marketing stays DENY\n")
	}
}

// recipientError reports whether err is the server refusing the recipient of one
// row (its phone or user ID), as opposed to the call as a whole; msg is why.
func recipientError(err error) (msg string, ok bool) {
	st, isStatus := status.FromError(err)
	if !isStatus || st.Code() != codes.InvalidArgument {
		return "", false
	}
	m := st.Message()
	if strings.HasPrefix(m, "phone") || strings.HasPrefix(m, "user_id") {
		return m, true
	}
	return "", false
}
