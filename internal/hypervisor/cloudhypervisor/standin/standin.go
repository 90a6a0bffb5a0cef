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
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/routers/gorillamux"
)

// BinaryName is the name the stand-in must be started under (a symlink or
// copy named like the real VMM), so the provider under test runs it as is.
const BinaryName = "cloud-hypervisor"

// Modes of the stand-in.
const (
	// ModeReal answers as Cloud Hypervisor's own code does, for the
	// release in Config.Version (see the package comment). The default.
	ModeReal = "real"
	// ModeOpenAPI answers as the API document says (404 "not created", 405
	// wrong state, 204 for vmm.shutdown, a "Shutdown" state).
	ModeOpenAPI = "openapi"
)

// DefaultVersion is the release the stand-in plays when Config.Version is
// empty: the oldest one the provider is tested against.
const DefaultVersion = "v48.0"

// Config is standin.json, written by the test next to the symlink.
type Config struct {
	SpecPath string `json:"spec_path"`
	// Version is what --version and vmm.ping report; in ModeReal it also
	// picks the release's behaviour (v53.0 and later answer 404 for "not
	// created" and refuse a second vm.boot after a failed one).
	Version string `json:"version"`
	// Mode is ModeReal (the default when empty) or ModeOpenAPI.
	Mode string `json:"mode,omitempty"`
	// CrashOn makes the VMM exit with status 3 when it receives a call to
	// this path (e.g. "/vm.boot"), before answering.
	CrashOn string `json:"crash_on,omitempty"`
	// NoSocket makes the VMM never create its API socket.
	NoSocket bool `json:"no_socket,omitempty"`
	// IgnorePowerButton plays a guest that does not react to the ACPI
	// power button (no acpid, or hung): vm.power-button succeeds and the
	// VM keeps running.
	IgnorePowerButton bool `json:"ignore_power_button,omitempty"`
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

// GuestPowerOffSignal, sent to a stand-in, plays a guest that powers
// itself off (`poweroff` inside the VM): the real VMM then exits with
// status 0 (ModeReal), or keeps running with the VM in "Shutdown"
// (ModeOpenAPI, like a VMM started with --no-shutdown).
const GuestPowerOffSignal = syscall.SIGUSR1

// Main runs the stand-in VMM with the process arguments after the program
// name and returns its exit status. The caller (a TestMain or init that
// sees os.Args[0] named BinaryName) exits with it. Its configuration is
// ConfigFile in the directory of os.Args[0].
func Main(args []string) int {
	dir := filepath.Dir(os.Args[0])
	cfg, err := readConfig(dir)
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
	// The real option parser splits on ',' (option_parser crate): a path
	// with a comma would be cut short and the VMM would bind elsewhere.
	socket := strings.TrimPrefix(args[1], "path=")
	if strings.Contains(socket, ",") {
		fmt.Fprintf(os.Stderr, "stand-in: error parsing --api-socket: unknown option in %q\n", args[1])
		return 1
	}
	if err := appendLine(filepath.Join(dir, PIDsFile), strconv.Itoa(os.Getpid())); err != nil {
		fmt.Fprintln(os.Stderr, "stand-in:", err)
		return 2
	}
	return serve(cfg, dir, socket)
}

func readConfig(dir string) (Config, error) {
	var cfg Config
	b, err := os.ReadFile(filepath.Join(dir, ConfigFile))
	if err == nil {
		err = json.Unmarshal(b, &cfg)
	}
	if cfg.Version == "" {
		cfg.Version = DefaultVersion
	}
	if cfg.Mode == "" {
		cfg.Mode = ModeReal
	}
	if err == nil && cfg.Mode != ModeReal && cfg.Mode != ModeOpenAPI {
		err = fmt.Errorf("unknown mode %q", cfg.Mode)
	}
	return cfg, err
}

// serve answers the API until vmm.shutdown, a guest power-off (ModeReal)
// or SIGTERM, and returns the exit status.
func serve(cfg Config, dir, socket string) int {
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
	v := newVMM(cfg, router, filepath.Join(dir, CallsFile))
	srv := &http.Server{Handler: v, ReadHeaderTimeout: 5 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	poweroff := make(chan os.Signal, 1)
	signal.Notify(poweroff, GuestPowerOffSignal)
	defer signal.Stop(poweroff)
	status := 0
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case <-poweroff:
			v.guestPowerOff()
		case <-v.quit:
			break loop
		case err := <-errc:
			fmt.Fprintln(os.Stderr, "stand-in: serving:", err)
			status = 1
			break loop
		}
	}
	sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = srv.Shutdown(sctx)
	_ = os.Remove(socket)
	v.closeSerial()
	return status
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

// readBody reads a request body, bounded: VmConfigs are small.
func readBody(r *http.Request) ([]byte, error) {
	return io.ReadAll(io.LimitReader(r.Body, 1<<20))
}
