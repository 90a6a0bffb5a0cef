package agentproto

import (
	"bytes"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
)

// Message types sent by the server.
const (
	TypeHelloAck     = "hello_ack"
	TypePlan         = "plan"
	TypeResultAck    = "result_ack"
	TypeLogAck       = "log_ack"
	TypeCertRenewed  = "cert_renewed"
	TypeRevoked      = "revoked"
	TypeConsoleStart = "console_start"
	TypeConsoleStop  = "console_stop"
	TypeError        = "error"
)

var knownTypes = map[string]bool{
	TypeHello: true, TypeHeartbeat: true, TypeActionResult: true, TypeLogBatch: true,
	TypeCertRenew: true, TypePlanAck: true, TypeConsoleData: true,
	TypeHelloAck: true, TypePlan: true, TypeResultAck: true, TypeLogAck: true,
	TypeCertRenewed: true, TypeRevoked: true, TypeConsoleStart: true, TypeConsoleStop: true,
	TypeError: true,
}

// KnownType reports whether typ is a message type of this protocol version.
func KnownType(typ string) bool { return knownTypes[typ] }

// HelloAck accepts a session. The heartbeat interval travels as integer
// milliseconds (HeartbeatIntervalMS, "heartbeat_interval_ms"): a plain
// number every JSON library reads the same way, unlike Go duration strings.
type HelloAck struct {
	AgentID             uuid.UUID `json:"agent_id"`
	CapabilityVersion   int       `json:"capability_version"`
	HeartbeatIntervalMS int64     `json:"heartbeat_interval_ms"`
	// ServerTime lets the agent notice clock skew, which breaks
	// certificate validity checks long before anything else.
	ServerTime time.Time `json:"server_time"`
	Limits     Limits    `json:"limits"`
}

// Limits are the protocol limits the server enforces on this session. A
// sender uses Clamp: the smaller of these and its own build's limits.
type Limits struct {
	MaxFrameBytes     int `json:"max_frame_bytes"`
	MaxLogBatchLines  int `json:"max_log_batch_lines"`
	MaxLogLineBytes   int `json:"max_log_line_bytes"`
	MaxActionsPerPlan int `json:"max_actions_per_plan"`
}

// DefaultLimits returns the package's limits.
func DefaultLimits() Limits {
	return Limits{
		MaxFrameBytes:     MaxFrameBytes,
		MaxLogBatchLines:  MaxLogBatchLines,
		MaxLogLineBytes:   MaxLogLineBytes,
		MaxActionsPerPlan: MaxActionsPerPlan,
	}
}

// Clamp returns l with every limit lowered to this build's default where
// it is higher. A newer server may raise a limit; an older agent must
// still respect its own, since its peer-side decoder enforces them too.
func (l Limits) Clamp() Limits {
	d := DefaultLimits()
	return Limits{
		MaxFrameBytes:     min(l.MaxFrameBytes, d.MaxFrameBytes),
		MaxLogBatchLines:  min(l.MaxLogBatchLines, d.MaxLogBatchLines),
		MaxLogLineBytes:   min(l.MaxLogLineBytes, d.MaxLogLineBytes),
		MaxActionsPerPlan: min(l.MaxActionsPerPlan, d.MaxActionsPerPlan),
	}
}

// Validate checks that every limit is positive. Limits above this build's
// defaults are accepted (forward compatibility) and lowered by Clamp.
func (l Limits) Validate() error {
	for _, f := range []struct {
		field string
		v     int
	}{
		{"max_frame_bytes", l.MaxFrameBytes},
		{"max_log_batch_lines", l.MaxLogBatchLines},
		{"max_log_line_bytes", l.MaxLogLineBytes},
		{"max_actions_per_plan", l.MaxActionsPerPlan},
	} {
		if f.v < 1 {
			return fmt.Errorf("%s: %d, want at least 1: %w", f.field, f.v, ErrInvalid)
		}
	}
	return nil
}

// MessageType returns TypeHelloAck.
func (HelloAck) MessageType() string { return TypeHelloAck }

// HeartbeatInterval returns HeartbeatIntervalMS as a duration.
func (m HelloAck) HeartbeatInterval() time.Duration {
	return time.Duration(m.HeartbeatIntervalMS) * time.Millisecond
}

// Validate checks the ack.
func (m HelloAck) Validate() error {
	if err := checkID("agent_id", m.AgentID); err != nil {
		return err
	}
	if m.CapabilityVersion < 1 {
		return fmt.Errorf("capability_version: %d, want at least 1: %w", m.CapabilityVersion, ErrInvalid)
	}
	if m.HeartbeatIntervalMS < MinHeartbeatIntervalMS || m.HeartbeatIntervalMS > MaxHeartbeatIntervalMS {
		return fmt.Errorf("heartbeat_interval_ms: %d not in %d..%d: %w",
			m.HeartbeatIntervalMS, MinHeartbeatIntervalMS, MaxHeartbeatIntervalMS, ErrInvalid)
	}
	if err := checkTime("server_time", m.ServerTime); err != nil {
		return err
	}
	if err := m.Limits.Validate(); err != nil {
		return fmt.Errorf("limits: %w", err)
	}
	return nil
}

// Action types of a plan; they match the store's action type names.
const (
	ActionMicroVMCreate = "MicroVMCreate"
	ActionMicroVMStart  = "MicroVMStart"
	ActionMicroVMStop   = "MicroVMStop"
	ActionMicroVMReboot = "MicroVMReboot"
	ActionMicroVMDelete = "MicroVMDelete"
	ActionMicroVMPause  = "MicroVMPause"
	ActionMicroVMResume = "MicroVMResume"
)

var actionTypes = []string{
	ActionMicroVMCreate, ActionMicroVMStart, ActionMicroVMStop, ActionMicroVMReboot,
	ActionMicroVMDelete, ActionMicroVMPause, ActionMicroVMResume,
}

// Plan is an ordered list of actions for the agent. The agent answers
// with PlanAck once it holds the plan, runs each action at most once per
// ActionID, and reports each with ActionResult.
type Plan struct {
	PlanID  uuid.UUID `json:"plan_id"`
	Actions []Action  `json:"actions"`
}

// Action is one step of a plan.
type Action struct {
	ActionID    uuid.UUID `json:"action_id"`
	ExecutionID uuid.UUID `json:"execution_id"`
	Type        string    `json:"type"`
	VMID        uuid.UUID `json:"vm_id"`
	// Params holds the type-specific parameters as a JSON object (for
	// MicroVMCreate, the VM spec); absent when the action takes none.
	Params json.RawMessage `json:"params,omitempty"`
}

// MessageType returns TypePlan.
func (Plan) MessageType() string { return TypePlan }

// Validate checks the plan.
func (m Plan) Validate() error {
	if err := checkID("plan_id", m.PlanID); err != nil {
		return err
	}
	if len(m.Actions) == 0 {
		return fmt.Errorf("actions: empty plan: %w", ErrInvalid)
	}
	if err := checkCount("actions", len(m.Actions), MaxActionsPerPlan); err != nil {
		return err
	}
	seen := make(map[uuid.UUID]bool, len(m.Actions))
	for i, a := range m.Actions {
		if err := a.Validate(); err != nil {
			return fmt.Errorf("actions[%d]: %w", i, err)
		}
		// The agent deduplicates by action id; two actions with one id
		// would silently run once.
		if seen[a.ActionID] {
			return fmt.Errorf("actions[%d].action_id: %s repeated: %w", i, a.ActionID, ErrInvalid)
		}
		seen[a.ActionID] = true
	}
	return nil
}

// Validate checks the action.
func (a Action) Validate() error {
	if err := checkID("action_id", a.ActionID); err != nil {
		return err
	}
	if err := checkID("execution_id", a.ExecutionID); err != nil {
		return err
	}
	if err := checkOneOf("type", a.Type, actionTypes...); err != nil {
		return err
	}
	// Every action type of this version targets one VM.
	if err := checkID("vm_id", a.VMID); err != nil {
		return err
	}
	if len(a.Params) == 0 {
		return nil
	}
	if err := checkCount("params bytes", len(a.Params), MaxActionParamsBytes); err != nil {
		return err
	}
	p := bytes.TrimSpace(a.Params)
	if len(p) == 0 || p[0] != '{' || !json.Valid(p) {
		return fmt.Errorf("params: not a JSON object: %w", ErrInvalid)
	}
	return nil
}

// ResultAck tells the agent that the server stored a terminal result, so
// the agent can stop resending it.
type ResultAck struct {
	ActionID uuid.UUID `json:"action_id"`
}

// MessageType returns TypeResultAck.
func (ResultAck) MessageType() string { return TypeResultAck }

// Validate checks the ack.
func (m ResultAck) Validate() error { return checkID("action_id", m.ActionID) }

// LogAck tells the agent that the server stored every line of an
// execution up to and including Seq.
type LogAck struct {
	ExecutionID uuid.UUID `json:"execution_id"`
	Seq         int64     `json:"seq"`
}

// MessageType returns TypeLogAck.
func (LogAck) MessageType() string { return TypeLogAck }

// Validate checks the ack.
func (m LogAck) Validate() error {
	if err := checkID("execution_id", m.ExecutionID); err != nil {
		return err
	}
	if m.Seq < 1 {
		return fmt.Errorf("seq: %d, want at least 1: %w", m.Seq, ErrInvalid)
	}
	return nil
}

// CertRenewed answers CertRenew with the new client certificate.
type CertRenewed struct {
	// Certificate is the PEM client certificate, leaf first.
	Certificate string `json:"certificate"`
	// CA is the PEM CA bundle the agent should pin.
	CA        string    `json:"ca"`
	ExpiresAt time.Time `json:"expires_at"`
}

// MessageType returns TypeCertRenewed.
func (CertRenewed) MessageType() string { return TypeCertRenewed }

// Validate checks that both fields are parseable PEM certificates. Chain
// verification against the pinned CA is the agent's job.
func (m CertRenewed) Validate() error {
	if err := checkPEMCertificates("certificate", m.Certificate); err != nil {
		return err
	}
	if err := checkPEMCertificates("ca", m.CA); err != nil {
		return err
	}
	return checkTime("expires_at", m.ExpiresAt)
}

func checkPEMCertificates(field, s string) error {
	if err := checkRequiredText(field, s, MaxPEMBytes); err != nil {
		return err
	}
	rest := []byte(s)
	n := 0
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			return fmt.Errorf("%s: PEM block %d is a %.64q: %w", field, n, block.Type, ErrInvalid)
		}
		if _, err := x509.ParseCertificate(block.Bytes); err != nil {
			return fmt.Errorf("%s: parsing certificate %d: %w: %w", field, n, ErrInvalid, err)
		}
		n++
	}
	if n == 0 {
		return fmt.Errorf("%s: no PEM CERTIFICATE block: %w", field, ErrInvalid)
	}
	if len(strings.TrimSpace(string(rest))) != 0 {
		return fmt.Errorf("%s: data after the PEM blocks: %w", field, ErrInvalid)
	}
	return nil
}

// Revoked tells the agent its identity was revoked; the server closes the
// channel with CloseRevoked right after, and the agent must not reconnect.
type Revoked struct {
	Reason string `json:"reason"`
}

// MessageType returns TypeRevoked.
func (Revoked) MessageType() string { return TypeRevoked }

// Validate checks the notice.
func (m Revoked) Validate() error { return checkRequiredText("reason", m.Reason, MaxErrorBytes) }

// ConsoleStart asks the agent to stream a VM's serial console as
// ConsoleData messages tagged with StreamID, until ConsoleStop.
type ConsoleStart struct {
	VMID     uuid.UUID `json:"vm_id"`
	StreamID uuid.UUID `json:"stream_id"`
}

// MessageType returns TypeConsoleStart.
func (ConsoleStart) MessageType() string { return TypeConsoleStart }

// Validate checks the request.
func (m ConsoleStart) Validate() error { return validateConsoleStream(m.VMID, m.StreamID) }

// ConsoleStop ends a console stream.
type ConsoleStop struct {
	VMID     uuid.UUID `json:"vm_id"`
	StreamID uuid.UUID `json:"stream_id"`
}

// MessageType returns TypeConsoleStop.
func (ConsoleStop) MessageType() string { return TypeConsoleStop }

// Validate checks the request.
func (m ConsoleStop) Validate() error { return validateConsoleStream(m.VMID, m.StreamID) }

func validateConsoleStream(vm, stream uuid.UUID) error {
	if err := checkID("vm_id", vm); err != nil {
		return err
	}
	return checkID("stream_id", stream)
}

// Error codes. Receivers treat unknown codes as generic errors, so new
// codes need no capability bump.
const (
	// ErrorCodeMalformed: the peer's frame could not be decoded.
	ErrorCodeMalformed = "malformed"
	// ErrorCodeUnknownType: the peer sent a type this side does not know.
	ErrorCodeUnknownType = "unknown_type"
	// ErrorCodeInvalid: the peer's message failed validation.
	ErrorCodeInvalid = "invalid"
	// ErrorCodeUnexpected: a valid message arrived at the wrong time
	// (a heartbeat before hello, a result for an unknown action).
	ErrorCodeUnexpected = "unexpected"
	// ErrorCodeInternal: the server failed to handle a valid message; the
	// agent should retry it later.
	ErrorCodeInternal = "internal"
	// ErrorCodeCertRenewal: a CertRenew was refused.
	ErrorCodeCertRenewal = "cert_renewal_refused"
)

// Error reports a problem with a message the agent sent, without closing
// the channel. Envelope.ID echoes the ID of the offending message when it
// had one.
type Error struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// MessageType returns TypeError.
func (Error) MessageType() string { return TypeError }

// Validate checks the error.
func (m Error) Validate() error {
	if err := checkName("code", m.Code); err != nil {
		return err
	}
	return checkText("message", m.Message, MaxErrorBytes)
}
