package server

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/sendguard/sendguard/storage"
)

// BackupPath is the HTTP endpoint that streams a backup of the store.
const BackupPath = "/admin/backup"

// BackupVersionTrailer is the HTTP trailer that ends a complete backup: the store
// version the backup holds. A response without it was cut short (the server
// aborts the response on an error after the first byte), so a client must not
// keep what it got.
const BackupVersionTrailer = "Sendguard-Backup-Version"

// backupWriteTimeout cuts a backup whose client stops reading for this long.
const backupWriteTimeout = time.Minute

// handleBackup streams a full backup of the store (Badger's backup format; restore
// it with `sendguard restore`) while the server keeps serving. It answers 403 to
// a caller adminHTTP refuses and 501 when the store cannot back itself up. A
// failure before the first byte is a 503 (storage unavailable) or 500; after it,
// the response is aborted, so the client sees a broken transfer and no
// BackupVersionTrailer rather than a short file that looks whole. A client that
// stops reading for backupWriteTimeout is cut off, and the server's stop ends a
// backup in progress (the store is closed only after it).
func (s *Server) handleBackup(w http.ResponseWriter, r *http.Request) {
	if !s.adminHTTP(r) {
		http.Error(w, "forbidden: "+BackupPath+" answers admin callers only (from a loopback address)", http.StatusForbidden)
		return
	}
	st, ok := storage.UnwrapAs[storage.Backuper](s.store)
	if !ok {
		http.Error(w, "backup is not supported by this store (it needs the embedded Badger store)", http.StatusNotImplemented)
		return
	}
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	rc := http.NewResponseController(w)
	go func() {
		select {
		case <-s.done:
			cancel()
			_ = rc.SetWriteDeadline(time.Now()) // unblock a write in progress
		case <-ctx.Done():
		}
	}()

	h := w.Header()
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Content-Disposition", `attachment; filename="sendguard.backup"`)
	h.Set("Trailer", BackupVersionTrailer)
	start := time.Now()
	bw := &backupResponse{ctx: ctx, w: w, rc: rc}
	version, err := st.Backup(ctx, bw, 0)
	if err != nil {
		s.log.Warn("backup failed", "remote", r.RemoteAddr, "bytes", bw.n, "err", err)
		if bw.n > 0 {
			panic(http.ErrAbortHandler) // the status is sent: only a broken transfer tells the client
		}
		h.Del("Trailer")
		h.Del("Content-Disposition")
		if errors.Is(err, storage.ErrUnavailable) {
			http.Error(w, "backup failed: storage unavailable", http.StatusServiceUnavailable)
		} else {
			http.Error(w, "backup failed", http.StatusInternalServerError)
		}
		return
	}
	h.Set(BackupVersionTrailer, strconv.FormatUint(version, 10))
	s.log.Info("backup sent", "remote", r.RemoteAddr, "bytes", bw.n, "version", version,
		"elapsed", time.Since(start).Round(time.Millisecond))
}

// adminHTTP reports whether r may use the admin HTTP endpoints: with API keys
// configured, whether it carries an admin key for all businesses
// ("Authorization: Bearer <key>"); without keys, whether it comes from a loopback
// address (127.0.0.0/8 or ::1). Note that a reverse proxy on the same host makes
// every request look local; do not route /admin/ through one.
func (s *Server) adminHTTP(r *http.Request) bool {
	if len(s.keys) > 0 {
		// A backup holds every business's data: with keys configured it takes an
		// admin key for all businesses, from wherever it comes.
		token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		k := s.keys[HashAPIKey(strings.TrimSpace(token))]
		return ok && k != nil && k.Admin && slices.Contains(k.Businesses, "*")
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return false
	}
	addr, err := netip.ParseAddr(host)
	return err == nil && addr.Unmap().IsLoopback()
}

// backupResponse writes a backup to the client, counting the bytes and giving
// each write backupWriteTimeout (a backup takes as long as the client takes to
// read it, so no deadline covers the whole response).
type backupResponse struct {
	ctx context.Context
	w   io.Writer
	rc  *http.ResponseController
	n   int64
}

func (b *backupResponse) Write(p []byte) (int, error) {
	// An error means the writer has no deadlines to set (a test's recorder).
	_ = b.rc.SetWriteDeadline(time.Now().Add(backupWriteTimeout))
	// Checked after setting the deadline, so that a stop that set its own
	// (immediate) deadline before is not undone unseen.
	if err := b.ctx.Err(); err != nil {
		return 0, err
	}
	n, err := b.w.Write(p)
	b.n += int64(n)
	return n, err
}
