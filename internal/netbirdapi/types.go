package netbirdapi

import (
	"log/slog"
	"time"
)

// Setup key types.
const (
	SetupKeyOneOff   = "one-off"
	SetupKeyReusable = "reusable"
)

// CreateSetupKeyRequest is the body of POST /api/setup-keys.
type CreateSetupKeyRequest struct {
	Name string `json:"name"`
	// Type is SetupKeyOneOff or SetupKeyReusable.
	Type string `json:"type"`
	// ExpiresIn is in seconds; 0 means the key never expires. The document
	// says 86400..31536000, but the server refuses only negative values
	// (handlers/setup_keys/setupkeys_handler.go, since v0.31.0).
	ExpiresIn int `json:"expires_in"`
	// AutoGroups are group IDs (see Client.ResolveGroups), not names.
	AutoGroups []string `json:"auto_groups"`
	// UsageLimit is how many peers may join with the key; 0 is unlimited.
	UsageLimit          int  `json:"usage_limit"`
	Ephemeral           bool `json:"ephemeral"`
	AllowExtraDNSLabels bool `json:"allow_extra_dns_labels"`
}

// updateSetupKeyRequest is the body of PUT /api/setup-keys/{keyId}
// (SetupKeyRequest in the spec): both fields are required.
type updateSetupKeyRequest struct {
	Revoked    bool     `json:"revoked"`
	AutoGroups []string `json:"auto_groups"`
}

// SetupKey is a setup key as NetBird returns it (SetupKey / SetupKeyClear).
// Key is the plaintext only in CreateSetupKey's answer; elsewhere it is
// masked.
type SetupKey struct {
	ID                  string    `json:"id"`
	Key                 string    `json:"key"`
	Name                string    `json:"name"`
	Expires             time.Time `json:"expires"`
	Type                string    `json:"type"`
	Valid               bool      `json:"valid"`
	Revoked             bool      `json:"revoked"`
	UsedTimes           int       `json:"used_times"`
	LastUsed            time.Time `json:"last_used"`
	State               string    `json:"state"`
	AutoGroups          []string  `json:"auto_groups"`
	UpdatedAt           time.Time `json:"updated_at"`
	UsageLimit          int       `json:"usage_limit"`
	Ephemeral           bool      `json:"ephemeral"`
	AllowExtraDNSLabels bool      `json:"allow_extra_dns_labels"`
}

// LogValue keeps the plaintext key out of logs when a SetupKey is logged.
func (k SetupKey) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("id", k.ID), slog.String("name", k.Name), slog.String("type", k.Type),
		slog.String("state", k.State), slog.Bool("revoked", k.Revoked), slog.Time("expires", k.Expires),
	)
}

// Peer is a machine in the NetBird account (Peer / PeerBatch).
type Peer struct {
	ID                          string         `json:"id"`
	Name                        string         `json:"name"`
	CreatedAt                   time.Time      `json:"created_at"`
	IP                          string         `json:"ip"`
	IPv6                        string         `json:"ipv6,omitempty"`
	ConnectionIP                string         `json:"connection_ip"`
	Connected                   bool           `json:"connected"`
	LastSeen                    time.Time      `json:"last_seen"`
	OS                          string         `json:"os"`
	KernelVersion               string         `json:"kernel_version"`
	GeonameID                   int            `json:"geoname_id"`
	Version                     string         `json:"version"`
	Groups                      []GroupMinimum `json:"groups"`
	SSHEnabled                  bool           `json:"ssh_enabled"`
	UserID                      string         `json:"user_id"`
	Hostname                    string         `json:"hostname"`
	UIVersion                   string         `json:"ui_version"`
	DNSLabel                    string         `json:"dns_label"`
	LoginExpirationEnabled      bool           `json:"login_expiration_enabled"`
	LoginExpired                bool           `json:"login_expired"`
	LastLogin                   time.Time      `json:"last_login"`
	InactivityExpirationEnabled bool           `json:"inactivity_expiration_enabled"`
	ApprovalRequired            bool           `json:"approval_required"`
	DisapprovalReason           string         `json:"disapproval_reason,omitempty"`
	CountryCode                 string         `json:"country_code"`
	CityName                    string         `json:"city_name"`
	SerialNumber                string         `json:"serial_number"`
	ExtraDNSLabels              []string       `json:"extra_dns_labels"`
	Ephemeral                   bool           `json:"ephemeral"`
	// AccessiblePeersCount is only in list answers (PeerBatch).
	AccessiblePeersCount int `json:"accessible_peers_count"`
}

// GroupMinimum is a group as embedded in other objects.
type GroupMinimum struct {
	ID             string `json:"id"`
	Name           string `json:"name"`
	PeersCount     int    `json:"peers_count"`
	ResourcesCount int    `json:"resources_count"`
	Issued         string `json:"issued,omitempty"`
}

// Group is a NetBird group with its members.
type Group struct {
	GroupMinimum
	Peers     []PeerMinimum `json:"peers"`
	Resources []Resource    `json:"resources"`
}

// PeerMinimum is a peer as embedded in a group.
type PeerMinimum struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

// Resource is a network resource in a group.
type Resource struct {
	ID   string `json:"id"`
	Type string `json:"type"`
}
