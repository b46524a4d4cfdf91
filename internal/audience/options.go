package audience

import (
	"crypto/sha256"
	"encoding/hex"
	"strconv"

	"google.golang.org/protobuf/types/known/timestamppb"

	sgv1 "github.com/sendguard/sendguard/proto/sendguard/v1"
)

// Options are what a run asks: how to read the file (Open) and what to ask of
// each row (Run). The CLI's flags fill them in and check them.
type Options struct {
	// Reading the file.
	Delimiter                 byte   // 0: detected from the header
	NoHeader                  bool   // the file has no header row
	PhoneColumn, UserIDColumn string // a header name or a 1-based number; "": found by header
	SenderColumn              string // a row's sender, when not empty, instead of Sender; "": none

	// Each row's request.
	Business, Template, Campaign string
	Region                       string // passed on every request; "" for none
	Sender, Language             string // passed on every request; "" for none
	Category                     sgv1.Category
	SendAt                       *timestamppb.Timestamp
	Reserve                      bool // reserve every ALLOW
	RefByRow                     bool // with Reserve: the message_ref is CAMPAIGN/row-N

	// The summary.
	Price  float64 // of one delivered template, when Priced
	Priced bool

	// The pipeline.
	Workers int // concurrent streams
	Window  int // rows in flight at most
}

// refCampaign is what a reservation's message_ref starts with: Campaign, else
// Template.
func (o *Options) refCampaign() string {
	if o.Campaign != "" {
		return o.Campaign
	}
	return o.Template
}

// maxRefLen is the server's limit on message_ref.
const maxRefLen = 256

// rowRef is the message_ref of row n with RefByRow: CAMPAIGN/row-N, or a
// SHA-256 of that when it is longer than the server takes.
func rowRef(o *Options, n int) string {
	ref := o.refCampaign() + "/row-" + strconv.Itoa(n)
	if len(ref) > maxRefLen {
		sum := sha256.Sum256([]byte(ref))
		ref = "sha256:" + hex.EncodeToString(sum[:])
	}
	return ref
}
