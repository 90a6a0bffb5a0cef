package data

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestVMDrift(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name            string
		desired, actual string
		want            bool
	}{
		{"in step", StateRunning, StateRunning, false},
		{"stopped as asked", StateStopped, StateStopped, false},
		{"no report yet", StateRunning, "", false},
		{"still creating", StateRunning, StateCreating, false},
		{"should run, stopped", StateRunning, StateStopped, true},
		{"should stop, running", StateStopped, StateRunning, true},
		{"host offline", StateRunning, StateUnknown, true},
		{"failed", StateRunning, StateFailed, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tt.want, VM{DesiredState: tt.desired, ActualState: tt.actual}.Drift())
		})
	}
}

func TestPlanProgressAndFinished(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		statuses    []string
		done, total int
	}{
		{"empty plan", nil, 0, 0},
		{"nothing finished", []string{StatusPending, StatusDispatched, StatusRunning}, 0, 3},
		{"every terminal status counts", []string{StatusSucceeded, StatusFailed, StatusCancelled, StatusRunning}, 3, 4},
		{"all done", []string{StatusSucceeded, StatusSucceeded}, 2, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var p Plan
			for _, s := range tt.statuses {
				p.Actions = append(p.Actions, Action{Status: s})
			}
			done, total := p.Progress()
			require.Equal(t, tt.done, done)
			require.Equal(t, tt.total, total)
		})
	}
}

func TestVerb(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want string }{
		{"MicroVMStop", "stop"},
		{"MicroVMCreate", "create"},
		{"MicroVMReboot", "reboot"},
		{"Snapshot", "snapshot"},
		{"", ""},
	}
	for _, tt := range tests {
		require.Equal(t, tt.want, Verb(tt.in), tt.in)
	}
}

func TestMemoryFraction(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		usage Usage
		want  float64
	}{
		{"unknown total", Usage{MemoryUsedBytes: 1 << 30}, 0},
		{"a quarter", Usage{MemoryUsedBytes: 2 << 30, MemoryTotalBytes: 8 << 30}, 0.25},
		{"full", Usage{MemoryUsedBytes: 8 << 30, MemoryTotalBytes: 8 << 30}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			require.InDelta(t, tt.want, tt.usage.MemoryFraction(), 1e-9)
		})
	}
}

func TestConnStateString(t *testing.T) {
	t.Parallel()
	tests := []struct {
		st   ConnState
		want string
	}{
		{Connecting, "connecting"},
		{Connected, "connected"},
		{Reconnecting, "reconnecting"},
		{Offline, "offline"},
		{ConnState(42), "unknown"},
	}
	for _, tt := range tests {
		require.Equal(t, tt.want, tt.st.String())
	}
}
