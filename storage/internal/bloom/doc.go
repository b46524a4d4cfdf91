// Package bloom is a Bloom filter over byte-string keys that any number of
// goroutines may add to and query at once, without locks. The storage backends use
// it to skip reads of keys they do not hold.
package bloom
