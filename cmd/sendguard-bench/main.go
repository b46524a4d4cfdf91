// Command sendguard-bench is sendguard's load command: it seeds numbers, runs
// every workload against its no-op baseline and prints the table
// (docs/performance.md). It lives apart from the product binary, as does the
// echo service it measures streams against (internal/loadgen).
package main

import (
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/sendguard/sendguard/internal/buildinfo"
	"github.com/sendguard/sendguard/internal/loadgen"
	"github.com/sendguard/sendguard/internal/memlimit"
	"github.com/sendguard/sendguard/server"
)

func main() {
	if err := benchCmd().Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "sendguard-bench:", err)
		os.Exit(1)
	}
}

func benchCmd() *cobra.Command {
	cfg := loadgen.DefaultConfig()
	var (
		serveOnly   bool
		recordCache string
		failCodes   = loadgen.FormatFailCodes(cfg.FailCodes)
	)
	cmd := &cobra.Command{
		Use:           "sendguard-bench",
		Short:         "Load test: seed numbers, run every workload and its no-op baseline, print the table",
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       buildinfo.Get().Version,
		Long: `Measure sendguard against the performance targets (docs/performance.md).

Without --addr, sendguard-bench starts a server in this process on 127.0.0.1 in bench mode
(with a no-op echo stream, the baseline of the stream workloads), seeds --numbers
numbers straight into its store (--history of them with opt-outs, failures and
recent sends, --fresh of them left unknown), and runs each workload for
--duration:

  stream   CheckSendStream over distinct numbers   vs the no-op echo stream
  unary    CheckSend at --concurrency callers      vs gRPC health Check, same callers
  unary1   CheckSend at 1 caller (p99 < 1 ms)      vs health Check at 1 caller
  reserve  a stream where every row reserves       vs the no-op echo stream
  report   ReportResult, default and strict durability
  webhook  webhook POSTs of 1,000 statuses, default and strict durability
  scale    CheckSend p99 (1 caller) at --numbers   vs a second server holding --scale-base
  flow     (only when named) two campaigns of --campaign numbers: validate,
           reserve each ALLOW, statuses by signed webhook POSTs (SENT, DELIVERED,
           READ; FAILED for --failed of them, with --fail-codes)
                                                   vs the same flow with no-op rules

Baselines run in the same process, on the same connection, in the same run, so
the ratios cancel the machine's noise. With --addr, sendguard-bench targets a
running server (seeding it through ReportResult unless --skip-seed); its stream
ratios need a server started by "sendguard-bench --serve-only".`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			cfg.Out, cfg.Log = cmd.OutOrStdout(), cmd.ErrOrStderr()
			var err error
			if cfg.RecordCache, err = server.ParseSize(recordCache); err != nil {
				return fmt.Errorf("--record-cache: %w", err)
			}
			if cfg.FailCodes, err = loadgen.ParseFailCodes(failCodes); err != nil {
				return fmt.Errorf("--fail-codes: %w", err)
			}
			if cfg.Addr != "" {
				cfg.APIKey = os.Getenv("SENDGUARD_API_KEY")
				cfg.WebhookSecret = []byte(os.Getenv("SENDGUARD_WHATSAPP_APP_SECRET"))
			}
			if serveOnly {
				if set, cg := memlimit.Apply(); set > 0 {
					fmt.Fprintf(cfg.Log, "Go memory limit %d bytes, %.0f %% of the cgroup's %d\n", set, memlimit.Fraction*100, cg)
				}
				return loadgen.ServeOnly(ctx, cfg)
			}
			return loadgen.Run(ctx, cfg)
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.Addr, "addr", "", "target a running server's gRPC address instead of starting one (API key from SENDGUARD_API_KEY)")
	f.StringVar(&cfg.HTTPAddr, "http-addr", "", "the target's HTTP address, for the webhook workload (secret from SENDGUARD_WHATSAPP_APP_SECRET) and its memory")
	f.StringVar(&cfg.APIAddr, "api-addr", "", "the target's API address, for the json workload (with --http-addr for its /healthz baseline)")
	f.StringVar(&cfg.PhoneNumberID, "phone-number-id", cfg.PhoneNumberID, "phone_number_id of the webhook bodies (the target must map it to business \"bench\")")
	f.StringVar(&cfg.DataDir, "data", "", "data directory of the in-process server (default: a temporary directory, removed at the end)")
	f.IntVar(&cfg.Numbers, "numbers", cfg.Numbers, "distinct numbers to seed and stream over")
	f.Float64Var(&cfg.History, "history", cfg.History, "fraction of the numbers seeded with history (opt-outs, failures, recent sends)")
	f.Float64Var(&cfg.Fresh, "fresh", cfg.Fresh, "fraction of the numbers never seeded: unknown to the store, as a campaign to a new list (the rest get one delivered utility message)")
	f.BoolVar(&cfg.SkipSeed, "skip-seed", false, "the target already holds --numbers numbers")
	f.IntVar(&cfg.SeedWorkers, "seed-workers", cfg.SeedWorkers, "seeding batches in flight (in process)")
	f.DurationVar(&cfg.Duration, "duration", cfg.Duration, "how long each workload runs (and, apart, its baseline)")
	f.IntVar(&cfg.Rounds, "rounds", cfg.Rounds, "rounds per workload, alternating with its baseline (they share --duration)")
	f.IntVar(&cfg.Concurrency, "concurrency", cfg.Concurrency, "concurrent unary callers")
	f.IntVar(&cfg.Streams, "streams", cfg.Streams, "concurrent streams of the stream workloads")
	f.IntVar(&cfg.Window, "window", cfg.Window, "rows in flight per stream (sent, not yet answered)")
	f.IntVar(&cfg.Conns, "conns", cfg.Conns, "connections shared by the callers and streams")
	f.IntVar(&cfg.WebhookBatch, "webhook-batch", cfg.WebhookBatch, "statuses per webhook POST")
	f.IntVar(&cfg.WebhookPosters, "webhook-posters", cfg.WebhookPosters, "webhook POSTs in flight")
	f.IntVar(&cfg.ScaleBase, "scale-base", cfg.ScaleBase, "numbers stored when the scale workload's first p99 is taken (0: off)")
	f.StringSliceVar(&cfg.Workloads, "workloads", nil, "workloads to run (default all but flow): stream, unary, unary1, reserve, report, webhook, scale, json, flow")
	f.StringVar(&recordCache, "record-cache", strconv.FormatInt(cfg.RecordCache, 10), "record cache of the in-process server's store (a size such as 64MiB; 0: none)")
	f.IntVar(&cfg.Campaign, "campaign", cfg.Campaign, "flow: numbers per campaign, drawn without replacement from --numbers (0: a tenth of --numbers)")
	f.IntVar(&cfg.Slice, "slice", cfg.Slice, "flow: send a campaign in slices of this many numbers, each slice's statuses back before the next starts (0: the whole campaign, then its statuses)")
	f.Float64Var(&cfg.Overlap, "overlap", cfg.Overlap, "flow: fraction of the second campaign's audience that was in the first")
	f.Float64Var(&cfg.FailRate, "failed", cfg.FailRate, "flow: fraction of the guarded sends whose status is FAILED")
	f.StringVar(&failCodes, "fail-codes", failCodes, "flow: Meta error codes of the FAILED statuses and their shares (assumed: Meta publishes none)")
	f.DurationVar(&cfg.FlowTimeout, "flow-timeout", cfg.FlowTimeout, "flow: each step of a campaign (of each slice, with --slice) is cut after this long")
	f.StringVar(&cfg.CPUProfile, "cpuprofile", "", "write a CPU profile of the measured part (client and in-process server) to this file; with --serve-only, of all it serves")
	f.StringVar(&cfg.MemProfile, "memprofile", "", "write a heap profile (in use and allocated) to this file at the end; with --serve-only, on each SIGUSR1 instead")
	f.BoolVar(&cfg.Markdown, "markdown", false, "print the table as Markdown")
	f.BoolVar(&serveOnly, "serve-only", false, "start a seeded bench-mode server (with the echo baseline) on 127.0.0.1 and serve until interrupted")
	return cmd
}
