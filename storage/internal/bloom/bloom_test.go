package bloom

import (
	"fmt"
	"math"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
)

func key(i int) []byte { return strconv.AppendInt([]byte("r\x00+55119"), int64(i), 10) }

// expectedFPR is the false-positive rate of a split block filter holding n keys in
// its blocks: a block holds a Poisson number j of keys (mean n/blocks), and an
// absent key is reported present when each of its eight bits is set, each by one
// of j keys with probability 1/64.
func expectedFPR(n int, blocks uint64) float64 {
	lambda := float64(n) / float64(blocks)
	p, sum := math.Exp(-lambda), 0.0
	for j := 0; j < 20*int(lambda)+100; j++ {
		if j > 0 {
			p *= lambda / float64(j)
		}
		sum += p * math.Pow(1-math.Pow(63.0/64, float64(j)), blockWords)
	}
	return sum
}

func TestNoFalseNegatives(t *testing.T) {
	for _, n := range []int{1, 100, 100_000} {
		f := New(n, 16)
		for i := range n {
			f.Add(key(i))
		}
		for i := range n {
			if !f.MayContain(key(i)) {
				t.Fatalf("n=%d: key %d added but not found", n, i)
			}
		}
	}
}

// TestFalsePositiveRate fills filters to their capacity (and to twice it) and
// measures the rate at which a million absent keys are reported present against
// the model of the filter.
func TestFalsePositiveRate(t *testing.T) {
	const n, probes = 200_000, 1_000_000
	for _, tc := range []struct {
		bitsPerKey, fill int
		max              float64 // what New's doc comment promises
	}{
		{16, n, 0.0011},
		{16, 2 * n, 0.032},
		{8, n, 0.032},
		{32, n, 0.00005},
	} {
		t.Run(fmt.Sprintf("%d bits, %d keys", tc.bitsPerKey, tc.fill), func(t *testing.T) {
			f := New(n, tc.bitsPerKey)
			for i := range tc.fill {
				f.Add(key(i))
			}
			fp := 0
			for i := range probes {
				if f.MayContain(key(-1 - i)) {
					fp++
				}
			}
			got, want := float64(fp)/probes, expectedFPR(tc.fill, f.blocks)
			t.Logf("false positives %.4f %% (model %.4f %%), %.1f bits per key", got*100, want*100, float64(f.Bytes()*8)/float64(tc.fill))
			// Four standard deviations of the count, plus a little for a model
			// that assumes a perfect hash.
			slack := 4*math.Sqrt(want*probes)/probes + want/10
			if math.Abs(got-want) > slack || got > tc.max {
				t.Errorf("false-positive rate %.5f, model %.5f ± %.5f, at most %.5f", got, want, slack, tc.max)
			}
		})
	}
}

func TestLenAndFull(t *testing.T) {
	f := New(1000, 16)
	for i := range 1000 {
		f.Add(key(i))
	}
	if f.Full() || f.Len() < 990 || f.Len() > 1000 {
		t.Fatalf("1000 keys in a filter for 1000: Len %d, Full %v", f.Len(), f.Full())
	}
	if f.Add(key(0)) {
		t.Fatal("a key added again reported new")
	}
	for i := 1000; i < 1100; i++ {
		f.Add(key(i))
	}
	if !f.Full() || f.Cap() != 1000 {
		t.Fatalf("1100 keys in a filter for 1000: Len %d, Full %v, Cap %d", f.Len(), f.Full(), f.Cap())
	}
}

func TestSizing(t *testing.T) {
	for _, tc := range []struct{ n, bits, bytes int }{
		{0, 16, 64}, {1, 16, 64}, {32, 16, 64}, {33, 16, 128}, {1 << 20, 16, 2 << 20},
	} {
		if got := New(tc.n, tc.bits).Bytes(); got != tc.bytes {
			t.Errorf("New(%d, %d): %d bytes, want %d", tc.n, tc.bits, got, tc.bytes)
		}
	}
}

// TestConcurrent adds keys from several goroutines while others look them up
// (run it with -race): a key whose Add has returned is always found.
func TestConcurrent(t *testing.T) {
	const writers, perWriter = 4, 20_000
	f := New(1<<10, 16) // small, so that goroutines share blocks and words
	var done [writers * perWriter]atomic.Bool
	var wg sync.WaitGroup
	var stop atomic.Bool
	for w := range writers {
		wg.Go(func() {
			for i := w; i < len(done); i += writers {
				f.Add(key(i))
				done[i].Store(true)
			}
		})
	}
	var readers sync.WaitGroup
	for r := range 4 {
		readers.Go(func() {
			for i := r; !stop.Load(); i = (i + 7919) % len(done) {
				if done[i].Load() && !f.MayContain(key(i)) {
					t.Errorf("key %d added but not found", i)
					return
				}
			}
		})
	}
	wg.Wait()
	stop.Store(true)
	readers.Wait()
	for i := range done {
		if !f.MayContain(key(i)) {
			t.Fatalf("key %d added but not found", i)
		}
	}
}

// BenchmarkFilter measures lookups of present and absent keys, and adds, in a
// filter that fits the CPU caches (64 KB) and in one that does not (32 MB, the
// filter of 16 M keys).
func BenchmarkFilter(b *testing.B) {
	for _, n := range []int{1 << 15, 1 << 24} {
		f := New(n, 16)
		for i := range n {
			f.Add(key(i))
		}
		name := fmt.Sprintf("%dKB", f.Bytes()>>10)
		keys := make([][]byte, 1<<16)
		for i := range keys {
			keys[i] = key(int(uint32(i) * 2654435761 % uint32(n))) // scattered
		}
		absent := make([][]byte, len(keys))
		for i := range absent {
			absent[i] = key(-1 - i)
		}
		b.Run(name+"/present", func(b *testing.B) {
			for i := 0; b.Loop(); i++ {
				if !f.MayContain(keys[i&(len(keys)-1)]) {
					b.Fatal("missing")
				}
			}
		})
		b.Run(name+"/absent", func(b *testing.B) {
			for i := 0; b.Loop(); i++ {
				f.MayContain(absent[i&(len(absent)-1)])
			}
		})
		b.Run(name+"/absent-parallel", func(b *testing.B) {
			b.RunParallel(func(pb *testing.PB) {
				for i := 0; pb.Next(); i++ {
					f.MayContain(absent[i&(len(absent)-1)])
				}
			})
		})
		b.Run(name+"/add-again", func(b *testing.B) {
			for i := 0; b.Loop(); i++ {
				f.Add(keys[i&(len(keys)-1)])
			}
		})
	}
}
