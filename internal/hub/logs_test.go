package hub_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/kubedoio/n-kudo/internal/agentproto"
	"github.com/kubedoio/n-kudo/internal/hub"
	"github.com/kubedoio/n-kudo/internal/store"
)

// errStoreDown stands in for a database error.
var errStoreDown = errors.New("database unavailable")

// flakyLogStore is a real store whose first AppendLogLines calls fail, as
// they would while the database is unreachable.
type flakyLogStore struct {
	store.Store
	failures atomic.Int64  // calls still to fail
	failed   chan struct{} // one value per failed call
}

func (f *flakyLogStore) AppendLogLines(ctx context.Context, lines []store.LogLine) error {
	if f.failures.Add(-1) >= 0 {
		f.failed <- struct{}{}
		return errStoreDown
	}
	return f.Store.AppendLogLines(ctx, lines)
}

// TestFailedLogFlushNeverAckedOver checks that after AppendLogLines fails,
// no log_ack covers a line that is not stored (the agent drops every line
// up to the acked seq), and that the agent's resend after reconnecting
// stores all lines, which followers then see in order without a gap.
func TestFailedLogFlushNeverAckedOver(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		failures int64
	}{
		{"first flush fails", 1},
		{"resend after reconnect fails too", 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			flaky := &flakyLogStore{failed: make(chan struct{}, tt.failures)}
			e := newEnv(t, func(o *hub.Options) {
				flaky.Store = o.Store
				o.Store = flaky
			})
			a := e.enroll()
			vm := e.createVM(a, store.VMStopped)
			p := e.createPlan(a, vm, store.ActionMicroVMStart)
			exec := p.Actions[0].ExecutionID
			follower := e.hub.SubscribeLogs(exec, 100)
			defer follower.Close()
			flaky.failures.Store(tt.failures)

			for round := int64(0); round <= tt.failures; round++ {
				c, _ := e.connect(a)
				c.expect(agentproto.TypePlan)
				if round == 0 {
					c.send(agentproto.TypeLogBatch, "", &agentproto.LogBatch{ExecutionID: exec, Lines: logLines(1, 3)})
				} else {
					// The agent resends every line not acked yet.
					c.send(agentproto.TypeLogBatch, "", &agentproto.LogBatch{ExecutionID: exec, Lines: logLines(1, 6)})
				}
				if round == tt.failures {
					ack, err := agentproto.DecodeData[agentproto.LogAck](c.expect(agentproto.TypeLogAck))
					require.NoError(t, err)
					require.Equal(t, agentproto.LogAck{ExecutionID: exec, Seq: 6}, ack)
					break
				}
				select {
				case <-flaky.failed:
				case <-time.After(waitTimeout):
					t.Fatal("the log flush was not attempted")
				}
				if round == 0 {
					// More lines of the same execution, in a later flush.
					// The session may be closing already, so a failed
					// write is fine.
					frame, err := agentproto.Encode(agentproto.TypeLogBatch, "", c.seq+1, 0,
						&agentproto.LogBatch{ExecutionID: exec, Lines: logLines(4, 6)})
					require.NoError(t, err)
					c.seq++
					ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
					_ = c.conn.Write(ctx, websocket.MessageText, frame)
					cancel()
				}
				requireNoAckOverLostLines(t, e, c, exec)
			}

			stored, err := e.st.ListLogLines(context.Background(), e.tenant, exec, 0, 100)
			require.NoError(t, err)
			require.Len(t, stored, 6)
			for i, l := range stored {
				require.Equal(t, int64(i+1), l.Seq)
			}
			for want := int64(1); want <= 6; want++ {
				select {
				case l, ok := <-follower.C():
					require.True(t, ok, "follower dropped: %v", follower.Err())
					require.Equal(t, want, l.Seq, "the follower saw a gap")
				case <-time.After(waitTimeout):
					t.Fatalf("follower did not get line %d", want)
				}
			}
		})
	}
}

// requireNoAckOverLostLines reads the session to its end: every log_ack
// must cover stored lines only, and the close must let the agent
// reconnect (it resends its unacked lines then).
func requireNoAckOverLostLines(t *testing.T, e *env, c *client, exec uuid.UUID) {
	t.Helper()
	for {
		env, err := c.recv()
		if err != nil {
			code := websocket.CloseStatus(err)
			require.Equal(t, websocket.StatusInternalError, code, "session end: %v", err)
			require.False(t, agentproto.Permanent(code))
			return
		}
		if env.Type != agentproto.TypeLogAck {
			continue
		}
		ack, err := agentproto.DecodeData[agentproto.LogAck](env)
		require.NoError(t, err)
		stored, err := e.st.ListLogLines(context.Background(), e.tenant, exec, 0, 100)
		require.NoError(t, err)
		for i := int64(1); i <= ack.Seq; i++ {
			require.True(t, int64(len(stored)) >= i && stored[i-1].Seq == i,
				"log_ack seq %d covers line %d, which is not stored (stored: %d lines)", ack.Seq, i, len(stored))
		}
	}
}
