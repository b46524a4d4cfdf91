// Package storage defines the one small interface that sendguard keeps its state
// behind, and the errors its backends return. Backends live in subpackages
// (storage/badger); storage/storagetest is the conformance suite every backend runs.
package storage
