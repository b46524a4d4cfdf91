package server

import (
	"errors"
	"fmt"
	"go.opentelemetry.io/otel/trace"
	"log/slog"
	"math"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
	"google.golang.org/protobuf/types/known/durationpb"

	sgdur "github.com/sendguard/sendguard/internal/duration"
	sgv1 "github.com/sendguard/sendguard/proto/sendguard/v1"
	"github.com/sendguard/sendguard/validator"
)

// Config configures a Server, and the runner that opens its store and serves it
// (internal/serve: DataDir, StoreURL, RedisPassword, Durability, DiskHeadroom
// choose the store). Build it with defaults from DefaultConfig, adjust it, and
// pass it to New, which fills in the zero fields' defaults and validates it.
type Config struct {
	// GRPCAddr and HTTPAddr are the listen addresses ("127.0.0.1:0" picks a port).
	GRPCAddr string
	HTTPAddr string
	// APIAddr is the listen address of the JSON-over-HTTP API (the Connect
	// protocol, gRPC-Web), /openapi.yaml and /admin/backup; "" turns it off.
	// Apart from HTTPAddr, which faces Meta (api.go).
	APIAddr string
	// ConsoleHosts are the host names, besides the loopback ones and APIAddr's
	// host, under which the console (/console/ on the API port) and the API
	// port's /metrics answer (the Host-header check, console.Hosts).
	ConsoleHosts []string
	// DataDir is the Badger directory (ignored when StoreURL is set), where the
	// runner also keeps the hash secret when none is configured.
	DataDir string
	// StoreURL selects the store: "" for the embedded Badger store in DataDir, or
	// "redis://host:port[,host:port…]" for Redis Cluster (or one Redis server)
	// shared by several replicas (see storage/redis.ParseURL).
	StoreURL string
	// RedisPassword, when set, overrides the password of a redis:// StoreURL
	// (SENDGUARD_REDIS_PASSWORD), so that it stays out of flags and files.
	RedisPassword string
	// BusinessRefresh is how often each business's cached policy and state
	// (template pauses, messaging-limit counts) is read again from the store, so
	// that what another replica changed is seen: 0 means every second on a store
	// shared by replicas (Redis) and never on Badger, which one process owns; a
	// negative value turns it off.
	BusinessRefresh time.Duration
	// DefaultRegion is the deployment's default_region (e.g. "BR"): the region
	// nationally spelled phones are read by when neither the request nor the
	// business's policy names one; "" for none (then a phone spelled nationally
	// is INVALID_NUMBER). New copies it into Defaults.DefaultRegion.
	DefaultRegion string
	// Defaults is the deployment's default policy (validator.Defaults() with the
	// config file's overrides).
	Defaults validator.Policy
	// PhoneNumberIDs maps Meta phone_number_ids to business_ids.
	PhoneNumberIDs map[string]string
	// WABAIDs maps WhatsApp Business Account ids (the entry id of account
	// webhooks) to business_ids: one account per business, so two WABA ids
	// mapped to one business are a config error. An unmapped WABA id is its own
	// business_id, unless SkipUnmappedPhoneNumberIDs or API keys are set.
	WABAIDs map[string]string
	// HashSecret keys the hashes of suppression entries (forgotten opt-outs) and,
	// with HashNumbers, of numbers; New needs it. When it is not configured, the
	// runner (internal/serve) takes the one a shared store keeps, or creates a
	// random one in DataDir/suppression.key on first start.
	HashSecret []byte
	// HashNumbers stores keyed hashes (HMAC with HashSecret) instead of phone
	// numbers and message ids, so that a copied data directory does not reveal
	// them. It needs HashSecret set outside the data directory.
	HashNumbers bool
	// WebhookSecret is Meta's app secret: it keys the X-Hub-Signature-256 HMAC of
	// webhook POSTs. Without it the webhook endpoint is off (404).
	WebhookSecret []byte
	// WebhookVerifyToken answers Meta's subscription check (GET).
	WebhookVerifyToken string
	// SkipUnmappedPhoneNumberIDs skips (and counts) webhook events whose
	// phone_number_id has no mapping, instead of using the id as the business_id.
	SkipUnmappedPhoneNumberIDs bool
	// MaxWebhookBody bounds a webhook POST body (413 beyond).
	MaxWebhookBody int64
	// WebhookBodyBudget bounds the bytes of webhook bodies held at once, over
	// all requests, signed or not: a POST that finds it spent gets 503 with
	// Retry-After. 0 means DefaultWebhookBodyBudget; it must be at least
	// MaxWebhookBody.
	WebhookBodyBudget int64
	// WebhookReadTimeout bounds how long a webhook POST may take to send its
	// body (408 beyond). 0 means DefaultWebhookReadTimeout.
	WebhookReadTimeout time.Duration
	// HTTPMaxConnections bounds the connections the HTTP listener serves at
	// once; further ones wait to be accepted. 0 means DefaultHTTPMaxConnections.
	HTTPMaxConnections int
	// APIKeys authenticate callers (authorization: Bearer <key>) and bind each to
	// businesses. Without keys the server listens on loopback only.
	APIKeys []APIKey
	// TLS serves gRPC over TLS from certificate files; with ClientCAFile, clients
	// must present a certificate signed by that CA (mutual TLS).
	TLS TLSConfig
	// Durability is "default" (every acknowledged write survives a crash of the
	// process) or "strict" (it survives power loss too: every write is synced).
	Durability string
	// MaxConcurrentStreams bounds the calls (streams) of one connection; 0 means
	// DefaultMaxConcurrentStreams.
	MaxConcurrentStreams uint32
	// MaxConnections bounds the open gRPC connections: more are closed at once.
	// 0 means DefaultMaxConnections.
	MaxConnections int
	// MaxConcurrentCalls bounds the gRPC calls in progress on the whole server
	// (health checks excepted): more are refused UNAVAILABLE before anything of
	// them is buffered. 0 means DefaultMaxConcurrentCalls.
	MaxConcurrentCalls int
	// BusinessCache bounds the businesses cached in memory (their policies and
	// state), about half of them with stored state and half without; 0 means
	// DefaultBusinessCache.
	BusinessCache int
	// StreamBudget bounds, in bytes, the rows that every CheckSendStream holds
	// (read, not yet answered) together: past it, a stream takes its next row
	// only once it has answered the ones it holds. 0 means DefaultStreamBudget.
	StreamBudget int64
	// DefaultDeadline bounds a unary call whose client set no deadline.
	DefaultDeadline time.Duration
	// ShutdownGrace bounds how long a stop waits for streams to drain.
	ShutdownGrace time.Duration
	// MaxEventSkew bounds how far after the server's clock an event's timestamp
	// may be: a report or inbound event dated later is INVALID_ARGUMENT; a
	// webhook event dated later is stamped with its receipt time (and counted).
	// 0 means DefaultMaxEventSkew.
	MaxEventSkew time.Duration
	// MaxPlanAhead bounds how far ahead of the server's clock a check's send_at
	// may be (INVALID_ARGUMENT beyond). 0 means DefaultMaxPlanAhead.
	MaxPlanAhead time.Duration
	// DiskHeadroom is the free space (bytes) Badger keeps on its disk for its own
	// writes: below it, writes are refused (UNAVAILABLE) and reads go on. 0
	// computes it from the store's size (storage/badger/space.go).
	DiskHeadroom int64
	// RecordCache is the size in bytes of the cache of recipients' records in
	// front of Badger (storage/badger/cache.go): checks, reservations and
	// reports of a recently seen number skip the store's read. 0 turns it off;
	// DefaultConfig sets DefaultRecordCache. Redis has none: other replicas
	// write the records.
	RecordCache int64
	// Logger receives the server's logs.
	Logger *slog.Logger
	// TracerProvider, when set, gets a span for every SendGuard RPC and webhook
	// POST (tracing.go); nil installs nothing. The serve command sets it from
	// the OTEL_* environment (internal/tracing).
	TracerProvider trace.TracerProvider
	// Now is the clock (tests inject a fake one).
	Now func() time.Time
}

// TLSConfig names certificate files.
type TLSConfig struct {
	CertFile, KeyFile string
	ClientCAFile      string
}

// Durability modes.
const (
	DurabilityDefault = "default"
	DurabilityStrict  = "strict"
)

// Time bounds (DESIGN.md "Time"): backfills need the past and planning needs the
// future, but an event dated years ahead would poison a contact until then.
const (
	DefaultMaxEventSkew = time.Hour
	DefaultMaxPlanAhead = 400 * 24 * time.Hour
)

// DefaultRecordCache is the default Config.RecordCache: 64 MiB, which holds the
// records of about 150,000 recently seen numbers (a record with history is a
// few hundred bytes, plus the cache's own 128 per entry) — the numbers a
// campaign checked and reserved in the last minutes, whose statuses come back
// next. With the server's own memory (about 250 MiB at 10 M stored numbers) it
// leaves Badger's tables most of a 1 GB budget (docs/performance.md, Update 7).
const DefaultRecordCache = 64 << 20

// DefaultConfig returns the configuration `make run` uses.
func DefaultConfig() Config {
	return Config{
		GRPCAddr:      "127.0.0.1:50051",
		HTTPAddr:      "127.0.0.1:8080",
		APIAddr:       DefaultAPIAddr,
		DataDir:       "./data",
		Defaults:      validator.Defaults(),
		ShutdownGrace: 10 * time.Second,
		Durability:    DurabilityDefault,
		RecordCache:   DefaultRecordCache,
		Logger:        slog.Default(),
		Now:           time.Now,
	}
}

// withDefaults returns c with its zero fields set to their defaults, and the
// default region read into Defaults.
func (c Config) withDefaults() Config {
	if r, err := regionCode(c.DefaultRegion); err == nil {
		c.DefaultRegion = r
	}
	c.Defaults.DefaultRegion = c.DefaultRegion
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Durability == "" {
		c.Durability = DurabilityDefault
	}
	if c.MaxConcurrentStreams == 0 {
		c.MaxConcurrentStreams = DefaultMaxConcurrentStreams
	}
	if c.MaxConnections <= 0 {
		c.MaxConnections = DefaultMaxConnections
	}
	if c.MaxConcurrentCalls <= 0 {
		c.MaxConcurrentCalls = DefaultMaxConcurrentCalls
	}
	if c.StreamBudget <= 0 {
		c.StreamBudget = DefaultStreamBudget
	}
	if c.BusinessCache <= 0 {
		c.BusinessCache = DefaultBusinessCache
	}
	if c.DefaultDeadline <= 0 {
		c.DefaultDeadline = 30 * time.Second
	}
	if c.MaxWebhookBody <= 0 {
		c.MaxWebhookBody = DefaultMaxWebhookBody
	}
	if c.WebhookBodyBudget <= 0 {
		c.WebhookBodyBudget = max(DefaultWebhookBodyBudget, c.MaxWebhookBody)
	}
	if c.WebhookReadTimeout <= 0 {
		c.WebhookReadTimeout = DefaultWebhookReadTimeout
	}
	if c.HTTPMaxConnections <= 0 {
		c.HTTPMaxConnections = DefaultHTTPMaxConnections
	}
	if c.ShutdownGrace <= 0 {
		c.ShutdownGrace = 10 * time.Second
	}
	if c.MaxEventSkew <= 0 {
		c.MaxEventSkew = DefaultMaxEventSkew
	}
	if c.MaxPlanAhead <= 0 {
		c.MaxPlanAhead = DefaultMaxPlanAhead
	}
	return c
}

// validate reports what is wrong with c, which withDefaults has filled in. The
// choice of store (DataDir, StoreURL) is the runner's to check (internal/serve).
func (c Config) validate() error {
	var errs []error
	if c.GRPCAddr != "" { // Listen refuses none; a service served in-process needs none
		if _, _, err := net.SplitHostPort(c.GRPCAddr); err != nil {
			errs = append(errs, fmt.Errorf("grpc address %q: %v", c.GRPCAddr, err))
		}
	}
	if c.HTTPAddr != "" {
		if _, _, err := net.SplitHostPort(c.HTTPAddr); err != nil {
			errs = append(errs, fmt.Errorf("http address %q: %v", c.HTTPAddr, err))
		}
	}
	if c.APIAddr != "" {
		if _, _, err := net.SplitHostPort(c.APIAddr); err != nil {
			errs = append(errs, fmt.Errorf("api address %q: %v", c.APIAddr, err))
		}
	}
	if strings.HasPrefix(c.StoreURL, "redis://") && c.Durability == DurabilityStrict {
		errs = append(errs, errors.New(`durability "strict" is Badger's; on Redis, durability is set in Redis (appendonly yes, appendfsync always, replicas): see docs/scale-out.md`))
	}
	if err := checkWABAIDs(c.WABAIDs); err != nil {
		errs = append(errs, err)
	}
	if c.DefaultRegion != "" {
		if _, err := regionCode(c.DefaultRegion); err != nil {
			errs = append(errs, fmt.Errorf("default_region: %v", err))
		}
	}
	switch c.Durability {
	case DurabilityDefault, DurabilityStrict:
	default:
		errs = append(errs, fmt.Errorf("durability %q: want %q or %q", c.Durability, DurabilityDefault, DurabilityStrict))
	}
	if (c.TLS.CertFile == "") != (c.TLS.KeyFile == "") {
		errs = append(errs, errors.New("tls: cert_file and key_file go together"))
	}
	if c.TLS.ClientCAFile != "" && c.TLS.CertFile == "" {
		errs = append(errs, errors.New("tls: client_ca_file (mutual TLS) needs cert_file and key_file"))
	}
	if c.HashNumbers && len(c.HashSecret) < 16 {
		errs = append(errs, errors.New("privacy.hash_numbers needs hash_secret (or SENDGUARD_HASH_SECRET) of at least 16 bytes, kept outside the data directory"))
	}
	if c.WebhookBodyBudget < c.MaxWebhookBody {
		errs = append(errs, fmt.Errorf("webhook_body_budget (%d) is smaller than max_webhook_body (%d): the largest body could never be read", c.WebhookBodyBudget, c.MaxWebhookBody))
	}
	switch {
	case c.DiskHeadroom < 0:
		errs = append(errs, fmt.Errorf("disk_headroom %d: want 0 (computed) or a size", c.DiskHeadroom))
	case c.DiskHeadroom > 0 && c.StoreURL != "":
		errs = append(errs, errors.New("disk_headroom is Badger's; Redis manages its own disk"))
	}
	if c.RecordCache < 0 {
		errs = append(errs, fmt.Errorf("record_cache %d: want 0 (off) or a size", c.RecordCache))
	}
	return errors.Join(errs...)
}

// Check fills in c's defaults and reports what is wrong with it, as New would,
// without a store: the runner checks before it opens one.
func (c Config) Check() error {
	c = c.withDefaults()
	if err := c.validate(); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	_, err := c.keyIndex()
	return err
}

// keyIndex indexes the API keys; without any, it refuses a listen address that
// is not loopback (requireLoopback).
func (c Config) keyIndex() (keyIndex, error) {
	keys, err := newKeyIndex(c.APIKeys)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	if len(keys) == 0 {
		for what, addr := range map[string]string{"grpc": c.GRPCAddr, "http": c.HTTPAddr, "api": c.APIAddr} {
			if addr == "" {
				continue
			}
			if err := requireLoopback(what, addr); err != nil {
				return nil, fmt.Errorf("refusing to start: %w", err)
			}
		}
	}
	return keys, nil
}

// fileConfig is the YAML configuration file. Durations are Go durations ("24h",
// "90m") or days ("7d").
type fileConfig struct {
	GRPCAddr string `yaml:"grpc_addr"`
	HTTPAddr string `yaml:"http_addr"`
	APIAddr  string `yaml:"api_addr"` // "off" turns the API off
	// ConsoleHosts: see Config.ConsoleHosts.
	ConsoleHosts []string `yaml:"console_hosts"`
	DataDir      string   `yaml:"data_dir"`
	Store        string   `yaml:"store"`
	// BusinessRefresh is a Go duration ("1s"); see Config.BusinessRefresh.
	BusinessRefresh string            `yaml:"business_refresh"`
	DefaultRegion   string            `yaml:"default_region"`
	PhoneNumberIDs  map[string]string `yaml:"phone_number_ids"`
	WABAIDs         map[string]string `yaml:"waba_ids"`
	HashSecret      string            `yaml:"hash_secret"`
	// Webhook secrets may be kept in the file (mode 0600) or in the environment
	// (SENDGUARD_WHATSAPP_APP_SECRET, SENDGUARD_WHATSAPP_VERIFY_TOKEN), never in flags.
	WhatsAppAppSecret          string      `yaml:"whatsapp_app_secret"`
	WhatsAppVerifyToken        string      `yaml:"whatsapp_verify_token"`
	SkipUnmappedPhoneNumberIDs *bool       `yaml:"skip_unmapped_phone_number_ids"`
	MaxWebhookBody             int64       `yaml:"max_webhook_body"`
	WebhookBodyBudget          int64       `yaml:"webhook_body_budget"`
	WebhookReadTimeout         string      `yaml:"webhook_read_timeout"` // a Go duration ("10s")
	HTTPMaxConnections         int         `yaml:"http_max_connections"`
	Policy                     *filePolicy `yaml:"policy"`
	APIKeys                    []struct {
		Name       string   `yaml:"name"`
		SHA256     string   `yaml:"sha256"`
		Businesses []string `yaml:"businesses"`
		Admin      bool     `yaml:"admin"`
	} `yaml:"api_keys"`
	TLS *struct {
		CertFile     string `yaml:"cert_file"`
		KeyFile      string `yaml:"key_file"`
		ClientCAFile string `yaml:"client_ca_file"`
	} `yaml:"tls"`
	Durability string `yaml:"durability"`
	// MaxEventSkew and MaxPlanAhead are durations ("1h", "400d"); see Config.
	MaxEventSkew string `yaml:"max_event_skew"`
	MaxPlanAhead string `yaml:"max_plan_ahead"`
	// Limits of what clients can hold; see Config.
	MaxConnections       int    `yaml:"max_connections"`
	MaxConcurrentCalls   int    `yaml:"max_concurrent_calls"`
	MaxConcurrentStreams uint32 `yaml:"max_concurrent_streams"`
	StreamBudget         int64  `yaml:"stream_budget"`
	BusinessCache        int    `yaml:"business_cache"`
	// DiskHeadroom is a size ("512MiB"); see Config.
	DiskHeadroom string `yaml:"disk_headroom"`
	// RecordCache is a size ("64MiB"; "0" turns it off); see Config.
	RecordCache string `yaml:"record_cache"`
	Privacy     *struct {
		HashNumbers bool `yaml:"hash_numbers"`
	} `yaml:"privacy"`
}

type filePolicy struct {
	FrequencyCaps []struct {
		Count  int32  `yaml:"count"`
		Window string `yaml:"window"`
	} `yaml:"frequency_caps"`
	EcosystemCooldown    *string  `yaml:"ecosystem_cooldown"`
	EcosystemCooldownMax *string  `yaml:"ecosystem_cooldown_max"`
	ExperimentTTL        *string  `yaml:"experiment_ttl"`
	ServiceWindow        *string  `yaml:"service_window"`
	UndeliverableBackoff []string `yaml:"undeliverable_backoff"`
	PairInterval         *string  `yaml:"pair_interval"`
	PairBurst            *int32   `yaml:"pair_burst"`
	OptOutKeywords       []string `yaml:"opt_out_keywords"`
	OptInKeywords        []string `yaml:"opt_in_keywords"`
	QuietHours           *struct {
		Start string `yaml:"start"`
		End   string `yaml:"end"`
	} `yaml:"quiet_hours"`
	TemplateRepeatWindow  *string  `yaml:"template_repeat_window"`
	MessagingLimit        *int32   `yaml:"messaging_limit"`
	BlockedRegions        []string `yaml:"blocked_regions"`
	RequireOptIn          *bool    `yaml:"require_opt_in"`
	KeywordOptInIsConsent *bool    `yaml:"keyword_opt_in_is_consent"`
	ShareNumberSignals    *bool    `yaml:"share_number_signals"`
	Shadow                *bool    `yaml:"shadow"`
	ShadowRules           []string `yaml:"shadow_rules"`
	// NumberValidation is "valid" or "possible" (or the enum's names).
	NumberValidation string `yaml:"number_validation"`
	// DefaultRegion, in the config file, is the top-level default_region
	// again (the two must agree); in a policy file, the business's own.
	DefaultRegion *string `yaml:"default_region"`
}

// LoadConfigFile reads a YAML configuration file onto c. Fields absent from the file
// keep c's values.
func LoadConfigFile(path string, c *Config) error {
	raw, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	var f fileConfig
	dec := yaml.NewDecoder(strings.NewReader(string(raw)))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		return fmt.Errorf("config %s: %w", path, err)
	}
	if f.GRPCAddr != "" {
		c.GRPCAddr = f.GRPCAddr
	}
	if f.HTTPAddr != "" {
		c.HTTPAddr = f.HTTPAddr
	}
	if f.APIAddr != "" {
		c.APIAddr = f.APIAddr
	}
	if len(f.ConsoleHosts) > 0 {
		c.ConsoleHosts = f.ConsoleHosts
	}
	if f.DataDir != "" {
		c.DataDir = f.DataDir
	}
	if f.Store != "" {
		c.StoreURL = f.Store
	}
	if f.BusinessRefresh != "" {
		d, err := sgdur.Parse(f.BusinessRefresh)
		if err != nil {
			return fmt.Errorf("config %s: business_refresh: %w", path, err)
		}
		c.BusinessRefresh = d
	}
	if f.DefaultRegion != "" {
		c.DefaultRegion = strings.ToUpper(f.DefaultRegion)
	}
	if f.PhoneNumberIDs != nil {
		c.PhoneNumberIDs = f.PhoneNumberIDs
	}
	if f.WABAIDs != nil {
		c.WABAIDs = f.WABAIDs
	}
	if f.HashSecret != "" {
		c.HashSecret = []byte(f.HashSecret)
	}
	if f.WhatsAppAppSecret != "" {
		c.WebhookSecret = []byte(f.WhatsAppAppSecret)
	}
	if f.WhatsAppVerifyToken != "" {
		c.WebhookVerifyToken = f.WhatsAppVerifyToken
	}
	if f.SkipUnmappedPhoneNumberIDs != nil {
		c.SkipUnmappedPhoneNumberIDs = *f.SkipUnmappedPhoneNumberIDs
	}
	if f.MaxWebhookBody > 0 {
		c.MaxWebhookBody = f.MaxWebhookBody
	}
	if f.WebhookBodyBudget > 0 {
		c.WebhookBodyBudget = f.WebhookBodyBudget
	}
	if f.WebhookReadTimeout != "" {
		d, err := sgdur.Parse(f.WebhookReadTimeout)
		if err != nil || d <= 0 {
			return fmt.Errorf("config %s: webhook_read_timeout: want a positive duration such as 10s, got %q", path, f.WebhookReadTimeout)
		}
		c.WebhookReadTimeout = d
	}
	if f.HTTPMaxConnections > 0 {
		c.HTTPMaxConnections = f.HTTPMaxConnections
	}
	for _, k := range f.APIKeys {
		c.APIKeys = append(c.APIKeys, APIKey{Name: k.Name, SHA256: k.SHA256, Businesses: k.Businesses, Admin: k.Admin})
	}
	if f.TLS != nil {
		c.TLS = TLSConfig{CertFile: f.TLS.CertFile, KeyFile: f.TLS.KeyFile, ClientCAFile: f.TLS.ClientCAFile}
	}
	if f.Durability != "" {
		c.Durability = f.Durability
	}
	if f.Privacy != nil {
		c.HashNumbers = f.Privacy.HashNumbers
	}
	if f.MaxConnections > 0 {
		c.MaxConnections = f.MaxConnections
	}
	if f.MaxConcurrentCalls > 0 {
		c.MaxConcurrentCalls = f.MaxConcurrentCalls
	}
	if f.MaxConcurrentStreams > 0 {
		c.MaxConcurrentStreams = f.MaxConcurrentStreams
	}
	if f.StreamBudget > 0 {
		c.StreamBudget = f.StreamBudget
	}
	if f.BusinessCache > 0 {
		c.BusinessCache = f.BusinessCache
	}
	for _, d := range []struct {
		key string
		in  string
		out *time.Duration
	}{
		{"max_event_skew", f.MaxEventSkew, &c.MaxEventSkew},
		{"max_plan_ahead", f.MaxPlanAhead, &c.MaxPlanAhead},
	} {
		if d.in == "" {
			continue
		}
		v, err := sgdur.Parse(d.in)
		if err != nil || v <= 0 {
			return fmt.Errorf("config %s: %s: want a positive duration such as 1h or 400d, got %q", path, d.key, d.in)
		}
		*d.out = v
	}
	if f.DiskHeadroom != "" {
		n, err := ParseSize(f.DiskHeadroom)
		if err != nil {
			return fmt.Errorf("config %s: disk_headroom: %w", path, err)
		}
		c.DiskHeadroom = n
	}
	if f.RecordCache != "" {
		n, err := ParseSize(f.RecordCache)
		if err != nil {
			return fmt.Errorf("config %s: record_cache: %w", path, err)
		}
		c.RecordCache = n
	}
	if f.Policy != nil {
		// The deployment's policy's default region is the deployment's default
		// region: one setting under two keys, which must agree.
		if r := f.Policy.DefaultRegion; r != nil {
			switch {
			case f.DefaultRegion == "":
				c.DefaultRegion = strings.ToUpper(*r)
			case !strings.EqualFold(*r, f.DefaultRegion):
				return fmt.Errorf("config %s: policy.default_region %q differs from default_region %q: both are the deployment's default region", path, *r, f.DefaultRegion)
			}
		}
		pb, err := f.Policy.proto()
		if err != nil {
			return fmt.Errorf("config %s: policy.%w", path, err)
		}
		eff, err := mergePolicy(validator.Defaults(), pb)
		if err != nil {
			return fmt.Errorf("config %s: policy.%w", path, err)
		}
		c.Defaults = eff
	}
	return nil
}

// LoadEnv reads the secrets from the environment (they win over the file):
// SENDGUARD_WHATSAPP_APP_SECRET, SENDGUARD_WHATSAPP_VERIFY_TOKEN,
// SENDGUARD_HASH_SECRET and SENDGUARD_REDIS_PASSWORD.
func LoadEnv(c *Config, getenv func(string) string) {
	if v := getenv("SENDGUARD_WHATSAPP_APP_SECRET"); v != "" {
		c.WebhookSecret = []byte(v)
	}
	if v := getenv("SENDGUARD_WHATSAPP_VERIFY_TOKEN"); v != "" {
		c.WebhookVerifyToken = v
	}
	if v := getenv("SENDGUARD_HASH_SECRET"); v != "" {
		c.HashSecret = []byte(v)
	}
	if v := getenv("SENDGUARD_REDIS_PASSWORD"); v != "" {
		c.RedisPassword = v
	}
}

// ParseSize parses a byte count: a whole number with an optional unit, KB, MB,
// GB, TB (powers of 1000) or KiB, MiB, GiB, TiB (powers of 1024), e.g. "512MiB".
func ParseSize(s string) (int64, error) {
	s = strings.TrimSpace(s)
	i := strings.IndexFunc(s, func(r rune) bool { return r < '0' || r > '9' })
	if i < 0 {
		i = len(s)
	}
	n, err := strconv.ParseInt(s[:i], 10, 64)
	mult, ok := sizeUnits[strings.TrimSpace(s[i:])]
	if err != nil || !ok {
		return 0, fmt.Errorf("invalid size %q: want a whole number of bytes, or one with a unit such as 512MiB (KB, MB, GB, TB, KiB, MiB, GiB, TiB)", s)
	}
	if n > math.MaxInt64/mult {
		return 0, fmt.Errorf("invalid size %q: too large", s)
	}
	return n * mult, nil
}

// sizeUnits are ParseSize's units.
var sizeUnits = map[string]int64{"": 1, "B": 1,
	"KB": 1e3, "MB": 1e6, "GB": 1e9, "TB": 1e12,
	"KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30, "TiB": 1 << 40}

func (f *filePolicy) proto() (*sgv1.Policy, error) {
	p := &sgv1.Policy{}
	dur := func(name string, s *string) (*durationpb.Duration, error) {
		if s == nil {
			return nil, nil
		}
		d, err := sgdur.Parse(*s)
		if err != nil {
			return nil, fmt.Errorf("%s: %v", name, err)
		}
		return durationpb.New(d), nil
	}
	var err error
	for i, fc := range f.FrequencyCaps {
		w := time.Duration(0)
		if fc.Window != "" {
			if w, err = sgdur.Parse(fc.Window); err != nil {
				return nil, fmt.Errorf("frequency_caps[%d].window: %v", i, err)
			}
		}
		p.FrequencyCaps = append(p.FrequencyCaps, &sgv1.FrequencyCap{Count: fc.Count, Window: durationpb.New(w)})
	}
	if p.EcosystemCooldown, err = dur("ecosystem_cooldown", f.EcosystemCooldown); err != nil {
		return nil, err
	}
	if p.EcosystemCooldownMax, err = dur("ecosystem_cooldown_max", f.EcosystemCooldownMax); err != nil {
		return nil, err
	}
	if p.ExperimentTtl, err = dur("experiment_ttl", f.ExperimentTTL); err != nil {
		return nil, err
	}
	if p.ServiceWindow, err = dur("service_window", f.ServiceWindow); err != nil {
		return nil, err
	}
	for i, s := range f.UndeliverableBackoff {
		d, err := sgdur.Parse(s)
		if err != nil {
			return nil, fmt.Errorf("undeliverable_backoff[%d]: %v", i, err)
		}
		p.UndeliverableBackoff = append(p.UndeliverableBackoff, durationpb.New(d))
	}
	if p.PairInterval, err = dur("pair_interval", f.PairInterval); err != nil {
		return nil, err
	}
	p.PairBurst = f.PairBurst
	p.OptOutKeywords = f.OptOutKeywords
	p.OptInKeywords = f.OptInKeywords
	if f.QuietHours != nil {
		p.QuietHours = &sgv1.QuietHours{Start: f.QuietHours.Start, End: f.QuietHours.End}
	}
	if p.TemplateRepeatWindow, err = dur("template_repeat_window", f.TemplateRepeatWindow); err != nil {
		return nil, err
	}
	p.MessagingLimit = f.MessagingLimit
	p.BlockedRegions = f.BlockedRegions
	p.RequireOptIn = f.RequireOptIn
	p.KeywordOptInIsConsent = f.KeywordOptInIsConsent
	p.ShareNumberSignals = f.ShareNumberSignals
	p.Shadow = f.Shadow
	for i, name := range f.ShadowRules {
		r, ok := parseRule(name)
		if !ok {
			return nil, fmt.Errorf("shadow_rules[%d]: unknown rule %q", i, name)
		}
		p.ShadowRules = append(p.ShadowRules, r)
	}
	if f.NumberValidation != "" {
		v, ok := parseNumberValidation(f.NumberValidation)
		if !ok {
			return nil, fmt.Errorf("number_validation: want valid or possible, got %q", f.NumberValidation)
		}
		p.NumberValidation = v
	}
	p.DefaultRegion = f.DefaultRegion
	return p, nil
}

// parseNumberValidation accepts "valid", "possible" or the enum's names
// ("NUMBER_VALIDATION_VALID"), in any case.
func parseNumberValidation(name string) (sgv1.NumberValidation, bool) {
	n := strings.ToUpper(strings.TrimSpace(name))
	if !strings.HasPrefix(n, "NUMBER_VALIDATION_") {
		n = "NUMBER_VALIDATION_" + n
	}
	v, ok := sgv1.NumberValidation_value[n]
	if !ok || v == 0 {
		return 0, false
	}
	return sgv1.NumberValidation(v), true
}

// parseRule accepts "RULE_FREQUENCY_CAP", "FREQUENCY_CAP" or "frequency_cap".
func parseRule(name string) (sgv1.Rule, bool) {
	n := strings.ToUpper(strings.TrimSpace(name))
	if !strings.HasPrefix(n, "RULE_") {
		n = "RULE_" + n
	}
	v, ok := sgv1.Rule_value[n]
	if !ok || v == 0 {
		return 0, false
	}
	return sgv1.Rule(v), true
}
