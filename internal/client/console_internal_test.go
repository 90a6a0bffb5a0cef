package client

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestReplayOverlap(t *testing.T) {
	t.Parallel()
	long := bytes.Repeat([]byte("abcdefgh\n"), 8000)
	tests := []struct {
		name       string
		seen, next string
		want       int
	}{
		{"nothing seen", "", "boot\n", 0},
		{"nothing sent", "boot\n", "", 0},
		{"whole snapshot seen", "boot\nlogin: ", "boot\nlogin: ", len("boot\nlogin: ")},
		{"snapshot with new output", "boot\nlogin: ", "boot\nlogin: root\n", len("boot\nlogin: ")},
		{"window moved on", "aaa\nboot\nlogin: ", "boot\nlogin: more\n", len("boot\nlogin: ")},
		{"unrelated output", "boot\n", "power down\n", 0},
		{"longest overlap wins", "xyxy", "xyxyz", 4},
		{"pattern restarts inside seen", "aab", "abc", 2},
		{"snapshot shorter than seen", "0123456789", "789", 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tt.want, replayOverlap([]byte(tt.seen), []byte(tt.next)))
		})
	}
	t.Run("64 KiB window", func(t *testing.T) {
		t.Parallel()
		seen := long[:len(long)-9]
		next := append(bytes.Clone(long[9:]), "new\n"...)
		// The output is periodic: everything seen is a prefix of next.
		require.Equal(t, len(seen), replayOverlap(seen, next))
	})
}

func BenchmarkReplayOverlap(b *testing.B) {
	seen := bytes.Repeat([]byte("a"), 64<<10)
	next := append(bytes.Repeat([]byte("a"), 32<<10), 'b')
	for b.Loop() {
		replayOverlap(seen, next)
	}
}
