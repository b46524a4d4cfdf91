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
	"strconv"
	"strings"
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
		workers, attempts    int
	)
	cmd := &cobra.Command{
		Use:   "replay FILE",
		Short: "Backfill the history from saved webhook bodies (JSON lines) sent to a running server",
		Long: `Send saved WhatsApp webhook bodies, one JSON body per line, to a running sendguard
server's webhook endpoint, signed with the app secret, so that a new deployment starts
with everything it could have learned. The server holds the store; replay never opens it.

The app secret comes from SENDGUARD_WHATSAPP_APP_SECRET or the config file
(whatsapp_app_secret). Replaying a file twice is harmless: events are idempotent, and
the summary counts the events that were new apart from those already recorded.
A body the server rejects (400, 413) is reported by line number and skipped; one it
cannot take now (503: its body budget is spent or its store is failing; 408, 429) is
retried with backoff, each retry said, 8 tries over about 16 s, and then replay
stops and says so. A server that cannot be reached is tried --attempts times
with backoff (3 s for 5), then replay stops and says so. A progress bar shows
on a terminal.

Exit status: 0 when every body was accepted or rejected by the server; 1 when
replay could not run, lost the server, or a body could not be delivered; 130
on Ctrl-C (the bodies in flight are finished or dropped; replaying again is safe).`,
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
			if attempts < 1 {
				return errors.New("--attempts must be at least 1")
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			r := &replayer{
				base:     "http://" + cfg.HTTPAddr,
				secret:   cfg.WebhookSecret,
				client:   &http.Client{Timeout: 60 * time.Second},
				workers:  workers,
				attempts: attempts,
				backoff:  200 * time.Millisecond,
				out:      cmd.ErrOrStderr(),
			}
			sum, err := r.run(ctx, args[0])
			if sum.bodies > 0 || err == nil {
				fmt.Fprintln(cmd.OutOrStdout(), sum)
			}
			if errors.Is(err, errInterrupted) {
				return &exitError{code: exitInterrupted, err: errors.New("interrupted: replaying the file again is safe")}
			}
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&httpAddr, "http-addr", "127.0.0.1:8080", "the server's HTTP address")
	f.StringVar(&configFile, "config", "", "YAML configuration file (for whatsapp_app_secret and http_addr)")
	f.IntVar(&workers, "workers", 2, "bodies in flight at once")
	f.IntVar(&attempts, "attempts", 5, "tries to reach a server that does not answer, with backoff, before giving up")
	return cmd
}

type replayer struct {
	base     string // http://host:port
	secret   []byte
	client   *http.Client
	workers  int
	attempts int           // tries of a connection that fails
	backoff  time.Duration // before the second try; doubled up to maxBackoff
	out      io.Writer     // progress and retry notices

	accepted, rejected, failed atomic.Int64
	// The events of accepted bodies, from the server's Sendguard-Events header;
	// unknown counts accepted bodies whose answer had none (an older server).
	applied, duplicate, skipped, unknown atomic.Int64
	mu                                   sync.Mutex
	rejectedLines                        []int
}

// maxBackoff bounds the wait between two tries.
const maxBackoff = 5 * time.Second

// summary is what a replay did.
type summary struct {
	bodies, accepted, rejected, failed int64
	applied, duplicate, skipped        int64
	unknown                            int64
	rejectedLines                      []int
	elapsed                            time.Duration
	stopped                            bool
}

func (s summary) String() string {
	rate := float64(s.bodies) / max(s.elapsed.Seconds(), 1e-9)
	msg := fmt.Sprintf("replayed %d bodies in %s (%.0f bodies/s): %d accepted, %d rejected, %d failed",
		s.bodies, s.elapsed.Round(time.Millisecond), rate, s.accepted, s.rejected, s.failed)
	if s.accepted > 0 {
		msg += fmt.Sprintf("\nevents: %d new, %d already recorded (duplicates), %d skipped", s.applied, s.duplicate, s.skipped)
		if s.unknown > 0 {
			msg += fmt.Sprintf("; %d accepted bodies not counted (the server does not say what their events did)", s.unknown)
		}
		if s.applied == 0 && s.duplicate > 0 && s.unknown == 0 {
			msg += "\nnothing new: every event was already recorded"
		}
	}
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
	if err := r.reach(ctx); err != nil {
		if ctx.Err() != nil {
			return summary{stopped: true}, errInterrupted
		}
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
		wg.Go(func() {
			for l := range lines {
				if err := r.send(ctx, l); err != nil {
					cancel(err)
				}
			}
		})
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
		applied: r.applied.Load(), duplicate: r.duplicate.Load(), skipped: r.skipped.Load(), unknown: r.unknown.Load(),
		rejectedLines: r.rejectedLines, elapsed: time.Since(start), stopped: ctx.Err() != nil,
	}
	r.mu.Unlock()
	switch {
	case readErr != nil:
		return sum, fmt.Errorf("read %s: %w", path, readErr)
	case context.Cause(ctx) != nil && !errors.Is(context.Cause(ctx), context.Canceled):
		return sum, context.Cause(ctx)
	case ctx.Err() != nil:
		return sum, errInterrupted
	}
	return sum, nil
}

// reach asks the server's /healthz until it answers, at most r.attempts times
// with backoff, so that a server that is not there stops the replay before it
// starts, with a message that says so.
func (r *replayer) reach(ctx context.Context) error {
	return r.retry(ctx, "reach", func() (bool, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.base+"/healthz", http.NoBody)
		if err != nil {
			return false, err
		}
		resp, err := r.client.Do(req)
		if err != nil {
			return true, err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close() // read to the end: only the connection's reuse is at stake
		return false, nil
	})
}

// retry calls try until it succeeds or says its error is not worth another
// try, at most r.attempts times, waiting r.backoff (doubled each time, at most
// maxBackoff) between tries and saying so on r.out. The error after the last
// try says how many there were and how long they took.
func (r *replayer) retry(ctx context.Context, what string, try func() (again bool, err error)) error {
	start := time.Now()
	wait := r.backoff
	for attempt := 1; ; attempt++ {
		again, err := try()
		if err == nil || !again {
			return err
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if attempt == r.attempts {
			return fmt.Errorf("cannot %s the server at %s (%d attempts over %s): %s; is `sendguard serve` running there (--http-addr)?",
				what, r.base, attempt, time.Since(start).Round(time.Millisecond), shortNetError(err))
		}
		fmt.Fprintf(r.out, "sendguard: cannot %s the server at %s: %v; trying again in %s (attempt %d of %d)\n",
			what, r.base, shortNetError(err), wait, attempt+1, r.attempts)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		wait = min(2*wait, maxBackoff)
	}
}

// shortNetError is a transport error without the request it was for.
func shortNetError(err error) string {
	s := err.Error()
	if i := strings.LastIndex(s, ": dial "); i >= 0 {
		return s[i+2:]
	}
	return s
}

// errUnauthorized stops a replay: every other body would fail the same way.
var errUnauthorized = errors.New("the server refused the signature (401): is SENDGUARD_WHATSAPP_APP_SECRET the server's app secret?")

// errNoWebhook stops a replay: the server has no webhook endpoint.
var errNoWebhook = errors.New("the server has no webhook endpoint (404): start it with its app secret (SENDGUARD_WHATSAPP_APP_SECRET or whatsapp_app_secret)")

// busyTries is how many times one body is sent to a server that cannot take it
// now (5xx, 408, 429) before the replay stops: about 16 s with the default
// backoff.
const busyTries = 8

// send POSTs one body, retrying what the server could not store yet (5xx, 408,
// 429: busyTries tries, each said on r.out, then the replay stops: the rest of
// the file would wait as long, silently) and a connection that fails
// (r.attempts tries, then the replay stops: the server is gone).
func (r *replayer) send(ctx context.Context, l line) error {
	start := time.Now()
	wait := r.backoff
	for attempt := 1; ; attempt++ {
		var (
			code   int
			events string
		)
		err := r.retry(ctx, "reach", func() (bool, error) {
			var err error
			code, events, err = r.post(ctx, l.body)
			return err != nil, err
		})
		switch {
		case ctx.Err() != nil:
			return nil
		case err != nil:
			return fmt.Errorf("line %d: %w", l.n, err)
		case code == http.StatusOK:
			r.accepted.Add(1)
			r.count(events)
			return nil
		case code == http.StatusUnauthorized:
			return errUnauthorized
		case code == http.StatusNotFound:
			return errNoWebhook
		case code >= 400 && code < 500 && !retryable(code):
			r.rejected.Add(1)
			r.mu.Lock()
			if len(r.rejectedLines) < 20 {
				r.rejectedLines = append(r.rejectedLines, l.n)
			}
			r.mu.Unlock()
			return nil
		case attempt == busyTries:
			r.failed.Add(1)
			return fmt.Errorf("line %d: the server at %s answered %d %s %d times over %s: it cannot take events now (is its store failing? see its log and /healthz)",
				l.n, r.base, code, http.StatusText(code), attempt, time.Since(start).Round(time.Millisecond))
		}
		fmt.Fprintf(r.out, "sendguard: line %d: the server answered %d %s; trying again in %s (attempt %d of %d)\n",
			l.n, code, http.StatusText(code), wait, attempt+1, busyTries)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
		wait = min(2*wait, maxBackoff)
	}
}

// count adds the events of an accepted body, from its Sendguard-Events header
// ("applied=3 duplicate=1 skipped=0").
func (r *replayer) count(header string) {
	var applied, dup, skipped int64
	seen := 0
	for _, kv := range strings.Fields(header) {
		k, v, _ := strings.Cut(kv, "=")
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			continue
		}
		switch k {
		case "applied":
			applied, seen = n, seen+1
		case "duplicate":
			dup, seen = n, seen+1
		case "skipped":
			skipped = n
		}
	}
	if seen < 2 {
		r.unknown.Add(1)
		return
	}
	r.applied.Add(applied)
	r.duplicate.Add(dup)
	r.skipped.Add(skipped)
}

// retryable reports whether a 4xx answer is worth sending again: the server
// timed out waiting for the body (408) or asks to slow down (429). 5xx answers,
// such as the 503 of a spent body budget or a store that cannot take the events
// now, are always retried.
func retryable(code int) bool {
	return code == http.StatusRequestTimeout || code == http.StatusTooManyRequests
}

// post sends one signed body; it returns the answer's status and its
// Sendguard-Events header.
func (r *replayer) post(ctx context.Context, body []byte) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.base+server.WebhookPath, bytes.NewReader(body))
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Hub-Signature-256", webhook.Sign(body, r.secret))
	resp, err := r.client.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, resp.Header.Get(server.WebhookEventsHeader), nil
}
