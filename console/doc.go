// Package console is the operator console: the pages that support and campaign
// staff open at /console/ on the API port to look up a number, change a
// business's policy, judge an audience file and watch live decisions. Its
// assets (plain HTML, CSS and ES modules, no build step) are embedded in the
// binary; the pages talk to the server only through the public JSON API and
// /metrics, with the caller's API key kept in the tab's sessionStorage.
//
// The package serves the assets with a strict Content-Security-Policy and
// checks the Host header (Hosts); server/api.go mounts it.
package console
