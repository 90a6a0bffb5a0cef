package standin

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"

	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
)

// VM states as the VMM names them (VmState in vmm/src/vm.rs).
const (
	stateCreated  = "Created"
	stateRunning  = "Running"
	statePaused   = "Paused"
	stateShutdown = "Shutdown"
)

// answer is what a handler decided: status and body, and what happens
// once the answer is on its way (the guest powering off, the VMM exiting).
type answer struct {
	status int
	body   string
	after  func()
}

type vmm struct {
	cfg      Config
	router   routers.Router
	calls    string
	quit     chan struct{}
	quitOnce sync.Once
	// v53 is true for releases from v53.0 on (ModeReal only): VmNotCreated
	// and VmMissingConfig answer 404, and a VM whose boot failed stays
	// owned, so vm.boot answers "VM is already created".
	v53 bool

	mu sync.Mutex // guards the following
	// config is the VmConfig given to vm.create; nil: no VM.
	config json.RawMessage
	// booted: the VMM holds a Vm object (Some(vm) / VmOwnership::Owned),
	// made by vm.boot and dropped by vm.shutdown.
	booted bool
	// state is the Vm's state while booted (ModeOpenAPI keeps "Shutdown"
	// after vm.shutdown instead of dropping the Vm).
	state      string
	serialPath string
	serial     *os.File
}

func newVMM(cfg Config, router routers.Router, calls string) *vmm {
	return &vmm{cfg: cfg, router: router, calls: calls, quit: make(chan struct{}),
		v53: cfg.Mode == ModeReal && majorVersion(cfg.Version) >= 53}
}

// majorVersion reads 53 from "v53.0"; 0 when unreadable.
func majorVersion(v string) int {
	s, _, _ := strings.Cut(strings.TrimPrefix(strings.TrimSpace(v), "v"), ".")
	n, err := strconv.Atoi(s)
	if err != nil {
		return 0
	}
	return n
}

func (s *vmm) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := readBody(r)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	path := strings.TrimPrefix(r.URL.Path, "/api/v1")
	call := Call{PID: os.Getpid(), Method: r.Method, Path: r.URL.Path}
	var a answer
	if reason := s.validate(r, body); reason != "" {
		call.ValidationError = reason
		a = s.fail(http.StatusBadRequest, "Bad Request", reason)
	} else {
		if path == s.cfg.CrashOn {
			call.Status = -1
			s.record(call)
			fmt.Fprintln(os.Stderr, "stand-in: crashing on", r.URL.Path, "as told")
			os.Exit(3)
		}
		a = s.handle(r.Method, path, body)
		if strings.HasPrefix(a.body, Unsupported) {
			call.ValidationError = a.body // the provider must not need it
		}
	}
	call.Status = a.status
	s.record(call)
	if s.cfg.Mode == ModeReal || a.status == http.StatusOK {
		// The real HTTP layer labels every answer JSON (mod.rs,
		// handle_http_request).
		w.Header().Set("Content-Type", "application/json")
	}
	w.WriteHeader(a.status)
	_, _ = io.WriteString(w, a.body)
	if a.after != nil {
		if f, ok := w.(http.Flusher); ok {
			f.Flush()
		}
		a.after()
	}
}

func (s *vmm) record(c Call) {
	b, _ := json.Marshal(c)
	if err := appendLine(s.calls, string(b)); err != nil {
		fmt.Fprintln(os.Stderr, "stand-in: recording call:", err)
	}
}

// validate checks the request against the API document; a non-empty
// result is why it is invalid.
func (s *vmm) validate(r *http.Request, body []byte) string {
	vr := r.Clone(r.Context())
	vr.Body = io.NopCloser(bytes.NewReader(body))
	route, params, err := s.router.FindRoute(vr)
	if err != nil {
		return fmt.Sprintf("no route for %s %s: %v", r.Method, r.URL.Path, err)
	}
	in := &openapi3filter.RequestValidationInput{Request: vr, PathParams: params, Route: route}
	if err := openapi3filter.ValidateRequest(r.Context(), in); err != nil {
		return fmt.Sprintf("invalid %s %s: %v", r.Method, r.URL.Path, err)
	}
	return ""
}

func (s *vmm) handle(method, path string, body []byte) answer {
	s.mu.Lock()
	defer s.mu.Unlock()
	var a answer
	var ok bool
	if s.cfg.Mode == ModeOpenAPI {
		a, ok = s.openapi(path, body)
	} else {
		a, ok = s.real(path, body)
	}
	if !ok {
		return answer{status: http.StatusInternalServerError, body: fmt.Sprintf("%s %s %s", Unsupported, method, path)}
	}
	return a
}

// fail is an error answer. ModeReal: the JSON array of the error and its
// sources, top first, as error_response in vmm/src/api/http/mod.rs
// writes it. ModeOpenAPI: the messages as text (the document gives error
// answers no body).
func (s *vmm) fail(status int, msgs ...string) answer {
	if s.cfg.Mode == ModeOpenAPI {
		return answer{status: status, body: strings.Join(msgs, ": ")}
	}
	b, _ := json.Marshal(msgs)
	return answer{status: status, body: string(b)}
}

// apiError is an ApiError from the VMM thread: "Error from API", the
// action's message, and the VmError chain. notCreated marks VmNotCreated
// and VmMissingConfig, which v53.0 maps to 404 (api_error_status_code in
// mod.rs); every earlier release answers 500 (error_response(e,
// StatusCode::InternalServerError) in http_endpoint.rs and mod.rs).
func (s *vmm) apiError(notCreated bool, msgs ...string) answer {
	status := http.StatusInternalServerError
	if notCreated && s.v53 {
		status = http.StatusNotFound
	}
	return s.fail(status, append([]string{"Error from API"}, msgs...)...)
}

func (s *vmm) ping() answer {
	b, _ := json.Marshal(map[string]any{"version": s.cfg.Version, "build_version": "standin", "pid": os.Getpid(), "features": []string{"kvm"}})
	return answer{status: http.StatusOK, body: string(b)}
}

func (s *vmm) info() answer {
	state := s.state
	if !s.booted {
		state = stateCreated
	}
	var mem struct {
		Memory struct {
			Size int64 `json:"size"`
		} `json:"memory"`
	}
	_ = json.Unmarshal(s.config, &mem)
	b, _ := json.Marshal(map[string]any{"config": s.config, "state": state, "memory_actual_size": mem.Memory.Size})
	return answer{status: http.StatusOK, body: string(b)}
}

// exit ends the VMM process (status 0) once the current answer is sent.
func (s *vmm) exit() { s.quitOnce.Do(func() { close(s.quit) }) }

// guestPowerOff plays the guest powering itself off: the real VMM's
// exit event ends the process with status 0 (vmm/src/lib.rs, the control
// loop's EpollDispatch::Exit; from v52 only --no-shutdown keeps it up);
// ModeOpenAPI keeps the VMM up with the VM in "Shutdown".
func (s *vmm) guestPowerOff() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.booted || s.state != stateRunning {
		return
	}
	s.console("\nreboot: Power down\n")
	if s.cfg.Mode == ModeOpenAPI {
		s.state = stateShutdown
		s.closeSerialLocked()
		return
	}
	s.booted, s.state = false, ""
	s.closeSerialLocked()
	s.exit()
}

// powerButton answers a successful vm.power-button: a cooperative guest
// powers off right after.
func (s *vmm) powerButton() answer {
	a := answer{status: http.StatusNoContent}
	if s.state == stateRunning && !s.cfg.IgnorePowerButton {
		a.after = s.guestPowerOff
	}
	return a
}
