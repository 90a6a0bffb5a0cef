package hub_test

import (
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/kubedoio/n-kudo/internal/agentproto"
	"github.com/kubedoio/n-kudo/internal/hub"
	"github.com/kubedoio/n-kudo/internal/store"
)

func decodeConsoleStart(t testing.TB, env agentproto.Envelope) agentproto.ConsoleStart {
	t.Helper()
	m, err := agentproto.DecodeData[agentproto.ConsoleStart](env)
	require.NoError(t, err)
	return m
}

// TestConsoleRelay covers the relay rules: chunks reach the stream in
// order, another agent's chunks for the same stream id are dropped, Close
// sends console_stop, and a reader that falls behind is cut off with
// ErrLagged while the session itself carries on.
func TestConsoleRelay(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	a, b := e.enroll(), e.enroll()
	vm := e.createVM(a, store.VMRunning)
	ca, _ := e.connect(a)
	cb, _ := e.connect(b)

	_, err := e.hub.OpenConsole(t.Context(), uuid.New(), vm)
	require.ErrorIs(t, err, hub.ErrAgentOffline)

	cs, err := e.hub.OpenConsole(t.Context(), a.id, vm)
	require.NoError(t, err)
	start := decodeConsoleStart(t, ca.expect(agentproto.TypeConsoleStart))
	require.Equal(t, vm, start.VMID)
	require.Equal(t, cs.ID(), start.StreamID)

	cb.send(agentproto.TypeConsoleData, "", &agentproto.ConsoleData{VMID: vm, StreamID: start.StreamID, Data: []byte("forged")})
	cb.roundTrip() // b's chunk was handled (and dropped) before this answer
	for _, chunk := range []string{"one", "two"} {
		ca.send(agentproto.TypeConsoleData, "", &agentproto.ConsoleData{VMID: vm, StreamID: start.StreamID, Data: []byte(chunk)})
	}
	require.Equal(t, []byte("one"), <-cs.C())
	require.Equal(t, []byte("two"), <-cs.C())

	cs.Close()
	stop, err := agentproto.DecodeData[agentproto.ConsoleStop](ca.expect(agentproto.TypeConsoleStop))
	require.NoError(t, err)
	require.Equal(t, start.StreamID, stop.StreamID)
	// A chunk crossing console_stop on the wire is harmless.
	ca.send(agentproto.TypeConsoleData, "", &agentproto.ConsoleData{VMID: vm, StreamID: start.StreamID, Data: []byte("late")})
	ca.roundTrip()

	// A reader that does not read: one chunk over the buffer ends it.
	lazy, err := e.hub.OpenConsole(t.Context(), a.id, vm)
	require.NoError(t, err)
	start = decodeConsoleStart(t, ca.expect(agentproto.TypeConsoleStart))
	for i := 0; i <= hub.ConsoleBufferChunks; i++ {
		ca.send(agentproto.TypeConsoleData, "", &agentproto.ConsoleData{VMID: vm, StreamID: start.StreamID, Data: []byte("x")})
	}
	stop, err = agentproto.DecodeData[agentproto.ConsoleStop](ca.expect(agentproto.TypeConsoleStop))
	require.NoError(t, err)
	require.Equal(t, start.StreamID, stop.StreamID)
	n := 0
	for range lazy.C() {
		n++
	}
	require.Equal(t, hub.ConsoleBufferChunks, n, "buffered chunks are still delivered")
	require.ErrorIs(t, lazy.Err(), hub.ErrLagged)
	lazy.Close()
	ca.roundTrip()
	require.True(t, e.hub.Online(a.id), "a lagging console reader never costs the agent its session")
}
