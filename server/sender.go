package server

import (
	"fmt"
	"maps"
	"slices"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	sgv1 "github.com/sendguard/sendguard/proto/sendguard/v1"
)

// Size limits of the enforcement-level request fields (DESIGN.md "Who is who"),
// in bytes.
const (
	maxSender          = 128 // sender: a Meta phone_number_id
	maxLanguage        = 64  // template_language, e.g. "pt_BR"
	maxPricingCategory = 64  // pricing_category, Meta's string verbatim
	maxButtonPayload   = 1024
)

// validateSenderFields validates the sender and template_language that checks,
// reports and inbound messages may carry.
func validateSenderFields(sender, language string) error {
	if err := checkID("sender", sender, maxSender, false); err != nil {
		return err
	}
	return checkID("template_language", language, maxLanguage, false)
}

// validateCheckSender validates the enforcement-level fields of a check.
func validateCheckSender(r *sgv1.CheckSendRequest) error {
	return validateSenderFields(r.GetSender(), r.GetTemplateLanguage())
}

// validateResultSender validates the enforcement-level fields of a report.
func validateResultSender(r *sgv1.ReportResultRequest) error {
	if err := validateSenderFields(r.GetSender(), r.GetTemplateLanguage()); err != nil {
		return err
	}
	return checkID("pricing_category", r.GetPricingCategory(), maxPricingCategory, false)
}

// validateInboundSender validates the enforcement-level fields of an inbound
// message.
func validateInboundSender(r *sgv1.ReportInboundRequest) error {
	if err := validateSenderFields(r.GetSender(), ""); err != nil {
		return err
	}
	return checkText("button_payload", r.GetButtonPayload(), maxButtonPayload)
}

// senderIndex is the phone_number_ids config read the other way: the senders
// mapped to each business.
type senderIndex map[string][]string

func newSenderIndex(phoneNumberIDs map[string]string) senderIndex {
	idx := senderIndex{}
	for pnid, business := range phoneNumberIDs {
		idx[business] = append(idx[business], pnid)
	}
	return idx
}

// checkSender refuses a sender that the config maps to another business
// (PERMISSION_DENIED): a caller of one business must not act on another's
// number. An unmapped sender is accepted.
func (s *Server) checkSender(business, sender string) error {
	if sender == "" {
		return nil
	}
	if owner, ok := s.cfg.PhoneNumberIDs[sender]; ok && owner != business {
		return status.Errorf(codes.PermissionDenied, "sender %q belongs to another business", sender)
	}
	return nil
}

// reportSender is the sender an event is attributed to: its own, else the
// business's only known sender (the one phone_number_id the config maps to it),
// else "" (the implicit sender). It refuses a sender mapped to another business.
func (s *Server) reportSender(business, sender string) (string, error) {
	if sender != "" {
		return sender, s.checkSender(business, sender)
	}
	if mapped := s.senders[business]; len(mapped) == 1 {
		return mapped[0], nil
	}
	return "", nil
}

// checkWABAIDs refuses two WhatsApp Business Accounts mapped to one business
// (DESIGN.md: one account per business; a brand with several WABAs uses one
// business_id per WABA), and empty ids.
func checkWABAIDs(m map[string]string) error {
	owner := make(map[string]string, len(m))
	for _, waba := range slices.Sorted(maps.Keys(m)) {
		business := m[waba]
		switch {
		case waba == "" || business == "":
			return fmt.Errorf("waba_ids: %q: %q: empty id", waba, business)
		case owner[business] != "":
			return fmt.Errorf("waba_ids: %s and %s both map to business %q: one account per business (use one business_id per WABA)", owner[business], waba, business)
		}
		owner[business] = waba
	}
	return nil
}

// businessForWABA maps an account webhook's WABA id to its business_id: the
// waba_ids mapping, or the id itself unless the deployment skips unmapped ids
// (as businessFor does for phone_number_ids).
func (s *Server) businessForWABA(waba string) (string, bool) {
	if b, ok := s.cfg.WABAIDs[waba]; ok {
		return b, true
	}
	if s.cfg.SkipUnmappedPhoneNumberIDs || len(s.keys) > 0 {
		return "", false
	}
	return waba, true
}
