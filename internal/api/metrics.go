package api

import (
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// httpMetrics are the request counters and latency histogram. Labels use
// the route pattern, never the concrete path, so cardinality is bounded.
type httpMetrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	// bodyTimeouts counts requests cut with 408 because their body did
	// not arrive within the body read timeout.
	bodyTimeouts prometheus.Counter
}

func newHTTPMetrics(reg prometheus.Registerer) (*httpMetrics, error) {
	m := &httpMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "nkudo",
			Subsystem: "http",
			Name:      "requests_total",
			Help:      "HTTP requests served by the JSON API, by route, method and status.",
		}, []string{"route", "method", "status"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "nkudo",
			Subsystem: "http",
			Name:      "request_duration_seconds",
			Help:      "Time to serve an HTTP request of the JSON API.",
			Buckets:   []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}, []string{"route", "method"}),
		bodyTimeouts: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "nkudo",
			Subsystem: "http",
			Name:      "body_read_timeouts_total",
			Help:      "Requests cut with 408 because their body did not arrive within the body read timeout.",
		}),
	}
	if reg == nil {
		return m, nil
	}
	var err error
	if m.requests, err = registerOrReuse(reg, m.requests); err != nil {
		return nil, fmt.Errorf("registering request counter: %w", err)
	}
	if m.duration, err = registerOrReuse(reg, m.duration); err != nil {
		return nil, fmt.Errorf("registering duration histogram: %w", err)
	}
	if m.bodyTimeouts, err = registerOrReuse(reg, m.bodyTimeouts); err != nil {
		return nil, fmt.Errorf("registering body timeout counter: %w", err)
	}
	return m, nil
}

// registerOrReuse registers c, or returns the identical collector already
// registered (an API rebuilt on the same registry keeps counting).
func registerOrReuse[C prometheus.Collector](reg prometheus.Registerer, c C) (C, error) {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing, nil
			}
		}
		return c, err
	}
	return c, nil
}

func (m *httpMetrics) observe(route, method string, status int, elapsed time.Duration) {
	m.requests.WithLabelValues(route, method, strconv.Itoa(status)).Inc()
	m.duration.WithLabelValues(route, method).Observe(elapsed.Seconds())
}
