package agentproto

import (
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
)

// Message types sent by the agent.
const (
	TypeHello        = "hello"
	TypeHeartbeat    = "heartbeat"
	TypeActionResult = "action_result"
	TypeLogBatch     = "log_batch"
	TypeCertRenew    = "cert_renew"
	TypePlanAck      = "plan_ack"
	TypeConsoleData  = "console_data"
)

// Hello is the agent's first message on every session. The server answers
// with HelloAck, or closes with CloseCapabilityTooOld.
type Hello struct {
	AgentVersion      string        `json:"agent_version"`
	CapabilityVersion int           `json:"capability_version"`
	Capabilities      []string      `json:"capabilities,omitempty"`
	Facts             HostFacts     `json:"facts"`
	VMs               []VMStatus    `json:"vms"`
	NetBird           NetBirdStatus `json:"netbird"`
	// PendingResults lists the actions the agent finished but whose
	// results the server has not acknowledged yet: the agent resends
	// them, and the server must not send those actions again.
	PendingResults []uuid.UUID `json:"pending_results,omitempty"`
}

// MessageType returns TypeHello.
func (Hello) MessageType() string { return TypeHello }

// Validate checks the hello. It does not compare CapabilityVersion with
// MinCapabilityVersion: refusing an old agent is the server's policy, with
// its own close status.
func (m Hello) Validate() error {
	if err := checkName("agent_version", m.AgentVersion); err != nil {
		return err
	}
	if m.CapabilityVersion < 1 {
		return fmt.Errorf("capability_version: %d, want at least 1: %w", m.CapabilityVersion, ErrInvalid)
	}
	if err := checkCount("capabilities", len(m.Capabilities), MaxCapabilities); err != nil {
		return err
	}
	for i, c := range m.Capabilities {
		if err := checkName(fmt.Sprintf("capabilities[%d]", i), c); err != nil {
			return err
		}
	}
	if err := m.Facts.Validate(); err != nil {
		return fmt.Errorf("facts: %w", err)
	}
	if err := validateVMs(m.VMs); err != nil {
		return err
	}
	if err := m.NetBird.Validate(); err != nil {
		return fmt.Errorf("netbird: %w", err)
	}
	if err := checkCount("pending_results", len(m.PendingResults), MaxPendingResults); err != nil {
		return err
	}
	for i, id := range m.PendingResults {
		if err := checkID(fmt.Sprintf("pending_results[%d]", i), id); err != nil {
			return err
		}
	}
	return nil
}

// Heartbeat reports the host's state every HelloAck.HeartbeatIntervalMS.
type Heartbeat struct {
	At time.Time `json:"at"`
	// Facts is set only when the host facts changed since the last
	// heartbeat or hello, so the server writes only what changed.
	Facts   *HostFacts    `json:"facts,omitempty"`
	Usage   Usage         `json:"usage"`
	VMs     []VMStatus    `json:"vms"`
	NetBird NetBirdStatus `json:"netbird"`
}

// Usage is the host's resource usage at a heartbeat.
type Usage struct {
	// CPUPercent is the busy share of all cores, 0 to 100.
	CPUPercent      float64 `json:"cpu_percent"`
	MemoryUsedBytes int64   `json:"memory_used_bytes"`
	DiskUsedBytes   int64   `json:"disk_used_bytes"`
	Load1           float64 `json:"load1"`
	UptimeSeconds   int64   `json:"uptime_seconds"`
	VMsRunning      int     `json:"vms_running"`
}

// MessageType returns TypeHeartbeat.
func (Heartbeat) MessageType() string { return TypeHeartbeat }

// Validate checks the heartbeat.
func (m Heartbeat) Validate() error {
	if err := checkTime("at", m.At); err != nil {
		return err
	}
	if m.Facts != nil {
		if err := m.Facts.Validate(); err != nil {
			return fmt.Errorf("facts: %w", err)
		}
	}
	if err := m.Usage.Validate(); err != nil {
		return fmt.Errorf("usage: %w", err)
	}
	if err := validateVMs(m.VMs); err != nil {
		return err
	}
	if err := m.NetBird.Validate(); err != nil {
		return fmt.Errorf("netbird: %w", err)
	}
	return nil
}

// Validate checks the usage.
func (u Usage) Validate() error {
	if err := checkRatio("cpu_percent", u.CPUPercent); err != nil {
		return err
	}
	if u.CPUPercent > 100 {
		return fmt.Errorf("cpu_percent: %v over 100: %w", u.CPUPercent, ErrInvalid)
	}
	if err := checkRatio("load1", u.Load1); err != nil {
		return err
	}
	for _, f := range []struct {
		field string
		v     int64
	}{
		{"memory_used_bytes", u.MemoryUsedBytes}, {"disk_used_bytes", u.DiskUsedBytes},
		{"uptime_seconds", u.UptimeSeconds}, {"vms_running", int64(u.VMsRunning)},
	} {
		if err := checkNonNegative(f.field, f.v); err != nil {
			return err
		}
	}
	return nil
}

// Action result statuses.
const (
	ResultRunning   = "running"
	ResultSucceeded = "succeeded"
	ResultFailed    = "failed"
)

// ActionResult reports the progress or outcome of one plan action. The
// agent resends a terminal result until it gets a ResultAck for it.
type ActionResult struct {
	PlanID      uuid.UUID `json:"plan_id"`
	ActionID    uuid.UUID `json:"action_id"`
	ExecutionID uuid.UUID `json:"execution_id"`
	Status      string    `json:"status"`
	// Error says why the action failed; set only with ResultFailed.
	Error string `json:"error,omitempty"`
	// VMState, when set, is the VM's actual state after the action.
	VMState string    `json:"vm_state,omitempty"`
	At      time.Time `json:"at"`
}

// MessageType returns TypeActionResult.
func (ActionResult) MessageType() string { return TypeActionResult }

// Terminal reports whether the result is final (succeeded or failed).
func (m ActionResult) Terminal() bool {
	return m.Status == ResultSucceeded || m.Status == ResultFailed
}

// Validate checks the result.
func (m ActionResult) Validate() error {
	if err := checkID("plan_id", m.PlanID); err != nil {
		return err
	}
	if err := checkID("action_id", m.ActionID); err != nil {
		return err
	}
	if err := checkID("execution_id", m.ExecutionID); err != nil {
		return err
	}
	if err := checkOneOf("status", m.Status, ResultRunning, ResultSucceeded, ResultFailed); err != nil {
		return err
	}
	if err := checkText("error", m.Error, MaxErrorBytes); err != nil {
		return err
	}
	if m.Status == ResultFailed && m.Error == "" {
		return fmt.Errorf("error: missing for a failed action: %w", ErrInvalid)
	}
	if m.Status != ResultFailed && m.Error != "" {
		return fmt.Errorf("error: set for a %s action: %w", m.Status, ErrInvalid)
	}
	if m.VMState != "" {
		if err := checkOneOf("vm_state", m.VMState, vmStates...); err != nil {
			return err
		}
	}
	return checkTime("at", m.At)
}

// Log streams. Other lowercase names are accepted for forward
// compatibility.
const (
	StreamStdout = "stdout"
	StreamStderr = "stderr"
	// StreamSystem carries the agent's own notes about an execution.
	StreamSystem = "system"
)

// LogBatch carries consecutive log lines of one execution. Seq numbers
// start at 1 per execution and strictly increase within a batch; the
// server acknowledges the highest stored one with LogAck, and the agent
// resends lines above it after a reconnect.
//
// A full batch of long lines can exceed MaxFrameBytes even though each
// line is within MaxLogLineBytes; Encode then fails with ErrTooLarge and
// the sender splits the batch (halving works: seqs stay increasing in
// each half) and sends the halves in order.
type LogBatch struct {
	ExecutionID uuid.UUID `json:"execution_id"`
	Lines       []LogLine `json:"lines"`
}

// LogLine is one line of an execution's output.
type LogLine struct {
	Seq     int64     `json:"seq"`
	At      time.Time `json:"at"`
	Stream  string    `json:"stream"`
	Message string    `json:"message"`
}

// MessageType returns TypeLogBatch.
func (LogBatch) MessageType() string { return TypeLogBatch }

// Validate checks the batch.
func (m LogBatch) Validate() error {
	if err := checkID("execution_id", m.ExecutionID); err != nil {
		return err
	}
	if len(m.Lines) == 0 {
		return fmt.Errorf("lines: empty batch: %w", ErrInvalid)
	}
	if err := checkCount("lines", len(m.Lines), MaxLogBatchLines); err != nil {
		return err
	}
	var prev int64
	for i, l := range m.Lines {
		if l.Seq < 1 {
			return fmt.Errorf("lines[%d].seq: %d, want at least 1: %w", i, l.Seq, ErrInvalid)
		}
		if l.Seq <= prev {
			return fmt.Errorf("lines[%d].seq: %d not above %d: %w", i, l.Seq, prev, ErrInvalid)
		}
		prev = l.Seq
		if err := checkTime(fmt.Sprintf("lines[%d].at", i), l.At); err != nil {
			return err
		}
		if err := checkStream(l.Stream); err != nil {
			return fmt.Errorf("lines[%d]: %w", i, err)
		}
		if err := checkText(fmt.Sprintf("lines[%d].message", i), l.Message, MaxLogLineBytes); err != nil {
			return err
		}
	}
	return nil
}

func checkStream(s string) error {
	if s == "" || len(s) > 32 {
		return fmt.Errorf("stream: %.64q must be 1 to 32 bytes: %w", s, ErrInvalid)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '-' && c != '_' {
			return fmt.Errorf("stream: %.64q must be lowercase letters, digits, - or _: %w", s, ErrInvalid)
		}
	}
	return nil
}

// SanitizeLogMessage makes s fit in a LogLine: invalid UTF-8 becomes
// U+FFFD and the result is cut, on a rune boundary, to MaxLogLineBytes.
// Process output is arbitrary bytes; the agent runs it through this
// before batching.
func SanitizeLogMessage(s string) string {
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	if len(s) <= MaxLogLineBytes {
		return s
	}
	cut := MaxLogLineBytes
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut]
}

// CertRenew asks the server to sign a new client certificate for the
// agent's key, before the current one expires. The agent keeps using its
// key; only the CSR travels.
type CertRenew struct {
	// CSR is a PEM "CERTIFICATE REQUEST".
	CSR string `json:"csr"`
}

// MessageType returns TypeCertRenew.
func (CertRenew) MessageType() string { return TypeCertRenew }

// Validate checks that the CSR is one parseable, self-signed PEM request.
// Whether its subject and key are acceptable is the server's decision.
func (m CertRenew) Validate() error {
	if err := checkRequiredText("csr", m.CSR, MaxPEMBytes); err != nil {
		return err
	}
	block, rest := pem.Decode([]byte(m.CSR))
	if block == nil || block.Type != "CERTIFICATE REQUEST" {
		return fmt.Errorf("csr: no PEM CERTIFICATE REQUEST block: %w", ErrInvalid)
	}
	if len(strings.TrimSpace(string(rest))) != 0 {
		return fmt.Errorf("csr: data after the PEM block: %w", ErrInvalid)
	}
	csr, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil {
		return fmt.Errorf("csr: parsing: %w: %w", ErrInvalid, err)
	}
	if err := csr.CheckSignature(); err != nil {
		return fmt.Errorf("csr: checking signature: %w: %w", ErrInvalid, err)
	}
	return nil
}

// PlanAck tells the server the agent holds a plan (it is recorded in the
// agent's idempotency cache), so the server can mark it dispatched.
type PlanAck struct {
	PlanID uuid.UUID `json:"plan_id"`
}

// MessageType returns TypePlanAck.
func (PlanAck) MessageType() string { return TypePlanAck }

// Validate checks the ack.
func (m PlanAck) Validate() error { return checkID("plan_id", m.PlanID) }

// ConsoleData carries a chunk of a VM's serial console output for a tail
// the server started with ConsoleStart.
type ConsoleData struct {
	VMID     uuid.UUID `json:"vm_id"`
	StreamID uuid.UUID `json:"stream_id"`
	// Data is raw console bytes (base64 on the wire).
	Data []byte `json:"data"`
	// SnapshotDone marks the message that follows the snapshot (the log's
	// last bytes when the tail started, possibly none: the log may be
	// empty or not exist yet), so a one-shot read ends at once instead
	// of waiting for output. It carries no data.
	SnapshotDone bool `json:"snapshot_done,omitempty"`
}

// MessageType returns TypeConsoleData.
func (ConsoleData) MessageType() string { return TypeConsoleData }

// Validate checks the chunk.
func (m ConsoleData) Validate() error {
	if err := checkID("vm_id", m.VMID); err != nil {
		return err
	}
	if err := checkID("stream_id", m.StreamID); err != nil {
		return err
	}
	switch {
	case m.SnapshotDone && len(m.Data) > 0:
		return fmt.Errorf("data: the snapshot_done marker carries no data: %w", ErrInvalid)
	case m.SnapshotDone:
		return nil
	case len(m.Data) == 0:
		return fmt.Errorf("data: empty chunk: %w", ErrInvalid)
	}
	return checkCount("data bytes", len(m.Data), MaxConsoleChunkBytes)
}
