package server

import (
	"strings"
	"sync/atomic"

	grpcprom "github.com/grpc-ecosystem/go-grpc-middleware/providers/prometheus"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/sendguard/sendguard/internal/buildinfo"
	"github.com/sendguard/sendguard/internal/enumword"
	sgv1 "github.com/sendguard/sendguard/proto/sendguard/v1"
	"github.com/sendguard/sendguard/storage"
	"github.com/sendguard/sendguard/validator"
	"github.com/sendguard/sendguard/webhook"
)

// metrics are a server's Prometheus metrics, on a registry of its own (no globals,
// so that tests can run servers side by side).
type metrics struct {
	registry     *prometheus.Registry
	grpc         *grpcprom.ServerMetrics
	decisions    *prometheus.CounterVec
	reasons      *prometheus.CounterVec
	rowErrors    *prometheus.CounterVec
	events       *prometheus.CounterVec
	reservations prometheus.Counter
	// reservationBatch observes how many reservations of a stream's lane were
	// written in one commit (stream.go's writeBatch).
	reservationBatch prometheus.Histogram
	panics           prometheus.Counter
	storeFailures    prometheus.Counter
	// restrictionEvents counts restrictions started, escalated, lifted and
	// cleared (restriction_metrics.go).
	restrictionEvents *prometheus.CounterVec
	// templateEvents counts Meta's template webhooks that changed a template
	// (paused, disabled, approved, marked or cleared as marketing);
	// qualityEvents its phone_number_quality_update events by event.
	templateEvents *prometheus.CounterVec
	qualityEvents  *prometheus.CounterVec

	// Children of decisions and reasons by verdict or rule and shadow, looked up
	// once: a label lookup hashes the label values on every call, and every
	// decision counts one verdict and each of its reasons.
	decisionsBy [4][2]cachedCounter
	reasonsBy   [32][2]cachedCounter
}

// cachedCounter holds a CounterVec child once it has been looked up (created on
// first use, as WithLabelValues would, so /metrics shows the same series).
type cachedCounter struct {
	p atomic.Pointer[prometheus.Counter]
}

// get returns the child, looking it up with the labels of labels the first time.
func (c *cachedCounter) get(vec *prometheus.CounterVec, labels func() (string, string)) prometheus.Counter {
	if p := c.p.Load(); p != nil {
		return *p
	}
	a, b := labels()
	ctr := vec.WithLabelValues(a, b)
	c.p.Store(&ctr)
	return ctr
}

func boolIndex(b bool) int {
	if b {
		return 1
	}
	return 0
}

func newMetrics() *metrics {
	m := &metrics{
		registry: prometheus.NewRegistry(),
		grpc: grpcprom.NewServerMetrics(grpcprom.WithServerHandlingTimeHistogram(
			grpcprom.WithHistogramBuckets([]float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .5, 1}),
		)),
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sendguard_decisions_total",
			Help: "Check decisions by verdict (shadow=true: a shadowed rule would have blocked).",
		}, []string{"verdict", "shadow"}),
		reasons: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sendguard_decision_reasons_total",
			Help: "Reasons given in check decisions, by rule and whether the rule was shadowed.",
		}, []string{"rule", "shadow"}),
		rowErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sendguard_stream_row_errors_total",
			Help: "CheckSendStream and CheckSendBatch rows answered with an error instead of a verdict, by gRPC code.",
		}, []string{"code"}),
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sendguard_events_total",
			Help: "Reported events by source, type and outcome (applied, duplicate).",
		}, []string{"source", "type", "outcome"}),
		reservations: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sendguard_reservations_total",
			Help: "Sends reserved by allowed checks.",
		}),
		reservationBatch: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "sendguard_reservation_batch_rows",
			Help:    "Reservations of one CheckSendStream lane written to the store together, in one commit (1: alone).",
			Buckets: []float64{1, 2, 4, 8, 16, 32},
		}),
		panics: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sendguard_panics_recovered_total",
			Help: "Panics recovered in handlers.",
		}),
		storeFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sendguard_store_failures_total",
			Help: "Times the store started failing (health went NOT_SERVING).",
		}),
		restrictionEvents: newRestrictionEvents(),
		templateEvents: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sendguard_template_events_total",
			Help: "Meta's template webhooks that changed a template's state, by event (paused, disabled, approved, marked_marketing, cleared_marketing).",
		}, []string{"event"}),
		qualityEvents: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sendguard_sender_quality_events_total",
			Help: "Meta's phone_number_quality_update webhooks by event (flagged, unflagged, upgrade, downgrade, onboarding, throughput_upgrade, other).",
		}, []string{"event"}),
	}
	for _, e := range templateEventNames {
		m.templateEvents.WithLabelValues(e)
	}
	for _, q := range webhook.QualityEvents {
		m.qualityEvents.WithLabelValues(strings.ToLower(q))
	}
	m.qualityEvents.WithLabelValues("other")
	m.registry.MustRegister(m.grpc, m.decisions, m.reasons, m.rowErrors, m.events, m.reservations, m.reservationBatch, m.panics, m.storeFailures, m.restrictionEvents,
		m.templateEvents, m.qualityEvents,
		buildInfoGauge(buildinfo.Get()),
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// buildInfoGauge is sendguard_build_info: 1, labelled with the build's version,
// revision and Go version (internal/buildinfo), so that a dashboard can tell
// which build each replica runs.
func buildInfoGauge(b buildinfo.Info) prometheus.Collector {
	g := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "sendguard_build_info",
		Help: "The running build: always 1, labelled with its version, VCS revision and Go version.",
	}, []string{"version", "revision", "goversion"})
	g.WithLabelValues(b.Version, b.Revision, b.GoVersion).Set(1)
	return g
}

// watchSpace exports what a store that watches its disk saw at its last look
// (Badger; storage.SpaceGuard): free space, headroom, and whether writes are
// taken.
func (m *metrics) watchSpace(sg storage.SpaceGuard) {
	space := func() storage.Space {
		sp, _ := sg.Space()
		return sp
	}
	m.registry.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "sendguard_disk_free_bytes",
			Help: "Free space on the store's filesystem (statfs f_bavail), at the store's last look.",
		}, func() float64 { return float64(space().Free) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "sendguard_disk_headroom_bytes",
			Help: "Free space the store keeps for its engine's own writes (flushes, compactions); writes are refused below it (disk_headroom).",
		}, func() float64 { return float64(space().Headroom) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "sendguard_store_writable",
			Help: "1 while the store takes writes, 0 while it refuses them because the disk is nearly full.",
		}, func() float64 {
			if space().Writable {
				return 1
			}
			return 0
		}),
	)
}

// watchRecordCache exports the record cache's hits, misses and size, when the
// store has one (storage.RecordCacher: Badger with record_cache).
func (m *metrics) watchRecordCache(st storage.Store) {
	rc, ok := storage.UnwrapAs[storage.RecordCacher](st)
	if !ok {
		return
	}
	if _, on := rc.RecordCache(); !on {
		return
	}
	stats := func() storage.RecordCacheStats {
		s, _ := rc.RecordCache()
		return s
	}
	m.registry.MustRegister(
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "sendguard_record_cache_hits_total",
			Help: "Reads of a recipient's record (checks, and the reads of reservations and reports) served from the record cache (record_cache).",
		}, func() float64 { return float64(stats().Hits) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "sendguard_record_cache_misses_total",
			Help: "Reads of a recipient's record that missed the record cache and read the store (a check's only when the number may be stored).",
		}, func() float64 { return float64(stats().Misses) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "sendguard_record_cache_bytes",
			Help: "Bytes the record cache holds, by its own count (keys, records and 128 bytes of bookkeeping each).",
		}, func() float64 { return float64(stats().Bytes) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "sendguard_record_cache_limit_bytes",
			Help: "The most the record cache holds (record_cache).",
		}, func() float64 { return float64(stats().Limit) }),
	)
}

// observe counts one decision.
func (m *metrics) observe(d *validator.Decision) {
	if v := int(d.Verdict); v >= 0 && v < len(m.decisionsBy) {
		m.decisionsBy[v][boolIndex(d.Shadow)].get(m.decisions, func() (string, string) {
			return verdictLabel(d.Verdict), shadowLabel(d.Shadow)
		}).Inc()
	} else {
		m.decisions.WithLabelValues(verdictLabel(d.Verdict), shadowLabel(d.Shadow)).Inc()
	}
	for i := range d.Reasons {
		r := &d.Reasons[i]
		if k := int(r.Rule); k >= 0 && k < len(m.reasonsBy) {
			m.reasonsBy[k][boolIndex(r.Shadow)].get(m.reasons, func() (string, string) {
				return ruleLabel(r.Rule), shadowLabel(r.Shadow)
			}).Inc()
		} else {
			m.reasons.WithLabelValues(ruleLabel(r.Rule), shadowLabel(r.Shadow)).Inc()
		}
	}
}

func shadowLabel(b bool) string {
	if b {
		return "true"
	}
	return "false"
}

// verdictLabel is "allow", "defer", "deny" or (for any other number) "unspecified".
func verdictLabel(v sgv1.Verdict) string {
	if !enumword.Verdicts.Known(v) {
		v = sgv1.Verdict_VERDICT_UNSPECIFIED
	}
	return enumword.Verdicts.Lower(v)
}

// ruleLabel is the rule's name without RULE_ ("QUIET_HOURS").
func ruleLabel(r sgv1.Rule) string { return enumword.Rules.Upper(r) }

// statusLabel is "sent", "delivered", "read", "played" or "failed".
func statusLabel(s sgv1.MessageStatus) string { return enumword.Statuses.Lower(s) }

// inboundLabel is "inbound_message" or "inbound_call".
func inboundLabel(k sgv1.InboundKind) string {
	if k == sgv1.InboundKind_INBOUND_KIND_CALL {
		return "inbound_call"
	}
	return "inbound_message"
}
