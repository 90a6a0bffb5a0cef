package standin

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strings"
)

// real answers as Cloud Hypervisor's code does (vmm/src/lib.rs, the
// RequestHandler impl of Vmm; vmm/src/api/http/http_endpoint.rs); ok is
// false for a path the stand-in does not implement.
func (s *vmm) real(path string, body []byte) (answer, bool) {
	switch path {
	case "/vmm.ping":
		return s.ping(), true
	case "/vmm.shutdown":
		// vmm_shutdown is vm_delete, then the VMM exits; the handler
		// answers 200, not the document's 204 (VmmShutdown in
		// http_endpoint.rs).
		s.deleteVM()
		return answer{status: http.StatusOK, after: s.exit}, true
	case "/vm.info":
		if s.config == nil {
			return s.apiError(true, "The VM info is not available", "VM is not created"), true
		}
		return s.info(), true
	case "/vm.create":
		return s.realCreate(body), true
	case "/vm.delete":
		return s.realDelete(), true
	case "/vm.boot":
		return s.realBoot(), true
	case "/vm.shutdown":
		if !s.booted {
			return s.apiError(false, "The VM could not shutdown", "VM is not running"), true
		}
		return s.realShutdown(), true
	case "/vm.reboot":
		return s.realReboot(), true
	case "/vm.power-button":
		if !s.booted {
			return s.apiError(false, "Error triggering power button", "VM is not running"), true
		}
		return s.powerButton(), true
	case "/vm.pause", "/vm.resume":
		return s.realPauseResume(path == "/vm.pause"), true
	}
	return answer{}, false
}

// realCreate stores the config (vm_create) and, as the VMM does from
// pre_create_console_devices on, opens the serial file, truncating it.
// A MAC the VMM's parser refuses fails deserialisation: 400.
func (s *vmm) realCreate(body []byte) answer {
	var cfg vmConfig
	if err := json.Unmarshal(body, &cfg); err != nil {
		return s.fail(http.StatusBadRequest, "Failed to deserialize JSON", err.Error())
	}
	for _, n := range cfg.Net {
		if err := checkMAC(n.Mac); err != nil {
			return s.fail(http.StatusBadRequest, "Failed to deserialize JSON", err.Error())
		}
	}
	if s.config != nil {
		return s.apiError(false, "The VM could not be created", "VM is already created")
	}
	return s.create(body, cfg)
}

func (s *vmm) create(body []byte, cfg vmConfig) answer {
	s.config, s.booted, s.state = json.RawMessage(body), false, ""
	s.serialPath = ""
	if cfg.Serial.Mode == "File" {
		s.serialPath = cfg.Serial.File
	}
	if err := s.openSerial(); err != nil {
		s.config = nil
		return s.apiError(false, "The VM could not be created", "Error creating console devices", err.Error())
	}
	return answer{status: http.StatusNoContent}
}

// realDelete is vm_delete: a no-op without a VM, else shut down what is
// booted and forget the config. On v53, deleting a VM whose boot failed
// fails (its shutdown is an invalid Created→Shutdown transition) but
// drops the Vm anyway (take_owned_or), so a second vm.delete succeeds.
func (s *vmm) realDelete() answer {
	if s.config == nil {
		return answer{status: http.StatusNoContent}
	}
	if s.booted && s.state == stateCreated {
		s.booted = false
		return s.apiError(false, "The VM could not be deleted", "invalid VM state transition: Created to Shutdown")
	}
	s.deleteVM()
	return answer{status: http.StatusNoContent}
}

// deleteVM forgets the VM, shutting it down first.
func (s *vmm) deleteVM() {
	if s.booted {
		s.console("\nreboot: Power down\n")
	}
	s.config, s.booted, s.state = nil, false, ""
	s.closeSerialLocked()
}

// realBoot is vm_boot. Before v53 a booted Vm is booted again in place:
// Vm::boot resumes a paused VM and refuses Running→Running; from v53 any
// owned Vm (booted, or one whose boot failed) is "VM is already created".
func (s *vmm) realBoot() answer {
	switch {
	case s.config == nil:
		return s.apiError(true, "The VM could not boot", "VM config is missing")
	case s.booted && s.v53:
		return s.apiError(false, "The VM could not boot", "VM is already created")
	case s.booted && s.state == statePaused:
		s.state = stateRunning
		return answer{status: http.StatusNoContent}
	case s.booted && s.state == stateRunning:
		return s.apiError(false, "The VM could not boot", "invalid VM state transition: Running to Running")
	}
	// Vm::new validates the config and opens the devices' files.
	if msgs := s.bootProblem(); msgs != nil {
		if s.v53 && strings.HasPrefix(msgs[0], "Cannot open the kernel") {
			// The payload is loaded inside vm.boot() (load_payload_handle),
			// after the Vm became owned.
			s.booted, s.state = true, stateCreated
		}
		return s.apiError(false, append([]string{"The VM could not boot"}, msgs...)...)
	}
	if err := s.openSerial(); err != nil {
		return s.apiError(false, "The VM could not boot", "Error creating console devices", err.Error())
	}
	s.booted, s.state = true, stateRunning
	s.console("stand-in guest booting\nwelcome to the stand-in guest\nlogin: ")
	return answer{status: http.StatusNoContent}
}

// realShutdown is vm_shutdown: the Vm is dropped, so vm.info then reads
// "Created" (never "Shutdown"), and the console devices are closed.
func (s *vmm) realShutdown() answer {
	if s.state == stateCreated {
		s.booted = false
		return s.apiError(false, "The VM could not shutdown", "invalid VM state transition: Created to Shutdown")
	}
	s.console("\nreboot: Power down\n")
	s.booted, s.state = false, ""
	s.closeSerialLocked()
	return answer{status: http.StatusNoContent}
}

// realReboot is vm_reboot: shut the Vm down (Running or Paused), make a
// new one and boot it; the serial file is opened anew, truncated.
func (s *vmm) realReboot() answer {
	if !s.booted {
		return s.apiError(true, "The VM could not reboot", "VM is not created")
	}
	if s.state == stateCreated {
		s.booted = false
		return s.apiError(false, "The VM could not reboot", "invalid VM state transition: Created to Shutdown")
	}
	s.console("\nreboot: Restarting system\n")
	s.closeSerialLocked()
	if err := s.openSerial(); err != nil {
		s.booted, s.state = false, ""
		return s.apiError(false, "The VM could not reboot", "Error creating console devices", err.Error())
	}
	s.state = stateRunning
	s.console("stand-in guest booting\nlogin: ")
	return answer{status: http.StatusNoContent}
}

// realPauseResume is vm_pause / vm_resume: VmNotRunning without a Vm,
// else the Vm's own state check.
func (s *vmm) realPauseResume(pause bool) answer {
	what, verb, from, to := "The VM could not be paused", "Cannot pause VM", stateRunning, statePaused
	if !pause {
		what, verb, from, to = "The VM could not resume", "Cannot resume VM", statePaused, stateRunning
	}
	if !s.booted {
		return s.apiError(false, what, "VM is not running")
	}
	if s.state != from {
		return s.apiError(false, what, verb, fmt.Sprintf("invalid VM state transition: %s to %s", s.state, to))
	}
	s.state = to
	return answer{status: http.StatusNoContent}
}

// vmConfig is the part of a VmConfig the stand-in checks.
type vmConfig struct {
	Cpus struct {
		BootVcpus int `json:"boot_vcpus"`
		MaxVcpus  int `json:"max_vcpus"`
	} `json:"cpus"`
	Payload struct {
		Kernel   string `json:"kernel"`
		Firmware string `json:"firmware"`
	} `json:"payload"`
	Disks []struct {
		Path string `json:"path"`
	} `json:"disks"`
	Net []struct {
		Mac string `json:"mac"`
	} `json:"net"`
	Serial struct {
		Mode string `json:"mode"`
		File string `json:"file"`
	} `json:"serial"`
}

// bootProblem is what Vm::new (VmConfig::validate, payload and disk
// opening) would refuse, as the error chain's messages; nil when none.
func (s *vmm) bootProblem() []string {
	var cfg vmConfig
	if err := json.Unmarshal(s.config, &cfg); err != nil {
		return []string{"Failed to validate config", err.Error()}
	}
	if cfg.Cpus.MaxVcpus != 0 && cfg.Cpus.MaxVcpus < cfg.Cpus.BootVcpus {
		return []string{"Failed to validate config", "Max CPUs lower than boot CPUs"}
	}
	payload := cfg.Payload.Kernel
	if payload == "" {
		payload = cfg.Payload.Firmware
	}
	if _, err := os.Stat(payload); err != nil {
		return []string{"Cannot open the kernel image", fmt.Sprintf("%s: %v", payload, errText(err))}
	}
	for _, d := range cfg.Disks {
		if _, err := os.Stat(d.Path); err != nil {
			return []string{"Error from device manager", fmt.Sprintf("Failed opening disk %s: %s", d.Path, errText(err))}
		}
	}
	return nil
}

// errText is an I/O error as Rust's io::Error prints it.
func errText(err error) string {
	if os.IsNotExist(err) {
		return "No such file or directory (os error 2)"
	}
	return err.Error()
}

// checkMAC accepts what MacAddr::parse_str (net_util/src/mac.rs) does:
// exactly six ':'-separated octets of two hex digits.
func checkMAC(s string) error {
	parts := strings.Split(s, ":")
	if len(parts) != 6 {
		return fmt.Errorf("invalid MAC address %q: want 6 ':'-separated octets, got %d", s, len(parts))
	}
	for _, p := range parts {
		if len(p) != 2 || strings.Trim(p, "0123456789abcdefABCDEF") != "" {
			return fmt.Errorf("invalid MAC address %q: octet %q is not two hex digits", s, p)
		}
	}
	return nil
}

// openSerial opens the serial file afresh, truncating it, unless it is
// open. Must be called with s.mu held.
func (s *vmm) openSerial() error {
	if s.serialPath == "" || s.serial != nil {
		return nil
	}
	f, err := os.OpenFile(s.serialPath, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o640)
	if err != nil {
		return err
	}
	s.serial = f
	return nil
}

func (s *vmm) closeSerial() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closeSerialLocked()
}

func (s *vmm) closeSerialLocked() {
	if s.serial != nil {
		_ = s.serial.Close()
		s.serial = nil
	}
}

// console writes guest output to the open serial file. Must be called
// with s.mu held.
func (s *vmm) console(text string) {
	if s.serial == nil {
		return
	}
	if _, err := s.serial.WriteString(text + "\n"); err != nil {
		fmt.Fprintln(os.Stderr, "stand-in: writing console:", err)
	}
}
