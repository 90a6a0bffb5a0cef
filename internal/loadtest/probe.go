package loadtest

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// Series the harness reads from the server's /metrics.
const (
	metricHeap          = "go_memstats_heap_inuse_bytes"
	metricGoroutines    = "go_goroutines"
	metricRSS           = "process_resident_memory_bytes"
	metricSessions      = "nkudo_hub_sessions"
	metricHBFlushed     = "nkudo_hub_heartbeats_flushed_total"
	metricHBReceived    = `nkudo_hub_frames_received_total{type="heartbeat"}`
	metricHBFlushErrors = `nkudo_hub_flush_errors_total{batcher="heartbeat"}`
	metricLogLines      = "nkudo_hub_log_lines_persisted_total"
)

// probe reads the server's resource use: its metrics endpoint and, with a
// pid, /proc.
type probe struct {
	metricsURL string
	pid        int
	client     *http.Client
}

// sample is one reading; absent values are -1.
type sample struct {
	at      time.Time
	rss     float64
	metrics map[string]float64
}

func (s sample) get(name string) float64 {
	if v, ok := s.metrics[name]; ok {
		return v
	}
	return -1
}

// counter reads a labelled counter: a label set never incremented is not
// exposed at all, which means zero when the scrape itself worked.
func (s sample) counter(name string) float64 {
	if s.metrics == nil {
		return -1
	}
	return s.metrics[name]
}

func (p *probe) sample(ctx context.Context) (sample, error) {
	s := sample{at: time.Now(), rss: -1}
	if p.pid > 0 {
		rss, err := readRSS(p.pid)
		if err != nil {
			return s, err
		}
		s.rss = rss
	}
	if p.metricsURL == "" {
		return s, nil
	}
	m, err := p.scrape(ctx)
	if err != nil {
		return s, err
	}
	s.metrics = m
	if s.rss < 0 {
		if v, ok := m[metricRSS]; ok {
			s.rss = v
		}
	}
	return s, nil
}

// maxMetricsBytes bounds one scrape.
const maxMetricsBytes = 8 << 20

// scrape reads the Prometheus text format: every sample line as
// "series value" (series includes the labels as written by the server).
func (p *probe) scrape(ctx context.Context) (map[string]float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.metricsURL, nil)
	if err != nil {
		return nil, fmt.Errorf("building metrics request: %w", err)
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("scraping %s: %w", p.metricsURL, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("scraping %s: status %d", p.metricsURL, resp.StatusCode)
	}
	return parseMetrics(io.LimitReader(resp.Body, maxMetricsBytes))
}

func parseMetrics(r io.Reader) (map[string]float64, error) {
	out := make(map[string]float64, 256)
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			continue
		}
		out[strings.TrimSpace(line[:i])] = v
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading metrics: %w", err)
	}
	return out, nil
}

// readRSS returns VmRSS of pid in bytes.
func readRSS(pid int) (float64, error) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, fmt.Errorf("reading server status: %w", err)
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(rest)
			if len(f) >= 1 {
				kb, err := strconv.ParseFloat(f[0], 64)
				if err != nil {
					return 0, fmt.Errorf("parsing VmRSS of %d: %w", pid, err)
				}
				return kb * 1024, nil
			}
		}
	}
	return 0, fmt.Errorf("reading server status: no VmRSS for pid %d", pid)
}

// Machine describes where the run happened.
type Machine struct {
	CPUs        int       `json:"cpus"`
	MemTotalMiB int       `json:"mem_total_mib"`
	LoadBefore  []float64 `json:"load_before"`
	LoadAfter   []float64 `json:"load_after"`
	Kernel      string    `json:"kernel"`
}

func machine() Machine {
	m := Machine{CPUs: runtime.NumCPU(), LoadBefore: loadAvg()}
	if raw, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, line := range strings.Split(string(raw), "\n") {
			if rest, ok := strings.CutPrefix(line, "MemTotal:"); ok {
				if f := strings.Fields(rest); len(f) > 0 {
					kb, _ := strconv.Atoi(f[0])
					m.MemTotalMiB = kb / 1024
				}
			}
		}
	}
	if raw, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(raw))
	}
	return m
}

func loadAvg() []float64 {
	raw, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return nil
	}
	var out []float64
	for _, f := range strings.Fields(string(raw))[:3] {
		v, err := strconv.ParseFloat(f, 64)
		if err != nil {
			return nil
		}
		out = append(out, v)
	}
	return out
}
