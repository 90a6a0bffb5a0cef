package store

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestValidRole(t *testing.T) {
	t.Parallel()
	for role, want := range map[string]bool{RoleAdmin: true, RoleOperator: true, RoleViewer: true, "root": false, "": false, "Admin": false} {
		require.Equal(t, want, ValidRole(role), role)
	}
}

func TestTerminal(t *testing.T) {
	t.Parallel()
	for status, want := range map[string]bool{
		StatusPending: false, StatusDispatched: false, StatusRunning: false,
		StatusSucceeded: true, StatusFailed: true, StatusCancelled: true,
	} {
		require.Equal(t, want, Terminal(status), status)
	}
}

// TestNewIDOrdersByCreation: keyset pagination relies on ids sorting in
// creation order, as bytes and as their canonical text.
func TestNewIDOrdersByCreation(t *testing.T) {
	t.Parallel()
	prev := NewID()
	for range 1000 {
		id := NewID()
		require.Equal(t, 7, int(id.Version()))
		require.Less(t, prev.String(), id.String())
		prev = id
	}
}
