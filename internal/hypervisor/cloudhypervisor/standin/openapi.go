package standin

import (
	"encoding/json"
	"net/http"
)

// openapi answers as the API document (cloud-hypervisor.yaml) describes:
// 404 when no VM is created, 405 in the wrong state, 204 for
// vmm.shutdown, and a "Shutdown" state after vm.shutdown. Errors the
// document does not list are 500 with a text message.
func (s *vmm) openapi(path string, body []byte) (answer, bool) {
	created := s.config != nil
	if !created && needsVM[path] {
		return s.fail(http.StatusNotFound, "VM is not created"), true
	}
	switch path {
	case "/vmm.ping":
		return s.ping(), true
	case "/vmm.shutdown":
		s.deleteVM()
		return answer{status: http.StatusNoContent, after: s.exit}, true
	case "/vm.info":
		return s.info(), true
	case "/vm.create":
		var cfg vmConfig
		if err := json.Unmarshal(body, &cfg); err != nil {
			return s.fail(http.StatusBadRequest, err.Error()), true
		}
		if created {
			return s.fail(http.StatusInternalServerError, "VM is already created"), true
		}
		return s.create(body, cfg), true
	case "/vm.delete":
		s.deleteVM()
		return answer{status: http.StatusNoContent}, true
	case "/vm.boot":
		return s.openapiBoot(), true
	case "/vm.shutdown":
		return s.openapiNeeds(stateRunning, statePaused, func() {
			s.console("\nreboot: Power down\n")
			s.state = stateShutdown
			s.closeSerialLocked()
		}), true
	case "/vm.reboot":
		return s.openapiNeeds(stateRunning, "", func() {
			s.console("\nreboot: Restarting system\n")
			s.closeSerialLocked()
			_ = s.openSerial()
			s.console("stand-in guest booting\nlogin: ")
		}), true
	case "/vm.power-button":
		if !s.booted || s.state != stateRunning {
			return s.fail(http.StatusMethodNotAllowed, "VM is not booted"), true
		}
		return s.powerButton(), true
	case "/vm.pause":
		return s.openapiNeeds(stateRunning, "", func() { s.state = statePaused }), true
	case "/vm.resume":
		return s.openapiNeeds(statePaused, "", func() { s.state = stateRunning }), true
	}
	return answer{}, false
}

// needsVM lists the calls the document answers with 404 without a VM.
var needsVM = map[string]bool{"/vm.info": true, "/vm.boot": true, "/vm.shutdown": true, "/vm.reboot": true,
	"/vm.power-button": true, "/vm.pause": true, "/vm.resume": true}

// openapiNeeds runs do when the VM is in state a or b, else answers 405.
func (s *vmm) openapiNeeds(a, b string, do func()) answer {
	if !s.booted || (s.state != a && s.state != b) {
		return s.fail(http.StatusMethodNotAllowed, "VM is not in state "+a)
	}
	do()
	return answer{status: http.StatusNoContent}
}

func (s *vmm) openapiBoot() answer {
	if s.booted && (s.state == stateRunning || s.state == statePaused) {
		return s.fail(http.StatusInternalServerError, "VM is already booted")
	}
	if msgs := s.bootProblem(); msgs != nil {
		return s.fail(http.StatusInternalServerError, msgs...)
	}
	if err := s.openSerial(); err != nil {
		return s.fail(http.StatusInternalServerError, err.Error())
	}
	s.booted, s.state = true, stateRunning
	s.console("stand-in guest booting\nwelcome to the stand-in guest\nlogin: ")
	return answer{status: http.StatusNoContent}
}
