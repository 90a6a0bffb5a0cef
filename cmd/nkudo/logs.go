package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/spf13/cobra"

	"github.com/kubedoio/n-kudo/internal/client"
)

func (a *app) logsCmd() *cobra.Command {
	var follow bool
	cmd := &cobra.Command{
		Use:   "logs EXECUTION",
		Short: "Print an execution's log (-f follows it live)",
		Long: `logs prints the log lines of an execution (an action of a plan; its id is
in 'nkudo get plans -o json' and in the output of --wait). -f keeps
following until the execution ends, resuming after network trouble
without repeating a line.`,
		Args: exactArgs(1, "an execution id"),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := uuid.Parse(args[0])
			if err != nil {
				return usagef("%q is not an execution id", args[0])
			}
			w := cmd.OutOrStdout()
			if follow {
				return a.followLogs(cmd.Context(), id, w)
			}
			c, err := a.client(readAccess)
			if err != nil {
				return err
			}
			defer c.Close()
			for l, err := range c.AllLogs(cmd.Context(), id, 0) {
				if err != nil {
					return err
				}
				if err := printLogLine(w, l); err != nil {
					return err
				}
			}
			return nil
		},
	}
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "follow the log until the execution ends")
	return cmd
}

// followLogs follows an execution's log; when the server stays
// unreachable for a.retryFor it gives up with an unreachable error (exit
// 5), saying so, instead of retrying silently forever.
func (a *app) followLogs(ctx context.Context, id uuid.UUID, w io.Writer) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var mu sync.Mutex // guards down
	var down *time.Timer
	defer func() {
		mu.Lock()
		if down != nil {
			down.Stop()
		}
		mu.Unlock()
	}()
	onStream := func(_ string, connected bool, err error) {
		mu.Lock()
		defer mu.Unlock()
		switch {
		case connected && down != nil:
			down.Stop()
			down = nil
		case !connected && err != nil && down == nil:
			fmt.Fprintf(a.stderr, "nkudo: lost the server (%v); retrying for %s\n", err, a.retryFor)
			down = time.AfterFunc(a.retryFor, func() {
				cancel(fmt.Errorf("following logs of execution %s: %w for %s, giving up (last error: %v)", id, client.ErrUnreachable, a.retryFor, err))
			})
		}
	}
	c, err := a.clientWith(readAccess, onStream)
	if err != nil {
		return err
	}
	defer c.Close()
	err = c.FollowLogs(ctx, id, 0, func(l client.LogLine) error { return printLogLine(w, l) })
	if cause := context.Cause(ctx); err != nil && cause != nil && !errors.Is(cause, context.Canceled) {
		return cause
	}
	return err
}

func printLogLine(w io.Writer, l client.LogLine) error {
	_, err := fmt.Fprintf(w, "%s %-6s %s\n", l.At.UTC().Format(time.RFC3339), l.Stream, l.Message)
	return err
}
