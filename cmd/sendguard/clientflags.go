package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/sendguard/sendguard/client"
	"github.com/sendguard/sendguard/internal/audience"
	"github.com/sendguard/sendguard/internal/duration"
	sgv1 "github.com/sendguard/sendguard/proto/sendguard/v1"
)

// Environment variables read by every client subcommand.
const (
	envAddr   = "SENDGUARD_ADDR"
	envAPIKey = "SENDGUARD_API_KEY"
)

const defaultAddr = "127.0.0.1:50051"

// connHelp ends the help of every client subcommand.
const connHelp = `
Connection: --addr (or SENDGUARD_ADDR) names the server, 127.0.0.1:50051 by default.
Without any --tls-* flag the connection is plaintext, which is what a server on
loopback without API keys expects; --tls-ca, --tls-cert/--tls-key (mutual TLS) or
--tls-server-name switch to TLS. The API key comes from SENDGUARD_API_KEY (better
than --api-key, which other users can read in the process list) and is never printed.`

// clientCmds are the subcommands that talk to a running server.
func clientCmds() []*cobra.Command {
	return []*cobra.Command{checkCmd(), validateCmd(), reportCmd(), inboundCmd(), contactCmd(), forgetCmd(),
		optOutCmd(), optInCmd(), policyCmd()}
}

// addRegionFlag registers --region, the request's region: how the server reads a
// phone spelled nationally.
func addRegionFlag(cmd *cobra.Command, region *string) {
	cmd.Flags().StringVar(region, "region", "", `region (ISO 3166 alpha-2, e.g. BR) to read a national spelling such as "(31) 99551-1909" by (default: the business policy's default_region)`)
}

// recipientArg is the phone of a command that takes it as its argument, PHONE,
// or as --phone (phone: the flag's value); giving it both ways is a mistake.
func recipientArg(args []string, phone string) (string, error) {
	if len(args) == 0 {
		return phone, nil
	}
	if phone != "" && phone != args[0] {
		return "", fmt.Errorf("two phones: %q and --phone %q", args[0], phone)
	}
	return args[0], nil
}

// clientFlags are the connection flags shared by the client subcommands.
type clientFlags struct {
	addr          string
	apiKey        string
	tlsCA         string
	tlsCert       string
	tlsKey        string
	tlsServerName string
	timeout       time.Duration
	timeZone      string
}

// addClientFlags registers the connection flags on cmd.
func addClientFlags(cmd *cobra.Command) *clientFlags {
	cf := &clientFlags{}
	f := cmd.Flags()
	f.StringVar(&cf.addr, "addr", defaultAddr, "the server's gRPC address, HOST:PORT (env "+envAddr+")")
	f.StringVar(&cf.apiKey, "api-key", "", "API key, sent as a bearer token (default: env "+envAPIKey+"; prefer the environment)")
	f.StringVar(&cf.tlsCA, "tls-ca", "", "PEM file of the CA that signed the server's certificate (TLS)")
	f.StringVar(&cf.tlsCert, "tls-cert", "", "PEM client certificate for mutual TLS (with --tls-key)")
	f.StringVar(&cf.tlsKey, "tls-key", "", "PEM private key of --tls-cert")
	f.StringVar(&cf.tlsServerName, "tls-server-name", "", "the name to verify in the server's certificate (TLS; default: the host of --addr)")
	f.DurationVar(&cf.timeout, "timeout", 10*time.Second, "deadline of each call (a stream has none: validate runs as long as it takes)")
	// Times are printed in the local time zone (TZ); the hidden flag pins one for
	// golden tests and for operators reading another office's logs.
	f.StringVar(&cf.timeZone, "time-zone", "", "IANA time zone for printed times (default: local, from TZ)")
	_ = f.MarkHidden("time-zone")
	return cf
}

// resolve fills what the flags leave to the environment.
func (cf *clientFlags) resolve(f *pflag.FlagSet) {
	if !f.Changed("addr") {
		if v := strings.TrimSpace(os.Getenv(envAddr)); v != "" {
			cf.addr = v
		}
	}
	if !f.Changed("api-key") {
		cf.apiKey = strings.TrimSpace(os.Getenv(envAPIKey))
	}
}

// useTLS reports whether any TLS flag is set.
func (cf *clientFlags) useTLS() bool {
	return cf.tlsCA != "" || cf.tlsCert != "" || cf.tlsKey != "" || cf.tlsServerName != ""
}

// tlsConfig builds the client's TLS configuration from the flags: the system roots
// unless --tls-ca names a CA, and a client certificate for mutual TLS.
func (cf *clientFlags) tlsConfig() (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: cf.tlsServerName}
	if cf.tlsCA != "" {
		pem, err := os.ReadFile(cf.tlsCA)
		if err != nil {
			return nil, fmt.Errorf("--tls-ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--tls-ca %s holds no PEM certificate", cf.tlsCA)
		}
		cfg.RootCAs = pool
	}
	if (cf.tlsCert == "") != (cf.tlsKey == "") {
		return nil, errors.New("--tls-cert and --tls-key go together")
	}
	if cf.tlsCert != "" {
		cert, err := tls.LoadX509KeyPair(cf.tlsCert, cf.tlsKey)
		if err != nil {
			return nil, fmt.Errorf("--tls-cert/--tls-key: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

// options turns the flags into client options.
func (cf *clientFlags) options() (client.Options, error) {
	o := client.Options{APIKey: cf.apiKey, Timeout: cf.timeout}
	if !cf.useTLS() {
		o.Insecure = true
		return o, nil
	}
	cfg, err := cf.tlsConfig()
	if err != nil {
		return o, err
	}
	o.TLS = cfg
	return o, nil
}

// dial connects to the server named by the flags. The connection is lazy: a server
// that is not there shows up as UNAVAILABLE on the first call.
func (cf *clientFlags) dial(cmd *cobra.Command) (*client.Client, error) {
	cf.resolve(cmd.Flags())
	if _, _, err := net.SplitHostPort(cf.addr); err != nil {
		return nil, fmt.Errorf("--addr %q: want HOST:PORT", cf.addr)
	}
	o, err := cf.options()
	if err != nil {
		return nil, err
	}
	if o.Insecure && o.APIKey != "" && !isLoopback(cf.addr) {
		fmt.Fprintf(cmd.ErrOrStderr(), "sendguard: warning: sending the API key in plaintext to %s; use --tls-ca (or another --tls-* flag)\n", cf.addr)
	}
	return client.Dial(cf.addr, o)
}

// callServer dials the server, makes one call f and closes the connection; a failed
// call's error names the method and the address (callError).
func callServer[R any](cmd *cobra.Command, cf *clientFlags, method string, f func(context.Context, *client.Client) (R, error)) (R, error) {
	var zero R
	c, err := cf.dial(cmd)
	if err != nil {
		return zero, err
	}
	defer c.Close()
	resp, err := f(cmd.Context(), c)
	if err != nil {
		return zero, callError(method, cf.addr, err)
	}
	return resp, nil
}

// location is the time zone times are printed in.
func (cf *clientFlags) location() (*time.Location, error) {
	if cf.timeZone == "" {
		return time.Local, nil
	}
	loc, err := time.LoadLocation(cf.timeZone)
	if err != nil {
		return nil, fmt.Errorf("--time-zone: %w", err)
	}
	return loc, nil
}

func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// optionalTime parses the value of an optional time flag (see parseTime); an
// empty value is nil, a bad one an error that names the flag.
func optionalTime(flag, s string, now time.Time, loc *time.Location) (*timestamppb.Timestamp, error) {
	if s == "" {
		return nil, nil
	}
	t, err := parseTime(s, now, loc)
	if err != nil {
		return nil, fmt.Errorf("--%s: %w", flag, err)
	}
	return timestamppb.New(t), nil
}

// parseTime reads a time given on the command line: RFC 3339
// ("2026-11-27T10:00:00Z", "2026-11-27T07:00:00-03:00"), a date and time without
// an offset in loc ("2026-11-27 10:00", "2026-11-27T10:00:05"), a date (midnight in
// loc), "now", or a time relative to now ("+2h", "+1d12h", "-30m", "+90s").
func parseTime(s string, now time.Time, loc *time.Location) (time.Time, error) {
	s = strings.TrimSpace(s)
	switch {
	case s == "":
		return time.Time{}, errors.New("empty time")
	case strings.EqualFold(s, "now"):
		return now, nil
	case s[0] == '+' || s[0] == '-':
		d, err := duration.Parse(s[1:])
		if err == nil && d < 0 {
			err = errors.New("negative duration after the sign")
		}
		if err != nil {
			return time.Time{}, fmt.Errorf("time %q: %w", s, err)
		}
		if s[0] == '-' {
			d = -d
		}
		return now.Add(d), nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	for _, layout := range []string{"2006-01-02T15:04:05", "2006-01-02 15:04:05", "2006-01-02T15:04", "2006-01-02 15:04", "2006-01-02"} {
		if t, err := time.ParseInLocation(layout, s, loc); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("time %q: want RFC 3339 (2026-11-27T10:00:00Z), a local date and time (2026-11-27 10:00), now, or +DURATION (+2h, +1d)", s)
}

// parseCategory reads a category: marketing, utility, authentication (auth),
// service, in any case, with or without the CATEGORY_ prefix.
func parseCategory(s string) (sgv1.Category, error) {
	n := strings.ToUpper(strings.TrimSpace(s))
	n = strings.TrimPrefix(n, "CATEGORY_")
	if n == "AUTH" {
		n = "AUTHENTICATION"
	}
	if v, ok := sgv1.Category_value["CATEGORY_"+n]; ok && v != 0 {
		return sgv1.Category(v), nil
	}
	return 0, fmt.Errorf("category %q: want marketing, utility, authentication or service", s)
}

// parseStatus reads a message status: sent, delivered, read, played, failed.
func parseStatus(s string) (sgv1.MessageStatus, error) {
	n := strings.ToUpper(strings.TrimSpace(s))
	n = strings.TrimPrefix(n, "MESSAGE_STATUS_")
	if v, ok := sgv1.MessageStatus_value["MESSAGE_STATUS_"+n]; ok && v != 0 {
		return sgv1.MessageStatus(v), nil
	}
	return 0, fmt.Errorf("status %q: want sent, delivered, read, played or failed", s)
}

// callError says what a failed call means for the user.
func callError(rpc, addr string, err error) error {
	st, ok := status.FromError(err)
	if !ok {
		return fmt.Errorf("%s: %w", rpc, err)
	}
	switch st.Code() {
	case codes.Unavailable:
		if strings.HasPrefix(st.Message(), "storage unavailable") {
			// The server answered: its store refused (a nearly full disk, a
			// failing store), which its message says.
			return fmt.Errorf("%s: UNAVAILABLE from the server at %s: %s", rpc, addr, st.Message())
		}
		return fmt.Errorf("%s: the server at %s is unavailable (is `sendguard serve` running there, with the same TLS setting?): %s", rpc, addr, st.Message())
	case codes.Unauthenticated, codes.PermissionDenied:
		return fmt.Errorf("%s: %s: %s (set SENDGUARD_API_KEY to a key for this business)", rpc, audience.CodeName(st.Code()), st.Message())
	case codes.DeadlineExceeded:
		return fmt.Errorf("%s: no answer from %s within the deadline (--timeout)", rpc, addr)
	}
	return fmt.Errorf("%s: %s: %s", rpc, audience.CodeName(st.Code()), st.Message())
}
