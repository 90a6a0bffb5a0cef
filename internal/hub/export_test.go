package hub

import "github.com/google/uuid"

// SetBeforeRegister makes h run f in each hello between queueing hello_ack
// and registering the session, so a test can hold the registration back.
func SetBeforeRegister(h *Hub, f func(agentID uuid.UUID)) {
	h.beforeRegister.Store(&f)
}
