package version

import (
	"runtime"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestString(t *testing.T) {
	t.Parallel()
	for _, program := range []string{"nkudo", "nkudo-server", "nkudo-agent"} {
		got := String(program)
		require.True(t, strings.HasPrefix(got, program+" "+Version+" ("), got)
		require.Contains(t, got, runtime.Version())
		require.Contains(t, got, runtime.GOOS+"/"+runtime.GOARCH)
	}
}
