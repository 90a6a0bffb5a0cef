package doctor

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/kubedoio/n-kudo/internal/agent/imagedir"
	"github.com/kubedoio/n-kudo/internal/vmnet"
)

func checkKVM(device string) Result {
	res := Result{Check: CheckKVM}
	// The VMM opens it read-write; a device that merely exists is not
	// enough.
	f, err := os.OpenFile(device, os.O_RDWR|unix.O_CLOEXEC, 0)
	switch {
	case err == nil:
		_ = f.Close()
		res.Status, res.Detail = StatusOK, device+" opens read-write"
	case errors.Is(err, fs.ErrNotExist):
		res.Status, res.Detail = StatusFail, device+" is missing"
		res.Fix = "enable virtualisation (VT-x/AMD-V, or nested virtualisation on a VM) and load the kvm module (modprobe kvm_intel or kvm_amd)"
	case errors.Is(err, fs.ErrPermission):
		res.Status, res.Detail = StatusFail, device+" cannot be opened: permission denied"
		res.Fix = "run the agent as root or add its user to the kvm group"
	default:
		res.Status, res.Detail = StatusFail, fmt.Sprintf("%s cannot be opened: %v", device, err)
		res.Fix = "check that " + device + " is the KVM character device and the kvm module is loaded"
	}
	return res
}

// Names of the devices the net-admin check creates, in its own namespace.
const (
	probeBridge = "nkdoctorbr0"
	probeTAP    = "nkdoctortap0"
)

// NetAdminInThrowawayNS creates a network namespace, a bridge and a TAP
// device on it there (what the Cloud Hypervisor provider does for each
// VM), removes them, and lets the namespace go, so the host's own network
// is never touched. Namespaces belong to OS threads: the work runs on a
// goroutine locked to its thread and never unlocked, so Go retires the
// thread, and the namespace with it, when the goroutine ends.
func NetAdminInThrowawayNS(ctx context.Context) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		errc <- netAdminHere(ctx)
	}()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		return fmt.Errorf("checking network rights: %w", ctx.Err())
	}
}

func netAdminHere(ctx context.Context) error {
	ns, err := netns.New()
	if err != nil {
		return fmt.Errorf("creating a network namespace: %w", err)
	}
	defer ns.Close()
	m, err := vmnet.New(vmnet.Options{Bridge: probeBridge})
	if err != nil {
		return err
	}
	defer m.Close()
	if err := m.EnsureTAP(ctx, vmnet.TAP{Name: probeTAP}); err != nil {
		return err
	}
	if err := m.DeleteTAP(ctx, probeTAP); err != nil {
		return err
	}
	return nil
}

func checkImageDirs(dirs []string) Result {
	res := Result{Check: CheckImageDirs, Status: StatusOK}
	if _, err := imagedir.New(dirs); err != nil {
		res.Status, res.Detail = StatusFail, err.Error()
		res.Fix = "give --image-dir absolute directories without ',' (NKUDO_IMAGE_DIRS is colon-separated)"
		return res
	}
	var found []string
	for _, d := range dirs {
		entries, err := os.ReadDir(d)
		if err != nil {
			res.Status = StatusFail
			res.Detail = fmt.Sprintf("%s: %v", d, err)
			res.Fix = fmt.Sprintf("mkdir -p %s and put the VM disk images and kernels there (readable by the agent)", d)
			return res
		}
		n := 0
		for _, e := range entries {
			if e.Type().IsRegular() || e.Type()&fs.ModeSymlink != 0 {
				n++
			}
		}
		found = append(found, fmt.Sprintf("%s (%d files)", d, n))
	}
	res.Detail = strings.Join(found, ", ")
	return res
}

// checkDir checks a directory the agent writes: it exists (or can be
// created), is writable, and grants nothing in badPerm to others.
func checkDir(check, dir string, badPerm fs.FileMode, why string) Result {
	res := Result{Check: check}
	if dir == "" {
		res.Status, res.Detail = StatusSkip, "not given"
		return res
	}
	st, err := os.Stat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		parent := filepath.Dir(dir)
		for {
			if _, err := os.Stat(parent); err == nil || parent == "/" {
				break
			}
			parent = filepath.Dir(parent)
		}
		if err := unix.Access(parent, unix.W_OK|unix.X_OK); err != nil {
			res.Status, res.Detail = StatusFail, fmt.Sprintf("%s is missing and %s is not writable", dir, parent)
			res.Fix = fmt.Sprintf("mkdir -m 700 -p %s as the agent's user", dir)
			return res
		}
		res.Status, res.Detail = StatusOK, dir+" will be created; "+why
		return res
	}
	if err != nil || !st.IsDir() {
		res.Status, res.Detail = StatusFail, fmt.Sprintf("%s is not a usable directory: %v", dir, err)
		res.Fix = fmt.Sprintf("make %s a directory the agent owns (mkdir -m 700 -p %s)", dir, dir)
		return res
	}
	if err := unix.Access(dir, unix.W_OK|unix.X_OK); err != nil {
		res.Status, res.Detail = StatusFail, fmt.Sprintf("%s is not writable: %v", dir, err)
		res.Fix = fmt.Sprintf("chown the agent's user %s", dir)
		return res
	}
	if perm := st.Mode().Perm(); perm&badPerm != 0 {
		res.Status, res.Detail = StatusFail, fmt.Sprintf("%s has mode %04o: others may read or write it, and %s", dir, perm, why)
		res.Fix = fmt.Sprintf("chmod %04o %s", perm&^badPerm, dir)
		return res
	}
	res.Status, res.Detail = StatusOK, fmt.Sprintf("%s writable, mode %04o", dir, st.Mode().Perm())
	return res
}
