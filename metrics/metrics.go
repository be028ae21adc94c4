// Package metrics exposes the events and the certificate inventory of
// mtls Selectors and Servers as Prometheus metrics.
//
// It is a module of its own, so that users of the mtls package never
// download the Prometheus client. A Collector costs nothing on the request
// path beyond the event hook, which only increments counters; the expiry
// gauges are computed when Prometheus scrapes.
//
//	c := metrics.New()
//	sel, err := mtls.New(store, policy, mtls.WithEventHook(c.SelectorHook()))
//	...
//	c.AddSelector(sel)
//	prometheus.MustRegister(c)
//
// Metrics:
//
//	mtls_certificate_expiry_seconds{side,field,level,pattern,id,subject}  gauge: seconds until the certificate expires (negative once expired)
//	mtls_certificate_unreadable{side,field,level,pattern}                  gauge: 1 for a mapping whose certificate cannot be read now
//	mtls_handshakes_total{side,outcome}                                    counter: upstream certificate_presented, pin_mismatch; downstream server_certificate_chosen, client_refused, failed_closed
//	mtls_pin_mismatches_total                                              counter
//	mtls_failed_closed_total{side,reason}                                  counter: requests or handshakes refused because a mapped certificate cannot be used
//	mtls_client_refusals_total{api,reason}                                 counter: client certificates a Server refused
//	mtls_pools_retired_total                                               counter
//	mtls_certificate_expiry_events_total{kind}                             counter: expiring and expired warnings
package metrics

import (
	"context"
	"strings"
	"sync"
	"time"

	"github.com/mtlsgo/mtls"
	"github.com/prometheus/client_golang/prometheus"
)

// Collector is a prometheus.Collector of mtls events and certificate
// expiries. The zero Collector is not usable: make one with New. It is
// safe for concurrent use.
type Collector struct {
	handshakes   *prometheus.CounterVec
	mismatches   prometheus.Counter
	failedClosed *prometheus.CounterVec
	refusals     *prometheus.CounterVec
	retired      prometheus.Counter
	expiryEvents *prometheus.CounterVec
	expiry       *prometheus.Desc
	unreadable   *prometheus.Desc

	mu        sync.Mutex // guards selectors and servers
	selectors []*mtls.Selector
	servers   []*mtls.Server
}

// New returns a Collector with no Selector or Server.
func New() *Collector {
	return &Collector{
		handshakes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mtls_handshakes_total",
			Help: "TLS handshakes by side and outcome."}, []string{"side", "outcome"}),
		mismatches: prometheus.NewCounter(prometheus.CounterOpts{Name: "mtls_pin_mismatches_total",
			Help: "Upstream leaves that matched none of their host's pins."}),
		failedClosed: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mtls_failed_closed_total",
			Help: "Requests or handshakes refused because a mapped certificate cannot be used, by reason."}, []string{"side", "reason"}),
		refusals: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mtls_client_refusals_total",
			Help: "Client certificates a Server refused, by API and reason."}, []string{"api", "reason"}),
		retired: prometheus.NewCounter(prometheus.CounterOpts{Name: "mtls_pools_retired_total",
			Help: "Upstream connection pools retired."}),
		expiryEvents: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mtls_certificate_expiry_events_total",
			Help: "Expiry warnings by kind: expiring, expired."}, []string{"kind"}),
		expiry: prometheus.NewDesc("mtls_certificate_expiry_seconds",
			"Seconds until a certificate that a policy names expires; negative once expired.",
			[]string{"side", "field", "level", "pattern", "id", "subject"}, nil),
		unreadable: prometheus.NewDesc("mtls_certificate_unreadable",
			"1 for a value of a policy whose certificate cannot be read now.",
			[]string{"side", "field", "level", "pattern"}, nil),
	}
}

// SelectorHook returns the event hook to give a Selector:
// mtls.WithEventHook(c.SelectorHook()).
func (c *Collector) SelectorHook() func(mtls.Event) {
	return func(e mtls.Event) { c.observe("upstream", e) }
}

// ServerHook returns the event hook to give a Server.
func (c *Collector) ServerHook() func(mtls.Event) {
	return func(e mtls.Event) { c.observe("downstream", e) }
}

func (c *Collector) observe(side string, e mtls.Event) {
	switch e.Kind {
	case mtls.CertificateChosen:
		c.handshakes.WithLabelValues(side, "certificate_presented").Inc()
	case mtls.PinMismatch:
		c.handshakes.WithLabelValues(side, "pin_mismatch").Inc()
		c.mismatches.Inc()
	case mtls.ServerCertificateChosen:
		c.handshakes.WithLabelValues(side, "server_certificate_chosen").Inc()
	case mtls.ClientRefused:
		c.handshakes.WithLabelValues(side, "client_refused").Inc()
		c.refusals.WithLabelValues(e.API, e.Reason).Inc()
	case mtls.FailedClosed:
		if side == "downstream" {
			c.handshakes.WithLabelValues(side, "failed_closed").Inc()
		}
		c.failedClosed.WithLabelValues(side, e.Reason).Inc()
	case mtls.PoolRetired:
		c.retired.Inc()
	case mtls.CertificateExpiring:
		c.expiryEvents.WithLabelValues("expiring").Inc()
	case mtls.CertificateExpired:
		c.expiryEvents.WithLabelValues("expired").Inc()
	}
}

// AddSelector adds the certificates of sel's inventory to the expiry
// gauges (a gateway-level selector's inventory holds its APIs' too).
func (c *Collector) AddSelector(sel *mtls.Selector) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.selectors = append(c.selectors, sel)
}

// AddServer adds the certificates of srv's inventory to the expiry gauges.
func (c *Collector) AddServer(srv *mtls.Server) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.servers = append(c.servers, srv)
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	c.handshakes.Describe(ch)
	c.mismatches.Describe(ch)
	c.failedClosed.Describe(ch)
	c.refusals.Describe(ch)
	c.retired.Describe(ch)
	c.expiryEvents.Describe(ch)
	ch <- c.expiry
	ch <- c.unreadable
}

// Collect implements prometheus.Collector. It reads the inventories now.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	c.handshakes.Collect(ch)
	c.mismatches.Collect(ch)
	c.failedClosed.Collect(ch)
	c.refusals.Collect(ch)
	c.retired.Collect(ch)
	c.expiryEvents.Collect(ch)
	c.mu.Lock()
	selectors, servers := append([]*mtls.Selector(nil), c.selectors...), append([]*mtls.Server(nil), c.servers...)
	c.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	now := time.Now()
	seen := map[string]bool{}
	for _, sel := range selectors {
		c.collectUses(ch, "upstream", sel.Inventory(ctx), now, seen)
	}
	for _, srv := range servers {
		c.collectUses(ch, "downstream", srv.Inventory(ctx), now, seen)
	}
}

func (c *Collector) collectUses(ch chan<- prometheus.Metric, side string, uses []mtls.CertificateUse, now time.Time, seen map[string]bool) {
	for _, u := range uses {
		level := ""
		if u.Level != 0 {
			level = u.Level.String()
		}
		key := strings.Join([]string{side, u.Field, level, u.Pattern, u.ID}, "\x00")
		if seen[key] {
			continue // one series per label set
		}
		seen[key] = true
		switch {
		case u.Err != nil:
			ch <- prometheus.MustNewConstMetric(c.unreadable, prometheus.GaugeValue, 1, side, u.Field, level, u.Pattern)
		case !u.NotAfter.IsZero():
			ch <- prometheus.MustNewConstMetric(c.expiry, prometheus.GaugeValue, u.NotAfter.Sub(now).Seconds(),
				side, u.Field, level, u.Pattern, u.ID, u.Subject)
		}
	}
}

var _ prometheus.Collector = (*Collector)(nil)
