package agentproto

import (
	"errors"

	"github.com/coder/websocket"
)

// Close statuses and reasons of the agent channel. Standard statuses are
// used where one fits; the 4000-range ones are this protocol's own, so an
// agent can tell "stop for good" from "reconnect later" without parsing
// the reason text. Reasons are short (a close frame holds 123 bytes).
const (
	// CloseNormal: a clean shutdown by either side.
	CloseNormal       = websocket.StatusNormalClosure
	CloseNormalReason = "bye"
	// CloseGoingAway: the server is shutting down; reconnect with backoff.
	CloseGoingAway       = websocket.StatusGoingAway
	CloseGoingAwayReason = "server shutting down"
	// CloseSlowConsumer: the peer did not read fast enough and its
	// bounded outbound queue overflowed.
	CloseSlowConsumer       = websocket.StatusPolicyViolation
	CloseSlowConsumerReason = "slow consumer"
	// CloseMalformed: a frame could not be decoded or failed validation.
	CloseMalformed       = websocket.StatusInvalidFramePayloadData
	CloseMalformedReason = "malformed frame"
	// CloseTooLarge: a frame exceeded the frame limit.
	CloseTooLarge       = websocket.StatusMessageTooBig
	CloseTooLargeReason = "frame too large"
	// CloseUnknownType: a frame named a type this side does not know.
	CloseUnknownType       = websocket.StatusUnsupportedData
	CloseUnknownTypeReason = "unknown message type"
	// CloseProtocolError: valid messages in an invalid order (anything
	// before hello, a second hello, no hello in time).
	CloseProtocolError       = websocket.StatusProtocolError
	CloseProtocolErrorReason = "protocol violation"
	// CloseHeartbeatTimeout: nothing heard from the agent for too long.
	CloseHeartbeatTimeout       = websocket.StatusPolicyViolation
	CloseHeartbeatTimeoutReason = "heartbeat timeout"

	// CloseCapabilityTooOld: the agent's capability version is below
	// MinCapabilityVersion; it must be upgraded, not retried.
	CloseCapabilityTooOld       websocket.StatusCode = 4000
	CloseCapabilityTooOldReason                      = "capability version too old"
	// CloseReplaced: a newer session of the same agent took over. The
	// old connection must not reconnect on its own, or two copies of one
	// agent would keep evicting each other.
	CloseReplaced       websocket.StatusCode = 4001
	CloseReplacedReason                      = "replaced by a newer session"
	// CloseRevoked: the agent's identity was revoked; never reconnect.
	CloseRevoked       websocket.StatusCode = 4002
	CloseRevokedReason                      = "agent revoked"
	// CloseOverloaded: admission control turned the session away; retry
	// with backoff and jitter.
	CloseOverloaded       websocket.StatusCode = 4003
	CloseOverloadedReason                      = "server overloaded, retry later"
)

// CloseFor returns the close status and reason for a decoding error of
// this package, and CloseProtocolError for any other error.
func CloseFor(err error) (websocket.StatusCode, string) {
	switch {
	case errors.Is(err, ErrTooLarge):
		return CloseTooLarge, CloseTooLargeReason
	case errors.Is(err, ErrUnknownType):
		return CloseUnknownType, CloseUnknownTypeReason
	case errors.Is(err, ErrMalformed), errors.Is(err, ErrInvalid):
		return CloseMalformed, CloseMalformedReason
	default:
		return CloseProtocolError, CloseProtocolErrorReason
	}
}

// Permanent reports whether an agent closed with code must stop instead
// of reconnecting: retrying cannot succeed without operator action.
func Permanent(code websocket.StatusCode) bool {
	return code == CloseCapabilityTooOld || code == CloseRevoked || code == CloseReplaced
}
