package agent

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
	"golang.org/x/time/rate"

	"github.com/kubedoio/n-kudo/internal/agentproto"
)

// TestConsoleTailFollowsRotation: when the log is moved aside (as the
// Cloud Hypervisor provider does before the VMM truncates it) the tail
// sends what the old file got since its last step, then the new file
// from its start.
func TestConsoleTailFollowsRotation(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), ConsoleLogName)
	require.NoError(t, os.WriteFile(path, []byte("boot 1\n"), 0o600))
	var mu sync.Mutex
	var got strings.Builder
	tail := &consoleTail{path: path, vm: uuid.New(), stream: uuid.New(),
		lim: rate.NewLimiter(rate.Inf, 0),
		send: func(_ context.Context, m agentproto.ConsoleData) error {
			mu.Lock()
			defer mu.Unlock()
			got.Write(m.Data)
			return nil
		}}
	ctx := context.Background()
	defer func() {
		if tail.f != nil {
			tail.f.Close()
		}
	}()
	require.NoError(t, tail.step(ctx, true))

	// The guest's last words land in the old file, which is then rotated
	// and replaced by the VMM's new, truncated one.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	require.NoError(t, err)
	_, err = f.WriteString("reboot: Restarting system\n")
	require.NoError(t, err)
	require.NoError(t, os.Rename(path, path+".1"))
	// A step between the rotation and the new file keeps the old one.
	require.NoError(t, tail.step(ctx, false))
	_, err = f.WriteString("last line\n")
	require.NoError(t, err)
	require.NoError(t, f.Close())
	require.NoError(t, os.WriteFile(path, []byte("boot 2\n"), 0o600))

	require.NoError(t, tail.step(ctx, false))
	require.NoError(t, tail.step(ctx, false))
	mu.Lock()
	require.Equal(t, "boot 1\nreboot: Restarting system\nlast line\nboot 2\n", got.String())
	got.Reset()
	mu.Unlock()

	// Two rotations between polls (a start, then a reboot): the log in
	// between, never seen at the path, is sent whole, in order.
	require.NoError(t, os.Rename(path+".1", path+".2"))
	require.NoError(t, os.Rename(path, path+".1"))
	require.NoError(t, os.WriteFile(path+".new", []byte("boot 3\n"), 0o600))
	require.NoError(t, os.Rename(path+".1", path+".tmp"))
	require.NoError(t, os.Rename(path+".2", path+".3"))
	require.NoError(t, os.Rename(path+".tmp", path+".2"))
	require.NoError(t, os.Rename(path+".new", path+".1"))
	require.NoError(t, os.WriteFile(path, []byte("boot 4\n"), 0o600))
	require.NoError(t, tail.step(ctx, false))
	mu.Lock()
	defer mu.Unlock()
	require.Equal(t, "boot 3\nboot 4\n", got.String())
}
