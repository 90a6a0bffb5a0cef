package standin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
)

// BinaryName is the name the stand-in must be started under (a symlink or
// copy named like the real VMM), so the provider under test runs it as is.
const BinaryName = "cloud-hypervisor"

// Config is standin.json, written by the test next to the symlink.
type Config struct {
	SpecPath string `json:"spec_path"`
	Version  string `json:"version"`
	// CrashOn makes the VMM exit with status 3 when it receives a call to
	// this path (e.g. "/vm.boot"), before answering.
	CrashOn string `json:"crash_on,omitempty"`
	// NoSocket makes the VMM never create its API socket.
	NoSocket bool `json:"no_socket,omitempty"`
}

// Call is one line of calls.jsonl.
type Call struct {
	PID             int    `json:"pid"`
	Method          string `json:"method"`
	Path            string `json:"path"`
	Status          int    `json:"status"`
	ValidationError string `json:"validation_error,omitempty"`
}

// Files in the directory of the stand-in's binary: the configuration the
// test writes, and what the stand-in reports back.
const (
	// ConfigFile holds a Config as JSON.
	ConfigFile = "standin.json"
	// CallsFile gets one Call as a JSON line per API request.
	CallsFile = "calls.jsonl"
	// PIDsFile gets the pid of every stand-in process started, one a line.
	PIDsFile = "pids"
	// Unsupported starts the answer to valid calls the stand-in
	// does not implement.
	Unsupported = "stand-in does not implement"
)

// Main runs the stand-in VMM with the process arguments after the program
// name and returns its exit status. The caller (a TestMain or init that
// sees os.Args[0] named BinaryName) exits with it. Its configuration is
// ConfigFile in the directory of os.Args[0].
func Main(args []string) int {
	dir := filepath.Dir(os.Args[0])
	var cfg Config
	b, err := os.ReadFile(filepath.Join(dir, ConfigFile))
	if err == nil {
		err = json.Unmarshal(b, &cfg)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "stand-in: reading config:", err)
		return 2
	}
	if len(args) == 1 && args[0] == "--version" {
		fmt.Println("cloud-hypervisor " + cfg.Version)
		return 0
	}
	if len(args) != 2 || args[0] != "--api-socket" || !strings.HasPrefix(args[1], "path=") {
		fmt.Fprintln(os.Stderr, "stand-in: usage: cloud-hypervisor --api-socket path=SOCKET")
		return 2
	}
	socket := strings.TrimPrefix(args[1], "path=")
	if err := appendLine(filepath.Join(dir, PIDsFile), fmt.Sprint(os.Getpid())); err != nil {
		fmt.Fprintln(os.Stderr, "stand-in:", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if cfg.NoSocket {
		fmt.Fprintln(os.Stderr, "stand-in: told not to create the api socket")
		<-ctx.Done()
		return 1
	}
	doc, err := openapi3.NewLoader().LoadFromFile(cfg.SpecPath)
	if err == nil {
		err = doc.Validate(context.Background())
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "stand-in: loading spec:", err)
		return 2
	}
	router, err := gorillamux.NewRouter(doc)
	if err != nil {
		fmt.Fprintln(os.Stderr, "stand-in: building router:", err)
		return 2
	}
	ln, err := net.Listen("unix", socket)
	if err != nil {
		fmt.Fprintln(os.Stderr, "stand-in: listening:", err)
		return 2
	}
	v := &vmm{cfg: cfg, router: router, calls: filepath.Join(dir, CallsFile), quit: make(chan struct{})}
	srv := &http.Server{Handler: v, ReadHeaderTimeout: 5 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case <-ctx.Done():
	case <-v.quit:
	case err := <-errc:
		fmt.Fprintln(os.Stderr, "stand-in: serving:", err)
		return 1
	}
	sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = srv.Shutdown(sctx)
	_ = os.Remove(socket)
	return 0
}

func appendLine(path, line string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = f.WriteString(line + "\n")
	return err
}

type vmm struct {
	cfg      Config
	router   routers.Router
	calls    string
	quit     chan struct{}
	quitOnce sync.Once

	mu     sync.Mutex
	config json.RawMessage // the VmConfig given to vm.create; nil: no VM
	state  string
	serial string
}

func (s *vmm) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	call := Call{PID: os.Getpid(), Method: r.Method, Path: r.URL.Path}
	status, answer := s.validate(r, body)
	if status != 0 {
		call.ValidationError = answer
	} else {
		if strings.TrimPrefix(r.URL.Path, "/api/v1") == s.cfg.CrashOn {
			call.Status = -1
			s.record(call)
			fmt.Fprintln(os.Stderr, "stand-in: crashing on", r.URL.Path, "as told")
			os.Exit(3)
		}
		status, answer = s.handle(r.Method, strings.TrimPrefix(r.URL.Path, "/api/v1"), body)
		if strings.HasPrefix(answer, Unsupported) {
			call.ValidationError = answer // the provider must not need it
		}
	}
	call.Status = status
	s.record(call)
	if answer != "" && status == http.StatusOK {
		w.Header().Set("Content-Type", "application/json")
	}
	w.WriteHeader(status)
	_, _ = io.WriteString(w, answer)
	if r.URL.Path == "/api/v1/vmm.shutdown" && status == http.StatusNoContent {
		s.quitOnce.Do(func() { close(s.quit) })
	}
}

func (s *vmm) record(c Call) {
	b, _ := json.Marshal(c)
	if err := appendLine(s.calls, string(b)); err != nil {
		fmt.Fprintln(os.Stderr, "stand-in: recording call:", err)
	}
}

// validate checks the request against the API document; a non-zero
// status means it is invalid, with the reason.
func (s *vmm) validate(r *http.Request, body []byte) (int, string) {
	vr := r.Clone(r.Context())
	vr.Body = io.NopCloser(bytes.NewReader(body))
	route, params, err := s.router.FindRoute(vr)
	if err != nil {
		return http.StatusBadRequest, fmt.Sprintf("no route for %s %s: %v", r.Method, r.URL.Path, err)
	}
	in := &openapi3filter.RequestValidationInput{Request: vr, PathParams: params, Route: route}
	if err := openapi3filter.ValidateRequest(r.Context(), in); err != nil {
		return http.StatusBadRequest, fmt.Sprintf("invalid %s %s: %v", r.Method, r.URL.Path, err)
	}
	return 0, ""
}

// handle implements the VMM's VM state machine. Statuses follow the API
// document where it lists them (404 not created, 405 wrong state); errors
// it does not list are 500 with a message, as the real VMM answers.
func (s *vmm) handle(method, path string, body []byte) (int, string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	created := s.config != nil
	switch path {
	case "/vmm.ping":
		b, _ := json.Marshal(map[string]any{"version": s.cfg.Version, "build_version": "standin", "pid": os.Getpid()})
		return http.StatusOK, string(b)
	case "/vmm.shutdown":
		return http.StatusNoContent, ""
	case "/vm.info":
		if !created {
			return http.StatusNotFound, "VM is not created"
		}
		b, _ := json.Marshal(map[string]any{"config": s.config, "state": s.state})
		return http.StatusOK, string(b)
	case "/vm.create":
		if created {
			return http.StatusInternalServerError, "Error creating VM: VmAlreadyCreated"
		}
		var cfg struct {
			Serial struct {
				Mode string `json:"mode"`
				File string `json:"file"`
			} `json:"serial"`
		}
		if err := json.Unmarshal(body, &cfg); err != nil {
			return http.StatusBadRequest, err.Error()
		}
		s.config, s.state = json.RawMessage(body), "Created"
		if cfg.Serial.Mode == "File" {
			s.serial = cfg.Serial.File
		}
		return http.StatusNoContent, ""
	case "/vm.delete":
		s.config, s.state = nil, ""
		return http.StatusNoContent, ""
	case "/vm.boot":
		switch {
		case !created:
			return http.StatusNotFound, "VM is not created"
		case s.state == "Running" || s.state == "Paused":
			return http.StatusInternalServerError, "Error booting VM: VmAlreadyBooted"
		}
		s.state = "Running"
		s.console("stand-in guest booting\nwelcome to the stand-in guest\nlogin: ")
		return http.StatusNoContent, ""
	case "/vm.shutdown":
		switch {
		case !created:
			return http.StatusNotFound, "VM is not created"
		case s.state != "Running" && s.state != "Paused":
			return http.StatusMethodNotAllowed, "VM is not booted"
		}
		s.state = "Shutdown"
		s.console("\nreboot: Power down\n")
		return http.StatusNoContent, ""
	case "/vm.reboot":
		switch {
		case !created:
			return http.StatusNotFound, "VM is not created"
		case s.state != "Running":
			return http.StatusMethodNotAllowed, "VM is not booted"
		}
		s.console("\nreboot: Restarting system\nstand-in guest booting\nlogin: ")
		return http.StatusNoContent, ""
	case "/vm.pause":
		switch {
		case !created:
			return http.StatusNotFound, "VM is not created"
		case s.state != "Running":
			return http.StatusMethodNotAllowed, "VM is not running"
		}
		s.state = "Paused"
		return http.StatusNoContent, ""
	case "/vm.resume":
		switch {
		case !created:
			return http.StatusNotFound, "VM is not created"
		case s.state != "Paused":
			return http.StatusMethodNotAllowed, "VM is not paused"
		}
		s.state = "Running"
		return http.StatusNoContent, ""
	}
	return http.StatusInternalServerError, fmt.Sprintf("%s %s %s", Unsupported, method, path)
}

// console appends guest output to the serial file. Must be called with
// s.mu held.
func (s *vmm) console(text string) {
	if s.serial == "" {
		return
	}
	if err := appendLine(s.serial, text); err != nil && !errors.Is(err, os.ErrNotExist) {
		fmt.Fprintln(os.Stderr, "stand-in: writing console:", err)
	}
}

// Install makes exe (usually the running test binary, os.Executable) the
// stand-in VMM in dir: a symlink named BinaryName, with cfg as its
// configuration. It returns the path to give the provider as its binary.
func Install(dir, exe string, cfg Config) (string, error) {
	bin := filepath.Join(dir, BinaryName)
	if err := os.Symlink(exe, bin); err != nil {
		return "", fmt.Errorf("installing stand-in vmm: %w", err)
	}
	if err := WriteConfig(dir, cfg); err != nil {
		return "", err
	}
	return bin, nil
}

// WriteConfig (re)writes the configuration in dir; stand-ins started
// afterwards read it.
func WriteConfig(dir string, cfg Config) error {
	b, err := json.Marshal(cfg)
	if err != nil {
		return fmt.Errorf("encoding stand-in config: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, ConfigFile), b, 0o600); err != nil {
		return fmt.Errorf("writing stand-in config: %w", err)
	}
	return nil
}

// ReadCalls returns the API calls the stand-ins of dir served, in order;
// none when no stand-in ran.
func ReadCalls(dir string) ([]Call, error) {
	b, err := os.ReadFile(filepath.Join(dir, CallsFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading stand-in calls: %w", err)
	}
	var out []Call
	for line := range bytes.SplitSeq(bytes.TrimSpace(b), []byte("\n")) {
		if len(line) == 0 {
			continue
		}
		var c Call
		if err := json.Unmarshal(line, &c); err != nil {
			return nil, fmt.Errorf("reading stand-in calls: %w", err)
		}
		out = append(out, c)
	}
	return out, nil
}
