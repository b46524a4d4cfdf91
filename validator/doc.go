// Package validator holds sendguard's rules as pure code: a decision is a function of
// the stored state of one recipient, the request, the business's policy and the time
// (the request's send_at). Events (results, inbound messages, reservations) are
// applied to that state by pure functions too. Nothing here does I/O or reads a clock.
package validator
