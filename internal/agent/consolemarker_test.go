package agent

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/kubedoio/n-kudo/internal/agentproto"
)

// TestConsoleMarkerFollowsServerCapability: the end-of-snapshot marker
// goes only to a server whose hello_ack says it takes one; an older
// server refuses a console_data without data.
func TestConsoleMarkerFollowsServerCapability(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name       string
		capability int
		wantMarker bool
	}{
		{"server before the marker", agentproto.CapabilityConsoleSnapshotDone - 1, false},
		{"server with the marker", agentproto.CapabilityConsoleSnapshotDone, true},
		{"newer server", agentproto.CapabilityConsoleSnapshotDone + 1, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			vm, stream := uuid.New(), uuid.New()
			require.NoError(t, os.MkdirAll(filepath.Join(dir, vm.String()), 0o700))
			require.NoError(t, os.WriteFile(filepath.Join(dir, vm.String(), ConsoleLogName), []byte("login: "), 0o600))

			logPath := filepath.Join(dir, vm.String(), ConsoleLogName)
			var mu sync.Mutex
			var sent []agentproto.ConsoleData
			var invalid []error
			got := make(chan struct{}, 8)
			tails := newConsoleTails(dir, func(_ context.Context, m agentproto.ConsoleData) error {
				mu.Lock()
				sent = append(sent, m)
				if err := m.Validate(); err != nil {
					invalid = append(invalid, err)
				}
				mu.Unlock()
				got <- struct{}{}
				return nil
			})
			tails.serverCapability(tc.capability)
			require.NoError(t, tails.start(t.Context(), agentproto.ConsoleStart{VMID: vm, StreamID: stream}))
			<-got // the snapshot
			// New output comes after any marker: once it is in, the
			// marker was sent or never will be.
			f, err := os.OpenFile(logPath, os.O_WRONLY|os.O_APPEND, 0)
			require.NoError(t, err)
			_, err = f.WriteString("root\n")
			require.NoError(t, err)
			require.NoError(t, f.Close())
			for {
				<-got
				mu.Lock()
				last := sent[len(sent)-1]
				mu.Unlock()
				if string(last.Data) == "root\n" {
					break
				}
			}
			tails.stop(stream)
			tails.wait()

			mu.Lock()
			defer mu.Unlock()
			require.Empty(t, invalid, "every message is valid")
			require.Equal(t, "login: ", string(sent[0].Data))
			markers := 0
			for _, m := range sent {
				if m.SnapshotDone {
					markers++
				}
			}
			if tc.wantMarker {
				require.Equal(t, 1, markers)
				require.True(t, sent[1].SnapshotDone, "the marker follows the snapshot")
			} else {
				require.Zero(t, markers)
			}
		})
	}
}
