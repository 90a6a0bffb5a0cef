package netbird

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"time"

	"github.com/kubedoio/n-kudo/internal/agentproto"
)

// Probe types.
const (
	// ProbeHTTP sends GET Target (a URL) and expects a status within
	// [HTTPMin, HTTPMax]. Redirects are not followed, so a 3xx is judged
	// as such.
	ProbeHTTP = "http"
	// ProbePing opens a TCP connection to Target (host:port) and closes
	// it. It is a TCP connect rather than ICMP echo because ICMP needs
	// raw sockets (root or CAP_NET_RAW) and many meshes drop it, while a
	// TCP handshake proves the path works for the traffic that matters.
	ProbePing = "ping"
)

// Defaults of Probe.
const (
	DefaultProbeTimeout = 5 * time.Second
	DefaultHTTPMin      = 200
	DefaultHTTPMax      = 399
)

// maxProbeBody bounds how much of a probe response is drained so the
// connection can be reused.
const maxProbeBody = 64 << 10

// Probe checks that a target is reachable through the mesh, like the
// seed's --netbird-probe-* flags.
type Probe struct {
	Type   string
	Target string
	// Timeout bounds the whole probe; zero means DefaultProbeTimeout.
	Timeout time.Duration
	// HTTPMin and HTTPMax bound the accepted HTTP status (inclusive);
	// zero means DefaultHTTPMin and DefaultHTTPMax.
	HTTPMin, HTTPMax int
}

// Validate checks the probe's configuration.
func (p Probe) Validate() error {
	switch p.Type {
	case ProbeHTTP:
		u, err := url.Parse(p.Target)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("netbird probe target %q: not an http(s) URL: %w", p.Target, ErrInvalidProbe)
		}
		lo, hi := p.httpRange()
		if lo < 100 || hi > 599 || lo > hi {
			return fmt.Errorf("netbird probe status range %d..%d: %w", lo, hi, ErrInvalidProbe)
		}
	case ProbePing:
		if _, _, err := net.SplitHostPort(p.Target); err != nil {
			return fmt.Errorf("netbird probe target %q: not host:port: %w", p.Target, ErrInvalidProbe)
		}
	default:
		return fmt.Errorf("netbird probe type %q: want %s or %s: %w", p.Type, ProbeHTTP, ProbePing, ErrInvalidProbe)
	}
	if p.Timeout < 0 {
		return fmt.Errorf("netbird probe timeout %s: %w", p.Timeout, ErrInvalidProbe)
	}
	return nil
}

// Run performs the probe once. It never fails: the outcome, including a
// misconfiguration, is in the result.
func (p Probe) Run(ctx context.Context) agentproto.NetBirdProbe {
	if err := p.Validate(); err != nil {
		return agentproto.NetBirdProbe{Error: err.Error()}
	}
	timeout := p.Timeout
	if timeout == 0 {
		timeout = DefaultProbeTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	start := time.Now()
	var err error
	if p.Type == ProbeHTTP {
		err = p.runHTTP(ctx)
	} else {
		err = p.runPing(ctx)
	}
	latency := float64(time.Since(start)) / float64(time.Millisecond)
	if err != nil {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			err = fmt.Errorf("probing %s: timed out after %s", p.Target, timeout)
		}
		return agentproto.NetBirdProbe{LatencyMS: latency, Error: err.Error()}
	}
	return agentproto.NetBirdProbe{OK: true, LatencyMS: latency}
}

func (p Probe) httpRange() (lo, hi int) {
	lo, hi = p.HTTPMin, p.HTTPMax
	if lo == 0 {
		lo = DefaultHTTPMin
	}
	if hi == 0 {
		hi = DefaultHTTPMax
	}
	return lo, hi
}

func (p Probe) runHTTP(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.Target, nil)
	if err != nil {
		return fmt.Errorf("probing %s: %w", p.Target, err)
	}
	// A private transport: a probe must open its own connection to prove
	// the path works now, not reuse one from before the mesh broke.
	transport := &http.Transport{DisableKeepAlives: true, Proxy: nil}
	defer transport.CloseIdleConnections()
	client := &http.Client{
		Transport: transport,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("probing %s: %w", p.Target, err)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxProbeBody))
	_ = resp.Body.Close()
	lo, hi := p.httpRange()
	if resp.StatusCode < lo || resp.StatusCode > hi {
		return fmt.Errorf("probing %s: status %d outside %d..%d", p.Target, resp.StatusCode, lo, hi)
	}
	return nil
}

func (p Probe) runPing(ctx context.Context) error {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", p.Target)
	if err != nil {
		return fmt.Errorf("probing %s: %w", p.Target, err)
	}
	_ = conn.Close()
	return nil
}
