package server

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strconv"
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

// backupStore is a store that can write an online, consistent backup of itself
// (storage/badger.Store does). An interface rather than *badger.Store, so that a
// decorator that forwards Backup keeps the endpoint working.
type backupStore interface {
	Backup(ctx context.Context, w io.Writer, since uint64) (uint64, error)
}

// handleBackup streams a full backup of the store (Badger's backup format; restore
// it with `sendguard restore`) while the server keeps serving. It answers 403 to
// a caller adminHTTP refuses and 501 when the store cannot back itself up. A
// failure before the first byte is a 503 (storage unavailable) or 500; after it,
// the response is aborted, so the client sees a broken transfer and no
// BackupVersionTrailer rather than a short file that looks whole.
func (s *Server) handleBackup(w http.ResponseWriter, r *http.Request) {
	if !s.adminHTTP(r) {
		http.Error(w, "forbidden: "+BackupPath+" answers admin callers only (from a loopback address)", http.StatusForbidden)
		return
	}
	st, ok := s.store.(backupStore)
	if !ok {
		http.Error(w, "backup is not supported by this store (it needs the embedded Badger store)", http.StatusNotImplemented)
		return
	}
	// A backup takes as long as the client takes to read it: lift any write
	// deadline the server sets for ordinary responses (an error means there is
	// none to lift).
	_ = http.NewResponseController(w).SetWriteDeadline(time.Time{})

	h := w.Header()
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Content-Disposition", `attachment; filename="sendguard.backup"`)
	h.Set("Trailer", BackupVersionTrailer)
	start := time.Now()
	cw := &countingWriter{w: w}
	version, err := st.Backup(r.Context(), cw, 0)
	if err != nil {
		s.log.Warn("backup failed", "remote", r.RemoteAddr, "bytes", cw.n, "err", err)
		if cw.n > 0 {
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
	s.log.Info("backup sent", "remote", r.RemoteAddr, "bytes", cw.n, "version", version,
		"elapsed", time.Since(start).Round(time.Millisecond))
}

// adminHTTP reports whether r may use the admin HTTP endpoints: for now, whether
// it comes from a loopback address (127.0.0.0/8 or ::1). Note that a reverse
// proxy on the same host makes every request look local; do not route /admin/
// through one.
func (s *Server) adminHTTP(r *http.Request) bool {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return false
	}
	addr, err := netip.ParseAddr(host)
	return err == nil && addr.Unmap().IsLoopback()
}

// countingWriter counts the bytes written through it.
type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
