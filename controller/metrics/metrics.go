// Package metrics holds the controller's Prometheus collectors, on a
// registry of their own (never the global one), and serves them in the
// Prometheus text format.
//
// Metrics is fed by the hub (it implements hub.Observer), by the API's
// request middleware (ObserveRequest) and, at scrape time, by counts in the
// database (Config.Forwards, Accesses, ClockOff, Tunnels). It must not import the hub
// or the API; they import it, or only its interfaces.
//
// Every name starts with tpf_; README.md ("Operations") lists them. The
// hub's gauges and counters are per controller replica (sum them across
// replicas); tpf_forwards, tpf_accesses, tpf_routers_clock_off and
// tpf_tunnels are read from the shared database, so every replica reports the same numbers (take
// one, or max, never the sum).
package metrics

import (
	"context"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/tpf-dev/tpf/controller/fleet"
	"github.com/tpf-dev/tpf/controller/store"
)

// DefaultScrapeTimeout bounds the database count behind tpf_forwards.
const DefaultScrapeTimeout = 5 * time.Second

// Config configures Metrics. The zero value is ready to use: it serves every
// metric but those read from the database (tpf_forwards,
// tpf_routers_clock_off, tpf_tunnels) and tpf_db_retries_total.
type Config struct {
	// Forwards counts the unfinished forwards at scrape time
	// (store.Store.CountForwards at the current time); nil leaves
	// tpf_forwards out.
	Forwards func(ctx context.Context) ([]store.ForwardCount, error)
	// Accesses counts the live transient accesses at scrape time
	// (store.Store.CountAccesses at the current time); nil leaves
	// tpf_accesses out.
	Accesses func(ctx context.Context) ([]store.AccessCount, error)
	// ClockOff counts the routers whose clock is off the controller's by
	// more than fleet.ClockWarnAfter (store.Store.CountRoutersClockOff);
	// nil leaves tpf_routers_clock_off out.
	ClockOff func(ctx context.Context) (int64, error)
	// Tunnels counts the routers of regions with a managed tunnel by the
	// state of their end of it at scrape time, keyed by fleet.TunnelUp,
	// TunnelDown and TunnelNever (a state missing from the map counts 0;
	// other keys are ignored); nil leaves tpf_tunnels out.
	Tunnels func(ctx context.Context) (map[string]int64, error)
	// DBRetries reads how many database transactions were retried
	// (store.Store.Retries); nil leaves tpf_db_retries_total out.
	DBRetries func() int64
	// ScrapeTimeout bounds one call of Forwards, Accesses, ClockOff or Tunnels; zero
	// means DefaultScrapeTimeout.
	ScrapeTimeout time.Duration
	// Logger receives scrape errors; nil discards.
	Logger *slog.Logger
}

// Metrics is the controller's set of collectors. Create it with New; its
// methods are safe for concurrent use.
type Metrics struct {
	reg *prometheus.Registry
	log *slog.Logger

	agents          prometheus.Gauge
	edges           prometheus.Gauge
	reconcileErrors *prometheus.CounterVec
	timeToActive    prometheus.Histogram
	edgeConnections *prometheus.CounterVec
	edgeBytes       *prometheus.CounterVec
	requests        *prometheus.HistogramVec
}

// Label values of tpf_reconcile_errors_total.
const (
	PeerAgent = "agent"
	PeerEdge  = "edge"
	// KindPass: the agent or edge could not apply its set at all.
	KindPass = "pass"
	// KindRefused and KindFailed: one forward was refused (the agent's own
	// checks) or failed (the router or the edge's listener said no).
	KindRefused = "refused"
	KindFailed  = "failed"
)

// New returns Metrics with every collector registered on a new registry,
// along with the Go runtime's and the process's collectors.
func New(cfg Config) *Metrics {
	if cfg.ScrapeTimeout <= 0 {
		cfg.ScrapeTimeout = DefaultScrapeTimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		log: cfg.Logger,
		agents: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "tpf_agents_connected",
			Help: "Router agents connected to this controller replica.",
		}),
		edges: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "tpf_edges_connected",
			Help: "Regional edges connected to this controller replica (the embedded edge included).",
		}),
		reconcileErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tpf_reconcile_errors_total",
			Help: "Errors in agents' and edges' reports: peer is agent or edge; kind is pass (the whole set failed), refused or failed (one forward). Every report counts, so a lasting failure keeps the rate above zero.",
		}, []string{"peer", "kind"}),
		timeToActive: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "tpf_forward_time_to_active_seconds",
			Help:    "Seconds from a forward's creation (created_at, whole seconds) to the report that made it active.",
			Buckets: []float64{0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600},
		}),
		edgeConnections: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tpf_edge_connections_total",
			Help: "Connections through the edges that ended (or were refused), by region and why they ended.",
		}, []string{"region", "reason"}),
		edgeBytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tpf_edge_bytes_total",
			Help: "Bytes relayed by the edges' ended connections, by region and direction (up: client to device, down: device to client).",
		}, []string{"region", "direction"}),
		requests: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "tpf_http_request_duration_seconds",
			Help:    "API requests by method, route pattern (as routes.go registers it) and status code. Websocket links are not counted.",
			Buckets: []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10},
		}, []string{"method", "route", "code"}),
	}
	m.reg.MustRegister(m.agents, m.edges, m.reconcileErrors, m.timeToActive, m.edgeConnections, m.edgeBytes, m.requests,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if cfg.Forwards != nil {
		m.reg.MustRegister(&forwardsCollector{count: cfg.Forwards, timeout: cfg.ScrapeTimeout})
	}
	if cfg.Accesses != nil {
		m.reg.MustRegister(&accessesCollector{count: cfg.Accesses, timeout: cfg.ScrapeTimeout})
	}
	if cfg.ClockOff != nil {
		m.reg.MustRegister(&countCollector{count: cfg.ClockOff, timeout: cfg.ScrapeTimeout, desc: clockOffDesc})
	}
	if cfg.Tunnels != nil {
		m.reg.MustRegister(&tunnelsCollector{count: cfg.Tunnels, timeout: cfg.ScrapeTimeout})
	}
	if cfg.DBRetries != nil {
		m.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "tpf_db_retries_total",
			Help: "Database transactions this replica ran again after a deadlock, a serialization failure or a lock timeout.",
		}, func() float64 { return float64(cfg.DBRetries()) }))
	}
	for _, peer := range []string{PeerAgent, PeerEdge} {
		for _, kind := range []string{KindPass, KindRefused, KindFailed} {
			m.reconcileErrors.WithLabelValues(peer, kind) // present at zero from the start
		}
	}
	return m
}

// Registry is the registry the collectors are on, for tests and for adding
// collectors of other parts of the controller.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the metrics in the Prometheus text format. It does no
// authentication; the API puts TPF_METRICS_TOKEN in front of it.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{
		ErrorLog:      slog.NewLogLogger(m.log.Handler(), slog.LevelWarn),
		ErrorHandling: promhttp.ContinueOnError,
	})
}

// The methods below implement hub.Observer.

// PeerUp counts a connected peer; peer is PeerAgent or PeerEdge.
func (m *Metrics) PeerUp(peer string) { m.peerGauge(peer).Inc() }

// PeerDown counts a peer gone away; peer is PeerAgent or PeerEdge.
func (m *Metrics) PeerDown(peer string) { m.peerGauge(peer).Dec() }

func (m *Metrics) peerGauge(peer string) prometheus.Gauge {
	if peer == PeerEdge {
		return m.edges
	}
	return m.agents
}

// ReconcileError counts one error in a report of peer (PeerAgent or
// PeerEdge) of kind KindPass, KindRefused or KindFailed.
func (m *Metrics) ReconcileError(peer, kind string) {
	m.reconcileErrors.WithLabelValues(peer, kind).Inc()
}

// ForwardActivated observes the time a forward took to become active.
func (m *Metrics) ForwardActivated(wait time.Duration) {
	m.timeToActive.Observe(max(wait, 0).Seconds())
}

// ConnectionEnded counts a connection an edge of region reports ended, with
// its bytes each way.
func (m *Metrics) ConnectionEnded(region, reason string, bytesUp, bytesDown int64) {
	m.edgeConnections.WithLabelValues(region, ConnectionReason(reason)).Inc()
	m.edgeBytes.WithLabelValues(region, "up").Add(float64(max(bytesUp, 0)))
	m.edgeBytes.WithLabelValues(region, "down").Add(float64(max(bytesDown, 0)))
}

// connectionReasons maps the reasons edges report (package edge and its
// relay) to label values; anything else is "other", so a peer cannot grow
// the label set.
var connectionReasons = map[string]string{
	"client closed":                 "client_closed",
	"target closed":                 "target_closed",
	"idle timeout":                  "idle_timeout",
	"cut":                           "cut",
	"shutdown":                      "shutdown",
	"error":                         "error",
	"unreachable":                   "unreachable",
	"expired":                       "expired",
	"no forward":                    "no_forward",
	"refused: too many connections": "too_many_connections",
}

// ConnectionReason is the label value of tpf_edge_connections_total for a
// reason an edge reports.
func ConnectionReason(reason string) string {
	if v, ok := connectionReasons[reason]; ok {
		return v
	}
	return "other"
}

// ObserveRequest records one API request: method, route (the ServeMux
// pattern it matched, "" when none), status code and duration.
func (m *Metrics) ObserveRequest(method, route string, code int, d time.Duration) {
	if route == "" {
		route = "unmatched"
	}
	m.requests.WithLabelValues(requestMethod(method), route, strconv.Itoa(code)).Observe(d.Seconds())
}

// requestMethod keeps the method label to the methods HTTP defines.
func requestMethod(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions, http.MethodConnect, http.MethodTrace:
		return m
	}
	return "other"
}

// forwardsCollector reads tpf_forwards from the database at scrape time.
type forwardsCollector struct {
	count   func(ctx context.Context) ([]store.ForwardCount, error)
	timeout time.Duration
}

var forwardsDesc = prometheus.NewDesc("tpf_forwards",
	"Unfinished forwards by region and status (pending, active, removing) as the API shows them, read from the database at scrape time; the same on every replica.",
	[]string{"region", "status"}, nil)

// forwardStatuses are the statuses tpf_forwards always has, at zero too.
var forwardStatuses = []fleet.Status{fleet.StatusPending, fleet.StatusActive, fleet.StatusRemoving}

func (c *forwardsCollector) Describe(ch chan<- *prometheus.Desc) { ch <- forwardsDesc }

func (c *forwardsCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	counts, err := c.count(ctx)
	if err != nil {
		// The rest of the scrape is still served; promhttp logs this too.
		ch <- prometheus.NewInvalidMetric(forwardsDesc, err)
		return
	}
	type key struct {
		region string
		status fleet.Status
	}
	n := map[key]int64{}
	var regions []string
	for _, fc := range counts {
		if _, seen := n[key{fc.Region, fleet.StatusPending}]; !seen {
			regions = append(regions, fc.Region)
			for _, s := range forwardStatuses {
				n[key{fc.Region, s}] = 0
			}
		}
		if fc.Status != "" {
			n[key{fc.Region, fc.Status}] += fc.Forwards
		}
	}
	for _, r := range regions {
		for _, s := range forwardStatuses {
			ch <- prometheus.MustNewConstMetric(forwardsDesc, prometheus.GaugeValue, float64(n[key{r, s}]), r, string(s))
		}
	}
}

var accessesDesc = prometheus.NewDesc("tpf_accesses",
	"Live transient accesses (WinBox and SSH logins to routers) by region and service, read from the database at scrape time; the same on every replica. Pairs without one are absent.",
	[]string{"region", "service"}, nil)

// accessesCollector reads tpf_accesses from the database at scrape time.
type accessesCollector struct {
	count   func(ctx context.Context) ([]store.AccessCount, error)
	timeout time.Duration
}

func (c *accessesCollector) Describe(ch chan<- *prometheus.Desc) { ch <- accessesDesc }

func (c *accessesCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	counts, err := c.count(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(accessesDesc, err)
		return
	}
	for _, ac := range counts {
		ch <- prometheus.MustNewConstMetric(accessesDesc, prometheus.GaugeValue, float64(ac.Accesses), ac.Region, ac.Service)
	}
}

var clockOffDesc = prometheus.NewDesc("tpf_routers_clock_off",
	"Routers whose clock their agent last measured more than 5 seconds off the controller's, read from the database at scrape time; the same on every replica. Their agents decide expiry on the controller's time, but the router's own logs and TLS checks run on the wrong one: configure NTP.",
	nil, nil)

// countCollector reads one gauge from the database at scrape time.
type countCollector struct {
	count   func(ctx context.Context) (int64, error)
	timeout time.Duration
	desc    *prometheus.Desc
}

func (c *countCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *countCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	n, err := c.count(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(c.desc, err)
		return
	}
	ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(n))
}

var tunnelsDesc = prometheus.NewDesc("tpf_tunnels",
	"Routers of regions whose tunnel tpf manages, by the state of their end of it: up (a handshake with the edge within 3 minutes), down (one before that) or never; read from the database at scrape time, the same on every replica.",
	[]string{"state"}, nil)

// tunnelStates are the states tpf_tunnels always has, at zero too.
var tunnelStates = []string{fleet.TunnelUp, fleet.TunnelDown, fleet.TunnelNever}

// tunnelsCollector reads tpf_tunnels from the database at scrape time.
type tunnelsCollector struct {
	count   func(ctx context.Context) (map[string]int64, error)
	timeout time.Duration
}

func (c *tunnelsCollector) Describe(ch chan<- *prometheus.Desc) { ch <- tunnelsDesc }

func (c *tunnelsCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	n, err := c.count(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(tunnelsDesc, err)
		return
	}
	for _, s := range tunnelStates {
		ch <- prometheus.MustNewConstMetric(tunnelsDesc, prometheus.GaugeValue, float64(n[s]), s)
	}
}
