package netbird

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

const testKey = "A616097E-FCF0-48FA-9354-CA4A61142761"

// syncBuffer is a log sink safe for concurrent handlers.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func debugLogger(buf *syncBuffer) *slog.Logger {
	return slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func TestCLIStatus(t *testing.T) {
	t.Parallel()
	sample := string(readSample(t))
	missing := filepath.Join(t.TempDir(), "netbird")
	for _, tc := range []struct {
		name    string
		bin     string // overrides the stand-in
		cfg     fakeConfig
		wantErr []error
		wantMsg string
	}{
		{name: "sample", cfg: fakeConfig{Status: sample}},
		{name: "missing binary path", bin: missing, wantErr: []error{ErrNotInstalled}},
		{name: "missing binary on PATH", bin: "netbird-not-on-any-path-xyz", wantErr: []error{ErrNotInstalled}},
		{name: "daemon down", cfg: fakeConfig{StatusMode: modeDaemonDown}, wantErr: []error{ErrDaemonNotRunning, ErrCommandFailed}, wantMsg: "failed to connect to daemon"},
		{name: "malformed", cfg: fakeConfig{StatusMode: modeMalformed}, wantErr: []error{ErrMalformedStatus}},
		{name: "hang", cfg: fakeConfig{StatusMode: modeHang}, wantErr: []error{ErrTimeout}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			bin := tc.bin
			if bin == "" {
				bin = fakeBin(t, tc.cfg)
			}
			timeout := 10 * time.Second
			if tc.cfg.StatusMode == modeHang {
				timeout = 500 * time.Millisecond
			}
			c := NewCLI(CLIOptions{Bin: bin, Timeout: timeout})
			st, err := c.Status(context.Background())
			if tc.wantErr == nil {
				require.NoError(t, err)
				want, err := ParseStatus([]byte(sample))
				require.NoError(t, err)
				require.Equal(t, want, st)
				require.Equal(t, [][]string{{"status", "--json"}}, fakeCalls(t, bin))
				return
			}
			for _, want := range tc.wantErr {
				require.ErrorIs(t, err, want)
			}
			require.Contains(t, err.Error(), tc.wantMsg)
		})
	}
}

// TestCLIUpKeepsKeyOffCommandLine: the key never goes into argv, which
// any local user reads in /proc/<pid>/cmdline for as long as `up` runs;
// it goes as --setup-key-file (v0.29.3+) or in NB_SETUP_KEY.
func TestCLIUpKeepsKeyOffCommandLine(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name       string
		mode       string
		byFile     bool
		wantSource string
		wantErr    error
	}{
		{name: "key file", mode: modeOK, byFile: true, wantSource: "file"},
		{name: "key in the environment", mode: modeOK, wantSource: "env"},
		{name: "failure echoing the key", mode: modeFail, byFile: true, wantSource: "file", wantErr: ErrCommandFailed},
		{name: "hang", mode: modeHang, byFile: true, wantErr: ErrTimeout},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var logs syncBuffer
			bin := fakeBin(t, fakeConfig{Status: fixture(t, "status-0.77.1-needslogin.json"), UpMode: tc.mode})
			opts := UpOptions{SetupKey: testKey, ManagementURL: "https://nb.example:443", Hostname: "edge-a"}
			want := []string{"up", "--management-url", "https://nb.example:443", "--hostname", "edge-a", "--daemon-addr", "unix:///tmp/nb.sock"}
			if tc.byFile {
				opts.SetupKeyFile = filepath.Join(t.TempDir(), "key")
				require.NoError(t, SetupKeyFile{Path: opts.SetupKeyFile}.Write(testKey))
				want = append([]string{"up", "--setup-key-file", opts.SetupKeyFile}, want[1:]...)
			}
			var err error
			if tc.mode == modeHang {
				err = upHung(t, bin, &logs, opts)
			} else {
				c := NewCLI(CLIOptions{Bin: bin, UpTimeout: 10 * time.Second, DaemonAddr: "unix:///tmp/nb.sock", Logger: debugLogger(&logs)})
				err = c.Up(context.Background(), opts)
			}
			calls := fakeCalls(t, bin)
			require.Equal(t, [][]string{want}, calls)
			require.NotContains(t, strings.Join(calls[0], " "), testKey, "the key is on the command line")
			require.NotEmpty(t, logs.String())
			require.NotContains(t, logs.String(), testKey)
			if tc.wantSource != "" {
				require.Equal(t, fakeUpKey{Key: testKey, Source: tc.wantSource}, fakeKeyReceived(t, bin))
			}
			if tc.wantErr == nil {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, tc.wantErr)
			require.NotContains(t, err.Error(), testKey)
		})
	}
}

// upHung runs Up against a stand-in that hangs, with the short UpTimeout
// that is the point of the case, and returns the error of the first
// attempt whose stand-in recorded its call before the timeout killed it.
// A loaded machine can take longer than the timeout just to start the
// race-built stand-in; such an attempt says nothing about the call (and
// leaves no record), so it is repeated with double the timeout. Every
// attempt must end in ErrTimeout.
func upHung(t *testing.T, bin string, logs *syncBuffer, opts UpOptions) error {
	t.Helper()
	for timeout := time.Second; ; timeout *= 2 {
		c := NewCLI(CLIOptions{Bin: bin, UpTimeout: timeout, DaemonAddr: "unix:///tmp/nb.sock", Logger: debugLogger(logs)})
		err := c.Up(context.Background(), opts)
		require.ErrorIs(t, err, ErrTimeout)
		if len(fakeCalls(t, bin)) > 0 || timeout >= time.Minute {
			return err
		}
		t.Logf("the stand-in did not record its call within %s; again with a longer timeout", timeout)
	}
}

// TestCLIUpOldClientGetsKeyFromEnvironment: clients before v0.29.3 have
// no --setup-key-file; the key then goes in the environment, still never
// on the command line.
func TestCLIUpOldClientGetsKeyFromEnvironment(t *testing.T) {
	t.Parallel()
	bin := fakeBin(t, fakeConfig{Version: "0.28.9", Status: fixture(t, "status-0.66.4-needslogin.txt")})
	keyFile := filepath.Join(t.TempDir(), "key")
	require.NoError(t, SetupKeyFile{Path: keyFile}.Write(testKey))
	err := NewCLI(CLIOptions{Bin: bin}).Up(context.Background(), UpOptions{SetupKey: testKey, SetupKeyFile: keyFile})
	require.NoError(t, err)
	require.Equal(t, [][]string{{"up", "--setup-key-file", keyFile}, {"up"}}, fakeCalls(t, bin))
	require.Equal(t, fakeUpKey{Key: testKey, Source: "env"}, fakeKeyReceived(t, bin))
}

// TestCLIUpAlreadyConnected: `up` with the daemon Connected prints
// "Already connected" and exits 0 without using key or URL
// (client/cmd/up.go); that is reported as ErrAlreadyConnected, not as a
// join that worked.
func TestCLIUpAlreadyConnected(t *testing.T) {
	t.Parallel()
	bin := fakeBin(t, fakeConfig{Status: fixture(t, "status-0.77.1-connected.json")})
	err := NewCLI(CLIOptions{Bin: bin}).Up(context.Background(), UpOptions{SetupKey: testKey, ManagementURL: "https://other.example:443"})
	require.ErrorIs(t, err, ErrAlreadyConnected)
	_, statErr := os.Stat(filepath.Join(filepath.Dir(bin), fakeUpKeyName))
	require.ErrorIs(t, statErr, os.ErrNotExist, "the key was never read")
}

// TestCLIStatusDaemonDownOutlastsNetBirdDial: with its daemon stopped the
// real CLI blocks about 10 s dialling the socket before it says "failed
// to connect to daemon"; the default bound must outlast that, so the
// agent reports the daemon not running, not a timeout.
func TestCLIStatusDaemonDownOutlastsNetBirdDial(t *testing.T) {
	t.Parallel()
	bin := fakeBin(t, fakeConfig{StatusMode: modeDaemonDown, DialDelayMS: 10_500})
	_, err := NewCLI(CLIOptions{Bin: bin}).Status(context.Background())
	require.ErrorIs(t, err, ErrDaemonNotRunning)
	require.NotErrorIs(t, err, ErrTimeout)
	require.Contains(t, err.Error(), "daemon not running")
}

func TestCLIDownAndVersion(t *testing.T) {
	t.Parallel()
	bin := fakeBin(t, fakeConfig{Version: "0.59.7"})
	c := NewCLI(CLIOptions{Bin: bin})
	v, err := c.Version(context.Background())
	require.NoError(t, err)
	require.Equal(t, "0.59.7", v)
	require.NoError(t, c.Down(context.Background()))
	require.Equal(t, [][]string{{"version"}, {"down"}}, fakeCalls(t, bin))

	_, err = NewCLI(CLIOptions{Bin: fakeBin(t, fakeConfig{})}).Version(context.Background())
	require.ErrorIs(t, err, ErrCommandFailed, "empty version output")
	err = NewCLI(CLIOptions{Bin: fakeBin(t, fakeConfig{StatusMode: modeDaemonDown})}).Down(context.Background())
	require.ErrorIs(t, err, ErrCommandFailed)
}

func TestCLICallerCancellation(t *testing.T) {
	t.Parallel()
	bin := fakeBin(t, fakeConfig{StatusMode: modeHang})
	ctx, cancel := context.WithCancel(context.Background())
	c := NewCLI(CLIOptions{Bin: bin, Timeout: time.Minute})
	done := make(chan error, 1)
	go func() {
		_, err := c.Status(ctx)
		done <- err
	}()
	// Cancel once the stand-in is running, known from its call record.
	require.Eventually(t, func() bool { return len(fakeCalls(t, bin)) == 1 }, time.Minute, 5*time.Millisecond)
	cancel()
	err := <-done
	require.ErrorIs(t, err, context.Canceled)
	require.NotErrorIs(t, err, ErrTimeout)
}

func TestRedactArgs(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		args   []string
		secret string
		want   string
	}{
		{"separate", []string{"up", "--setup-key", "k1"}, "", "netbird up --setup-key [REDACTED]"},
		{"short flag", []string{"up", "-k", "k1"}, "", "netbird up -k [REDACTED]"},
		{"inline", []string{"up", "--setup-key=k1"}, "", "netbird up --setup-key=[REDACTED]"},
		{"secret elsewhere", []string{"up", "--hostname", "x-k1-y"}, "k1", "netbird up --hostname x-[REDACTED]-y"},
		{"nothing secret", []string{"status", "--json"}, "", "netbird status --json"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tc.want, redactArgs("netbird", tc.args, tc.secret))
		})
	}
}

func TestOutputMessageBounded(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("é", 2*maxMessage)
	msg := outputMessage([]byte(long), nil, "")
	require.LessOrEqual(t, len(msg), maxMessage+len("…"))
	require.True(t, strings.HasSuffix(msg, "…"))
	require.Equal(t, "from stdout", outputMessage(nil, []byte(" from\nstdout "), ""))
	require.Equal(t, "no output", outputMessage(nil, nil, ""))
	require.Equal(t, "bad key [REDACTED]", outputMessage([]byte("bad key s3cr3t"), nil, "s3cr3t"))
}
