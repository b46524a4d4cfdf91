package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/sendguard/sendguard/server"
	"github.com/sendguard/sendguard/webhook"
)

func replayCmd() *cobra.Command {
	var (
		httpAddr, configFile string
		workers              int
	)
	cmd := &cobra.Command{
		Use:   "replay FILE",
		Short: "Backfill the history from saved webhook bodies (JSON lines) sent to a running server",
		Long: `Send saved WhatsApp webhook bodies, one JSON body per line, to a running sendguard
server's webhook endpoint, signed with the app secret, so that a new deployment starts
with everything it could have learned. The server holds the store; replay never opens it.

The app secret comes from SENDGUARD_WHATSAPP_APP_SECRET or the config file
(whatsapp_app_secret). Replaying a file twice is harmless: events are idempotent.
A body the server rejects (400, 413) is reported by line number and skipped; one it
cannot take now (503: its body budget is spent or its store is failing; 408, 429) is
retried with backoff. A progress bar shows on a terminal.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg := server.DefaultConfig()
			if configFile != "" {
				if err := server.LoadConfigFile(configFile, &cfg); err != nil {
					return err
				}
			}
			server.LoadEnv(&cfg, os.Getenv)
			if len(cfg.WebhookSecret) == 0 {
				return errors.New("no app secret: set SENDGUARD_WHATSAPP_APP_SECRET (or whatsapp_app_secret in --config)")
			}
			if cmd.Flags().Changed("http-addr") || configFile == "" {
				cfg.HTTPAddr = httpAddr
			}
			if workers < 1 {
				return errors.New("--workers must be at least 1")
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			r := &replayer{
				url:     "http://" + cfg.HTTPAddr + server.WebhookPath,
				secret:  cfg.WebhookSecret,
				client:  &http.Client{Timeout: 60 * time.Second},
				workers: workers,
				out:     cmd.ErrOrStderr(),
			}
			sum, err := r.run(ctx, args[0])
			fmt.Fprintln(cmd.OutOrStdout(), sum)
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&httpAddr, "http-addr", "127.0.0.1:8080", "the server's HTTP address")
	f.StringVar(&configFile, "config", "", "YAML configuration file (for whatsapp_app_secret and http_addr)")
	f.IntVar(&workers, "workers", 2, "bodies in flight at once")
	return cmd
}

type replayer struct {
	url     string
	secret  []byte
	client  *http.Client
	workers int
	out     io.Writer

	accepted, rejected, failed atomic.Int64
	mu                         sync.Mutex
	rejectedLines              []int
}

// summary is what a replay did.
type summary struct {
	bodies, accepted, rejected, failed int64
	rejectedLines                      []int
	elapsed                            time.Duration
	stopped                            bool
}

func (s summary) String() string {
	rate := float64(s.bodies) / max(s.elapsed.Seconds(), 1e-9)
	msg := fmt.Sprintf("replayed %d bodies in %s (%.0f bodies/s): %d accepted, %d rejected, %d failed",
		s.bodies, s.elapsed.Round(time.Millisecond), rate, s.accepted, s.rejected, s.failed)
	if len(s.rejectedLines) > 0 {
		msg += fmt.Sprintf("\nrejected lines (first %d): %v", len(s.rejectedLines), s.rejectedLines)
	}
	if s.stopped {
		msg += "\nstopped before the end of the file; replaying it again is safe"
	}
	return msg
}

type line struct {
	n    int
	body []byte
}

func (r *replayer) run(ctx context.Context, path string) (summary, error) {
	start := time.Now()
	f, err := os.Open(path)
	if err != nil {
		return summary{}, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return summary{}, err
	}
	var bar *progressbar.ProgressBar
	if fd, ok := r.out.(*os.File); ok && term.IsTerminal(int(fd.Fd())) {
		bar = progressbar.NewOptions64(st.Size(),
			progressbar.OptionSetWriter(r.out),
			progressbar.OptionSetDescription("replay"),
			progressbar.OptionShowBytes(true),
			progressbar.OptionSetPredictTime(true),
			progressbar.OptionThrottle(100*time.Millisecond),
			progressbar.OptionClearOnFinish(),
		)
	}

	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	lines := make(chan line)
	var wg sync.WaitGroup
	for range r.workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for l := range lines {
				if err := r.send(ctx, l); err != nil {
					cancel(err)
				}
			}
		}()
	}
	var bodies int64
	rd := bufio.NewReaderSize(f, 1<<20)
	n := 0
	var readErr error
read:
	for {
		b, err := rd.ReadBytes('\n')
		if bar != nil {
			_ = bar.Add(len(b))
		}
		n++
		if body := bytes.TrimSpace(b); len(body) > 0 {
			select {
			case lines <- line{n: n, body: body}:
				bodies++
			case <-ctx.Done():
				break read
			}
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			readErr = err
			break
		}
	}
	close(lines)
	wg.Wait()
	if bar != nil {
		_ = bar.Finish()
	}
	r.mu.Lock()
	sum := summary{
		bodies: bodies, accepted: r.accepted.Load(), rejected: r.rejected.Load(), failed: r.failed.Load(),
		rejectedLines: r.rejectedLines, elapsed: time.Since(start), stopped: ctx.Err() != nil,
	}
	r.mu.Unlock()
	switch {
	case readErr != nil:
		return sum, fmt.Errorf("read %s: %w", path, readErr)
	case context.Cause(ctx) != nil && !errors.Is(context.Cause(ctx), context.Canceled):
		return sum, context.Cause(ctx)
	case ctx.Err() != nil:
		return sum, errors.New("interrupted")
	case sum.failed > 0:
		return sum, fmt.Errorf("%d bodies could not be delivered", sum.failed)
	}
	return sum, nil
}

// errUnauthorized stops a replay: every other body would fail the same way.
var errUnauthorized = errors.New("the server refused the signature (401): is SENDGUARD_WHATSAPP_APP_SECRET the server's app secret?")

// send POSTs one body, retrying what the server could not store yet.
func (r *replayer) send(ctx context.Context, l line) error {
	backoff := 100 * time.Millisecond
	for attempt := 1; ; attempt++ {
		code, err := r.post(ctx, l.body)
		switch {
		case err == nil && code == http.StatusOK:
			r.accepted.Add(1)
			return nil
		case err == nil && code == http.StatusUnauthorized:
			return errUnauthorized
		case err == nil && code >= 400 && code < 500 && !retryable(code):
			r.rejected.Add(1)
			r.mu.Lock()
			if len(r.rejectedLines) < 20 {
				r.rejectedLines = append(r.rejectedLines, l.n)
			}
			r.mu.Unlock()
			return nil
		case ctx.Err() != nil:
			return nil
		case attempt == 8:
			r.failed.Add(1)
			return nil
		}
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

// retryable reports whether a 4xx answer is worth sending again: the server
// timed out waiting for the body (408) or asks to slow down (429). 5xx answers,
// such as the 503 of a spent body budget or a store that cannot take the events
// now, are always retried.
func retryable(code int) bool {
	return code == http.StatusRequestTimeout || code == http.StatusTooManyRequests
}

func (r *replayer) post(ctx context.Context, body []byte) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.url, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Hub-Signature-256", webhook.Sign(body, r.secret))
	resp, err := r.client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, nil
}
