package executor

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kubedoio/n-kudo/internal/agent/actioncache"
	"github.com/kubedoio/n-kudo/internal/agent/execlog"
	"github.com/kubedoio/n-kudo/internal/agent/imagedir"
	"github.com/kubedoio/n-kudo/internal/agentproto"
	"github.com/kubedoio/n-kudo/internal/hypervisor"
	"github.com/kubedoio/n-kudo/internal/hypervisor/sim"
)

// recorder is a Notifier that keeps what it was told.
type recorder struct {
	mu       sync.Mutex
	running  []uuid.UUID
	finished []agentproto.ActionResult
	changed  chan struct{}
}

func newRecorder() *recorder { return &recorder{changed: make(chan struct{}, 1)} }

func (r *recorder) Running(res agentproto.ActionResult) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.running = append(r.running, res.ActionID)
}

func (r *recorder) Finished(res agentproto.ActionResult) {
	r.mu.Lock()
	r.finished = append(r.finished, res)
	r.mu.Unlock()
	select {
	case r.changed <- struct{}{}:
	default:
	}
}

func (r *recorder) results() []agentproto.ActionResult {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]agentproto.ActionResult(nil), r.finished...)
}

// rig is an executor over real components in one directory; reopen
// simulates an agent restart on the same state.
type rig struct {
	dir   string
	pv    *sim.Provider
	cache *actioncache.Cache
	queue *Queue
	logs  *execlog.Buffer
	rec   *recorder
	ex    *Executor
}

func newRig(t *testing.T, dir string) *rig {
	t.Helper()
	pv, err := sim.Open(filepath.Join(dir, "runtime"))
	require.NoError(t, err)
	cache, err := actioncache.Open(filepath.Join(dir, "actions.json"))
	require.NoError(t, err)
	q, err := OpenQueue(filepath.Join(dir, "plans.json"))
	require.NoError(t, err)
	logs, err := execlog.Open(filepath.Join(dir, "logs.json"), 0)
	require.NoError(t, err)
	rec := newRecorder()
	images, err := imagedir.New([]string{testImages})
	require.NoError(t, err)
	ex := New(Options{Provider: pv, Cache: cache, Queue: q, Logs: logs, Notifier: rec, Images: images})
	return &rig{dir: dir, pv: pv, cache: cache, queue: q, logs: logs, rec: rec, ex: ex}
}

func action(typ string, vm uuid.UUID, params string) agentproto.Action {
	a := agentproto.Action{ActionID: uuid.New(), ExecutionID: uuid.New(), Type: typ, VMID: vm}
	if params != "" {
		a.Params = json.RawMessage(params)
	}
	return a
}

func specParams(name string, start bool) string {
	b, _ := json.Marshal(map[string]any{"name": name, "vcpus": 1, "memory_mib": 128, "disk_image": filepath.Join(testImages, "root.img"), "start": start})
	return string(b)
}

func vmState(t *testing.T, pv *sim.Provider, id uuid.UUID) hypervisor.State {
	t.Helper()
	st, err := pv.State(context.Background(), id)
	require.NoError(t, err)
	return st.State
}

// logLines returns the buffered lines of an execution.
func logLines(logs *execlog.Buffer, exec uuid.UUID) []agentproto.LogLine {
	var out []agentproto.LogLine
	for _, b := range logs.Batches(map[uuid.UUID]int64{}, 0, 0) {
		if b.ExecutionID == exec {
			out = append(out, b.Lines...)
		}
	}
	return out
}

func TestRunPlan(t *testing.T) {
	t.Parallel()
	vm := uuid.New()
	tests := []struct {
		name       string
		actions    []agentproto.Action
		wantStatus []string
		wantStates []string
		wantFinal  hypervisor.State
	}{
		{
			name: "lifecycle in order",
			actions: []agentproto.Action{
				action(agentproto.ActionMicroVMCreate, vm, specParams("web-1", true)),
				action(agentproto.ActionMicroVMStop, vm, ""),
				action(agentproto.ActionMicroVMStart, vm, ""),
				action(agentproto.ActionMicroVMPause, vm, ""),
				action(agentproto.ActionMicroVMResume, vm, ""),
				action(agentproto.ActionMicroVMReboot, vm, ""),
			},
			wantStatus: []string{"succeeded", "succeeded", "succeeded", "succeeded", "succeeded", "succeeded"},
			wantStates: []string{"running", "stopped", "running", "paused", "running", "running"},
			wantFinal:  hypervisor.StateRunning,
		},
		{
			name: "create without start then delete",
			actions: []agentproto.Action{
				action(agentproto.ActionMicroVMCreate, vm, specParams("web-2", false)),
				action(agentproto.ActionMicroVMDelete, vm, ""),
			},
			wantStatus: []string{"succeeded", "succeeded"},
			wantStates: []string{"stopped", "deleted"},
			wantFinal:  hypervisor.StateDeleted,
		},
		{
			name: "invalid spec fails and skips the rest",
			actions: []agentproto.Action{
				action(agentproto.ActionMicroVMCreate, vm, `{"name":"bad","vcpus":0,"memory_mib":128,"disk_image":"/x.img"}`),
				action(agentproto.ActionMicroVMStart, vm, ""),
			},
			wantStatus: []string{"failed", "failed"},
			// The refused create leaves the VM failed, not "creating".
			wantStates: []string{"failed", ""},
		},
		{
			name: "illegal transition fails",
			actions: []agentproto.Action{
				action(agentproto.ActionMicroVMCreate, vm, specParams("web-3", false)),
				action(agentproto.ActionMicroVMPause, vm, ""),
			},
			wantStatus: []string{"succeeded", "failed"},
			wantStates: []string{"stopped", "stopped"},
			wantFinal:  hypervisor.StateStopped,
		},
		{
			name:       "create without params fails",
			actions:    []agentproto.Action{action(agentproto.ActionMicroVMCreate, vm, "")},
			wantStatus: []string{"failed"},
			wantStates: []string{"failed"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := newRig(t, t.TempDir())
			p := agentproto.Plan{PlanID: uuid.New(), Actions: tt.actions}
			require.NoError(t, r.ex.RunPlan(context.Background(), p))
			got := r.rec.results()
			require.Len(t, got, len(tt.actions))
			for i, res := range got {
				a := tt.actions[i]
				assert.Equal(t, a.ActionID, res.ActionID, "results in plan order")
				assert.Equal(t, p.PlanID, res.PlanID)
				assert.Equal(t, a.ExecutionID, res.ExecutionID)
				assert.Equal(t, tt.wantStatus[i], res.Status, "action %d", i)
				assert.Equal(t, tt.wantStates[i], res.VMState, "action %d vm state", i)
				require.NoError(t, res.Validate())
				// Every execution has a log, numbered from 1 without
				// gaps, that says what happened.
				lines := logLines(r.logs, a.ExecutionID)
				require.NotEmpty(t, lines, "action %d log", i)
				for j, l := range lines {
					assert.Equal(t, int64(j+1), l.Seq)
				}
				last := lines[len(lines)-1].Message
				if res.Status == agentproto.ResultFailed {
					assert.NotEmpty(t, res.Error)
					assert.True(t, strings.Contains(last, "failed") || strings.Contains(last, "not run"), last)
				} else {
					assert.Contains(t, last, "succeeded")
				}
				e, ok := r.cache.Get(a.ActionID)
				require.True(t, ok)
				assert.Equal(t, actioncache.StateFinished, e.State)
			}
			if tt.wantFinal != "" {
				assert.Equal(t, tt.wantFinal, vmState(t, r.pv, vm))
			}
		})
	}
}

func TestFinishedActionNotRunAgainAfterRestart(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	vm := uuid.New()
	p := agentproto.Plan{PlanID: uuid.New(), Actions: []agentproto.Action{
		action(agentproto.ActionMicroVMCreate, vm, specParams("db-1", true)),
		action(agentproto.ActionMicroVMStop, vm, ""),
	}}
	r := newRig(t, dir)
	require.NoError(t, r.ex.RunPlan(context.Background(), p))
	first := r.rec.results()
	require.Len(t, first, 2)
	// Someone starts the VM again; a second run of the stop action would
	// stop it, so its state shows whether the action ran twice.
	require.NoError(t, r.pv.Start(context.Background(), vm))

	r2 := newRig(t, dir) // the agent restarts on the same state dir
	require.NoError(t, r2.ex.RunPlan(context.Background(), p))
	assert.Equal(t, hypervisor.StateRunning, vmState(t, r2.pv, vm), "stop ran again")
	again := r2.rec.results()
	require.Len(t, again, 2)
	for i := range first {
		assert.Equal(t, first[i].ActionID, again[i].ActionID)
		assert.Equal(t, first[i].Status, again[i].Status)
		assert.Equal(t, first[i].VMState, again[i].VMState, "stored result re-reported")
	}
	assert.Empty(t, r2.rec.running, "nothing was started")
}

func TestInterruptedActionRerunIdempotently(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	vm := uuid.New()
	create := action(agentproto.ActionMicroVMCreate, vm, specParams("app-1", true))
	p := agentproto.Plan{PlanID: uuid.New(), Actions: []agentproto.Action{create}}

	// The previous process persisted "started", created the VM, and died
	// before booting it and recording the result.
	r := newRig(t, dir)
	_, first, err := r.cache.Begin(create.ActionID)
	require.NoError(t, err)
	require.True(t, first)
	spec, _, err := parseCreate(create)
	require.NoError(t, err)
	require.NoError(t, r.pv.Create(context.Background(), spec))

	r2 := newRig(t, dir)
	require.Len(t, r2.cache.Interrupted(), 1)
	require.NoError(t, r2.ex.RunPlan(context.Background(), p))
	res := r2.rec.results()
	require.Len(t, res, 1)
	assert.Equal(t, agentproto.ResultSucceeded, res[0].Status, res[0].Error)
	assert.Equal(t, hypervisor.StateRunning, vmState(t, r2.pv, vm))
	lines := logLines(r2.logs, create.ExecutionID)
	require.NotEmpty(t, lines)
	assert.Contains(t, lines[0].Message, "resuming")
	assert.Empty(t, r2.cache.Interrupted())
}

func TestRunDrainsQueueInOrder(t *testing.T) {
	t.Parallel()
	r := newRig(t, t.TempDir())
	vm := uuid.New()
	plans := []agentproto.Plan{
		{PlanID: uuid.New(), Actions: []agentproto.Action{action(agentproto.ActionMicroVMCreate, vm, specParams("q-1", true))}},
		{PlanID: uuid.New(), Actions: []agentproto.Action{action(agentproto.ActionMicroVMStop, vm, "")}},
		{PlanID: uuid.New(), Actions: []agentproto.Action{action(agentproto.ActionMicroVMDelete, vm, "")}},
	}
	for _, p := range plans {
		added, err := r.queue.Add(p)
		require.NoError(t, err)
		require.True(t, added)
	}
	added, err := r.queue.Add(plans[0])
	require.NoError(t, err)
	assert.False(t, added, "a plan already held is not queued twice")

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.ex.Run(ctx) }()
	deadline := time.After(10 * time.Second)
	for len(r.rec.results()) < len(plans) {
		select {
		case <-r.rec.changed:
		case <-deadline:
			t.Fatalf("only %d results", len(r.rec.results()))
		}
	}
	cancel()
	require.NoError(t, <-done)
	got := r.rec.results()
	for i, p := range plans {
		assert.Equal(t, p.PlanID, got[i].PlanID, "plans run in the order received")
		assert.Equal(t, agentproto.ResultSucceeded, got[i].Status, got[i].Error)
	}
	assert.Equal(t, 0, r.queue.Len())
	added, err = r.queue.Add(plans[1])
	require.NoError(t, err)
	assert.False(t, added, "a finished plan re-sent by the server is not queued again")
	assert.Equal(t, hypervisor.StateDeleted, vmState(t, r.pv, vm))
}

func TestQueuePersists(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "plans.json")
	q, err := OpenQueue(path)
	require.NoError(t, err)
	p1 := agentproto.Plan{PlanID: uuid.New(), Actions: []agentproto.Action{action(agentproto.ActionMicroVMStart, uuid.New(), "")}}
	p2 := agentproto.Plan{PlanID: uuid.New(), Actions: []agentproto.Action{action(agentproto.ActionMicroVMStop, uuid.New(), "")}}
	for _, p := range []agentproto.Plan{p1, p2} {
		_, err := q.Add(p)
		require.NoError(t, err)
	}
	require.NoError(t, q.Done(p1.PlanID))
	_, err = q.Add(agentproto.Plan{PlanID: uuid.New()})
	require.Error(t, err, "an invalid plan is refused")

	q2, err := OpenQueue(path)
	require.NoError(t, err)
	head, ok := q2.Head()
	require.True(t, ok)
	assert.Equal(t, p2.PlanID, head.PlanID)
	assert.Equal(t, 1, q2.Len())
	select {
	case <-q2.Wake():
	default:
		t.Fatal("a reopened queue with pending plans must wake the executor")
	}
	added, err := q2.Add(p1)
	require.NoError(t, err)
	assert.False(t, added)
}

// TestCreateConfinedToImageDirs: a VM's disk image and kernel must be
// regular files inside the image directories, symlinks resolved; anything
// else fails the create, naming the allowed directories, before the
// provider sees the VM (so nothing is opened or copied).
func TestCreateConfinedToImageDirs(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	secret := filepath.Join(dir, "secret")
	require.NoError(t, os.WriteFile(secret, []byte("root:x:0:0"), 0o600))
	link := filepath.Join(testImages, "link-"+uuid.NewString()+".img")
	require.NoError(t, os.Symlink(secret, link))
	t.Cleanup(func() { _ = os.Remove(link) })
	root := filepath.Join(testImages, "root.img")
	params := func(disk, kernel string) string {
		m := map[string]any{"name": "web-1", "vcpus": 1, "memory_mib": 128, "disk_image": disk}
		if kernel != "" {
			m["kernel"] = kernel
		}
		b, _ := json.Marshal(m)
		return string(b)
	}
	tests := []struct {
		name, params, field string
		images              bool
	}{
		{"disk outside", params(secret, ""), "disk_image", true},
		{"symlink inside pointing outside", params(link, ""), "disk_image", true},
		{"kernel outside", params(root, secret), "kernel", true},
		{"comma", params(filepath.Join(testImages, "a,b.img"), ""), "disk_image", true},
		{"no image dirs configured", params(root, ""), "--image-dir", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := newRig(t, t.TempDir())
			if !tt.images {
				r.ex.o.Images = nil
			}
			vm := uuid.New()
			p := agentproto.Plan{PlanID: uuid.New(), Actions: []agentproto.Action{action(agentproto.ActionMicroVMCreate, vm, tt.params)}}
			require.NoError(t, r.ex.RunPlan(context.Background(), p))
			res := r.rec.results()[0]
			require.Equal(t, agentproto.ResultFailed, res.Status)
			require.Equal(t, agentproto.VMFailed, res.VMState)
			require.Contains(t, res.Error, tt.field)
			if tt.images {
				require.Contains(t, res.Error, testImages, "the message names the allowed directories")
			}
			_, err := r.pv.State(context.Background(), vm)
			require.ErrorIs(t, err, hypervisor.ErrNotFound, "the provider never saw the vm")
		})
	}

	// Inside, through a symlink that stays inside: the provider gets the
	// real path.
	r := newRig(t, t.TempDir())
	inner := filepath.Join(testImages, "current-"+uuid.NewString()+".img")
	require.NoError(t, os.Symlink(root, inner))
	t.Cleanup(func() { _ = os.Remove(inner) })
	vm := uuid.New()
	p := agentproto.Plan{PlanID: uuid.New(), Actions: []agentproto.Action{action(agentproto.ActionMicroVMCreate, vm, params(inner, ""))}}
	require.NoError(t, r.ex.RunPlan(context.Background(), p))
	require.Equal(t, agentproto.ResultSucceeded, r.rec.results()[0].Status)
	spec, ok := r.pv.Spec(vm)
	require.True(t, ok)
	require.Equal(t, root, spec.DiskImage)
}
