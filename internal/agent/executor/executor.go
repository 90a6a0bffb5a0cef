package executor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/kubedoio/n-kudo/internal/agent/actioncache"
	"github.com/kubedoio/n-kudo/internal/agent/execlog"
	"github.com/kubedoio/n-kudo/internal/agent/imagedir"
	"github.com/kubedoio/n-kudo/internal/agentproto"
	"github.com/kubedoio/n-kudo/internal/hypervisor"
	"github.com/kubedoio/n-kudo/internal/vmspec"
)

// Sentinel errors.
var (
	// ErrUnsupported: the action type is not one this agent runs.
	ErrUnsupported = errors.New("unsupported action")
	// ErrBadParams: an action's params cannot be used.
	ErrBadParams = errors.New("bad action params")
)

// Log keys.
const (
	logKeyPlan   = "plan_id"
	logKeyAction = "action_id"
	logKeyType   = "type"
	logKeyVM     = "vm_id"
	logKeyErr    = "err"
)

// Notifier is told about results, so the session can send them. Both
// calls must not block.
type Notifier interface {
	// Running reports that an action started (best effort, not durable).
	Running(r agentproto.ActionResult)
	// Finished reports that a terminal result is durable in the cache.
	Finished(r agentproto.ActionResult)
}

// Options configures an Executor.
type Options struct {
	Provider hypervisor.Provider
	Cache    *actioncache.Cache
	Queue    *Queue
	Logs     *execlog.Buffer
	Notifier Notifier
	Logger   *slog.Logger
	Now      func() time.Time
	// Images confines the host files a VM boots from; nil refuses every
	// MicroVMCreate.
	Images *imagedir.Dirs
	// ActionTimeout bounds one provider call; zero means 10 minutes.
	ActionTimeout time.Duration
}

// Executor runs queued plans. Run is its only goroutine.
type Executor struct {
	o Options
}

// New returns an executor.
func New(o Options) *Executor {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.ActionTimeout <= 0 {
		o.ActionTimeout = 10 * time.Minute
	}
	return &Executor{o: o}
}

// Run executes plans until ctx ends. A plan interrupted by ctx stays
// queued and its running action stays "started" in the cache, so the next
// Run (in this process or after a restart) resumes it.
func (e *Executor) Run(ctx context.Context) error {
	for {
		p, ok := e.o.Queue.Head()
		if !ok {
			select {
			case <-ctx.Done():
				return nil
			case <-e.o.Queue.Wake():
				continue
			}
		}
		if err := e.RunPlan(ctx, p); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		if err := e.o.Queue.Done(p.PlanID); err != nil {
			return fmt.Errorf("running plans: %w", err)
		}
	}
}

// RunPlan runs the actions of p in order. After a failed action the rest
// are reported failed without running: they were planned on the
// assumption that the earlier ones worked. It returns an error only when
// the plan could not be carried through (ctx ended, the cache failed); the
// plan must then be run again later.
func (e *Executor) RunPlan(ctx context.Context, p agentproto.Plan) error {
	var failed *agentproto.Action
	for i := range p.Actions {
		a := p.Actions[i]
		var r agentproto.ActionResult
		var err error
		if failed != nil {
			r, err = e.skip(p.PlanID, a, *failed)
		} else {
			r, err = e.RunAction(ctx, p.PlanID, a)
		}
		if err != nil {
			return fmt.Errorf("running plan %s: %w", p.PlanID, err)
		}
		if r.Status == agentproto.ResultFailed && failed == nil {
			failed = &p.Actions[i]
		}
	}
	return nil
}

// RunAction runs one action at most once and returns its result.
func (e *Executor) RunAction(ctx context.Context, planID uuid.UUID, a agentproto.Action) (agentproto.ActionResult, error) {
	log := e.o.Logger.With(logKeyPlan, planID, logKeyAction, a.ActionID, logKeyType, a.Type, logKeyVM, a.VMID)
	entry, first, err := e.o.Cache.Begin(a.ActionID)
	if err != nil {
		return agentproto.ActionResult{}, fmt.Errorf("running action %s: %w", a.ActionID, err)
	}
	if !first && entry.State == actioncache.StateFinished {
		// Never run a finished action again: report what it did.
		log.Info("action already finished, re-reporting its result", "status", entry.Result.Status)
		e.o.Notifier.Finished(entry.Result)
		return entry.Result, nil
	}
	e.o.Notifier.Running(e.result(planID, a, agentproto.ResultRunning, "", ""))
	if !first {
		e.logLine(a, agentproto.StreamSystem, fmt.Sprintf("resuming %s of vm %s: the agent stopped while it was running; running it again, idempotently", a.Type, a.VMID))
	}
	e.logLine(a, agentproto.StreamSystem, describe(a))
	if err := e.o.Logs.Flush(); err != nil {
		log.Warn("flushing execution log", logKeyErr, err)
	}
	actx, cancel := context.WithTimeout(ctx, e.o.ActionTimeout)
	runErr := e.apply(actx, a)
	cancel()
	if runErr != nil && ctx.Err() != nil {
		// Stopped by shutdown, not by the action: leave it "started" so
		// it is resumed instead of reported as failed.
		return agentproto.ActionResult{}, fmt.Errorf("running action %s: %w", a.ActionID, ctx.Err())
	}
	vmState := e.vmState(ctx, a.VMID)
	if runErr != nil && vmState == "" && a.Type == agentproto.ActionMicroVMCreate {
		// Refused before the provider knew the VM (bad params, a path
		// outside the image directories): the VM is failed, with the
		// reason, rather than left "creating".
		vmState = agentproto.VMFailed
	}
	var r agentproto.ActionResult
	if runErr != nil {
		msg := fmt.Sprintf("%s of vm %s failed: %v", a.Type, a.VMID, runErr)
		e.logLine(a, agentproto.StreamStderr, msg)
		r = e.result(planID, a, agentproto.ResultFailed, truncate(runErr.Error(), agentproto.MaxErrorBytes), vmState)
		log.Warn("action failed", logKeyErr, runErr)
	} else {
		e.logLine(a, agentproto.StreamSystem, fmt.Sprintf("%s of vm %s succeeded; vm is %s", a.Type, a.VMID, orUnknown(vmState)))
		r = e.result(planID, a, agentproto.ResultSucceeded, "", vmState)
		log.Info("action succeeded", "vm_state", vmState)
	}
	return r, e.finish(a, r)
}

// skip records a failed result for an action not run because an earlier
// one failed.
func (e *Executor) skip(planID uuid.UUID, a, cause agentproto.Action) (agentproto.ActionResult, error) {
	entry, first, err := e.o.Cache.Begin(a.ActionID)
	if err != nil {
		return agentproto.ActionResult{}, fmt.Errorf("skipping action %s: %w", a.ActionID, err)
	}
	if !first && entry.State == actioncache.StateFinished {
		e.o.Notifier.Finished(entry.Result)
		return entry.Result, nil
	}
	msg := fmt.Sprintf("%s of vm %s not run: earlier action %s (%s) of the plan failed", a.Type, a.VMID, cause.ActionID, cause.Type)
	e.logLine(a, agentproto.StreamSystem, msg)
	r := e.result(planID, a, agentproto.ResultFailed, msg, "")
	return r, e.finish(a, r)
}

// finish makes the log durable, then the result, then announces it.
func (e *Executor) finish(a agentproto.Action, r agentproto.ActionResult) error {
	if err := e.o.Logs.Flush(); err != nil {
		// The result matters more than its log; record it anyway.
		e.o.Logger.Warn("flushing execution log", logKeyAction, a.ActionID, logKeyErr, err)
	}
	if err := e.o.Cache.Finish(a.ActionID, r); err != nil {
		return fmt.Errorf("recording result of action %s: %w", a.ActionID, err)
	}
	e.o.Notifier.Finished(r)
	return nil
}

func (e *Executor) result(planID uuid.UUID, a agentproto.Action, status, errMsg, vmState string) agentproto.ActionResult {
	return agentproto.ActionResult{
		PlanID: planID, ActionID: a.ActionID, ExecutionID: a.ExecutionID,
		Status: status, Error: errMsg, VMState: vmState, At: e.o.Now().UTC(),
	}
}

func (e *Executor) logLine(a agentproto.Action, stream, msg string) {
	e.o.Logs.Append(a.ExecutionID, stream, msg, e.o.Now())
}

func parseCreate(a agentproto.Action) (hypervisor.VMSpec, bool, error) {
	if len(a.Params) == 0 {
		return hypervisor.VMSpec{}, false, fmt.Errorf("%w: MicroVMCreate needs the VM spec in params", ErrBadParams)
	}
	// Lenient (unknown fields ignored): a newer server may send more.
	var p vmspec.CreateParams
	if err := json.Unmarshal(a.Params, &p); err != nil {
		return hypervisor.VMSpec{}, false, fmt.Errorf("%w: %w", ErrBadParams, err)
	}
	if p.ID != uuid.Nil && p.ID != a.VMID {
		return hypervisor.VMSpec{}, false, fmt.Errorf("%w: params id %s is not the action's vm %s", ErrBadParams, p.ID, a.VMID)
	}
	spec := hypervisor.VMSpec{
		ID: a.VMID, Name: p.Name, VCPUs: p.VCPUs, MemoryMiB: p.MemoryMiB, Kernel: p.Kernel, Cmdline: p.Cmdline,
		DiskImage: p.DiskImage, MAC: p.MAC,
	}
	if p.CloudInit != nil {
		spec.CloudInit.UserData = p.CloudInit.UserData
	}
	return spec, p.Start == nil || *p.Start, nil
}

// confine replaces the spec's host files by their real paths inside the
// image directories, or refuses the spec, before any provider opens or
// copies them. Every provider (sim and cloud-hypervisor alike) gets only
// confined paths, so the rule holds whatever the VMM.
func (e *Executor) confine(spec *hypervisor.VMSpec) error {
	if e.o.Images == nil {
		return fmt.Errorf("%w: no image directories are configured; start the agent with --image-dir", imagedir.ErrOutside)
	}
	real, err := e.o.Images.Resolve(vmspec.FieldDiskImage, spec.DiskImage)
	if err != nil {
		return err
	}
	spec.DiskImage = real
	if spec.Kernel != "" {
		if spec.Kernel, err = e.o.Images.Resolve(vmspec.FieldKernel, spec.Kernel); err != nil {
			return err
		}
	}
	return nil
}

// apply calls the provider. Each call is idempotent in its goal state, so
// re-running an interrupted action is safe.
func (e *Executor) apply(ctx context.Context, a agentproto.Action) error {
	pv := e.o.Provider
	switch a.Type {
	case agentproto.ActionMicroVMCreate:
		spec, start, err := parseCreate(a)
		if err != nil {
			return err
		}
		if err := e.confine(&spec); err != nil {
			return err
		}
		if err := pv.Create(ctx, spec); err != nil {
			return err
		}
		e.logLine(a, agentproto.StreamSystem, fmt.Sprintf("vm %s (%s) defined: %d vCPU, %d MiB", spec.ID, spec.Name, spec.VCPUs, spec.MemoryMiB))
		if !start {
			return nil
		}
		e.logLine(a, agentproto.StreamSystem, fmt.Sprintf("booting vm %s", spec.ID))
		return pv.Start(ctx, a.VMID)
	case agentproto.ActionMicroVMStart:
		return pv.Start(ctx, a.VMID)
	case agentproto.ActionMicroVMStop:
		return pv.Stop(ctx, a.VMID)
	case agentproto.ActionMicroVMReboot:
		return pv.Reboot(ctx, a.VMID)
	case agentproto.ActionMicroVMPause:
		return pv.Pause(ctx, a.VMID)
	case agentproto.ActionMicroVMResume:
		return pv.Resume(ctx, a.VMID)
	case agentproto.ActionMicroVMDelete:
		return pv.Delete(ctx, a.VMID)
	}
	return fmt.Errorf("%w: %q", ErrUnsupported, a.Type)
}

// vmState reads the VM's state after an action; "" when the provider
// does not know it (never created).
func (e *Executor) vmState(ctx context.Context, id uuid.UUID) string {
	st, err := e.o.Provider.State(context.WithoutCancel(ctx), id)
	if err != nil {
		if !errors.Is(err, hypervisor.ErrNotFound) {
			e.o.Logger.Warn("reading vm state", logKeyVM, id, logKeyErr, err)
		}
		return ""
	}
	return string(st.State)
}

func describe(a agentproto.Action) string {
	verbs := map[string]string{
		agentproto.ActionMicroVMCreate: "creating", agentproto.ActionMicroVMStart: "starting",
		agentproto.ActionMicroVMStop: "stopping", agentproto.ActionMicroVMReboot: "rebooting",
		agentproto.ActionMicroVMPause: "pausing", agentproto.ActionMicroVMResume: "resuming",
		agentproto.ActionMicroVMDelete: "deleting",
	}
	verb, ok := verbs[a.Type]
	if !ok {
		verb = "running " + a.Type + " on"
	}
	return fmt.Sprintf("%s vm %s (action %s, %s)", verb, a.VMID, a.ActionID, a.Type)
}

func orUnknown(s string) string {
	if s == "" {
		return agentproto.VMUnknown
	}
	return s
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
