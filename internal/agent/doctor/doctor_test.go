package doctor

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/vishvananda/netlink"

	"github.com/kubedoio/n-kudo/internal/pki"
	"github.com/kubedoio/n-kudo/internal/specfile"
)

// script writes an executable shell script.
func script(t *testing.T, dir, name, body string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	require.NoError(t, os.WriteFile(p, []byte("#!/bin/sh\n"+body), 0o755))
	return p
}

func TestCheckKVM(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	dev := filepath.Join(dir, "kvm")
	require.NoError(t, os.WriteFile(dev, nil, 0o600))
	locked := filepath.Join(dir, "locked")
	require.NoError(t, os.WriteFile(locked, nil, 0o000))
	tests := []struct {
		name, device string
		want         Status
		fix          string
	}{
		{"opens read-write", dev, StatusOK, ""},
		{"missing", filepath.Join(dir, "nope"), StatusFail, "modprobe kvm_intel"},
		{"a directory", dir, StatusFail, "KVM character device"},
	}
	if os.Geteuid() != 0 { // root opens any mode
		tests = append(tests, struct {
			name, device string
			want         Status
			fix          string
		}{"permission denied", locked, StatusFail, "kvm group"})
	}
	for _, tt := range tests {
		res := checkKVM(tt.device)
		require.Equal(t, tt.want, res.Status, "%s: %+v", tt.name, res)
		require.Contains(t, res.Fix, tt.fix, tt.name)
		require.Equal(t, res.Status == StatusFail, KVMProblem(tt.device) != "", tt.name)
	}
}

func TestCheckVMM(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	// What `cloud-hypervisor --version` prints (see
	// cloudhypervisor.ParseVersion for the upstream source).
	tests := []struct {
		name, bin string
		want      Status
		detail    string
		fix       string
	}{
		{"tested", script(t, dir, "ch49", "echo 'cloud-hypervisor v49.0.0'\n"), StatusOK, "v49.0.0", ""},
		{"older than tested", script(t, dir, "ch40", "echo 'cloud-hypervisor v40.0'\n"), StatusWarn, "v40.0", "upgrade Cloud Hypervisor to v48.0"},
		{"missing", filepath.Join(dir, "cloud-hypervisor"), StatusFail, "not found", "install Cloud Hypervisor v48.0"},
		{"not on PATH", "nkudo-no-such-vmm", StatusFail, "not found", "--cloud-hypervisor-bin"},
		{"unreadable version", script(t, dir, "chbad", "echo 'hello'\n"), StatusFail, "does not run", "--version"},
		{"fails", script(t, dir, "chfail", "exit 3\n"), StatusFail, "does not run", "reinstall"},
	}
	for _, tt := range tests {
		res := checkVMM(context.Background(), tt.bin)
		require.Equal(t, tt.want, res.Status, "%s: %+v", tt.name, res)
		require.Contains(t, res.Detail, tt.detail, tt.name)
		require.Contains(t, res.Fix, tt.fix, tt.name)
	}
}

func TestCheckNetAdmin(t *testing.T) {
	t.Parallel()
	res := checkNetAdmin(context.Background(), func(context.Context) error { return errors.New("operation not permitted") })
	require.Equal(t, StatusFail, res.Status)
	require.Contains(t, res.Detail, "operation not permitted")
	require.Contains(t, res.Fix, "CAP_NET_ADMIN")
	require.Equal(t, StatusOK, checkNetAdmin(context.Background(), func(context.Context) error { return nil }).Status)
}

// TestNetAdminInThrowawayNS runs the real check: it must work as root and
// leave nothing behind in the host's namespace.
func TestNetAdminInThrowawayNS(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		err := NetAdminInThrowawayNS(context.Background())
		require.Error(t, err, "an unprivileged user cannot create network namespaces")
		return
	}
	if _, err := os.Stat("/dev/net/tun"); err != nil {
		t.Skipf("needs /dev/net/tun: %v", err)
	}
	require.NoError(t, NetAdminInThrowawayNS(context.Background()))
	for _, name := range []string{probeBridge, probeTAP} {
		_, err := netlink.LinkByName(name)
		var nf netlink.LinkNotFoundError
		require.True(t, errors.As(err, &nf), "%s leaked into the host namespace: %v", name, err)
	}
}

func TestCheckImageDirs(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "alpine.raw"), nil, 0o600))
	tests := []struct {
		name   string
		dirs   []string
		want   Status
		detail string
	}{
		{"present", []string{dir}, StatusOK, dir + " (1 files)"},
		{"missing", []string{dir, filepath.Join(dir, "nope")}, StatusFail, "no such file"},
		{"relative", []string{"images"}, StatusFail, "absolute"},
		{"comma", []string{dir + ",x"}, StatusFail, "','"},
	}
	for _, tt := range tests {
		res := checkImageDirs(tt.dirs)
		require.Equal(t, tt.want, res.Status, "%s: %+v", tt.name, res)
		require.Contains(t, res.Detail, tt.detail, tt.name)
		if tt.want == StatusFail {
			require.NotEmpty(t, res.Fix, tt.name)
		}
	}
}

func TestCheckDir(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	mk := func(name string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.Mkdir(p, mode))
		require.NoError(t, os.Chmod(p, mode)) // past the umask
		return p
	}
	private, open, shared := mk("private", 0o700), mk("open", 0o777), mk("shared", 0o755)
	file := filepath.Join(dir, "file")
	require.NoError(t, os.WriteFile(file, nil, 0o600))
	tests := []struct {
		name, dir string
		bad       os.FileMode
		want      Status
		fix       string
	}{
		{"private state", private, 0o077, StatusOK, ""},
		{"world-writable state", open, 0o077, StatusFail, "chmod 0700 " + open},
		{"readable state", shared, 0o077, StatusFail, "chmod 0700 " + shared},
		{"readable runtime", shared, 0o022, StatusOK, ""},
		{"world-writable runtime", open, 0o022, StatusFail, "chmod 0755 " + open},
		{"missing under a writable parent", filepath.Join(private, "a", "b"), 0o077, StatusOK, ""},
		{"a file", file, 0o077, StatusFail, "mkdir"},
		{"not given", "", 0o077, StatusSkip, ""},
	}
	for _, tt := range tests {
		res := checkDir(CheckStateDir, tt.dir, tt.bad, "test")
		require.Equal(t, tt.want, res.Status, "%s: %+v", tt.name, res)
		require.Contains(t, res.Fix, tt.fix, tt.name)
	}
}

func TestCheckClock(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 12, 3, 12, 0, 0, 500e6, time.UTC)
	tests := []struct {
		name string
		date string
		want Status
	}{
		{"same second", now.Truncate(time.Second).Format(http.TimeFormat), StatusOK},
		{"5 s ahead", now.Add(5 * time.Second).Format(http.TimeFormat), StatusOK},
		{"30 s behind", now.Add(-30 * time.Second).Format(http.TimeFormat), StatusWarn},
		{"an hour ahead", now.Add(time.Hour).Format(http.TimeFormat), StatusFail},
		{"no date", "", StatusWarn},
	}
	for _, tt := range tests {
		h := http.Header{}
		if tt.date != "" {
			h.Set("Date", tt.date)
		}
		res := checkClock(h, now, now.Add(100*time.Millisecond))
		require.Equal(t, tt.want, res.Status, "%s: %+v", tt.name, res)
	}
}

func TestCheckServer(t *testing.T) {
	t.Parallel()
	var skew time.Duration
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/healthz" {
			http.NotFound(w, r)
			return
		}
		if skew != 0 {
			w.Header().Set("Date", time.Now().Add(skew).UTC().Format(http.TimeFormat))
		}
		fmt.Fprintln(w, `{"status":"ok"}`)
	}))
	t.Cleanup(srv.Close)
	// httptest's certificate is its own CA: pin it by fingerprint, as
	// an operator pins the one nkudo-server prints.
	fp := pki.FingerprintOf(srv.Certificate())
	wrong := strings.Repeat("0", 64)
	tests := []struct {
		name        string
		o           Options
		skew        time.Duration
		server      Status
		clock       Status
		detail, fix string
	}{
		{"not enrolled", Options{StateDir: t.TempDir()}, 0, StatusSkip, StatusSkip, "not enrolled", ""},
		{"pinned", Options{Server: srv.URL, CAFingerprint: fp}, 0, StatusOK, StatusOK, "reachable", ""},
		{"wrong fingerprint", Options{Server: srv.URL, CAFingerprint: wrong}, 0, StatusFail, StatusSkip, "matches --ca-fingerprint", "--ca-fingerprint"},
		{"no fingerprint", Options{Server: srv.URL}, 0, StatusFail, StatusSkip, "needs --ca-fingerprint", "--ca-fingerprint"},
		{"unreachable", Options{Server: "https://127.0.0.1:1", CAFingerprint: fp}, 0, StatusFail, StatusSkip, "unreachable", "firewall"},
		{"clock an hour off", Options{Server: srv.URL, CAFingerprint: fp}, time.Hour, StatusOK, StatusFail, "reachable", ""},
	}
	for _, tt := range tests { // sequential: skew is shared with the handler
		skew = tt.skew
		tt.o.setDefaults()
		res := checkServer(context.Background(), tt.o)
		require.Len(t, res, 2)
		require.Equal(t, tt.server, res[0].Status, "%s: %+v", tt.name, res[0])
		require.Equal(t, tt.clock, res[1].Status, "%s: %+v", tt.name, res[1])
		require.Contains(t, res[0].Detail, tt.detail, tt.name)
		require.Contains(t, res[0].Fix, tt.fix, tt.name)
	}
}

func TestCheckNetBird(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	// A stand-in netbird CLI printing the status document of
	// specs/netbird-status.example.json, the shape of `netbird status
	// --json` (netbirdio/netbird client/status/status.go, OutputOverview).
	status := specfile.Path(t, "netbird-status.example.json")
	nb := script(t, dir, "netbird", fmt.Sprintf("[ \"$1\" = status ] && exec cat %q\nexit 2\n", status))
	down := script(t, dir, "netbird-down", "echo 'Error: failed to connect to daemon error: context deadline exceeded' >&2\nexit 1\n")
	tests := []struct {
		name     string
		bin      string
		required bool
		want     Status
	}{
		{"connected", nb, false, StatusOK},
		{"missing", filepath.Join(dir, "nope"), false, StatusWarn},
		{"missing but required", filepath.Join(dir, "nope"), true, StatusFail},
		{"daemon down", down, false, StatusWarn},
		{"daemon down but required", down, true, StatusFail},
	}
	for _, tt := range tests {
		o := Options{NetBirdBin: tt.bin, NetBirdRequired: tt.required}
		o.setDefaults()
		res := checkNetBird(context.Background(), o)
		require.Equal(t, tt.want, res.Status, "%s: %+v", tt.name, res)
		if tt.want != StatusOK {
			require.NotEmpty(t, res.Fix, tt.name)
		}
	}
}

// TestRun: a host missing its VMM cannot run VMs; the table and the JSON
// both say why, with the fix.
func TestRun(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	kvm := filepath.Join(dir, "kvm")
	require.NoError(t, os.WriteFile(kvm, nil, 0o600))
	images := filepath.Join(dir, "images")
	require.NoError(t, os.Mkdir(images, 0o755))
	o := Options{
		KVMDevice: kvm, CloudHypervisorBin: filepath.Join(dir, "cloud-hypervisor"), NetBirdBin: filepath.Join(dir, "netbird"),
		ImageDirs: []string{images}, StateDir: filepath.Join(dir, "state"), RuntimeDir: filepath.Join(dir, "run"),
		NetAdmin: func(context.Context) error { return nil },
	}
	r := Run(context.Background(), o)
	require.False(t, r.OK)
	require.Len(t, r.Fixes(), 1)
	require.Contains(t, r.Fixes()[0], "cloud-hypervisor: install Cloud Hypervisor")
	var table bytes.Buffer
	require.NoError(t, r.WriteTable(&table))
	require.Contains(t, table.String(), "blocker: cloud-hypervisor:")
	require.Contains(t, table.String(), "warning: netbird:")
	var js bytes.Buffer
	require.NoError(t, r.WriteJSON(&js))
	var back Report
	require.NoError(t, json.Unmarshal(js.Bytes(), &back))
	require.Equal(t, r, back)

	o.CloudHypervisorBin = script(t, dir, "ch", "echo 'cloud-hypervisor v48.0'\n")
	r = Run(context.Background(), o)
	require.True(t, r.OK, "%+v", r)
}
