// Package validator holds sendguard's rules as pure code: a decision is a function of
// the stored state of one recipient, the request, the business's policy and the time
// (the request's send_at). Events (results, inbound messages, reservations) are
// applied to that state by pure functions too. Nothing here does I/O or reads a clock.
//
// Decide (decide.go) judges a check against every rule; each rule lives with the
// state it reads: recipient.go (INVALID_NUMBER, REGION_BLOCKED: the blocked
// regions and a learned 130497; OPTED_OUT, NO_CONSENT), number.go (the
// number-wide ECOSYSTEM_LIMIT, EXPERIMENT, UNDELIVERABLE), frequency.go
// (FREQUENCY_CAP, TEMPLATE_REPEAT), window.go (SERVICE_WINDOW), free_entry.go
// (the free entry point window that lifts EXPERIMENT), pair.go (PAIR_RATE),
// template.go (TEMPLATE_PAUSED, per template name and language, and the
// effective category: a template Meta treats as marketing is judged as
// marketing), messaging_limit.go (and Meta's tier), quiet_hours.go,
// account_restricted.go (ACCOUNT_RESTRICTED) and sender_limited.go
// (SENDER_LIMITED); detail.go writes the reasons' sentences.
// sender.go says which sender's recipient state (window, free entry point, pair
// rate, Meta's opt-out record) a check reads.
// apply.go applies results and inbound messages, reserve.go records sends,
// restriction.go applies the account and sender errors, successes and lifts to the
// business's restrictions, and expiry.go says how long state matters.
package validator
