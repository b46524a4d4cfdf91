package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/sendguard/sendguard/internal/serve"
	"github.com/sendguard/sendguard/server"
	"github.com/sendguard/sendguard/storage/badger"
)

func backupCmd() *cobra.Command {
	var (
		apiAddr, httpAddr, out string
		force                  bool
	)
	cmd := &cobra.Command{
		Use:   "backup --out FILE",
		Short: "Download a consistent backup of a running server's store",
		Long: `Download a backup of a running server's store from its API port
(GET /admin/backup on --api-addr, answered to loopback callers only, or to an admin
API key for all businesses) while it keeps serving.
The backup is one consistent snapshot: every write acknowledged before it started,
none after. It is written to FILE.tmp and renamed to FILE once complete, so FILE
is never a partial backup. Restore it with 'sendguard restore'.

The backup holds phone numbers and opt-outs: FILE is created readable by its owner only.
It does not hold the hash secret (hash_secret in the config, or else the data
directory's suppression.key): keep a copy of that file with your backups, apart from
them (see 'sendguard restore --help').`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if cmd.Flags().Changed("http-addr") {
				return fmt.Errorf("/admin/backup moved from the HTTP port to the API port: use --api-addr (default %s) instead of --http-addr %s", server.DefaultAPIAddr, httpAddr)
			}
			if out == "" {
				return errors.New("--out is required")
			}
			if !force {
				if _, err := os.Stat(out); err == nil {
					return fmt.Errorf("%s exists; choose another --out or pass --force to replace it", out)
				}
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			start := time.Now()
			n, version, err := downloadBackup(ctx, "http://"+apiAddr+server.BackupPath, out, force)
			if err != nil {
				return err
			}
			elapsed := time.Since(start)
			fmt.Fprintf(cmd.OutOrStdout(), "wrote %s: %d bytes in %s (%.1f MB/s), store version %s\n",
				out, n, elapsed.Round(time.Millisecond), float64(n)/1e6/max(elapsed.Seconds(), 1e-9), version)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&apiAddr, "api-addr", server.DefaultAPIAddr, "the server's API address (api_addr)")
	f.StringVar(&httpAddr, "http-addr", "", "gone: the backup is on the API port (--api-addr)")
	_ = f.MarkHidden("http-addr")
	f.StringVar(&out, "out", "", "file to write the backup to")
	f.BoolVar(&force, "force", false, "replace --out if it exists")
	return cmd
}

// downloadBackup GETs url into out+".tmp", and renames it to out once the server
// has marked the backup complete (server.BackupVersionTrailer). It returns the
// bytes written and the store version.
func downloadBackup(ctx context.Context, url, out string, force bool) (int64, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, http.NoBody)
	if err != nil {
		return 0, "", err
	}
	// A server with API keys wants an admin key for all businesses.
	if key := os.Getenv("SENDGUARD_API_KEY"); key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, "", fmt.Errorf("backup: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<10))
		return 0, "", fmt.Errorf("backup: the server answered %s: %s", resp.Status, strings.TrimSpace(string(msg)))
	}

	tmp := out + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return 0, "", err
	}
	keep := false
	defer func() {
		if !keep { // the error being returned says what went wrong
			_ = f.Close()
			_ = os.Remove(tmp)
		}
	}()
	n, err := io.Copy(f, resp.Body)
	if err != nil {
		if ctx.Err() != nil {
			return n, "", errors.New("backup interrupted; nothing was kept")
		}
		return n, "", fmt.Errorf("backup cut short after %d bytes (%w); nothing was kept", n, err)
	}
	version := resp.Trailer.Get(server.BackupVersionTrailer)
	if version == "" {
		return n, "", fmt.Errorf("backup incomplete: the server did not confirm it after %d bytes; nothing was kept", n)
	}
	if err := f.Sync(); err != nil {
		return n, "", err
	}
	if err := f.Close(); err != nil {
		return n, "", err
	}
	if !force {
		if _, err := os.Stat(out); err == nil {
			return n, "", fmt.Errorf("%s appeared during the backup; pass --force to replace it", out)
		}
	}
	if err := os.Rename(tmp, out); err != nil {
		return n, "", err // the deferred cleanup removes tmp
	}
	keep = true
	// Make the rename itself durable.
	if d, err := os.Open(filepath.Dir(out)); err == nil {
		_ = d.Sync()
		_ = d.Close() // opened read-only, for the Sync
	}
	return n, version, nil
}

func restoreCmd() *cobra.Command {
	var dataDir, keyFile string
	cmd := &cobra.Command{
		Use:   "restore --data DIR FILE",
		Short: "Restore a backup into a new data directory (offline)",
		Long: `Restore a backup made by 'sendguard backup' into a new, empty data directory,
then start a server on it with 'sendguard serve --data DIR'. Restore runs offline
and never merges into existing data: DIR must not exist or be empty. Records keep
their expiry times (a cooldown that would have ended at 10:00 still ends at 10:00).

Some keys are hashes keyed by a secret (forgotten opt-outs, the dedup keys of reported
events): hash_secret in the config, or else the data directory's suppression.key.
Without hash_secret in the config, pass the old directory's key with --suppression-key;
otherwise the restored server makes a new one, no longer recognises forgotten opted-out
users, and applies a retried webhook event a second time.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if dataDir == "" {
				return errors.New("--data is required: the new data directory")
			}
			var key []byte
			if keyFile != "" {
				var err error
				if key, err = os.ReadFile(keyFile); err != nil {
					return fmt.Errorf("--suppression-key: %w", err)
				}
				if len(key) < 32 { // the server would replace a shorter one with a new secret
					return fmt.Errorf("--suppression-key: %s is not a suppression key (%d bytes, want at least 32)", keyFile, len(key))
				}
			}
			f, err := os.Open(args[0])
			if err != nil {
				return err
			}
			defer f.Close()
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			log := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: slog.LevelWarn}))
			start := time.Now()
			in := &ctxReader{ctx: ctx, r: f}
			if err := badger.Restore(badger.Options{Dir: dataDir, Logger: log}, in); err != nil {
				if ctx.Err() != nil {
					return errors.New("restore interrupted; nothing was kept")
				}
				return err
			}
			if key != nil {
				if err := os.WriteFile(filepath.Join(dataDir, serve.SuppressionKeyFile), key, 0o600); err != nil {
					return fmt.Errorf("restored, but copying the suppression key failed (copy %s to %s yourself before serving): %w",
						keyFile, filepath.Join(dataDir, serve.SuppressionKeyFile), err)
				}
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "restored %s (%d bytes) into %s in %s\n", args[0], in.n, dataDir, time.Since(start).Round(time.Millisecond))
			if key == nil {
				fmt.Fprintf(w, "WARNING: no --suppression-key. Unless the config sets hash_secret, copy the old data directory's %s into %s\n"+
					"before serving: without it forgotten opted-out users are not recognised and retried events are applied again\n",
					serve.SuppressionKeyFile, dataDir)
			}
			fmt.Fprintf(w, "start the server on it with: sendguard serve --data %s\n", dataDir)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&dataDir, "data", "", "the new data directory (must not exist, or be empty)")
	f.StringVar(&keyFile, "suppression-key", "", "the old data directory's suppression.key, copied into the new one")
	return cmd
}

// ctxReader counts what is read and fails once ctx ends, so an interrupted
// restore stops (and cleans up) instead of leaving a half-restored directory.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
	n   int64
}

func (c *ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}
