package hub

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/kubedoio/n-kudo/internal/agentproto"
)

// Refusal reasons, the label values of the handshake refusal counter.
const (
	refuseNoTLS        = "no_tls"
	refuseTLSVersion   = "tls_version"
	refuseNoClientCert = "no_client_cert"
	refuseNotWebSocket = "not_websocket"
	refuseSubprotocol  = "subprotocol"
	refuseIdentity     = "bad_identity"
	refuseUnknownAgent = "unknown_agent"
	refuseRevoked      = "revoked"
	refuseSerial       = "cert_superseded"
	refuseMismatch     = "identity_mismatch"
	refuseStore        = "store_unavailable"
	refuseShutdown     = "shutting_down"
	refuseCapability   = "capability_too_old"
	refuseNoHello      = "no_hello"
	refuseOverloaded   = "overloaded"
	refuseAddressBusy  = "address_handshakes"
	refuseAgentBusy    = "agent_handshakes"
)

var refusalReasons = []string{
	refuseNoTLS, refuseTLSVersion, refuseNoClientCert, refuseNotWebSocket, refuseSubprotocol,
	refuseIdentity, refuseUnknownAgent, refuseRevoked, refuseSerial, refuseMismatch,
	refuseStore, refuseShutdown, refuseCapability, refuseNoHello, refuseOverloaded,
	refuseAddressBusy, refuseAgentBusy,
}

var frameTypes = []string{
	agentproto.TypeHello, agentproto.TypeHeartbeat, agentproto.TypeActionResult,
	agentproto.TypeLogBatch, agentproto.TypeCertRenew, agentproto.TypePlanAck,
	agentproto.TypeConsoleData, agentproto.TypeHelloAck, agentproto.TypePlan,
	agentproto.TypeResultAck, agentproto.TypeLogAck, agentproto.TypeCertRenewed,
	agentproto.TypeRevoked, agentproto.TypeConsoleStart, agentproto.TypeConsoleStop,
	agentproto.TypeError,
}

// metrics are the hub's Prometheus collectors. Per-type counters are
// resolved once here into read-only maps, so counting a frame costs a map
// read and an atomic add, not a label hash.
type metrics struct {
	sessions            prometheus.Gauge
	framesIn            map[string]prometheus.Counter
	framesOut           map[string]prometheus.Counter
	heartbeatsFlushed   prometheus.Counter
	logLinesPersisted   prometheus.Counter
	flushDuration       *prometheus.HistogramVec
	flushErrors         *prometheus.CounterVec
	slowConsumerCloses  prometheus.Counter
	refusals            map[string]prometheus.Counter
	subscribersDropped  prometheus.Counter
	agentsMarkedOffline prometheus.Counter
	// relayReaders and relayHolders count relayed consoles: read here
	// from another replica's agent, and served to another replica.
	relayReaders prometheus.Gauge
	relayHolders prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) *metrics {
	sessions := prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: "nkudo", Subsystem: "hub", Name: "sessions",
		Help: "Live agent sessions.",
	})
	in := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "nkudo", Subsystem: "hub", Name: "frames_received_total",
		Help: "Frames received from agents, by message type.",
	}, []string{"type"})
	out := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "nkudo", Subsystem: "hub", Name: "frames_sent_total",
		Help: "Frames sent to agents, by message type.",
	}, []string{"type"})
	hb := prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "nkudo", Subsystem: "hub", Name: "heartbeats_flushed_total",
		Help: "Host heartbeats written to the store by the batcher.",
	})
	lines := prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "nkudo", Subsystem: "hub", Name: "log_lines_persisted_total",
		Help: "Log lines written to the store by the log batcher (duplicates included).",
	})
	dur := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: "nkudo", Subsystem: "hub", Name: "flush_duration_seconds",
		Help:    "Duration of one batched store write, by batcher.",
		Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
	}, []string{"batcher"})
	flushErr := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "nkudo", Subsystem: "hub", Name: "flush_errors_total",
		Help: "Batched store writes that failed, by batcher.",
	}, []string{"batcher"})
	slow := prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "nkudo", Subsystem: "hub", Name: "slow_consumer_closes_total",
		Help: "Sessions closed because the agent did not read fast enough.",
	})
	refused := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "nkudo", Subsystem: "hub", Name: "handshake_refusals_total",
		Help: "Agent connections refused or closed during the handshake, by reason.",
	}, []string{"reason"})
	dropped := prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "nkudo", Subsystem: "hub", Name: "log_subscribers_dropped_total",
		Help: "Live log followers dropped for falling behind.",
	})
	offline := prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "nkudo", Subsystem: "hub", Name: "agents_marked_offline_total",
		Help: "Agents the offline sweeper marked offline.",
	})
	relays := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: "nkudo", Subsystem: "hub", Name: "console_relays",
		Help: "VM consoles relayed between replicas: role reader (read here, agent on another replica) or holder (agent here, read on another replica).",
	}, []string{"role"})
	if reg != nil {
		reg.MustRegister(sessions, in, out, hb, lines, dur, flushErr, slow, refused, dropped, offline, relays)
	}
	m := &metrics{
		sessions:            sessions,
		framesIn:            make(map[string]prometheus.Counter, len(frameTypes)),
		framesOut:           make(map[string]prometheus.Counter, len(frameTypes)),
		heartbeatsFlushed:   hb,
		logLinesPersisted:   lines,
		flushDuration:       dur,
		flushErrors:         flushErr,
		slowConsumerCloses:  slow,
		refusals:            make(map[string]prometheus.Counter, len(refusalReasons)),
		subscribersDropped:  dropped,
		agentsMarkedOffline: offline,
		relayReaders:        relays.WithLabelValues("reader"),
		relayHolders:        relays.WithLabelValues("holder"),
	}
	for _, t := range frameTypes {
		m.framesIn[t] = in.WithLabelValues(t)
		m.framesOut[t] = out.WithLabelValues(t)
	}
	for _, r := range refusalReasons {
		m.refusals[r] = refused.WithLabelValues(r)
	}
	return m
}

func (m *metrics) frameIn(typ string) {
	if c, ok := m.framesIn[typ]; ok {
		c.Inc()
	}
}

func (m *metrics) frameOut(typ string) {
	if c, ok := m.framesOut[typ]; ok {
		c.Inc()
	}
}

func (m *metrics) refused(reason string) {
	if c, ok := m.refusals[reason]; ok {
		c.Inc()
	}
}
