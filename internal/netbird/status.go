package netbird

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"
)

// Daemon states reported in Status.DaemonStatus, as named by the NetBird
// client (client/internal.StatusType).
const (
	DaemonIdle           = "Idle"
	DaemonConnecting     = "Connecting"
	DaemonConnected      = "Connected"
	DaemonNeedsLogin     = "NeedsLogin"
	DaemonLoginFailed    = "LoginFailed"
	DaemonSessionExpired = "SessionExpired"
)

// Peer connection states reported in PeerDetail.Status.
const (
	PeerIdle       = "Idle"
	PeerConnecting = "Connecting"
	PeerConnected  = "Connected"
)

// Status is the output of `netbird status --json`. Field names follow
// NetBird's client/status output types; fields this package does not know
// are ignored so a newer NetBird client does not break the agent.
//
// Clients up to v0.66.4 print JSON only once logged in, without a
// daemonStatus field; in NeedsLogin, LoginFailed and SessionExpired they
// print plain text ("Daemon status: NeedsLogin", exit 0) even with
// --json (client/cmd/status.go). From v0.67.0 JSON, with daemonStatus, is
// printed in every state. ParseStatus reads all of these.
type Status struct {
	Peers                       PeersOverview     `json:"peers"`
	CLIVersion                  string            `json:"cliVersion"`
	DaemonVersion               string            `json:"daemonVersion"`
	DaemonStatus                string            `json:"daemonStatus"`
	Management                  ServerState       `json:"management"`
	Signal                      ServerState       `json:"signal"`
	Relays                      RelaysOverview    `json:"relays"`
	NetBirdIP                   string            `json:"netbirdIp"`
	NetBirdIPv6                 string            `json:"netbirdIpv6,omitempty"`
	PublicKey                   string            `json:"publicKey"`
	UsesKernelInterface         bool              `json:"usesKernelInterface"`
	WireGuardPort               int               `json:"wireguardPort"`
	FQDN                        string            `json:"fqdn"`
	QuantumResistance           bool              `json:"quantumResistance"`
	QuantumResistancePermissive bool              `json:"quantumResistancePermissive"`
	Networks                    []string          `json:"networks"`
	ForwardingRules             int               `json:"forwardingRules"`
	DNSServers                  []NameServerGroup `json:"dnsServers"`
	Events                      []Event           `json:"events"`
	LazyConnectionEnabled       bool              `json:"lazyConnectionEnabled"`
	ProfileName                 string            `json:"profileName"`
	SSHServer                   SSHServerState    `json:"sshServer"`
}

// PeersOverview counts the remote peers this client knows about.
type PeersOverview struct {
	Total     int          `json:"total"`
	Connected int          `json:"connected"`
	Details   []PeerDetail `json:"details"`
}

// PeerDetail is one remote peer as seen by the local client.
type PeerDetail struct {
	FQDN                   string        `json:"fqdn"`
	NetBirdIP              string        `json:"netbirdIp"`
	PublicKey              string        `json:"publicKey"`
	Status                 string        `json:"status"`
	LastStatusUpdate       time.Time     `json:"lastStatusUpdate"`
	ConnectionType         string        `json:"connectionType"`
	ICECandidateType       ICEPair       `json:"iceCandidateType"`
	ICECandidateEndpoint   ICEPair       `json:"iceCandidateEndpoint"`
	RelayAddress           string        `json:"relayAddress"`
	LastWireguardHandshake time.Time     `json:"lastWireguardHandshake"`
	TransferReceived       int64         `json:"transferReceived"`
	TransferSent           int64         `json:"transferSent"`
	Latency                time.Duration `json:"latency"` // nanoseconds on the wire
	QuantumResistance      bool          `json:"quantumResistance"`
	Networks               []string      `json:"networks"`
}

// ICEPair is a local/remote pair of ICE candidate types or endpoints.
type ICEPair struct {
	Local  string `json:"local"`
	Remote string `json:"remote"`
}

// ServerState is the client's connection to the management or signal
// service.
type ServerState struct {
	URL       string `json:"url"`
	Connected bool   `json:"connected"`
	Error     string `json:"error"`
}

// RelaysOverview counts the relays (TURN and NetBird relay servers) the
// client can use when no direct path exists.
type RelaysOverview struct {
	Total     int           `json:"total"`
	Available int           `json:"available"`
	Details   []RelayDetail `json:"details"`
}

// RelayDetail is one relay server.
type RelayDetail struct {
	URI       string `json:"uri"`
	Available bool   `json:"available"`
	Error     string `json:"error"`
	Transport string `json:"transport,omitempty"`
}

// NameServerGroup is one group of DNS servers pushed by management.
type NameServerGroup struct {
	Servers []string `json:"servers"`
	Domains []string `json:"domains"`
	Enabled bool     `json:"enabled"`
	Error   string   `json:"error"`
}

// Event is a system event the client recorded (DNS failures, network
// changes, authentication problems...).
type Event struct {
	ID          string            `json:"id"`
	Severity    string            `json:"severity"`
	Category    string            `json:"category"`
	Message     string            `json:"message"`
	UserMessage string            `json:"userMessage"`
	Timestamp   time.Time         `json:"timestamp"`
	Metadata    map[string]string `json:"metadata"`
}

// SSHServerState is the client's embedded SSH server.
type SSHServerState struct {
	Enabled  bool         `json:"enabled"`
	Sessions []SSHSession `json:"sessions"`
}

// SSHSession is one active session on the embedded SSH server.
type SSHSession struct {
	Username      string `json:"username"`
	RemoteAddress string `json:"remoteAddress"`
	Command       string `json:"command"`
	JWTUsername   string `json:"jwtUsername,omitempty"`
}

// textStatusPrefix starts what clients before v0.67.0 print instead of
// JSON while the daemon is not logged in (client/cmd/status.go).
const textStatusPrefix = "Daemon status: "

// ParseStatus decodes the output of `netbird status --json`: the JSON
// object, or the plain text older clients print before login, which
// becomes a Status holding only the daemon state it names. Unknown fields
// are ignored; anything else wraps ErrMalformedStatus.
func ParseStatus(data []byte) (Status, error) {
	var s Status
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) == 0 {
		return Status{}, fmt.Errorf("parsing netbird status: empty output: %w", ErrMalformedStatus)
	}
	if rest, ok := bytes.CutPrefix(trimmed, []byte(textStatusPrefix)); ok {
		return parseTextStatus(rest)
	}
	// "null" or an array would decode without error into a zero Status,
	// which reads as "disconnected" and hides that the client answered
	// nonsense.
	if trimmed[0] != '{' {
		return Status{}, fmt.Errorf("parsing netbird status: output is not a JSON object: %w", ErrMalformedStatus)
	}
	if err := json.Unmarshal(data, &s); err != nil {
		return Status{}, fmt.Errorf("parsing netbird status: %w: %w", ErrMalformedStatus, err)
	}
	return s, nil
}

// parseTextStatus reads the state after "Daemon status: ". Only the
// states in which old clients print text are accepted: a Connected in
// text would be some other output, and reading it as connected would
// hide that.
func parseTextStatus(rest []byte) (Status, error) {
	line, _, _ := bytes.Cut(rest, []byte("\n"))
	state := string(bytes.TrimSpace(line))
	switch state {
	case DaemonNeedsLogin, DaemonLoginFailed, DaemonSessionExpired:
		return Status{DaemonStatus: state}, nil
	}
	return Status{}, fmt.Errorf("parsing netbird status: text output naming daemon status %q: %w", truncateUTF8(state, 64), ErrMalformedStatus)
}
