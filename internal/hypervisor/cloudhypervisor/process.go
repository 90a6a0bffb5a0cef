package cloudhypervisor

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// pollInterval is how often process exit and socket readiness are checked
// while waiting for them.
const pollInterval = 20 * time.Millisecond

// launch starts the VMM for one VM in its own process group, so it
// survives the agent and a signal to the agent's group does not reach it.
// Its output goes to the VM's vmm.log. The process is released rather
// than waited on by a goroutine: the provider reaps it with a non-blocking
// wait4 whenever it checks on it, and after an agent restart it is no
// longer our child at all.
func launch(binary string, p Paths) (int, error) {
	logf, err := os.OpenFile(p.VMMLog, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return 0, fmt.Errorf("opening vmm log: %w", err)
	}
	defer logf.Close()
	// A stale socket from a dead VMM would make the new one fail to bind.
	if err := os.Remove(p.APISocket); err != nil && !errors.Is(err, os.ErrNotExist) {
		return 0, fmt.Errorf("removing stale api socket: %w", err)
	}
	cmd := exec.Command(binary, "--api-socket", "path="+p.APISocket)
	cmd.Dir = p.Dir
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return 0, fmt.Errorf("starting %s: %w", binary, err)
	}
	pid := cmd.Process.Pid
	_ = cmd.Process.Release()
	waitCmdline(pid)
	return pid, nil
}

// waitCmdline waits, briefly, until a just-started process shows its
// command line: while execve is still building its memory the line reads
// empty, and probe would take the new VMM for a dead one.
func waitCmdline(pid int) {
	deadline := time.Now().Add(settleTimeout)
	for time.Now().Before(deadline) {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
		if err != nil || len(b) > 0 {
			return
		}
		time.Sleep(time.Millisecond) // polling the kernel's progress, bounded
	}
}

// procState is what is known about a VMM process.
type procState struct {
	alive bool
	// exit describes how it ended, when it was our child and we reaped it.
	exit string
	// clean: it exited with status 0, which a VMM does after vmm.shutdown
	// and when its guest powers off (the exit event in vmm/src/lib.rs).
	clean bool
}

// probe reports whether pid is alive and is the VMM serving socket. It
// reaps the process if it was our child and has exited. The command-line
// check guards against pid reuse: a pid file can outlive its process and
// name an unrelated one by the time it is read.
func probe(pid int, socket string) procState {
	if pid <= 0 {
		return procState{}
	}
	var ws unix.WaitStatus
	wpid, err := unix.Wait4(pid, &ws, unix.WNOHANG, nil)
	if err == nil && wpid == pid {
		return exited(ws)
	}
	if err := unix.Kill(pid, 0); errors.Is(err, unix.ESRCH) {
		return procState{}
	}
	cmdline, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	if err != nil {
		return procState{}
	}
	if !bytes.Contains(cmdline, []byte("path="+socket+"\x00")) {
		return procState{}
	}
	// A zombie that is not our child still passes kill(0); its state says.
	if stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat"); err == nil {
		if i := bytes.LastIndexByte(stat, ')'); i > 0 && i+2 < len(stat) && stat[i+2] == 'Z' {
			return procState{exit: "exited (zombie)"}
		}
	}
	return procState{alive: true}
}

func exited(ws unix.WaitStatus) procState {
	return procState{exit: describeExit(ws), clean: ws.Exited() && ws.ExitStatus() == 0}
}

func describeExit(ws unix.WaitStatus) string {
	switch {
	case ws.Exited():
		return fmt.Sprintf("exited with status %d", ws.ExitStatus())
	case ws.Signaled():
		return fmt.Sprintf("killed by %s", unix.SignalName(ws.Signal()))
	}
	return fmt.Sprintf("ended (wait status %#x)", uint32(ws))
}

// settleTimeout bounds how long settle waits for an exiting child.
const settleTimeout = 2 * time.Second

// settle waits briefly for a child that is exiting (its API connection
// dropped, its command line already torn down) to become reapable, and
// returns how it ended; no exit when it is not our child or does not end
// in time. Knowing "exited with status 3" beats "is gone" in an error.
func settle(pid int) procState {
	if pid <= 0 {
		return procState{}
	}
	deadline := time.Now().Add(settleTimeout)
	t := time.NewTicker(pollInterval)
	defer t.Stop()
	for {
		var ws unix.WaitStatus
		wpid, err := unix.Wait4(pid, &ws, unix.WNOHANG, nil)
		switch {
		case err != nil:
			return procState{} // ECHILD: not ours, or already reaped
		case wpid == pid:
			return exited(ws)
		case time.Now().After(deadline):
			return procState{}
		}
		<-t.C
	}
}

// kill sends SIGKILL to the VMM's process group, after checking the pid is
// still our VMM.
func kill(pid int, socket string) error {
	if !probe(pid, socket).alive {
		return nil
	}
	if err := unix.Kill(-pid, unix.SIGKILL); err != nil && !errors.Is(err, unix.ESRCH) {
		return fmt.Errorf("killing vmm process group %d: %w", pid, err)
	}
	return nil
}

// readPID reads a pid file; a missing or empty one is 0.
func readPID(path string) (int, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("reading pid file: %w", err)
	}
	s := strings.TrimSpace(string(b))
	if s == "" {
		return 0, nil
	}
	pid, err := strconv.Atoi(s)
	if err != nil || pid <= 0 {
		return 0, fmt.Errorf("reading pid file %s: bad pid %q", path, s)
	}
	return pid, nil
}
