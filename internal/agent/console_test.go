package agent_test

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/kubedoio/n-kudo/internal/agent"
	"github.com/kubedoio/n-kudo/internal/agentproto"
	"github.com/kubedoio/n-kudo/internal/hub"
	"github.com/kubedoio/n-kudo/internal/store"
)

// recv returns the next console chunk of a stream, failing after waitTimeout.
func recv(t *testing.T, cs *hub.ConsoleStream) []byte {
	t.Helper()
	select {
	case b, ok := <-cs.C():
		require.True(t, ok, "stream ended: %v", cs.Err())
		return b
	case <-time.After(waitTimeout):
		t.Fatal("no console data in time")
		return nil
	}
}

// recvUntil collects chunks until they hold want.
func recvUntil(t *testing.T, cs *hub.ConsoleStream, want []byte) []byte {
	t.Helper()
	var got []byte
	for !bytes.Contains(got, want) {
		got = append(got, recv(t, cs)...)
	}
	return got
}

// bootedVM runs an agent with a runtime directory and a VM it booted, and
// returns the VM's console log path.
func bootedVM(t *testing.T) (e *env, ta *testAgent, vm uuid.UUID, logPath string) {
	t.Helper()
	e = newEnv(t)
	ta = e.enroll(time.Hour)
	e.start(ta, func(o *agent.Options) { o.RuntimeDir = filepath.Join(ta.stateDir, "runtime") })
	p, vm := e.submitVMPlan(ta)
	wait(t, "plan to succeed", func() bool { return e.planStatus(p.ID) == store.StatusSucceeded })
	return e, ta, vm, filepath.Join(ta.stateDir, "runtime", vm.String(), agent.ConsoleLogName)
}

// TestConsoleTail drives console tails through the real hub: the snapshot
// is the end of the log in one chunk, new output follows, a log replaced
// by a new one is followed from its start, and the stream ends when the
// agent goes.
func TestConsoleTail(t *testing.T) {
	t.Parallel()
	e, ta, vm, logPath := bootedVM(t)

	// The sim guest booted: its synthetic console is the snapshot.
	cs, err := e.hub.OpenConsole(t.Context(), ta.id, vm)
	require.NoError(t, err)
	first := recv(t, cs)
	require.Contains(t, string(first), "[simulated]")
	require.Contains(t, string(first), "login: ")

	// New output follows.
	f, err := os.OpenFile(logPath, os.O_WRONLY|os.O_APPEND, 0)
	require.NoError(t, err)
	_, err = f.WriteString("root\nuptime: 42 days\n")
	require.NoError(t, err)
	require.NoError(t, f.Close())
	recvUntil(t, cs, []byte("uptime: 42 days"))

	// A replaced log (the VM was re-created) is read from its start.
	require.NoError(t, os.Remove(logPath))
	require.NoError(t, os.WriteFile(logPath, []byte("fresh boot\n"), 0o600))
	recvUntil(t, cs, []byte("fresh boot"))
	cs.Close()
	cs.Close() // idempotent
	_, open := <-cs.C()
	require.False(t, open)
	require.NoError(t, cs.Err())

	// A long log: the snapshot is exactly its last 64 KiB, in one chunk.
	big := bytes.Repeat([]byte("0123456789abcde\n"), 3*agentproto.MaxConsoleChunkBytes/16)
	require.NoError(t, os.WriteFile(logPath+".new", big, 0o600))
	require.NoError(t, os.Rename(logPath+".new", logPath))
	cs2, err := e.hub.OpenConsole(t.Context(), ta.id, vm)
	require.NoError(t, err)
	require.Equal(t, big[len(big)-agent.ConsoleSnapshotBytes:], recv(t, cs2))

	// The agent goes away: the stream ends with ErrAgentOffline.
	ta.stop()
	for range cs2.C() {
	}
	require.ErrorIs(t, cs2.Err(), hub.ErrAgentOffline)
	cs2.Close()

	_, err = e.hub.OpenConsole(t.Context(), ta.id, vm)
	require.ErrorIs(t, err, hub.ErrAgentOffline)
}

// TestConsoleSnapshotMarker: the agent ends every tail's snapshot with a
// marker, whatever the log holds, so a one-shot read answers at once; the
// snapshot's chunks all come before it.
func TestConsoleSnapshotMarker(t *testing.T) {
	t.Parallel()
	e, ta, vm, logPath := bootedVM(t)

	for _, tc := range []struct {
		name string
		// log is the console log's content; nil: no log file.
		log  []byte
		want string
	}{
		{name: "log with output", log: []byte("boot\nlogin: "), want: "boot\nlogin: "},
		{name: "empty log", log: []byte{}, want: ""},
		{name: "no log yet", want: ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.NoError(t, os.RemoveAll(logPath))
			if tc.log != nil {
				require.NoError(t, os.WriteFile(logPath, tc.log, 0o600))
			}
			cs, err := e.hub.OpenConsole(t.Context(), ta.id, vm)
			require.NoError(t, err)
			defer cs.Close()
			select {
			case <-cs.Snapshot():
			case <-time.After(waitTimeout):
				t.Fatal("no end-of-snapshot marker in time")
			}
			var got []byte
			for len(cs.C()) > 0 {
				got = append(got, <-cs.C()...)
			}
			require.Equal(t, tc.want, string(got), "the snapshot, all delivered before the marker")
			if tc.log == nil {
				// A log that appears later is followed.
				require.NoError(t, os.WriteFile(logPath, []byte("late boot\n"), 0o600))
				recvUntil(t, cs, []byte("late boot"))
			}
		})
	}
}
