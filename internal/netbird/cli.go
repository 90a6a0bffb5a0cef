package netbird

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"time"
)

// Sentinel errors. Every error the package returns wraps one of them (or a
// context error), so callers and the Manager branch with errors.Is.
var (
	// ErrNotInstalled means the netbird binary was not found.
	ErrNotInstalled = errors.New("netbird client not installed")
	// ErrDaemonNotRunning means the CLI ran but could not reach the
	// NetBird daemon (service stopped, socket missing).
	ErrDaemonNotRunning = errors.New("netbird daemon not running")
	// ErrAlreadyConnected means `netbird up` found the daemon Connected
	// and did nothing, ignoring the setup key and management URL
	// (client/cmd/up.go prints "Already connected" and exits 0). It is no
	// failed join: the status says whether management is reachable.
	ErrAlreadyConnected = errors.New("netbird up did nothing: the daemon is already connected")
	// ErrTimeout means a netbird command did not finish within its
	// timeout and was killed.
	ErrTimeout = errors.New("netbird command timed out")
	// ErrCommandFailed means a netbird command exited with an error.
	ErrCommandFailed = errors.New("netbird command failed")
	// ErrMalformedStatus means `netbird status --json` printed something
	// that is not a status object.
	ErrMalformedStatus = errors.New("malformed netbird status")
	// ErrNoSetupKey means no setup key is available for joining.
	ErrNoSetupKey = errors.New("no netbird setup key")
	// ErrInsecureSetupKeyFile means the setup key file is readable by
	// users other than its owner, so the key must be presumed leaked.
	ErrInsecureSetupKeyFile = errors.New("netbird setup key file permissions too open")
	// ErrInvalidProbe means a Probe is misconfigured.
	ErrInvalidProbe = errors.New("invalid netbird probe")
)

// Client is what the agent needs from a NetBird client. CLI implements it
// with the netbird command; the embedded NetBird library can implement it
// later.
type Client interface {
	// Status returns the client's current state.
	Status(ctx context.Context) (Status, error)
	// Up logs in (with a setup key when given) and connects to the mesh.
	Up(ctx context.Context, opts UpOptions) error
	// Down disconnects from the mesh.
	Down(ctx context.Context) error
	// Version returns the client's version.
	Version(ctx context.Context) (string, error)
}

// UpOptions parameterises Client.Up. Empty fields are left to the NetBird
// client's own configuration.
type UpOptions struct {
	// SetupKey is a secret: never log it. LogValue redacts it.
	SetupKey string
	// SetupKeyFile, when set, is a 0600 file holding SetupKey. CLI passes
	// the file's path (--setup-key-file, NetBird v0.29.3+) rather than
	// the key, so the key never shows in /proc/<pid>/cmdline, which any
	// local user can read.
	SetupKeyFile  string
	ManagementURL string
	Hostname      string
}

// LogValue keeps the setup key out of logs even when the whole options
// value is logged by mistake.
func (o UpOptions) LogValue() slog.Value {
	key := ""
	if o.SetupKey != "" {
		key = redacted
	}
	return slog.GroupValue(
		slog.String("setup_key", key),
		slog.String("setup_key_file", o.SetupKeyFile),
		slog.String("management_url", o.ManagementURL),
		slog.String("hostname", o.Hostname),
	)
}

// Defaults of CLIOptions.
const (
	DefaultBin = "netbird"
	// DefaultTimeout bounds status, down and version: they only talk to
	// the local daemon. With the daemon down the CLI itself blocks about
	// 10 s dialling its socket before it says "failed to connect to
	// daemon" (client/cmd/root.go DialClientGRPCServer), and status runs
	// probes; the bound must outlast that, or a stopped daemon reads as a
	// hung one.
	DefaultTimeout = 30 * time.Second
	// DefaultUpTimeout bounds up, which logs in to management and waits
	// for the engine to start.
	DefaultUpTimeout = 2 * time.Minute
)

// Output caps: the status of a large mesh is a few hundred KiB; anything
// beyond these is not something the agent should hold in memory.
const (
	maxStdout = 8 << 20
	maxStderr = 64 << 10
	// maxMessage caps the command output quoted in an error, which ends
	// up in heartbeats.
	maxMessage = 512
)

const redacted = "[REDACTED]"

// slog keys.
const (
	logKeyCommand  = "command"
	logKeyDuration = "duration"
	logKeyError    = "error"
)

// CLIOptions configures a CLI.
type CLIOptions struct {
	// Bin is the netbird binary: a path, or a name looked up on PATH.
	// Empty means DefaultBin.
	Bin string
	// DaemonAddr is passed as --daemon-addr when set (e.g.
	// unix:///var/run/netbird.sock).
	DaemonAddr string
	// Timeout bounds status, down and version; zero means DefaultTimeout.
	Timeout time.Duration
	// UpTimeout bounds up; zero means DefaultUpTimeout.
	UpTimeout time.Duration
	// Logger receives one debug line per command (with the setup key
	// redacted); nil discards.
	Logger *slog.Logger
}

// CLI is a Client that runs the netbird command.
type CLI struct {
	bin        string
	daemonAddr string
	timeout    time.Duration
	upTimeout  time.Duration
	log        *slog.Logger
}

var _ Client = (*CLI)(nil)

// NewCLI returns a CLI.
func NewCLI(o CLIOptions) *CLI {
	c := &CLI{bin: o.Bin, daemonAddr: o.DaemonAddr, timeout: o.Timeout, upTimeout: o.UpTimeout, log: o.Logger}
	if c.bin == "" {
		c.bin = DefaultBin
	}
	if c.timeout <= 0 {
		c.timeout = DefaultTimeout
	}
	if c.upTimeout <= 0 {
		c.upTimeout = DefaultUpTimeout
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	return c
}

// Status runs `netbird status --json`.
func (c *CLI) Status(ctx context.Context) (Status, error) {
	out, err := c.run(ctx, c.timeout, "", nil, "status", "--json")
	if err != nil {
		if errors.Is(err, ErrCommandFailed) && daemonUnreachable(err.Error()) {
			return Status{}, fmt.Errorf("reading netbird status: %w: %w", ErrDaemonNotRunning, err)
		}
		return Status{}, fmt.Errorf("reading netbird status: %w", err)
	}
	return ParseStatus(out)
}

// Up runs `netbird up --setup-key-file … --management-url … --hostname …`.
// The setup key never goes on the command line, where every local user
// can read it in /proc: it is passed as a file when SetupKeyFile is set,
// else in the environment (NB_SETUP_KEY, and WT_SETUP_KEY for clients
// before the NB_ prefix), which only the agent's user and root can read;
// a client too old for --setup-key-file (before v0.29.3) is asked again
// that way.
// The key is redacted from the returned error, including from any output
// of the command that echoes it. A daemon already Connected makes `up` a
// no-op: the error then wraps ErrAlreadyConnected.
func (c *CLI) Up(ctx context.Context, opts UpOptions) error {
	err := c.up(ctx, opts)
	if opts.SetupKeyFile != "" && opts.SetupKey != "" && errors.Is(err, ErrCommandFailed) &&
		strings.Contains(err.Error(), "unknown flag: --setup-key-file") {
		// A client before v0.29.3: the environment it reads instead.
		opts.SetupKeyFile = ""
		err = c.up(ctx, opts)
	}
	if err != nil {
		return fmt.Errorf("joining netbird mesh: %w", err)
	}
	return nil
}

func (c *CLI) up(ctx context.Context, opts UpOptions) error {
	args := []string{"up"}
	var env []string
	switch {
	case opts.SetupKeyFile != "":
		args = append(args, "--setup-key-file", opts.SetupKeyFile)
	case opts.SetupKey != "":
		env = []string{"NB_SETUP_KEY=" + opts.SetupKey, "WT_SETUP_KEY=" + opts.SetupKey}
	}
	if opts.ManagementURL != "" {
		args = append(args, "--management-url", opts.ManagementURL)
	}
	if opts.Hostname != "" {
		args = append(args, "--hostname", opts.Hostname)
	}
	out, err := c.run(ctx, c.upTimeout, opts.SetupKey, env, args...)
	if err != nil {
		return err
	}
	if bytes.Contains(out, []byte("Already connected")) {
		return ErrAlreadyConnected
	}
	return nil
}

// Down runs `netbird down`.
func (c *CLI) Down(ctx context.Context) error {
	if _, err := c.run(ctx, c.timeout, "", nil, "down"); err != nil {
		return fmt.Errorf("leaving netbird mesh: %w", err)
	}
	return nil
}

// Version runs `netbird version`.
func (c *CLI) Version(ctx context.Context) (string, error) {
	out, err := c.run(ctx, c.timeout, "", nil, "version")
	if err != nil {
		return "", fmt.Errorf("reading netbird version: %w", err)
	}
	v := strings.TrimSpace(string(out))
	if v == "" {
		return "", fmt.Errorf("reading netbird version: empty output: %w", ErrCommandFailed)
	}
	return v, nil
}

// run executes the binary with args, and env added to the agent's
// environment, and returns its stdout. secret, when not empty, is
// scrubbed from argv and output in every error and log line.
func (c *CLI) run(ctx context.Context, timeout time.Duration, secret string, env []string, args ...string) ([]byte, error) {
	if c.daemonAddr != "" {
		args = append(args, "--daemon-addr", c.daemonAddr)
	}
	shown := redactArgs(c.bin, args, secret)
	path, err := exec.LookPath(c.bin)
	if err != nil {
		if errors.Is(err, exec.ErrNotFound) || errors.Is(err, fs.ErrNotExist) || errors.Is(err, fs.ErrPermission) {
			return nil, fmt.Errorf("running %s: %w", shown, ErrNotInstalled)
		}
		return nil, fmt.Errorf("running %s: %w: %w", shown, ErrNotInstalled, err)
	}

	runCtx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(runCtx, path, args...)
	if len(env) > 0 {
		cmd.Env = append(os.Environ(), env...)
	}
	// A child that forked a helper keeping our pipes open must not hold
	// us past the timeout: WaitDelay closes the pipes after the kill.
	cmd.WaitDelay = time.Second
	stdout := &cappedBuffer{max: maxStdout}
	stderr := &cappedBuffer{max: maxStderr}
	cmd.Stdout, cmd.Stderr = stdout, stderr

	start := time.Now()
	err = cmd.Run()
	elapsed := time.Since(start)
	if err == nil {
		c.log.LogAttrs(ctx, slog.LevelDebug, "netbird command finished",
			slog.String(logKeyCommand, shown), slog.Duration(logKeyDuration, elapsed))
		return stdout.Bytes(), nil
	}

	switch {
	case ctx.Err() != nil:
		err = fmt.Errorf("running %s: %w", shown, ctx.Err())
	case errors.Is(runCtx.Err(), context.DeadlineExceeded):
		err = fmt.Errorf("running %s: %w after %s", shown, ErrTimeout, timeout)
	default:
		msg := outputMessage(stderr.Bytes(), stdout.Bytes(), secret)
		var exitErr *exec.ExitError
		if errors.As(err, &exitErr) {
			err = fmt.Errorf("running %s: %w (exit status %d): %s", shown, ErrCommandFailed, exitErr.ExitCode(), msg)
		} else {
			// Start failures (exec format error, permission) carry the
			// path, never the arguments, so they are safe to wrap.
			err = fmt.Errorf("running %s: %w: %w", shown, ErrCommandFailed, err)
		}
	}
	c.log.LogAttrs(ctx, slog.LevelDebug, "netbird command failed",
		slog.String(logKeyCommand, shown), slog.Duration(logKeyDuration, elapsed), slog.String(logKeyError, err.Error()))
	return nil, err
}

// redactArgs renders the command line for errors and logs with the setup
// key replaced, whether it was passed as a separate argument or inline.
func redactArgs(bin string, args []string, secret string) string {
	parts := make([]string, 0, len(args)+1)
	parts = append(parts, bin)
	hideNext := false
	for _, a := range args {
		switch {
		case hideNext:
			a = redacted
			hideNext = false
		case a == "--setup-key" || a == "-k":
			hideNext = true
		case strings.HasPrefix(a, "--setup-key="):
			a = "--setup-key=" + redacted
		}
		if secret != "" {
			a = strings.ReplaceAll(a, secret, redacted)
		}
		parts = append(parts, a)
	}
	return strings.Join(parts, " ")
}

// outputMessage picks the command's complaint (stderr, else stdout),
// removes the secret and bounds its length.
func outputMessage(stderr, stdout []byte, secret string) string {
	msg := strings.TrimSpace(string(stderr))
	if msg == "" {
		msg = strings.TrimSpace(string(stdout))
	}
	if secret != "" {
		msg = strings.ReplaceAll(msg, secret, redacted)
	}
	msg = strings.Join(strings.Fields(msg), " ")
	if len(msg) > maxMessage {
		msg = truncateUTF8(msg, maxMessage) + "…"
	}
	if msg == "" {
		msg = "no output"
	}
	return msg
}

// truncateUTF8 cuts s to at most n bytes without splitting a rune.
func truncateUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

func utf8RuneStart(b byte) bool { return b&0xC0 != 0x80 }

// daemonUnreachable recognises the NetBird CLI's messages for a daemon it
// cannot reach ("failed to connect to daemon error: …", a refused or
// missing socket).
func daemonUnreachable(msg string) bool {
	m := strings.ToLower(msg)
	for _, s := range []string{"failed to connect to daemon", "daemon is not running", "daemon not running", "connection refused", "no such file or directory"} {
		if strings.Contains(m, s) {
			return true
		}
	}
	return false
}

// cappedBuffer keeps the first max bytes written to it and discards the
// rest while still reporting success, so a chatty child never blocks or
// dies of EPIPE.
type cappedBuffer struct {
	buf bytes.Buffer
	max int
}

func (b *cappedBuffer) Write(p []byte) (int, error) {
	if room := b.max - b.buf.Len(); room > 0 {
		b.buf.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

func (b *cappedBuffer) Bytes() []byte { return b.buf.Bytes() }
