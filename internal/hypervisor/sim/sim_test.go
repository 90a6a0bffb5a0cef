package sim

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/kubedoio/n-kudo/internal/hypervisor"
)

func spec(name string) hypervisor.VMSpec {
	return hypervisor.VMSpec{
		ID:        uuid.New(),
		Name:      name,
		VCPUs:     1,
		MemoryMiB: 128,
		// Does not exist: the simulator must not care.
		DiskImage: "/nonexistent/images/" + name + ".raw",
		CloudInit: hypervisor.CloudInit{UserData: "#cloud-config\n"},
	}
}

func open(t *testing.T, dir string, opts ...Option) *Provider {
	t.Helper()
	p, err := Open(dir, opts...)
	require.NoError(t, err)
	return p
}

func do(ctx context.Context, p *Provider, id uuid.UUID, op hypervisor.Op) error {
	switch op {
	case hypervisor.OpStart:
		return p.Start(ctx, id)
	case hypervisor.OpStop:
		return p.Stop(ctx, id)
	case hypervisor.OpReboot:
		return p.Reboot(ctx, id)
	case hypervisor.OpPause:
		return p.Pause(ctx, id)
	case hypervisor.OpResume:
		return p.Resume(ctx, id)
	case hypervisor.OpDelete:
		return p.Delete(ctx, id)
	}
	return fmt.Errorf("test asked for unknown op %q", op)
}

// reach drives a fresh VM into state by the operations a user would use.
func reach(t *testing.T, p *Provider, s hypervisor.VMSpec, state hypervisor.State) {
	t.Helper()
	ctx := context.Background()
	require.NoError(t, p.Create(ctx, s))
	switch state {
	case hypervisor.StateStopped:
	case hypervisor.StateRunning:
		require.NoError(t, p.Start(ctx, s.ID))
	case hypervisor.StatePaused:
		require.NoError(t, p.Start(ctx, s.ID))
		require.NoError(t, p.Pause(ctx, s.ID))
	case hypervisor.StateFailed:
		require.NoError(t, p.Start(ctx, s.ID))
		require.NoError(t, p.Fail(ctx, s.ID, "guest kernel panic"))
	case hypervisor.StateDeleted:
		require.NoError(t, p.Delete(ctx, s.ID))
	default:
		t.Fatalf("cannot reach %s in the simulator", state)
	}
	st, err := p.State(ctx, s.ID)
	require.NoError(t, err)
	require.Equal(t, state, st.State)
}

func TestEveryTransition(t *testing.T) {
	t.Parallel()
	// The expected outcome of every (state, op) pair the simulator can
	// reach, written out rather than computed: "=" no-op, "x" invalid.
	// (creating is transient in real backends and never observed here.)
	want := map[hypervisor.State]map[hypervisor.Op]string{
		hypervisor.StateStopped: {"start": "running", "stop": "=", "reboot": "x", "pause": "x", "resume": "x", "delete": "deleted"},
		hypervisor.StateRunning: {"start": "=", "stop": "stopped", "reboot": "running", "pause": "paused", "resume": "=", "delete": "deleted"},
		hypervisor.StatePaused:  {"start": "x", "stop": "stopped", "reboot": "x", "pause": "=", "resume": "running", "delete": "deleted"},
		hypervisor.StateFailed:  {"start": "running", "stop": "stopped", "reboot": "x", "pause": "x", "resume": "x", "delete": "deleted"},
		hypervisor.StateDeleted: {"start": "x", "stop": "x", "reboot": "x", "pause": "x", "resume": "x", "delete": "="},
	}
	for from, row := range want {
		for op, outcome := range row {
			t.Run(fmt.Sprintf("%s/%s", from, op), func(t *testing.T) {
				t.Parallel()
				ctx := context.Background()
				dir := t.TempDir()
				p := open(t, dir)
				s := spec("vm")
				reach(t, p, s, from)

				err := do(ctx, p, s.ID, op)
				st, stErr := p.State(ctx, s.ID)
				require.NoError(t, stErr)
				switch outcome {
				case "x":
					require.ErrorIs(t, err, hypervisor.ErrInvalidTransition)
					require.ErrorContains(t, err, "from "+string(from)+" to ")
					require.Equal(t, from, st.State, "state unchanged")
				case "=":
					require.NoError(t, err)
					require.Equal(t, from, st.State)
				default:
					require.NoError(t, err)
					require.Equal(t, hypervisor.State(outcome), st.State)
					if st.State != hypervisor.StateFailed {
						require.Empty(t, st.Error, "leaving failed clears the error")
					}
					// Idempotent where the spec needs it: repeating an
					// operation whose result holds is a no-op (reboot
					// reboots again, still running).
					require.NoError(t, do(ctx, p, s.ID, op), "repeat of %s", op)
					st2, err := p.State(ctx, s.ID)
					require.NoError(t, err)
					require.Equal(t, st.State, st2.State)
				}
				// Whatever happened is what a restarted agent sees.
				reopened := open(t, dir)
				st3, err := reopened.State(ctx, s.ID)
				require.NoError(t, err)
				require.Equal(t, st, st3)
			})
		}
	}
}

func TestCreate(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	tests := []struct {
		name    string
		prepare func(t *testing.T, p *Provider, s hypervisor.VMSpec) hypervisor.VMSpec // returns the spec to create
		wantIs  error
	}{
		{
			name:    "new vm is stopped",
			prepare: func(_ *testing.T, _ *Provider, s hypervisor.VMSpec) hypervisor.VMSpec { return s },
		},
		{
			name: "same spec again is a no-op, even when running",
			prepare: func(t *testing.T, p *Provider, s hypervisor.VMSpec) hypervisor.VMSpec {
				reach(t, p, s, hypervisor.StateRunning)
				return s
			},
		},
		{
			name: "different spec under the same id",
			prepare: func(t *testing.T, p *Provider, s hypervisor.VMSpec) hypervisor.VMSpec {
				require.NoError(t, p.Create(ctx, s))
				s.MemoryMiB *= 2
				return s
			},
			wantIs: hypervisor.ErrAlreadyExists,
		},
		{
			name: "recreate a deleted vm",
			prepare: func(t *testing.T, p *Provider, s hypervisor.VMSpec) hypervisor.VMSpec {
				reach(t, p, s, hypervisor.StateDeleted)
				return s
			},
			wantIs: hypervisor.ErrInvalidTransition,
		},
		{"zero vcpus", func(_ *testing.T, _ *Provider, s hypervisor.VMSpec) hypervisor.VMSpec { s.VCPUs = 0; return s }, hypervisor.ErrInvalidSpec},
		{"65 vcpus", func(_ *testing.T, _ *Provider, s hypervisor.VMSpec) hypervisor.VMSpec { s.VCPUs = 65; return s }, hypervisor.ErrInvalidSpec},
		{"63 MiB", func(_ *testing.T, _ *Provider, s hypervisor.VMSpec) hypervisor.VMSpec { s.MemoryMiB = 63; return s }, hypervisor.ErrInvalidSpec},
		{"no disk image", func(_ *testing.T, _ *Provider, s hypervisor.VMSpec) hypervisor.VMSpec { s.DiskImage = ""; return s }, hypervisor.ErrInvalidSpec},
		{"nil id", func(_ *testing.T, _ *Provider, s hypervisor.VMSpec) hypervisor.VMSpec { s.ID = uuid.Nil; return s }, hypervisor.ErrInvalidSpec},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p := open(t, t.TempDir())
			s := tt.prepare(t, p, spec("vm"))
			before, err := p.List(ctx)
			require.NoError(t, err)

			err = p.Create(ctx, s)
			if tt.wantIs != nil {
				require.ErrorIs(t, err, tt.wantIs)
				after, err := p.List(ctx)
				require.NoError(t, err)
				require.Equal(t, before, after, "a refused create changes nothing")
				return
			}
			require.NoError(t, err)
			got, ok := p.Spec(s.ID)
			require.True(t, ok)
			require.Equal(t, s, got)
			if len(before) == 0 {
				st, err := p.State(ctx, s.ID)
				require.NoError(t, err)
				require.Equal(t, hypervisor.StateStopped, st.State)
			}
		})
	}
}

func TestUnknownVM(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p := open(t, t.TempDir())
	id := uuid.New()
	for _, op := range []hypervisor.Op{hypervisor.OpStart, hypervisor.OpStop, hypervisor.OpReboot, hypervisor.OpPause, hypervisor.OpResume} {
		require.ErrorIs(t, do(ctx, p, id, op), hypervisor.ErrNotFound, "op %s", op)
	}
	require.ErrorIs(t, p.Fail(ctx, id, ""), hypervisor.ErrNotFound)
	_, err := p.State(ctx, id)
	require.ErrorIs(t, err, hypervisor.ErrNotFound)
	require.NoError(t, p.Delete(ctx, id), "deleting a missing vm is a no-op")
	list, err := p.List(ctx)
	require.NoError(t, err)
	require.Empty(t, list)
	require.NoFileExists(t, p.path, "no-ops write nothing")
}

func TestFailCarriesReason(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p := open(t, t.TempDir())
	s := spec("vm")
	reach(t, p, s, hypervisor.StateFailed)
	st, err := p.State(ctx, s.ID)
	require.NoError(t, err)
	require.Equal(t, "guest kernel panic", st.Error)

	gone := spec("gone")
	reach(t, p, gone, hypervisor.StateDeleted)
	require.ErrorIs(t, p.Fail(ctx, gone.ID, "x"), hypervisor.ErrInvalidTransition)
}

func TestCapabilities(t *testing.T) {
	t.Parallel()
	p := open(t, t.TempDir())
	c, err := p.Capabilities(context.Background())
	require.NoError(t, err)
	require.Equal(t, hypervisor.Capabilities{Kind: "sim", Version: Version, Simulated: true, PauseResume: true, Reboot: true}, c)
	require.Equal(t, "sim", p.Name())
}

func TestCancelledContext(t *testing.T) {
	t.Parallel()
	p := open(t, t.TempDir())
	s := spec("vm")
	reach(t, p, s, hypervisor.StateStopped)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	require.ErrorIs(t, p.Create(ctx, spec("other")), context.Canceled)
	for _, op := range []hypervisor.Op{hypervisor.OpStart, hypervisor.OpStop, hypervisor.OpReboot, hypervisor.OpPause, hypervisor.OpResume, hypervisor.OpDelete} {
		require.ErrorIs(t, do(ctx, p, s.ID, op), context.Canceled, "op %s", op)
	}
	_, err := p.State(ctx, s.ID)
	require.ErrorIs(t, err, context.Canceled)
	_, err = p.List(ctx)
	require.ErrorIs(t, err, context.Canceled)
	_, err = p.Capabilities(ctx)
	require.ErrorIs(t, err, context.Canceled)
}

func TestPersistenceAcrossReopen(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	p := open(t, dir)
	states := []hypervisor.State{hypervisor.StateStopped, hypervisor.StateRunning, hypervisor.StatePaused, hypervisor.StateFailed, hypervisor.StateDeleted}
	specs := make([]hypervisor.VMSpec, len(states))
	for i, st := range states {
		specs[i] = spec(fmt.Sprintf("vm-%d", i))
		reach(t, p, specs[i], st)
	}
	want, err := p.List(ctx)
	require.NoError(t, err)

	// A crash during a later write left a temporary file: Open ignores and
	// removes it.
	leftover := filepath.Join(dir, "."+StateFileName+".tmp-999")
	require.NoError(t, os.WriteFile(leftover, []byte(`{"version":1,"vms":[{"spe`), 0o600))

	q := open(t, dir)
	require.NoFileExists(t, leftover)
	got, err := q.List(ctx)
	require.NoError(t, err)
	require.Equal(t, want, got)
	for _, s := range specs {
		gotSpec, ok := q.Spec(s.ID)
		require.True(t, ok)
		require.Equal(t, s, gotSpec)
	}
	// The re-adopted VMs keep following the state machine.
	require.NoError(t, q.Resume(ctx, specs[2].ID))
	require.ErrorIs(t, q.Start(ctx, specs[4].ID), hypervisor.ErrInvalidTransition)

	fi, err := os.Stat(filepath.Join(dir, StateFileName))
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
}

func TestOpenRejectsBadState(t *testing.T) {
	t.Parallel()
	valid := spec("vm")
	tests := []struct {
		name    string
		content string
	}{
		{"not json", `{"version":1,"vms":[`},
		{"unknown version", `{"version":99,"vms":[]}`},
		{"unknown state", fmt.Sprintf(`{"version":1,"vms":[{"spec":{"id":%q,"name":"vm","vcpus":1,"memory_mib":128,"disk_image":"/d"},"state":"melted"}]}`, valid.ID)},
		{"invalid spec", fmt.Sprintf(`{"version":1,"vms":[{"spec":{"id":%q,"name":"vm","vcpus":0,"memory_mib":128,"disk_image":"/d"},"state":"running"}]}`, valid.ID)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			require.NoError(t, os.WriteFile(filepath.Join(dir, StateFileName), []byte(tt.content), 0o600))
			_, err := Open(dir)
			require.ErrorIs(t, err, ErrCorruptState)
		})
	}
	_, err := Open("")
	require.Error(t, err)
}

func TestFailedPersistUndoesChange(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "runtime")
	p := open(t, dir)
	s := spec("vm")
	reach(t, p, s, hypervisor.StateStopped)

	// With the runtime dir gone no state file can be written (this works
	// even as root, unlike a read-only mode).
	require.NoError(t, os.RemoveAll(dir))
	require.ErrorContains(t, p.Start(ctx, s.ID), "persisting vm")
	st, err := p.State(ctx, s.ID)
	require.NoError(t, err)
	require.Equal(t, hypervisor.StateStopped, st.State, "memory agrees with disk")

	other := spec("other")
	require.Error(t, p.Create(ctx, other))
	_, ok := p.Spec(other.ID)
	require.False(t, ok)
}

func TestTombstonesAreBounded(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	var (
		mu  sync.Mutex
		now = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	)
	clock := func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		now = now.Add(time.Second)
		return now
	}
	dir := t.TempDir()
	p := open(t, dir, WithClock(clock), WithMaxTombstones(2))
	specs := []hypervisor.VMSpec{spec("a"), spec("b"), spec("c")}
	for _, s := range specs {
		reach(t, p, s, hypervisor.StateDeleted)
	}
	live := spec("live")
	reach(t, p, live, hypervisor.StateRunning)

	_, err := p.State(ctx, specs[0].ID)
	require.ErrorIs(t, err, hypervisor.ErrNotFound, "oldest tombstone forgotten")
	for _, s := range specs[1:] {
		st, err := p.State(ctx, s.ID)
		require.NoError(t, err)
		require.Equal(t, hypervisor.StateDeleted, st.State)
	}
	list, err := open(t, dir).List(ctx)
	require.NoError(t, err)
	require.Len(t, list, 3, "two tombstones and the live vm survive a reopen")
}

func TestConcurrentUse(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	p := open(t, dir)
	const workers, vms, opsPerWorker = 8, 6, 60
	specs := make([]hypervisor.VMSpec, vms)
	for i := range specs {
		specs[i] = spec(fmt.Sprintf("vm-%d", i))
	}
	ops := []hypervisor.Op{hypervisor.OpStart, hypervisor.OpStop, hypervisor.OpReboot, hypervisor.OpPause, hypervisor.OpResume}

	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(w), 1))
			for range opsPerWorker {
				s := specs[r.IntN(vms)]
				var err error
				switch n := r.IntN(20); {
				case n == 0:
					err = p.Delete(ctx, s.ID)
				case n < 4:
					err = p.Create(ctx, s)
				case n < 6:
					_, err = p.List(ctx)
				default:
					err = do(ctx, p, s.ID, ops[r.IntN(len(ops))])
				}
				// Every outcome is one the state machine allows.
				switch {
				case err == nil, errors.Is(err, hypervisor.ErrInvalidTransition), errors.Is(err, hypervisor.ErrNotFound):
				default:
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	want, err := p.List(ctx)
	require.NoError(t, err)
	got, err := open(t, dir).List(ctx)
	require.NoError(t, err)
	require.Equal(t, want, got, "the file matches memory after concurrent use")
}
