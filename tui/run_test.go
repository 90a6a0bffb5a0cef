package tui

import (
	"bytes"
	"context"
	"io"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kubedoio/n-kudo/tui/data/datatest"
)

func TestRun(t *testing.T) {
	t.Parallel()
	t.Run("no source", func(t *testing.T) {
		t.Parallel()
		require.ErrorIs(t, Run(context.Background(), Options{}), ErrNoSource)
	})
	t.Run("quits with :q", func(t *testing.T) {
		t.Parallel()
		var out bytes.Buffer
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		err := Run(ctx, Options{
			Source: datatest.New(datatest.Standard()), ContextName: "dev", Tenant: "acme", NoColor: true,
			Input: bytes.NewBufferString(":q\r"), Output: &out,
		})
		require.NoError(t, err)
		require.NoError(t, ctx.Err(), "the console quit by itself")
	})
	t.Run("ends with its context", func(t *testing.T) {
		t.Parallel()
		ctx, cancel := context.WithCancel(context.Background())
		pr, pw := io.Pipe()
		defer pw.Close()
		done := make(chan error, 1)
		go func() {
			done <- Run(ctx, Options{Source: datatest.New(datatest.Standard()), NoColor: true, Input: pr, Output: io.Discard})
		}()
		cancel()
		select {
		case err := <-done:
			require.NoError(t, err)
		case <-time.After(20 * time.Second):
			t.Fatal("Run did not return after its context ended")
		}
	})
}
