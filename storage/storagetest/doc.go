// Package storagetest is the conformance suite of storage.Store: every backend's
// tests call Run, so that each one keeps the contract written in storage.Store's
// doc comments (what is returned when nothing is found, what is atomic, what
// expires, what happens after Close).
package storagetest
