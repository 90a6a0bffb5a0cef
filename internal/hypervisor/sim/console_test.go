package sim

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestConsoleLog checks that the synthetic console log follows the
// lifecycle, says it is simulated on every line, and goes with the VM.
func TestConsoleLog(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	p, err := Open(dir)
	require.NoError(t, err)
	s := spec("console-vm")
	logPath := filepath.Join(dir, s.ID.String(), ConsoleLogName)
	read := func() string {
		b, err := os.ReadFile(logPath)
		require.NoError(t, err)
		return string(b)
	}

	require.NoError(t, p.Create(ctx, s))
	_, err = os.Stat(logPath)
	require.ErrorIs(t, err, os.ErrNotExist, "a VM that never booted printed nothing")

	steps := []struct {
		name string
		run  func() error
		want string
	}{
		{"start", func() error { return p.Start(ctx, s.ID) }, "console-vm login: "},
		{"reboot", func() error { return p.Reboot(ctx, s.ID) }, "restarting system"},
		{"stop", func() error { return p.Stop(ctx, s.ID) }, "power down"},
	}
	prev := ""
	for _, st := range steps {
		require.NoError(t, st.run(), st.name)
		got := read()
		require.True(t, strings.HasPrefix(got, prev), "%s: the log is appended to, never rewritten", st.name)
		require.Contains(t, got[len(prev):], st.want, st.name)
		prev = got
	}
	for _, line := range strings.Split(strings.TrimSpace(prev), "\n") {
		require.True(t, strings.HasPrefix(line, "[simulated]"), "line %q is not labelled simulated", line)
	}

	// A no-op (stopping a stopped VM) prints nothing.
	require.NoError(t, p.Stop(ctx, s.ID))
	require.Equal(t, prev, read())

	require.NoError(t, p.Delete(ctx, s.ID))
	_, err = os.Stat(filepath.Dir(logPath))
	require.ErrorIs(t, err, os.ErrNotExist)
}
