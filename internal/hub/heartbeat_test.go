package hub

import (
	"context"
	"encoding/json"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/kubedoio/n-kudo/internal/pki"
	"github.com/kubedoio/n-kudo/internal/store"
	"github.com/kubedoio/n-kudo/internal/store/sqlite"
)

// countingStore passes through to a real store and records the batched
// writes, to check their shape.
type countingStore struct {
	store.Store
	mu        sync.Mutex // guards the following
	upserts   [][]store.HostState
	vmReports map[uuid.UUID][][]store.VMStateReport
}

func (c *countingStore) UpsertHostStates(ctx context.Context, states []store.HostState) error {
	c.mu.Lock()
	c.upserts = append(c.upserts, states)
	c.mu.Unlock()
	return c.Store.UpsertHostStates(ctx, states)
}

func (c *countingStore) ReportVMStates(ctx context.Context, host uuid.UUID, r []store.VMStateReport, at time.Time) ([]store.VM, error) {
	c.mu.Lock()
	c.vmReports[host] = append(c.vmReports[host], r)
	c.mu.Unlock()
	return c.Store.ReportVMStates(ctx, host, r, at)
}

func TestHeartbeatBatcherCoalescesPerHost(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	auth, err := pki.LoadOrCreate(pki.Options{Dir: filepath.Join(dir, "pki")})
	require.NoError(t, err)
	st, err := sqlite.Open(context.Background(), filepath.Join(dir, "db"))
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	cs := &countingStore{Store: st, vmReports: map[uuid.UUID][][]store.VMStateReport{}}
	h := New(Options{Store: cs, Authority: auth})

	hosts := []uuid.UUID{uuid.New(), uuid.New(), uuid.New()}
	vmA, vmB := uuid.New(), uuid.New()
	base := time.Now()
	for round := range 10 {
		for i, host := range hosts {
			u := hostUpdate{hostID: host, agentID: host, seen: base.Add(time.Duration(round) * time.Second)}
			switch {
			case i == 0 && round == 3:
				u.facts = json.RawMessage(`{"hostname":"a"}`)
			case i == 1 && round == 2:
				u.vms, u.hasVMs = []store.VMStateReport{{VMID: vmA, ActualState: store.VMRunning}, {VMID: vmB, ActualState: store.VMStopped}}, true
			case i == 1 && round == 7:
				u.vms, u.hasVMs = []store.VMStateReport{{VMID: vmA, ActualState: store.VMStopped}}, true
			}
			h.heartbeats.add(u)
		}
	}
	// An action result for vmB was written meanwhile: its queued state
	// must not overwrite it.
	h.heartbeats.forgetVM(hosts[1], vmB)
	h.heartbeats.flush(context.Background())

	require.Len(t, cs.upserts, 1, "one UpsertHostStates per flush")
	require.Len(t, cs.upserts[0], len(hosts), "one row per host")
	byHost := map[uuid.UUID]store.HostState{}
	for _, s := range cs.upserts[0] {
		byHost[s.HostID] = s
	}
	for i, host := range hosts {
		s := byHost[host]
		require.Equal(t, base.Add(9*time.Second), s.LastSeenAt, "latest heartbeat wins")
		if i == 0 {
			require.JSONEq(t, `{"hostname":"a"}`, string(s.Facts))
		} else {
			require.Nil(t, s.Facts, "facts only when sent")
		}
		require.Nil(t, s.NetBird)
	}
	require.Len(t, cs.vmReports, 1, "VM states only for the host that reported them")
	require.Equal(t, [][]store.VMStateReport{{{VMID: vmA, ActualState: store.VMStopped}}}, cs.vmReports[hosts[1]])

	// Nothing queued: no write at all.
	h.heartbeats.flush(context.Background())
	require.Len(t, cs.upserts, 1)
}
