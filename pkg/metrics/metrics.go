// Package metrics exposes PiSeduce's Prometheus metrics. Each daemon has its own set on its own
// registry (no global state) and exports only its own series; both add the Go runtime and
// process collectors and piseduce_build_info.
//
// pitasks (Tasks, the engine's Observer):
//
//	piseduce_state_duration_seconds{process,state,outcome}  histogram, a state ended (done, lost, failed)
//	piseduce_state_failures_total{process,state,reason}     counter, reason retry, reboot, lost or failed
//	piseduce_snmp_errors_total{process,state}               counter, a step failed on the switch (pkg/power)
//	piseduce_ssh_errors_total{process,state,kind}           counter, a step failed over SSH (pkg/remote):
//	                                                        kind connection, hostkey or command
//	piseduce_copy_bytes_total                               counter, image bytes written to the nodes' cards
//	                                                        (rate(...) is the copy throughput)
//	piseduce_tick_duration_seconds                          histogram, one engine tick
//	piseduce_last_tick_timestamp_seconds                    gauge, when the last tick ended (Unix time)
//	piseduce_leases_held                                    gauge, deployments this pitasks works on now
//
// pifrontend (Frontend):
//
//	piseduce_http_requests_total{route,method,code}         counter, code is the class: 2xx, 3xx, 4xx, 5xx
//	piseduce_http_request_duration_seconds{route,method}    histogram; route is the pattern, e.g. /nodes/:id
//	piseduce_deployments{process,state}                     gauge, read from the database at scrape time; state
//	                                                        "queued": waiting for a worker
//	piseduce_reservations_held                              gauge, reservations running now (database)
//	piseduce_nodes_reserved                                 gauge, nodes those reservations hold (database)
//	piseduce_last_tick_timestamp_seconds                    gauge, the latest tick of any pitasks (database:
//	                                                        its heartbeat; absent until one ran)
//	piseduce_workers_alive                                  gauge, pitasks processes that ticked within three
//	                                                        of their ticks (database)
//
// both:
//
//	piseduce_build_info{version,commit,build_date,goversion}  gauge, always 1
package metrics

import (
	"context"
	"errors"
	"net/http"
	"regexp"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/piseduce/piseduce/pkg/errkind"
	"github.com/piseduce/piseduce/pkg/process"
	"github.com/piseduce/piseduce/pkg/store"
	"github.com/piseduce/piseduce/pkg/version"
)

const namespace = "piseduce"

// newRegistry is a registry with what every daemon exports: the Go runtime, the process and
// the build.
func newRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	v := version.Get()
	reg.MustRegister(
		// Without GOGC and GOMEMLIMIT: settings, not measures, whose help text names
		// runtime/debug, which pifrontend's tests look for as a leaked stack trace.
		collectors.NewGoCollector(collectors.WithoutGoCollectorRuntimeMetrics(regexp.MustCompile(`^/gc/(gogc|gomemlimit):`))),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: namespace, Name: "build_info",
			Help: "Always 1; the labels say which build of PiSeduce this daemon is.",
			ConstLabels: prometheus.Labels{"version": v.Version, "commit": v.Commit, "build_date": v.Date,
				"goversion": v.GoVersion},
		}, func() float64 { return 1 }))
	return reg
}

// handler serves reg in the Prometheus text format. A collector that fails (the database is
// down) is reported and left out; the others are still served.
func handler(reg *prometheus.Registry) http.Handler {
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg, ErrorHandling: promhttp.ContinueOnError})
}

// Tasks is pitasks' set of metrics. Its Observer methods (StateEnded, StepError, Tick,
// Progress) make it an engine.Observer.
type Tasks struct {
	reg        *prometheus.Registry
	stateDur   *prometheus.HistogramVec
	failures   *prometheus.CounterVec
	snmpErrors *prometheus.CounterVec
	sshErrors  *prometheus.CounterVec
	copyBytes  prometheus.Counter
	tick       prometheus.Histogram
	lastTick   prometheus.Gauge
}

// NewTasks returns pitasks' metrics, registered on a new registry.
func NewTasks() *Tasks {
	m := &Tasks{
		reg: newRegistry(),
		stateDur: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Name: "state_duration_seconds",
			Help:    "Time from the start of a state to its end (outcome done, lost or failed).",
			Buckets: []float64{0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1200, 1800, 3600},
		}, []string{"process", "state", "outcome"}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "state_failures_total",
			Help: "States that did not go well, by reason: retry (a failed attempt), reboot (a hard reboot after a timeout), lost, failed.",
		}, []string{"process", "state", "reason"}),
		snmpErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "snmp_errors_total",
			Help: "Failed steps whose error came from a PoE switch (no answer, SNMP error, bad credentials, read-back).",
		}, []string{"process", "state"}),
		sshErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "ssh_errors_total",
			Help: "Failed steps whose error came from SSH to a node: kind connection, hostkey or command (a remote command that exited non-zero).",
		}, []string{"process", "state", "kind"}),
		copyBytes: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: namespace, Name: "copy_bytes_total",
			Help: "Image bytes copied to the nodes' SD cards (counted at every progress write, about once a second); its rate is the copy throughput.",
		}),
		tick: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: namespace, Name: "tick_duration_seconds",
			Help:    "Wall-clock time of one engine tick (expired reservations, leasing, handing out work).",
			Buckets: prometheus.ExponentialBuckets(0.0005, 4, 10), // 0.5 ms .. 131 s
		}),
		lastTick: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: namespace, Name: "last_tick_timestamp_seconds",
			Help: "When the last engine tick ended, in seconds since the Unix epoch (0: none yet).",
		}),
	}
	m.reg.MustRegister(m.stateDur, m.failures, m.snmpErrors, m.sshErrors, m.copyBytes, m.tick, m.lastTick)
	return m
}

// Registry is where the collectors are registered (tests gather from it).
func (m *Tasks) Registry() *prometheus.Registry { return m.reg }

// Handler serves the metrics in the Prometheus text format.
func (m *Tasks) Handler() http.Handler { return handler(m.reg) }

// WatchLeases adds piseduce_leases_held, read from held (engine.Busy) at each scrape.
func (m *Tasks) WatchLeases(held func() int) {
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace: namespace, Name: "leases_held",
		Help: "Deployments this pitasks holds a lease on and works on now.",
	}, func() float64 { return float64(held()) }))
}

// StateEnded records a StateEvent: the duration of a state that ended, the failures by reason.
func (m *Tasks) StateEnded(proc string, st process.StateName, outcome string, d time.Duration) {
	state := string(st)
	switch outcome {
	case store.OutcomeDone:
		m.stateDur.WithLabelValues(proc, state, outcome).Observe(d.Seconds())
	case store.OutcomeLost, store.OutcomeFailed:
		m.stateDur.WithLabelValues(proc, state, outcome).Observe(d.Seconds())
		m.failures.WithLabelValues(proc, state, outcome).Inc()
	case store.OutcomeRetry, store.OutcomeReboot:
		m.failures.WithLabelValues(proc, state, outcome).Inc()
	}
}

// StepError counts err as an SNMP or an SSH error when it came from pkg/power or pkg/remote.
func (m *Tasks) StepError(proc string, st process.StateName, err error) {
	state := string(st)
	switch Origin(err) {
	case OriginSNMP:
		m.snmpErrors.WithLabelValues(proc, state).Inc()
	case OriginSSHHostKey:
		m.sshErrors.WithLabelValues(proc, state, "hostkey").Inc()
	case OriginSSHCommand:
		m.sshErrors.WithLabelValues(proc, state, "command").Inc()
	case OriginSSH:
		m.sshErrors.WithLabelValues(proc, state, "connection").Inc()
	}
}

// Tick records one engine tick that ended now and took d.
func (m *Tasks) Tick(d time.Duration) {
	m.tick.Observe(d.Seconds())
	m.lastTick.SetToCurrentTime()
}

// Progress counts bytes copied since the previous progress write.
func (m *Tasks) Progress(bytes int64) {
	if bytes > 0 {
		m.copyBytes.Add(float64(bytes))
	}
}

// Origins of a step's error, as told by Origin.
const (
	OriginOther      = ""
	OriginSNMP       = "snmp"
	OriginSSH        = "ssh"
	OriginSSHHostKey = "ssh_hostkey"
	OriginSSHCommand = "ssh_command"
)

// Origin tells where err came from, by its kind (errors.Is/As, never its text): a switch
// (its pkg/power error), SSH (pkg/remote: a host key refused, a command that failed on the
// node, a node unreachable — dial, handshake, session), or elsewhere.
func Origin(err error) string {
	if err == nil {
		return OriginOther
	}
	for _, e := range errkind.Switch() {
		if errors.Is(err, e) {
			return OriginSNMP
		}
	}
	switch {
	case errors.Is(err, errkind.NoHostKey) || errors.Is(err, errkind.HostKeyMismatch):
		return OriginSSHHostKey
	case errors.Is(err, errkind.CommandFailed):
		return OriginSSHCommand
	case errors.Is(err, errkind.NodeUnreachable):
		return OriginSSH
	}
	return OriginOther
}

// Frontend is pifrontend's set of metrics: its HTTP requests, and what the database holds.
type Frontend struct {
	reg      *prometheus.Registry
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

// NewFrontend returns pifrontend's metrics on a new registry; the database gauges are counted
// in st at each scrape, as of now().
func NewFrontend(st *store.Store, now func() time.Time) *Frontend {
	m := &Frontend{
		reg: newRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "http_requests_total",
			Help: "HTTP requests answered, by route pattern (e.g. /nodes/:id; \"unmatched\" for no route), method and status class (2xx…5xx).",
		}, []string{"route", "method", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Name: "http_request_duration_seconds",
			Help:    "Time to answer an HTTP request, by route pattern and method.",
			Buckets: []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30},
		}, []string{"route", "method"}),
	}
	m.reg.MustRegister(m.requests, m.duration, &storeCollector{st: st, now: now,
		deployments: prometheus.NewDesc(namespace+"_deployments",
			"Deployments now in each process and state, or queued for a worker (from the database).", []string{"process", "state"}, nil),
		reservations: prometheus.NewDesc(namespace+"_reservations_held",
			"Reservations that have started and not ended (from the database).", nil, nil),
		nodes: prometheus.NewDesc(namespace+"_nodes_reserved",
			"Nodes held by the reservations running now (from the database).", nil, nil),
		lastTick: prometheus.NewDesc(namespace+"_last_tick_timestamp_seconds",
			"When the latest tick of any pitasks ended, Unix time (from the database: the pitasks heartbeats).", nil, nil),
		workers: prometheus.NewDesc(namespace+"_workers_alive",
			"pitasks processes that ticked within three of their ticks (from the database).", nil, nil),
	})
	return m
}

// Registry is where the collectors are registered (tests gather from it).
func (m *Frontend) Registry() *prometheus.Registry { return m.reg }

// Handler serves the metrics in the Prometheus text format.
func (m *Frontend) Handler() http.Handler { return handler(m.reg) }

// Request records one answered HTTP request: route is the route's pattern, never the path a
// visitor typed (that would make a series per URL).
func (m *Frontend) Request(route, method string, status int, d time.Duration) {
	m.requests.WithLabelValues(route, method, strconv.Itoa(status/100)+"xx").Inc()
	m.duration.WithLabelValues(route, method).Observe(d.Seconds())
}

// storeCollector reads the database's gauges at each scrape, with one query each.
type storeCollector struct {
	st                                                  *store.Store
	now                                                 func() time.Time
	deployments, reservations, nodes, lastTick, workers *prometheus.Desc
}

func (c *storeCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.deployments
	ch <- c.reservations
	ch <- c.nodes
	ch <- c.lastTick
	ch <- c.workers
}

func (c *storeCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if counts, err := c.st.DeploymentCounts(ctx); err != nil {
		ch <- prometheus.NewInvalidMetric(c.deployments, err)
	} else {
		for _, n := range counts {
			ch <- prometheus.MustNewConstMetric(c.deployments, prometheus.GaugeValue, float64(n.Count), n.Process, n.State)
		}
	}
	if w, err := c.st.WorkerHealth(ctx, c.now()); err != nil {
		ch <- prometheus.NewInvalidMetric(c.workers, err)
	} else {
		ch <- prometheus.MustNewConstMetric(c.workers, prometheus.GaugeValue, float64(w.Alive))
		if !w.LastTick.IsZero() {
			ch <- prometheus.MustNewConstMetric(c.lastTick, prometheus.GaugeValue, float64(w.LastTick.UnixNano())/1e9)
		}
	}
	held, err := c.st.HeldReservations(ctx, c.now())
	if err != nil {
		ch <- prometheus.NewInvalidMetric(c.reservations, err)
		ch <- prometheus.NewInvalidMetric(c.nodes, err)
		return
	}
	ch <- prometheus.MustNewConstMetric(c.reservations, prometheus.GaugeValue, float64(held.Reservations))
	ch <- prometheus.MustNewConstMetric(c.nodes, prometheus.GaugeValue, float64(held.Nodes))
}
