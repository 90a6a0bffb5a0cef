package mesh

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kubedoio/n-kudo/internal/agentproto"
	"github.com/kubedoio/n-kudo/internal/netbirdapi"
	"github.com/kubedoio/n-kudo/internal/store"
)

// States of the server's NetBird API credential.
const (
	// CredentialUnknown: no NetBird call has answered yet.
	CredentialUnknown = "unknown"
	// CredentialOK: the last answer NetBird gave accepted the token.
	CredentialOK = "ok"
	// CredentialRejected: NetBird refuses the token (401, or 404 for an
	// unknown or deleted token since v0.60.0); nothing NetBird-related
	// works until an operator replaces it.
	CredentialRejected = "token_rejected"
)

// Site NetBird states beyond the credential ones, for SiteState.
const (
	// SitePeersHidden: none of the site's hosts that report a NetBird
	// connection appear in the peer list: NetBird answers a token whose
	// user lacks peers:read with only that user's own peers (200, not
	// 403), and setup-key peers belong to no user.
	SitePeersHidden = "peers_hidden"
)

// Credential is the state of the NetBird API token as the last NetBird
// answer showed it.
type Credential struct {
	State string
	// Detail says why, for operators; it never holds the token.
	Detail string
	// Since is when the state last changed; zero while unknown.
	Since time.Time
}

// Credential returns the API token's state.
func (m *Mesh) Credential() Credential {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.cred
}

func (m *Mesh) registerMetrics(reg prometheus.Registerer) error {
	m.tokenGauge = prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: "nkudo",
		Subsystem: "netbird",
		Name:      "api_token_ok",
		Help:      "1 when NetBird's Management API accepted the server's token at the last call, 0 when it refused it (401, or 404 for an unknown token), -1 before any answer.",
	})
	m.tokenGauge.Set(-1)
	if reg == nil {
		return nil
	}
	if err := reg.Register(m.tokenGauge); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if g, ok := are.ExistingCollector.(prometheus.Gauge); ok {
				m.tokenGauge = g
				m.tokenGauge.Set(-1)
				return nil
			}
		}
		return fmt.Errorf("registering netbird token gauge: %w", err)
	}
	return nil
}

// note records what a NetBird call's outcome says about the token: a
// refusal marks it rejected, any answer that got past authentication
// (success, or an error about the request itself) marks it accepted.
// Transport failures and 5xx say nothing and change nothing.
func (m *Mesh) note(err error) {
	var next Credential
	var apiErr *netbirdapi.APIError
	switch {
	case netbirdapi.IsTokenRejected(err):
		next = Credential{State: CredentialRejected, Detail: "NetBird's Management API refuses the server's API token (NKUDO_NETBIRD_API_TOKEN): " + err.Error()}
	case err == nil, errors.As(err, &apiErr) && apiErr.StatusCode < 500 && apiErr.StatusCode != 429:
		next = Credential{State: CredentialOK}
	default:
		return
	}
	m.mu.Lock()
	changed := m.cred.State != next.State
	if changed {
		next.Since = m.now().UTC()
		m.cred = next
	} else if next.State == CredentialRejected {
		m.cred.Detail = next.Detail
	}
	m.mu.Unlock()
	if next.State == CredentialOK {
		m.tokenGauge.Set(1)
	} else {
		m.tokenGauge.Set(0)
	}
	if changed && next.State == CredentialRejected {
		m.log.LogAttrs(context.Background(), slog.LevelError, "netbird api token rejected", slog.String(logKeyError, err.Error()))
	} else if changed {
		m.log.LogAttrs(context.Background(), slog.LevelInfo, "netbird api token accepted")
	}
}

// SiteState is the NetBird side of a site as the server sees it.
type SiteState struct {
	// State is CredentialUnknown, CredentialOK, CredentialRejected or
	// SitePeersHidden.
	State  string
	Detail string
}

// SiteState judges a NetBird-enabled site from the credential and the
// cached peer list, given the site's hosts (a page of them is enough). It
// never calls NetBird.
func (m *Mesh) SiteState(hosts []store.Host) SiteState {
	cred := m.Credential()
	if cred.State != CredentialOK {
		return SiteState{State: cred.State, Detail: cred.Detail}
	}
	m.mu.RLock()
	refreshed := !m.refreshed.IsZero()
	m.mu.RUnlock()
	if !refreshed {
		return SiteState{State: CredentialUnknown, Detail: "the NetBird peer list has not been read yet"}
	}
	joined, seen := 0, 0
	for _, h := range hosts {
		if !reportsJoined(h.NetBird) {
			continue
		}
		joined++
		if _, ok := m.Peer(h); ok {
			seen++
		}
	}
	if joined > 0 && seen == 0 {
		return SiteState{State: SitePeersHidden, Detail: fmt.Sprintf(
			"none of the %d hosts that report a NetBird connection appear in NetBird's peer list: "+
				"the API token's user probably lacks permission to read peers (NetBird then lists only the user's own peers), "+
				"so peers of revoked agents cannot be found or removed", joined)}
	}
	return SiteState{State: CredentialOK}
}

// reportsJoined: the agent's last report says it is in the mesh, with an
// overlay address.
func reportsJoined(raw json.RawMessage) bool {
	var st struct {
		State string `json:"state"`
	}
	if len(raw) == 0 || json.Unmarshal(raw, &st) != nil {
		return false
	}
	return (st.State == agentproto.NetBirdConnected || st.State == agentproto.NetBirdDegraded) && reportedIP(raw).IsValid()
}
