package loadtest

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

// Report is what one run measured. Values that could not be measured
// (no metrics URL, no pid) are -1.
type Report struct {
	Date      time.Time     `json:"date"`
	Machine   Machine       `json:"machine"`
	Agents    int           `json:"agents"`
	Heartbeat string        `json:"heartbeat"`
	Duration  string        `json:"duration"`
	Scenarios []string      `json:"scenarios"`
	Fleet     FleetCounters `json:"fleet"`

	Enroll     *EnrollResult     `json:"enroll,omitempty"`
	Sessions   *SessionsResult   `json:"sessions,omitempty"`
	Heartbeats *HeartbeatsResult `json:"heartbeats,omitempty"`
	Dispatch   *DispatchResult   `json:"dispatch,omitempty"`
	Logs       *LogsResult       `json:"logs,omitempty"`
	Reconnect  *ReconnectResult  `json:"reconnect,omitempty"`

	Targets []Target `json:"targets"`
}

// FleetCounters are the simulated agents' totals over the run.
type FleetCounters struct {
	DialErrors      int64 `json:"dial_errors"`
	HelloFailures   int64 `json:"hello_failures"`
	PermanentStops  int64 `json:"permanent_stops"`
	SessionsLost    int64 `json:"sessions_lost"`
	HeartbeatsSent  int64 `json:"heartbeats_sent"`
	HeartbeatErrors int64 `json:"heartbeat_errors"`
	PlansHeld       int64 `json:"plans_held"`
	ResultAcks      int64 `json:"result_acks"`
	ErrorFrames     int64 `json:"error_frames"`
	SendErrors      int64 `json:"send_errors"`
	// APIUnsentRetries counts API requests repeated because the server
	// had never processed them (it closed the connection first).
	APIUnsentRetries int64 `json:"api_unsent_retries"`
}

// EnrollResult measures POST /v1/enroll.
type EnrollResult struct {
	Enrolled    int64   `json:"enrolled"`
	Failed      int64   `json:"failed"`
	RateLimited int64   `json:"rate_limited_retries"`
	Seconds     float64 `json:"seconds"`
	PerSecond   float64 `json:"per_second"`
	SourceIPs   int     `json:"source_ips"`
	FirstError  string  `json:"first_error,omitempty"`
}

// SessionsResult measures the server's cost of live sessions.
type SessionsResult struct {
	Connected            int64   `json:"connected"`
	ServerSessions       float64 `json:"server_sessions"`
	ConnectSeconds       float64 `json:"connect_seconds"`
	HandshakesPerSecond  float64 `json:"handshakes_per_second"`
	RSSBeforeMiB         float64 `json:"rss_before_mib"`
	RSSAfterMiB          float64 `json:"rss_after_mib"`
	RSSPerSessionKiB     float64 `json:"rss_per_session_kib"`
	HeapPerSessionKiB    float64 `json:"heap_per_session_kib"`
	GoroutinesPerSession float64 `json:"goroutines_per_session"`
}

// HeartbeatsResult measures heartbeat intake and persistence.
type HeartbeatsResult struct {
	TargetPerSecond      int     `json:"target_per_second"`
	PerAgentInterval     string  `json:"per_agent_interval"`
	Seconds              float64 `json:"seconds"`
	SentPerSecond        float64 `json:"sent_per_second"`
	SendErrors           int64   `json:"send_errors"`
	ReceivedPerSecond    float64 `json:"received_per_second"`
	RowsFlushedPerSecond float64 `json:"rows_flushed_per_second"`
	FlushErrors          float64 `json:"flush_errors"`
	SessionsAtEnd        int64   `json:"sessions_at_end"`
}

// DispatchResult measures API call returned → agent holds the plan.
type DispatchResult struct {
	Offered             int     `json:"offered"`
	Created             int64   `json:"created"`
	Failed              int64   `json:"failed"`
	RateLimited         int64   `json:"rate_limited"`
	SkippedClientBehind int64   `json:"skipped_client_behind"`
	Held                int64   `json:"held"`
	Lost                int64   `json:"lost"`
	HeldBeforeReturn    int     `json:"held_before_return"`
	Targets             int     `json:"target_agents"`
	PlansPerSecond      float64 `json:"plans_per_second"`
	P50ms               float64 `json:"p50_ms"`
	P99ms               float64 `json:"p99_ms"`
	Maxms               float64 `json:"max_ms"`
	// Sent* are request sent → agent holds the plan (includes the whole
	// API call).
	SentP50ms  float64 `json:"sent_p50_ms"`
	SentP99ms  float64 `json:"sent_p99_ms"`
	SentMaxms  float64 `json:"sent_max_ms"`
	FirstError string  `json:"first_error,omitempty"`
}

// LogsResult measures log ingestion.
type LogsResult struct {
	Agents         int     `json:"agents"`
	BatchLines     int     `json:"batch_lines"`
	LinesSent      int64   `json:"lines_sent"`
	LinesAcked     int64   `json:"lines_acked"`
	Seconds        float64 `json:"seconds"`
	AckedPerSecond float64 `json:"acked_per_second"`
	AckStalls      int64   `json:"ack_stalls"`
}

// ReconnectResult measures the fleet's return after a server restart.
type ReconnectResult struct {
	Agents int `json:"agents"`
	Back   int `json:"back"`
	// Stopped agents got a permanent close (replaced, revoked) and, like
	// nkudo-agent, did not reconnect.
	Stopped               int     `json:"stopped"`
	AllBack               bool    `json:"all_back"`
	SecondsSinceRestart   float64 `json:"seconds_since_restart"`
	SecondsSinceFirstDrop float64 `json:"seconds_since_first_drop"`
}

// Target compares one figure with the spec.
type Target struct {
	Name     string `json:"name"`
	Spec     string `json:"spec"`
	Measured string `json:"measured"`
	// Verdict is "met", "not met" or "not measured".
	Verdict string `json:"verdict"`
	Note    string `json:"note,omitempty"`
}

// The spec's "What it must sustain" figures.
const (
	specAgents         = 10_000
	specKiBPerSession  = 48
	specDispatchP50ms  = 5
	specDispatchP99ms  = 20
	specHeartbeatsPerS = 10_000
	specEnrollPerS     = 500
	specReconnectSecs  = 30
	specLogLinesPerS   = 50_000
	verdictMet         = "met"
	verdictNotMet      = "not met"
	verdictNotMeasured = "not measured"
)

func verdict(ok bool) string {
	if ok {
		return verdictMet
	}
	return verdictNotMet
}

func targets(r *Report) []Target {
	var out []Target
	scale := ""
	if r.Agents < specAgents {
		scale = fmt.Sprintf("at %d agents, not the spec's %d", r.Agents, specAgents)
	}
	if s := r.Sessions; s != nil {
		t := Target{Name: "memory per session", Spec: fmt.Sprintf("< %d KiB", specKiBPerSession), Verdict: verdictNotMeasured, Note: scale}
		if s.Connected < int64(r.Agents) {
			t.Note = strings.TrimPrefix(t.Note+fmt.Sprintf("; only %d of %d agents connected", s.Connected, r.Agents), "; ")
		}
		if s.RSSPerSessionKiB >= 0 {
			t.Measured = fmt.Sprintf("%.1f KiB RSS, %.1f KiB heap", s.RSSPerSessionKiB, s.HeapPerSessionKiB)
			t.Verdict = verdict(s.RSSPerSessionKiB < specKiBPerSession)
		}
		out = append(out, t)
	}
	if d := r.Dispatch; d != nil {
		t := Target{Name: "plan dispatch", Spec: fmt.Sprintf("p50 < %d ms, p99 < %d ms", specDispatchP50ms, specDispatchP99ms),
			Measured: fmt.Sprintf("p50 %.2f ms, p99 %.2f ms, max %.2f ms (%d plans, %d held before the call returned, %d lost); from request sent: p50 %.2f ms, p99 %.2f ms",
				d.P50ms, d.P99ms, d.Maxms, d.Held, d.HeldBeforeReturn, d.Lost, d.SentP50ms, d.SentP99ms),
			Verdict: verdict(d.Held > 0 && d.Lost == 0 && d.Failed == 0 && d.P50ms < specDispatchP50ms && d.P99ms < specDispatchP99ms)}
		if d.Held == 0 {
			t.Verdict = verdictNotMeasured
		}
		out = append(out, t)
	}
	if h := r.Heartbeats; h != nil {
		t := Target{Name: "heartbeats persisted", Spec: fmt.Sprintf(">= %d/s (batched)", specHeartbeatsPerS), Verdict: verdictNotMeasured,
			Note: "a heartbeat is persisted when its batch is written; rows are per host per flush, so rows/s <= hosts x flushes/s"}
		if h.ReceivedPerSecond >= 0 {
			t.Measured = fmt.Sprintf("%.0f/s received and batched, %.0f host rows/s written, %.0f flush errors", h.ReceivedPerSecond, h.RowsFlushedPerSecond, h.FlushErrors)
			t.Verdict = verdict(h.ReceivedPerSecond >= specHeartbeatsPerS && h.FlushErrors == 0)
		}
		out = append(out, t)
	}
	if e := r.Enroll; e != nil {
		out = append(out, Target{Name: "enrollment", Spec: fmt.Sprintf(">= %d/s", specEnrollPerS),
			Measured: fmt.Sprintf("%.0f/s (%d enrolled, %d failed, %d 429 retries, %d source IPs)", e.PerSecond, e.Enrolled, e.Failed, e.RateLimited, e.SourceIPs),
			Verdict:  verdict(e.Failed == 0 && e.PerSecond >= specEnrollPerS)})
	}
	if c := r.Reconnect; c != nil {
		t := Target{Name: "back after restart", Spec: fmt.Sprintf("all within %d s", specReconnectSecs),
			Measured: fmt.Sprintf("%d/%d back (%d stopped for good), %.1f s after the restart began, %.1f s after the first drop", c.Back, c.Agents, c.Stopped, c.SecondsSinceRestart, c.SecondsSinceFirstDrop),
			Verdict:  verdict(c.AllBack && c.SecondsSinceRestart <= specReconnectSecs), Note: scale}
		out = append(out, t)
	}
	if l := r.Logs; l != nil {
		out = append(out, Target{Name: "log ingestion", Spec: fmt.Sprintf(">= %d lines/s", specLogLinesPerS),
			Measured: fmt.Sprintf("%.0f lines/s acked (%d agents, %d-line batches)", l.AckedPerSecond, l.Agents, l.BatchLines),
			Verdict:  verdict(l.AckedPerSecond >= specLogLinesPerS && l.AckStalls == 0)})
	}
	return out
}

// WriteJSON writes the report as indented JSON.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(r); err != nil {
		return fmt.Errorf("writing JSON report: %w", err)
	}
	return nil
}

// WriteTable writes the report for a terminal.
func (r *Report) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "date\t%s\n", r.Date.Format(time.RFC3339))
	fmt.Fprintf(tw, "machine\t%d CPUs, %d MiB, load %s before, %s after\n", r.Machine.CPUs, r.Machine.MemTotalMiB, loadString(r.Machine.LoadBefore), loadString(r.Machine.LoadAfter))
	fmt.Fprintf(tw, "run\t%d agents, heartbeat %s, duration %s, scenarios %s\n", r.Agents, r.Heartbeat, r.Duration, strings.Join(r.Scenarios, ","))
	if s := r.Sessions; s != nil {
		fmt.Fprintf(tw, "sessions\t%d connected in %.1f s (%.0f handshakes/s); RSS %.0f → %.0f MiB\n", s.Connected, s.ConnectSeconds, s.HandshakesPerSecond, s.RSSBeforeMiB, s.RSSAfterMiB)
		fmt.Fprintf(tw, "\tper session: %.1f KiB RSS, %.1f KiB heap, %.2f goroutines\n", s.RSSPerSessionKiB, s.HeapPerSessionKiB, s.GoroutinesPerSession)
	}
	if h := r.Heartbeats; h != nil {
		fmt.Fprintf(tw, "heartbeats\tsent %.0f/s, received %.0f/s, rows flushed %.0f/s, flush errors %.0f (interval %s per agent)\n", h.SentPerSecond, h.ReceivedPerSecond, h.RowsFlushedPerSecond, h.FlushErrors, h.PerAgentInterval)
	}
	if d := r.Dispatch; d != nil {
		fmt.Fprintf(tw, "dispatch\t%d plans at %.0f/s: p50 %.2f ms, p99 %.2f ms, max %.2f ms; lost %d, failed %d, 429 %d\n", d.Held, d.PlansPerSecond, d.P50ms, d.P99ms, d.Maxms, d.Lost, d.Failed, d.RateLimited)
		fmt.Fprintf(tw, "\tfrom request sent: p50 %.2f ms, p99 %.2f ms, max %.2f ms; %d held before the call returned\n", d.SentP50ms, d.SentP99ms, d.SentMaxms, d.HeldBeforeReturn)
	}
	if l := r.Logs; l != nil {
		fmt.Fprintf(tw, "logs\t%d lines acked in %.1f s: %.0f lines/s (stalls %d)\n", l.LinesAcked, l.Seconds, l.AckedPerSecond, l.AckStalls)
	}
	if e := r.Enroll; e != nil {
		fmt.Fprintf(tw, "enroll\t%d in %.2f s: %.0f/s (failed %d, 429 retries %d)\n", e.Enrolled, e.Seconds, e.PerSecond, e.Failed, e.RateLimited)
	}
	if c := r.Reconnect; c != nil {
		fmt.Fprintf(tw, "reconnect\t%d/%d back: %.1f s after restart, %.1f s after first drop\n", c.Back, c.Agents, c.SecondsSinceRestart, c.SecondsSinceFirstDrop)
	}
	f := r.Fleet
	fmt.Fprintf(tw, "fleet\tdial errors %d, hello failures %d, sessions lost %d, stopped for good %d, error frames %d, send errors %d\n", f.DialErrors, f.HelloFailures, f.SessionsLost, f.PermanentStops, f.ErrorFrames, f.SendErrors)
	fmt.Fprintln(tw)
	fmt.Fprintln(tw, "TARGET\tSPEC\tMEASURED\tVERDICT")
	for _, t := range r.Targets {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", t.Name, t.Spec, t.Measured, t.Verdict)
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("writing table report: %w", err)
	}
	return nil
}

func loadString(l []float64) string {
	if len(l) < 3 {
		return "?"
	}
	return fmt.Sprintf("%.2f/%.2f/%.2f", l[0], l[1], l[2])
}
