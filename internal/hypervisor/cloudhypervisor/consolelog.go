package cloudhypervisor

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
)

// MaxConsoleLogs is how many earlier console logs are kept beside
// console.log (console.log.1 the newest): the bound on console history.
const MaxConsoleLogs = 3

// rotateConsole moves a non-empty console.log aside before the VMM
// truncates it. Cloud Hypervisor opens the serial file with truncation at
// vm.create, at every vm.boot after a vm.shutdown and at every vm.reboot
// (pre_create_console_devices in vmm/src/lib.rs), which would lose the
// guest's history at each start. An empty file is left in place: a VMM
// that opened it at vm.create writes to it at the first boot. Failures
// are logged, not returned: losing history must not stop a VM. Must be
// called with v.mu held.
func (p *Provider) rotateConsole(v *vm) {
	if err := rotateLog(v.paths.ConsoleLog, MaxConsoleLogs); err != nil {
		p.log.Warn("keeping console history", slog.String(keyVM, v.rec.Spec.ID.String()), slog.String(keyError, err.Error()))
	}
}

// rotateLog renames path to path.1, path.1 to path.2, and so on, keeping
// at most keep old files; it does nothing when path is missing or empty.
func rotateLog(path string, keep int) error {
	st, err := os.Stat(path)
	if errors.Is(err, os.ErrNotExist) || (err == nil && st.Size() == 0) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("rotating %s: %w", path, err)
	}
	if err := os.Remove(fmt.Sprintf("%s.%d", path, keep)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("rotating %s: %w", path, err)
	}
	for i := keep - 1; i >= 1; i-- {
		err := os.Rename(fmt.Sprintf("%s.%d", path, i), fmt.Sprintf("%s.%d", path, i+1))
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("rotating %s: %w", path, err)
		}
	}
	if err := os.Rename(path, path+".1"); err != nil {
		return fmt.Errorf("rotating %s: %w", path, err)
	}
	return nil
}
