// Package metrics exposes PiSeduce's Prometheus metrics. A Metrics holds its own registry
// (no global state): pitasks gives it to the engine as its Observer and serves it on /metrics;
// pifrontend serves the database view (deployments by state) the same way.
//
//	piseduce_deployments{process,state}                     gauge, read from the database at scrape time; state
//	                                                        "queued": waiting for a worker
//	piseduce_state_duration_seconds{process,state,outcome}  histogram, a state ended (done, lost, failed)
//	piseduce_state_failures_total{process,state,reason}     counter, reason retry, reboot, lost or failed
//	piseduce_snmp_errors_total{process,state}               counter, a step failed on the switch (pkg/power)
//	piseduce_ssh_errors_total{process,state,kind}           counter, a step failed over SSH (pkg/remote):
//	                                                        kind connection, hostkey or command
//	piseduce_copy_throughput_bytes_per_second               histogram, every progress write of env_copy
//	piseduce_tick_duration_seconds                          histogram, one engine tick
//	piseduce_leases_held                                    gauge, deployments this pitasks works on now
//
// plus the Go runtime and process collectors.
package metrics

import (
	"context"
	"errors"
	"net/http"
	"regexp"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/piseduce/piseduce/pkg/power"
	"github.com/piseduce/piseduce/pkg/remote"
	"github.com/piseduce/piseduce/pkg/store"
)

const namespace = "piseduce"

// Metrics is one daemon's set of collectors and the registry that holds them. Its Observer
// methods (StateEnded, StepError, Tick, Progress) make it an engine.Observer.
type Metrics struct {
	reg        *prometheus.Registry
	stateDur   *prometheus.HistogramVec
	failures   *prometheus.CounterVec
	snmpErrors *prometheus.CounterVec
	sshErrors  *prometheus.CounterVec
	throughput prometheus.Histogram
	tick       prometheus.Histogram
}

// New returns the metrics of the engine and the Go runtime, registered on a new registry.
func New() *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
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
		throughput: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: namespace, Name: "copy_throughput_bytes_per_second",
			Help:    "Image copy throughput, observed at every progress write (about once a second).",
			Buckets: prometheus.ExponentialBuckets(64*1024, 2, 14), // 64 KiB/s .. 512 MiB/s
		}),
		tick: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: namespace, Name: "tick_duration_seconds",
			Help:    "Wall-clock time of one engine tick (expired reservations, leasing, handing out work).",
			Buckets: prometheus.ExponentialBuckets(0.0005, 4, 10), // 0.5 ms .. 131 s
		}),
	}
	m.reg.MustRegister(m.stateDur, m.failures, m.snmpErrors, m.sshErrors, m.throughput, m.tick,
		// Without GOGC and GOMEMLIMIT: settings, not measures, whose help text names
		// runtime/debug, which pifrontend's tests look for as a leaked stack trace.
		collectors.NewGoCollector(collectors.WithoutGoCollectorRuntimeMetrics(regexp.MustCompile(`^/gc/(gogc|gomemlimit):`))),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Registry is where the collectors are registered (tests gather from it).
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the metrics in the Prometheus text format. A collector that fails (the
// database is down) is reported and left out; the others are still served.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg, ErrorHandling: promhttp.ContinueOnError})
}

// WatchStore adds piseduce_deployments{process,state}, counted in the database at each scrape.
func (m *Metrics) WatchStore(st *store.Store) {
	m.reg.MustRegister(&deploymentsCollector{st: st, desc: prometheus.NewDesc(namespace+"_deployments",
		"Deployments now in each process and state, or queued for a worker (from the database, shared by every daemon).",
		[]string{"process", "state"}, nil)})
}

// WatchLeases adds piseduce_leases_held, read from held (engine.Busy) at each scrape.
func (m *Metrics) WatchLeases(held func() int) {
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace: namespace, Name: "leases_held",
		Help: "Deployments this pitasks holds a lease on and works on now.",
	}, func() float64 { return float64(held()) }))
}

// StateEnded records a StateEvent: the duration of a state that ended, the failures by reason.
func (m *Metrics) StateEnded(process, state, outcome string, d time.Duration) {
	switch outcome {
	case store.OutcomeDone:
		m.stateDur.WithLabelValues(process, state, outcome).Observe(d.Seconds())
	case store.OutcomeLost, store.OutcomeFailed:
		m.stateDur.WithLabelValues(process, state, outcome).Observe(d.Seconds())
		m.failures.WithLabelValues(process, state, outcome).Inc()
	case store.OutcomeRetry, store.OutcomeReboot:
		m.failures.WithLabelValues(process, state, outcome).Inc()
	}
}

// StepError counts err as an SNMP or an SSH error when it came from pkg/power or pkg/remote.
func (m *Metrics) StepError(process, state string, err error) {
	switch Origin(err) {
	case OriginSNMP:
		m.snmpErrors.WithLabelValues(process, state).Inc()
	case OriginSSHHostKey:
		m.sshErrors.WithLabelValues(process, state, "hostkey").Inc()
	case OriginSSHCommand:
		m.sshErrors.WithLabelValues(process, state, "command").Inc()
	case OriginSSH:
		m.sshErrors.WithLabelValues(process, state, "connection").Inc()
	}
}

// Tick records the duration of one engine tick.
func (m *Metrics) Tick(d time.Duration) { m.tick.Observe(d.Seconds()) }

// Progress records one copy throughput measure.
func (m *Metrics) Progress(bytesPerSec float64) {
	if bytesPerSec >= 0 {
		m.throughput.Observe(bytesPerSec)
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

// snmpErrors are the pkg/power errors of talking to a switch (not of a bad configuration).
var snmpErrors = []error{power.ErrNoAnswer, power.ErrAuth, power.ErrSNMP, power.ErrNoSuchPort,
	power.ErrBadValue, power.ErrReadBack, power.ErrCycleAborted}

// Origin tells where err came from: a switch (its pkg/power error), SSH (pkg/remote: a
// host key refused, a command that failed on the node, or else any error pkg/remote wrote,
// whose text starts with "remote: " — dial, handshake, session), or elsewhere.
func Origin(err error) string {
	if err == nil {
		return OriginOther
	}
	for _, e := range snmpErrors {
		if errors.Is(err, e) {
			return OriginSNMP
		}
	}
	var exit *remote.ExitError
	switch {
	case errors.Is(err, remote.ErrNoHostKey) || errors.Is(err, remote.ErrHostKeyMismatch):
		return OriginSSHHostKey
	case errors.As(err, &exit):
		return OriginSSHCommand
	case strings.Contains(err.Error(), "remote: "):
		return OriginSSH
	}
	return OriginOther
}

// deploymentsCollector counts deployments by process and state with one GROUP BY per scrape.
type deploymentsCollector struct {
	st   *store.Store
	desc *prometheus.Desc
}

func (c *deploymentsCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *deploymentsCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	counts, err := c.st.DeploymentCounts(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(c.desc, err)
		return
	}
	for _, n := range counts {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(n.Count), n.Process, n.State)
	}
}
