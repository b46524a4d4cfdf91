package server

import (
	"context"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	sgv1 "github.com/sendguard/sendguard/proto/sendguard/v1"
)

// TestSlowClientIsHeld: a client that streams requests and never reads the answers
// is held by flow control (its sends block), and the server's memory stays
// bounded: the server answers row by row and reads the next row only once the
// previous answer went to the transport.
func TestSlowClientIsHeld(t *testing.T) {
	c := dialServer(t, runServer(t, nil))
	heap := func() uint64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapInuse
	}
	before := heap()
	sctx, stop := context.WithCancel(context.Background())
	defer stop()
	stream, err := c.CheckStream(sctx)
	if err != nil {
		t.Fatal(err)
	}
	const maxRows = 1_000_000
	var sent atomic.Int64
	go func() {
		req := &sgv1.CheckSendRequest{BusinessId: "acme", Phone: brPhone, Category: sgv1.Category_CATEGORY_UTILITY,
			Template: strings.Repeat("t", 400)}
		for sent.Load() < maxRows {
			if err := stream.Send(req); err != nil {
				return
			}
			sent.Add(1)
		}
	}()
	// Wait until the sends stop moving (held by flow control), at most 10 s.
	var last int64 = -1
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(500 * time.Millisecond) {
		n := sent.Load()
		if n == last && n > 0 {
			break
		}
		last = n
	}
	held := sent.Load()
	grown := int64(heap()) - int64(before)
	t.Logf("a client that never reads: %d rows sent before flow control held it; heap grew %d KiB", held, grown/1024)
	if held >= maxRows {
		t.Fatalf("the client was never held: %d rows sent", held)
	}
	if grown > 64<<20 {
		t.Fatalf("heap grew %d MiB with a client that never reads", grown>>20)
	}
	stop()
}
