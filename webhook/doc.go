// Package webhook authenticates and parses the bodies of Meta's WhatsApp Cloud
// API webhooks: message statuses, inbound messages, user-initiated calls and
// user_preferences (marketing stop/resume), flattened into [Event] values.
//
// It is pure: no I/O, no clock. [Verify] checks the X-Hub-Signature-256 header
// before anything is parsed; [Parse] only fails on a body that is not a JSON
// object, and counts everything inside it that it skips in [Stats], under
// reasons from a closed set, so the server can answer 200 to Meta and still
// account for every skipped item. Parse decodes the body as a stream and caps
// what it decodes ([MaxEvents]), so a body of millions of tiny items costs no
// more than one of ten thousand.
package webhook
