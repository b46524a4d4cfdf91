package server

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sendguard/sendguard/validator"
)

// Metrics of account and sender restrictions. Their labels take values from
// closed sets: rule (ACCOUNT_RESTRICTED, SENDER_LIMITED), meta_error_code (the
// codes of validator's restriction kinds: 130429, 131048, 131031, 368, 131042)
// and event (started, escalated, lifted, cleared). Every series exists from the
// start, at zero, so dashboards and alerts find them before the first one.

// restrictionEventNames are the values of the event label.
var restrictionEventNames = []string{"started", "escalated", "lifted", "cleared"}

// restrictionKinds are every known kind.
func restrictionKinds() []validator.RestrictionKind {
	var out []validator.RestrictionKind
	for k := validator.RestrictionKind(1); k.Valid(); k++ {
		out = append(out, k)
	}
	return out
}

func newRestrictionEvents() *prometheus.CounterVec {
	v := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sendguard_restriction_events_total",
		Help: "Account and sender restrictions started, escalated (a further error once the backoff ended), lifted (a success sent after it, or Meta's webhook) and cleared (ClearRestriction), by rule and Meta error code.",
	}, []string{"rule", "meta_error_code", "event"})
	for _, k := range restrictionKinds() {
		for _, e := range restrictionEventNames {
			v.WithLabelValues(restrictionLabels(k, e)...)
		}
	}
	return v
}

func restrictionLabels(k validator.RestrictionKind, event string) []string {
	return []string{ruleLabel(k.Rule()), strconv.Itoa(int(k.Code())), event}
}

// restrictionEvent counts one event of a restriction of kind k.
func (m *metrics) restrictionEvent(k validator.RestrictionKind, event string) {
	m.restrictionEvents.WithLabelValues(restrictionLabels(k, event)...).Inc()
}

// restrictionGauge exports the restrictions in force now among the cached
// businesses (a business with stored state is cached when it is used; one
// evicted after a long quiet spell is counted again once it is read).
type restrictionGauge struct {
	s    *Server
	desc *prometheus.Desc
}

func newRestrictionGauge(s *Server) *restrictionGauge {
	return &restrictionGauge{s: s, desc: prometheus.NewDesc("sendguard_restrictions_in_force",
		"Account and sender restrictions in force now (businesses in the cache), by rule and Meta error code.",
		[]string{"rule", "meta_error_code"}, nil)}
}

func (g *restrictionGauge) Describe(ch chan<- *prometheus.Desc) { ch <- g.desc }

func (g *restrictionGauge) Collect(ch chan<- prometheus.Metric) {
	now := g.s.cfg.Now()
	counts := map[[2]string]int{}
	for _, k := range restrictionKinds() {
		l := restrictionLabels(k, "")
		counts[[2]string{l[0], l[1]}] += 0
	}
	for _, b := range g.s.biz.cached() {
		for _, r := range b.snap.Load().state.Restrictions {
			if r.Active(now) {
				l := restrictionLabels(r.Kind, "")
				counts[[2]string{l[0], l[1]}]++
			}
		}
	}
	for l, n := range counts {
		ch <- prometheus.MustNewConstMetric(g.desc, prometheus.GaugeValue, float64(n), l[0], l[1])
	}
}

// cached returns the cached businesses that have stored state.
func (bs *businesses) cached() []*business {
	bs.mu.RLock()
	defer bs.mu.RUnlock()
	return bs.stored.all()
}
