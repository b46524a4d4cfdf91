package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/sendguard/sendguard/internal/memlimit"
	"github.com/sendguard/sendguard/internal/serve"
	"github.com/sendguard/sendguard/internal/tracing"
	"github.com/sendguard/sendguard/server"
)

// shutdownTracing sends the spans still batched, giving the collector 5 s.
func shutdownTracing(tp *sdktrace.TracerProvider, log *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := tp.Shutdown(ctx); err != nil {
		log.Warn("tracing: spans not sent at shutdown", "err", err)
	}
}

func serveCmd() *cobra.Command {
	var (
		dataDir, storeURL, grpcAddr, httpAddr, apiAddr, configFile, logLevel, durability string
	)
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the sendguard server (embedded Badger store, or Redis Cluster with --store)",
		Long: `Run the sendguard server: gRPC (sendguard.v1.SendGuard, health, reflection),
HTTP (/metrics, /healthz, Meta's webhook) and the API port (every RPC as JSON over
HTTP: the Connect protocol and gRPC-Web; /openapi.yaml; /admin/backup), keeping state in an embedded Badger store in --data, or,
with --store redis://host:port[,host:port…], in Redis Cluster (or one Redis server)
shared by any number of sendguard replicas. The Redis password may be given in
SENDGUARD_REDIS_PASSWORD instead of the address.

Flags override the config file; the config file overrides the defaults.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var lvl slog.Level
			if err := lvl.UnmarshalText([]byte(logLevel)); err != nil {
				return fmt.Errorf("--log-level: %w", err)
			}
			log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lvl}))
			cfg := server.DefaultConfig()
			cfg.Logger = log
			if configFile != "" {
				if err := server.LoadConfigFile(configFile, &cfg); err != nil {
					return err
				}
			}
			server.LoadEnv(&cfg, os.Getenv)
			flags := cmd.Flags()
			if flags.Changed("data") || cfg.DataDir == "" {
				cfg.DataDir = dataDir
			}
			if flags.Changed("store") {
				cfg.StoreURL = storeURL
			}
			if flags.Changed("grpc-addr") {
				cfg.GRPCAddr = grpcAddr
			}
			if flags.Changed("http-addr") {
				cfg.HTTPAddr = httpAddr
			}
			if flags.Changed("api-addr") {
				cfg.APIAddr = apiAddr
			}
			if flags.Changed("durability") {
				cfg.Durability = durability
			}
			if strings.TrimSpace(cfg.HTTPAddr) == "off" {
				cfg.HTTPAddr = ""
			}
			if strings.TrimSpace(cfg.APIAddr) == "off" {
				cfg.APIAddr = ""
			}
			if set, cg := memlimit.Apply(); set > 0 {
				log.Info("Go memory limit set from the cgroup's (GOMEMLIMIT overrides it)",
					"limit_bytes", set, "cgroup_limit_bytes", cg)
			}
			tp, err := tracing.FromEnv(context.Background())
			if err != nil {
				return err
			}
			if tp != nil {
				cfg.TracerProvider = tp
				log.Info("tracing: spans of RPCs and webhook POSTs exported over OTLP")
				defer shutdownTracing(tp, log)
			}
			r, err := serve.Open(cfg)
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return r.Run(ctx)
		},
	}
	f := cmd.Flags()
	f.StringVar(&dataDir, "data", "./data", "Badger data directory")
	f.StringVar(&storeURL, "store", "", "shared store instead of Badger: redis://host:port[,host:port…][?mode=cluster|single] (see docs/scale-out.md)")
	f.StringVar(&grpcAddr, "grpc-addr", "127.0.0.1:50051", "gRPC listen address (host:port; port 0 picks one)")
	f.StringVar(&httpAddr, "http-addr", "127.0.0.1:8080", `HTTP listen address for /metrics and /healthz ("off" disables)`)
	f.StringVar(&apiAddr, "api-addr", server.DefaultAPIAddr, `API listen address: every RPC as JSON over HTTP (Connect, gRPC-Web), /openapi.yaml, /admin/backup ("off" disables)`)
	f.StringVar(&configFile, "config", "", "YAML configuration file (see README)")
	f.StringVar(&logLevel, "log-level", "info", "log level: debug, info, warn, error")
	f.StringVar(&durability, "durability", "default", `"default": acknowledged writes survive a crash of the process; "strict": they survive power loss too (synced writes, slower)`)
	return cmd
}
